//! `manifest.json`: what a backup folder holds, written last when the backup is made
//! (its presence is what makes a folder a backup) and rewritten atomically when the
//! backup is verified again.

use crate::db::pgtools::DbLocale;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The manifest's file name inside a backup folder.
pub const MANIFEST: &str = "manifest.json";

/// Bumped when a field changes meaning; older dbflow versions refuse newer manifests.
pub const FORMAT_VERSION: u32 = 1;

/// The kind of archive in a backup folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Archive {
    /// `pg_dump --format=custom`, one file.
    Custom,
    /// `pg_dump --format=directory`, a folder.
    Directory,
    /// A SQLite database file made with `VACUUM INTO`.
    Sqlite,
    /// A snapshot held by a Lua provider (RDS, Cloud SQL, …): nothing on disk but the
    /// manifest; the provider restores and deletes it.
    Provider,
}

/// The provider-side identity of a provider snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSnapshot {
    /// Provider name (`aws_rds`).
    pub name: String,
    /// The provider's snapshot id.
    pub snapshot_id: String,
}

impl Archive {
    /// As written in manifests and shown in lists.
    pub fn as_str(self) -> &'static str {
        match self {
            Archive::Custom => "custom",
            Archive::Directory => "directory",
            Archive::Sqlite => "sqlite",
            Archive::Provider => "provider",
        }
    }
}

/// One file of a directory-format dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Path relative to the dump folder.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// Whether a backup can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyState {
    /// Checksum matches and the archive reads back.
    Verified,
    /// A check failed: never offered for restore.
    Failed,
}

/// The last verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Outcome.
    pub state: VerifyState,
    /// When it ran.
    pub checked_at: DateTime<Utc>,
    /// What was checked, or what failed.
    pub detail: String,
}

/// Everything known about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the dbflow that wrote it.
    pub format_version: u32,
    /// The backup id (= folder name).
    pub id: String,
    /// Environment it was taken from.
    pub environment: String,
    /// `postgresql` or `sqlite`.
    pub engine: String,
    /// Database name (SQLite: the file's stem).
    pub database: String,
    /// URL of the database, redacted.
    pub url: String,
    /// When the dump started (UTC), by the clock named in `clock`; the id says the same.
    pub created_at: DateTime<Utc>,
    /// Which clock `created_at` and the id come from: [`HOST_CLOCK`], the clock of the
    /// machine dbflow ran on. Absent in manifests written before it was recorded (the
    /// same clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// The database server's clock (`now()`) in the transaction whose snapshot was
    /// dumped (PostgreSQL). Compared with run starts read from the same server clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<DateTime<Utc>>,
    /// The machine that took it (a skewed clock is then easy to trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How long dump + verification took.
    pub duration_ms: u64,
    /// Archive kind.
    pub format: Archive,
    /// The dump, relative to the backup folder (a file, or a folder for `directory`).
    pub dump: String,
    /// Bytes of the dump.
    pub size: u64,
    /// sha256 of the dump file; for a folder, of its `sha256sum`-style listing.
    pub sha256: String,
    /// Files of a directory-format dump.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSum>,
    /// `pg_dump --version` (or the SQLite library version).
    pub tool_version: Option<String>,
    /// The server's version.
    pub server_version: Option<String>,
    /// Encoding and locale of the database (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<DbLocale>,
    /// Newest applied migration when the backup was taken, if the history table existed.
    pub migration_head: Option<String>,
    /// The run that made it.
    pub run_id: Option<String>,
    /// Free label (`pre-deploy`, …).
    pub label: Option<String>,
    /// Every table, `schema.table` (PostgreSQL) or `table` (SQLite), sorted.
    pub tables: Vec<String>,
    /// Exact row counts of the drill's key tables, read in the dump's own snapshot.
    #[serde(default)]
    pub row_counts: IndexMap<String, u64>,
    /// The last verification.
    pub verification: Verification,
    /// For provider snapshots: which provider holds it, under which id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderSnapshot>,
    /// Set by `dbflow backup pin`: `prune` never removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Pin>,
    /// Set when the dump is encrypted (client-side, before upload): who can decrypt it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// The clock of the machine dbflow runs on, in UTC: backup ids, `created_at` and ages.
pub const HOST_CLOCK: &str = "host";

/// Why a backup is kept whatever the retention says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// What the person pinning it gave (`--reason`).
    pub reason: Option<String>,
    /// Who pinned it.
    pub by: String,
    /// When (host clock).
    pub at: DateTime<Utc>,
}

impl Manifest {
    /// Reads `<dir>/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::failed(format!("{}: not a dbflow manifest: {e}", path.display()))
        })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(Error::failed(format!(
                "{}: written by a newer dbflow (manifest format {}); upgrade dbflow",
                path.display(),
                manifest.format_version
            )));
        }
        Ok(manifest)
    }

    /// Writes `<dir>/manifest.json` atomically (temporary file, fsync, rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a manifest serializes");
        let text = crate::redact::redact(&text);
        write_atomically(&dir.join(MANIFEST), text.as_bytes())
    }
}

/// Writes `path` through a temporary sibling, fsynced, then renamed over it; readable
/// by its owner only (a manifest names tables, row counts and the database).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    {
        let mut file = private_file(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Creates (or truncates) a file readable and writable by its owner only (0600): backups
/// hold customer data.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // An existing file keeps its mode through `open`: set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Creates `dir` and any missing parents, each new one private to its owner (0700).
/// Folders that already exist keep their mode: an operator may have opened the backups
/// root to a group on purpose; each backup's own folder is private anyway.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates one folder private to its owner (0700); fails when it exists.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes everything under `dir` (and `dir`) private to its owner: folders 0700, files
/// 0600. For what other programs wrote there (pg_dump's directory format, SQLite's
/// `VACUUM INTO`) with the process umask.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(dir)?;
        if meta.is_dir() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            for entry in std::fs::read_dir(dir)? {
                make_private(&entry?.path())?;
            }
        } else if meta.is_file() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes a rename in `dir` durable (best effort: not every platform can open a folder).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// How a dump is encrypted: the `age` format, to these recipients (public keys; the
/// identities that decrypt never leave their owners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Always `age`.
    pub format: String,
    /// The `age1…` recipients the dump was encrypted to.
    pub recipients: Vec<String>,
}
