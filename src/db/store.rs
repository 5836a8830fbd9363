//! Migrations on disk, in Prisma's layout: `<dir>/<timestamp>_<name>/migration.sql`
//! (plus an optional `down.sql`) and `migration_lock.toml`, sorted by folder name.
//!
//! Reading the folder hashes each script as a stream and keeps no text: `status` costs
//! the same memory for a 50 MB migration as for a 50-byte one, and `deploy` reads a
//! script's text once, when it applies it ([`Migration::text`]). A migration file or folder
//! that resolves outside the migrations folder (a symbolic link planted by a pull request)
//! is refused before it is opened, and a script that is not UTF-8 is refused with the
//! offset of the first bad byte: PostgreSQL would otherwise receive different text (U+FFFD)
//! than the file, and its checksum.

use super::checksum;
use super::hash_cache::{HashCache, Stamp};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Results of reading the migrations folder.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why the migrations folder could not be read. Each variant's message is the one a
/// person sees; `From<StoreError> for crate::error::Error` maps it to an exit code
/// (bad input, 2, for everything in the folder that dbflow refuses; 1 for I/O and a
/// script that changed under it).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading a file or folder failed.
    #[error("reading {}: {source}", .path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A script's text no longer matches the checksum taken when it was hashed.
    #[error("{} changed while dbflow was running; run the command again", .0.display())]
    Changed(PathBuf),
    /// A file or link resolves outside the migrations folder.
    #[error("{}: resolves outside the migrations folder {}; dbflow does not read it (replace the symbolic link with the file itself)", .path.display(), .dir.display())]
    OutsideFolder {
        /// The entry as listed.
        path: PathBuf,
        /// The migrations folder.
        dir: PathBuf,
    },
    /// A FIFO, a device or a folder where a file was expected.
    #[error("{}: not a regular file; dbflow reads migrations only from regular files", .0.display())]
    NotRegularFile(PathBuf),
    /// A script that is not UTF-8.
    #[error("{}: not valid UTF-8 at byte {offset} (line {line}); PostgreSQL would be sent different text than the file holds. Re-save the file as UTF-8", .path.display())]
    NotUtf8 {
        /// The script.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: u64,
        /// Its line (1-based).
        line: u64,
    },
    /// `migration_lock.toml` is too large to be one.
    #[error("{}: {len} bytes is too large for a migration_lock.toml (limit {LOCK_FILE_LIMIT})", .path.display())]
    LockTooLarge {
        /// The lock file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// `migration_lock.toml` is not valid TOML of the expected shape.
    #[error("{}: {message}", .path.display())]
    LockInvalid {
        /// The lock file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// `migration_lock.toml` names another database than the environment's URL.
    #[error("{}/migration_lock.toml says provider = \"{provider}\" but the environment's database is {}", .dir.display(), if *.is_postgres { "PostgreSQL" } else { "SQLite" })]
    ProviderMismatch {
        /// The migrations folder.
        dir: PathBuf,
        /// What the lock file says.
        provider: String,
        /// What the URL is.
        is_postgres: bool,
    },
}

impl StoreError {
    /// True when the folder's content is refused (the user must change a file), as
    /// opposed to an I/O failure or a race.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, StoreError::Io { .. } | StoreError::Changed(_))
    }
}

/// The I/O error of reading `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `migration_lock.toml` is a few lines; anything much bigger is not one.
const LOCK_FILE_LIMIT: u64 = 64 * 1024;

/// One migration folder.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Folder name (`20240101120000_init`): the migration's identity.
    pub name: String,
    /// Path of `migration.sql`.
    pub path: PathBuf,
    /// Size of `migration.sql` in bytes when it was hashed.
    pub len: u64,
    /// Lowercase hex SHA-256 of the script's bytes as on disk.
    pub checksum: String,
}

impl Migration {
    /// The script's text, read now. Fails when the file changed since it was hashed
    /// (the checksum recorded in the history must be that of the text applied).
    pub fn text(&self) -> Result<String> {
        let text = read_utf8(&self.path)?;
        if checksum::sha256_hex(text.as_bytes()) != self.checksum {
            return Err(StoreError::Changed(self.path.clone()));
        }
        Ok(text)
    }

    /// True when `recorded` (a history row's checksum) is this script's, allowing for
    /// line-ending changes and old unpadded hex (which needs the text: read only then).
    pub fn matches_checksum(&self, recorded: &str) -> bool {
        if recorded.eq_ignore_ascii_case(&self.checksum) {
            return true;
        }
        std::fs::read(&self.path).is_ok_and(|bytes| checksum::matches(recorded, &bytes))
    }

    /// `down.sql` beside `migration.sql`, when present and inside the migration's folder
    /// (looked up when needed, not for every migration on every read).
    pub fn down(&self) -> Option<PathBuf> {
        let folder = self.path.parent()?;
        let path = folder.join("down.sql");
        let real = path.canonicalize().ok()?;
        let root = folder.parent()?.canonicalize().ok()?;
        (real.starts_with(root) && real.is_file()).then_some(path)
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
        Self::read_cached(dir, None)
    }

    /// [`Store::read`], taking the checksums of files that did not change from the hash
    /// cache at `cache` (see [`super::hash_cache`]) and updating it.
    pub fn read_cached(dir: &Path, cache: Option<&Path>) -> Result<Self> {
        Self::read_where(dir, cache, &|_, _| true)
    }

    /// [`Store::read_cached`] hashing only the migration folders `wanted(name, is_link)`
    /// accepts (`lint --since` reads the few that changed, not the whole history). Every
    /// symbolic link is still checked to stay inside the folder before `wanted` is asked.
    pub fn read_where(
        dir: &Path,
        cache: Option<&Path>,
        wanted: &dyn Fn(&str, bool) -> bool,
    ) -> Result<Self> {
        let mut store = Store::default();
        if !dir.exists() {
            return Ok(store);
        }
        let root = dir.canonicalize().map_err(io(dir))?;
        let entries = std::fs::read_dir(dir).map_err(io(dir))?;
        // Each folder is read as it is listed: no list of every folder is held first.
        let mut cache = cache.map(|c| HashCache::load(c.to_path_buf(), &root));
        for entry in entries {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            // The directory entry's own type (no stat), following a symlink only when it
            // is one, and only once it is known to stay inside the folder.
            let mut is_link = false;
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    if name.starts_with('.') {
                        continue;
                    }
                    inside(&path, &root, dir)?;
                    is_link = true;
                    path.is_dir()
                }
                Ok(t) => t.is_dir(),
                Err(_) => path.is_dir(),
            };
            if is_dir && !wanted(&name, is_link) {
                continue;
            }
            if is_dir {
                match read_one(
                    &name,
                    &path.join("migration.sql"),
                    &root,
                    dir,
                    cache.as_mut(),
                )? {
                    Ok(migration) => store.migrations.push(migration),
                    Err(ignored) => store.ignored.push(ignored),
                }
            } else if name == "migration_lock.toml" {
                store.provider = read_provider(&path, &root, dir)?;
            } else if !name.starts_with('.') {
                store
                    .ignored
                    .push((name, "a file, not a migration folder".into()));
            }
        }
        store.migrations.sort_by(|a, b| a.name.cmp(&b.name));
        store.ignored.sort();
        if let Some(cache) = cache {
            cache.save();
        }
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
        Err(StoreError::ProviderMismatch {
            dir: dir.to_path_buf(),
            provider: provider.clone(),
            is_postgres,
        })
    }

    /// Looks a migration up by name: a binary search, as [`Store::read`] sorts them (a
    /// deploy looks every pending migration up: a scan each would cost N² at thousands),
    /// with a scan when a store built otherwise is not sorted.
    pub fn get(&self, name: &str) -> Option<&Migration> {
        match self
            .migrations
            .binary_search_by(|m| m.name.as_str().cmp(name))
        {
            Ok(i) => Some(&self.migrations[i]),
            Err(_) => self.migrations.iter().find(|m| m.name == name),
        }
    }
}

/// Refuses `path` when it resolves outside `root` (the canonical migrations folder).
fn inside(path: &Path, root: &Path, dir: &Path) -> Result<()> {
    match path.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(()),
        Ok(_) => Err(StoreError::OutsideFolder {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        // A dangling link: nothing to read, and nothing outside to leak.
        Err(_) => Ok(()),
    }
}

/// One folder's `migration.sql`, or why the folder is not a migration.
fn read_one(
    name: &str,
    script_path: &Path,
    root: &Path,
    dir: &Path,
    cache: Option<&mut HashCache>,
) -> Result<std::result::Result<Migration, (String, String)>> {
    let missing = || {
        Ok(Err((
            name.to_string(),
            "folder without migration.sql".into(),
        )))
    };
    // Stamped before hashing: a write during the hash changes the ctime, so the entry
    // recorded now misses on the next run. A plain file's own metadata is its stamp (one
    // stat per migration); a link's is looked up through it once it is known to stay inside.
    let meta = match std::fs::symlink_metadata(script_path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            inside(script_path, root, dir)?;
            std::fs::metadata(script_path).ok()
        }
        Ok(meta) if meta.is_dir() => return missing(),
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing(),
        Err(e) => return Err(io(script_path)(e)),
    };
    let stamp = match cache {
        Some(_) => meta.filter(|m| m.is_file()).and_then(|m| Stamp::of(&m)),
        None => None,
    };
    let cached = match (&cache, &stamp) {
        (Some(c), Some(s)) => c.get(name, s).map(|sum| (sum.to_string(), s.size())),
        _ => None,
    };
    let hit = cached.is_some();
    let (checksum, len) = match cached {
        Some(found) => found,
        None => hash_utf8(script_path)?,
    };
    if let (Some(cache), Some(stamp)) = (cache, stamp) {
        cache.put(name, stamp, &checksum, hit);
    }
    Ok(Ok(Migration {
        checksum,
        len,
        name: name.to_string(),
        path: script_path.to_path_buf(),
    }))
}

/// Opens `path` for reading when it is a regular file (a FIFO or a device would block
/// or never end).
fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(StoreError::NotRegularFile(path.to_path_buf()));
    }
    Ok((file, meta.len()))
}

/// The error for a script that is not UTF-8, at byte `offset` (line `line`).
fn not_utf8(path: &Path, offset: u64, line: u64) -> StoreError {
    StoreError::NotUtf8 {
        path: path.to_path_buf(),
        offset,
        line,
    }
}

/// SHA-256 of a file's bytes and its length, read in chunks while checking that it is
/// UTF-8 (a character cut by a chunk boundary is carried into the next chunk).
fn hash_utf8(path: &Path) -> Result<(String, u64)> {
    let (mut file, _) = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = 0usize;
    let mut consumed = 0u64;
    let mut line = 1u64;
    loop {
        let n = file.read(&mut buf[carry..]).map_err(io(path))?;
        if n == 0 {
            if carry > 0 {
                return Err(not_utf8(path, consumed, line));
            }
            break;
        }
        hasher.update(&buf[carry..carry + n]);
        let data = &buf[..carry + n];
        let valid = match std::str::from_utf8(data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                let at = e.valid_up_to();
                line += count_lines(&data[..at]);
                return Err(not_utf8(path, consumed + at as u64, line));
            }
        };
        line += count_lines(&data[..valid]);
        consumed += valid as u64;
        buf.copy_within(valid..carry + n, 0);
        carry = carry + n - valid;
    }
    Ok((hex::encode(hasher.finalize()), consumed))
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// A whole file as UTF-8 text, read once into one buffer (no second copy).
pub fn read_utf8(path: &Path) -> Result<String> {
    let (mut file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.read_to_end(&mut bytes).map_err(io(path))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = count_lines(&e.as_bytes()[..at]) + 1;
        not_utf8(path, at as u64, line)
    })
}

fn read_provider(path: &Path, root: &Path, dir: &Path) -> Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        provider: Option<String>,
    }
    inside(path, root, dir)?;
    let (file, len) = open_regular(path)?;
    if len > LOCK_FILE_LIMIT {
        return Err(StoreError::LockTooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    let mut text = String::new();
    file.take(LOCK_FILE_LIMIT)
        .read_to_string(&mut text)
        .map_err(io(path))?;
    let lock: Lock = toml::from_str(&text).map_err(|e| StoreError::LockInvalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(lock.provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_in_chunks_matches_hashing_at_once_and_finds_the_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sql");
        // 'é' straddles the 64 KiB chunk boundary.
        let mut text = "a".repeat(64 * 1024 - 1);
        text.push_str("é\nSELECT 1;\n");
        std::fs::write(&path, &text).unwrap();
        let (sum, len) = hash_utf8(&path).unwrap();
        assert_eq!(sum, checksum::sha256_hex(text.as_bytes()));
        assert_eq!(len, text.len() as u64);

        let mut bytes = b"SELECT 1;\nSELECT '".to_vec();
        bytes.push(0xff);
        bytes.extend_from_slice(b"';\n");
        std::fs::write(&path, &bytes).unwrap();
        let err = hash_utf8(&path).unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8 at byte 18 (line 2)"), "{err}");
        let err = read_utf8(&path).unwrap_err().to_string();
        assert!(err.contains("at byte 18 (line 2)"), "{err}");

        // Cut in the middle of a character at the end of the file.
        std::fs::write(&path, &"é".as_bytes()[..1]).unwrap();
        assert!(hash_utf8(&path).is_err());
    }
}
