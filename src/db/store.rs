//! Migrations on disk, in Prisma's layout: `<dir>/<timestamp>_<name>/migration.sql`
//! (plus an optional `down.sql`) and `migration_lock.toml`, sorted by folder name.

use super::checksum;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One migration folder.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Folder name (`20240101120000_init`): the migration's identity.
    pub name: String,
    /// Path of `migration.sql`.
    pub path: PathBuf,
    /// The script's bytes as on disk (checksummed as-is).
    pub script: Vec<u8>,
    /// Lowercase hex SHA-256 of `script`.
    pub checksum: String,
}

impl Migration {
    /// The script as text (lossy for invalid UTF-8, which PostgreSQL would refuse anyway).
    pub fn sql(&self) -> String {
        String::from_utf8_lossy(&self.script).into_owned()
    }

    /// `down.sql` beside `migration.sql`, when present (looked up when needed, not for
    /// every migration on every read).
    pub fn down(&self) -> Option<PathBuf> {
        self.path
            .parent()
            .map(|dir| dir.join("down.sql"))
            .filter(|p| p.is_file())
    }
}

/// What `migration_lock.toml` says and what was skipped.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Migrations sorted by name.
    pub migrations: Vec<Migration>,
    /// `provider` from `migration_lock.toml`, when present.
    pub provider: Option<String>,
    /// Entries that are not migrations, with the reason (never skipped silently).
    pub ignored: Vec<(String, String)>,
}

impl Store {
    /// Reads `dir`. A missing folder is an empty store (a project without migrations yet).
    pub fn read(dir: &Path) -> Result<Self> {
        let mut store = Store::default();
        if !dir.exists() {
            return Ok(store);
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let mut folders = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            // The directory entry's own type (no stat), following a symlink only when it is one.
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => path.is_dir(),
                Ok(t) => t.is_dir(),
                Err(_) => path.is_dir(),
            };
            if is_dir {
                folders.push((name, path.join("migration.sql")));
            } else if name == "migration_lock.toml" {
                store.provider = read_provider(&path)?;
            } else if !name.starts_with('.') {
                store
                    .ignored
                    .push((name, "a file, not a migration folder".into()));
            }
        }
        // No stat before each read: with hundreds of migrations the system calls are
        // most of what reading the folder costs (callers overlap it with connecting).
        for (name, path) in &folders {
            match read_one(name, path)? {
                Ok(migration) => store.migrations.push(migration),
                Err(ignored) => store.ignored.push(ignored),
            }
        }
        store.migrations.sort_by(|a, b| a.name.cmp(&b.name));
        store.ignored.sort();
        Ok(store)
    }

    /// Fails when `migration_lock.toml` names a different database than the URL's.
    pub fn check_provider(&self, dir: &Path, is_postgres: bool) -> Result<()> {
        let Some(provider) = &self.provider else {
            return Ok(());
        };
        let expected = if is_postgres {
            ["postgresql", "postgres"]
        } else {
            ["sqlite", "sqlite"]
        };
        if expected.contains(&provider.as_str()) {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "{}/migration_lock.toml says provider = \"{provider}\" but the environment's database is {}",
            dir.display(),
            if is_postgres { "PostgreSQL" } else { "SQLite" }
        )))
    }

    /// Looks a migration up by name.
    pub fn get(&self, name: &str) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.name == name)
    }
}

/// One folder's `migration.sql`, or why the folder is not a migration.
fn read_one(
    name: &str,
    script_path: &Path,
) -> Result<std::result::Result<Migration, (String, String)>> {
    match std::fs::read(script_path) {
        Ok(script) => Ok(Ok(Migration {
            checksum: checksum::sha256_hex(&script),
            name: name.to_string(),
            path: script_path.to_path_buf(),
            script,
        })),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
            ) =>
        {
            Ok(Err((
                name.to_string(),
                "folder without migration.sql".into(),
            )))
        }
        Err(e) => Err(Error::io(format!("reading {}", script_path.display()), e)),
    }
}

fn read_provider(path: &Path) -> Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        provider: Option<String>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let lock: Lock =
        toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    Ok(lock.provider)
}
