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
use super::folder::{Folder, Kind, Listing, Meta};
use super::hash_cache::HashCache;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::ffi::OsStr;
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

/// The file beside the hash cache that keeps a copy of the folder's listing.
pub const LISTING_CACHE: &str = "migration-listing";

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
    /// cache at `cache` (see [`super::hash_cache`]) and updating it, and the folder's
    /// listing from [`LISTING_CACHE`] beside it while the folder is unchanged (see
    /// [`super::listing_cache`]).
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
        // The names are listed first (one buffer, sorted): each script is then looked up
        // relative to the open folder, in the order the hash cache keeps its entries.
        let folder = Folder::open(dir).map_err(io(dir))?;
        // On a file system whose ctime does not follow every change, neither cache can
        // tell an edited file or folder from an unchanged one: they are not used.
        let cache = cache.filter(|_| folder.stamps_are_trustworthy());
        let listing = match cache {
            Some(c) => folder.list_cached(&c.with_file_name(LISTING_CACHE), &root),
            None => folder.list(),
        }
        .map_err(io(dir))?;
        // Entries are judged settled against the time before the first stat, not the time
        // the cache is saved: a file changed just before its stat and again in the same
        // timestamp tick after it keeps its stamp, and a long run would otherwise let
        // that entry pass as settled.
        let stats_from = super::hash_cache::now_ns();
        let mut cache = cache.map(|c| HashCache::load(c.to_path_buf(), &root));
        store.migrations.reserve(listing.len());
        // Every wanted folder's script is stat'ed up front, in parallel on a long history;
        // a linked folder is stat'ed in turn, once its link is known to stay inside.
        let mut stats = prestat(&folder, &listing, wanted).into_iter().peekable();
        for (index, (os_name, kind)) in listing.iter().enumerate() {
            // `to_string_lossy` scans in chunks: the UTF-8 check first is faster.
            let name = match os_name.to_str() {
                Some(name) => Cow::Borrowed(name),
                None => os_name.to_string_lossy(),
            };
            // The entry's own type (no stat), following a symlink only when it is one,
            // and only once it is known to stay inside the folder.
            let mut is_link = false;
            let is_dir = match kind {
                Kind::Link => {
                    if name.starts_with('.') {
                        continue;
                    }
                    let path = dir.join(os_name);
                    inside(&path, &root, dir)?;
                    is_link = true;
                    path.is_dir()
                }
                Kind::Dir => true,
                Kind::File | Kind::Other => false,
            };
            let stat = match stats.next_if(|(at, _)| *at == index) {
                Some((_, stat)) => Some(stat),
                // A folder `prestat` left out is not wanted.
                None if kind == Kind::Dir => continue,
                None => None,
            };
            if is_link && is_dir && !wanted(&name, true) {
                continue;
            }
            if is_dir {
                match read_one(&folder, os_name, &name, &root, dir, stat, cache.as_mut())? {
                    Ok(migration) => store.migrations.push(migration),
                    Err(ignored) => store.ignored.push(ignored),
                }
            } else if name == "migration_lock.toml" {
                store.provider = read_provider(&dir.join(os_name), &root, dir)?;
            } else if !name.starts_with('.') {
                store
                    .ignored
                    .push((name.into_owned(), "a file, not a migration folder".into()));
            }
        }
        // Listed in byte order; a name that is not UTF-8 may sort otherwise once converted.
        store.migrations.sort_by(|a, b| a.name.cmp(&b.name));
        store.ignored.sort();
        if let Some(cache) = cache {
            cache.save_at(stats_from);
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

/// The stat of each wanted plain folder's script, by its index in `listing`: the folders
/// `wanted(name, false)` accepts, in order (a name that is not UTF-8 asked under its
/// lossy form, as the caller does).
fn prestat(
    folder: &Folder,
    listing: &Listing,
    wanted: &dyn Fn(&str, bool) -> bool,
) -> Vec<(usize, std::io::Result<Meta>)> {
    let (indices, names): (Vec<usize>, Vec<&OsStr>) = listing
        .iter()
        .enumerate()
        .filter(|(_, (os_name, kind))| {
            *kind == Kind::Dir && wanted(&os_name.to_string_lossy(), false)
        })
        .map(|(at, (os_name, _))| (at, os_name))
        .unzip();
    indices
        .into_iter()
        .zip(folder.stat_scripts(&names))
        .collect()
}

/// One folder's `migration.sql`, or why the folder is not a migration. `stat`: the
/// script's stat (not following a link) when the caller made it.
fn read_one(
    folder: &Folder,
    os_name: &OsStr,
    name: &str,
    root: &Path,
    dir: &Path,
    stat: Option<std::io::Result<Meta>>,
    cache: Option<&mut HashCache>,
) -> Result<std::result::Result<Migration, (String, String)>> {
    let missing = || {
        Ok(Err((
            name.to_string(),
            "folder without migration.sql".into(),
        )))
    };
    let path = folder.script_path(os_name);
    // Stamped before hashing: a write during the hash changes the ctime, so the entry
    // recorded now misses on the next run. A plain file's own stat is its stamp (one
    // stat per migration, relative to the open folder); a link's is looked up through
    // it once it is known to stay inside.
    let stat = stat.unwrap_or_else(|| folder.stat_script(os_name, false));
    let meta = match stat {
        Ok(meta) if meta.kind == Kind::Link => {
            inside(&path, root, dir)?;
            folder.stat_script(os_name, true).ok()
        }
        Ok(meta) if meta.kind == Kind::Dir => return missing(),
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing(),
        Err(e) => return Err(io(&path)(e)),
    };
    // A FIFO or a device is refused before it is opened (opening one may block or act).
    if meta.is_some_and(|m| m.kind != Kind::File) {
        return Err(StoreError::NotRegularFile(path));
    }
    let mut cache = cache;
    let stamp = match cache {
        Some(_) => meta.and_then(|m| m.stamp),
        None => None,
    };
    let hit = match (cache.as_deref_mut(), &stamp) {
        (Some(c), Some(s)) => c.get(name, s).map(|sum| (sum, s.size())),
        _ => None,
    };
    let (checksum, len) = match hit {
        Some(found) => found,
        None => {
            let (file, _) = check_regular(folder.open_script(os_name), &path)?;
            let (sum, len) = hash_utf8(file, &path)?;
            if let (Some(c), Some(s)) = (cache, stamp) {
                c.put(name, s, &sum);
            }
            (sum, len)
        }
    };
    Ok(Ok(Migration {
        checksum,
        len,
        name: name.to_string(),
        path,
    }))
}

/// Opens `path` for reading when it is a regular file (a FIFO or a device would block
/// or never end): opened without blocking, then checked.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
    };
    #[cfg(not(unix))]
    let file = std::fs::File::open(path);
    check_regular(file, path)
}

/// `file` (just opened from `path`) and its size, when it is a regular file.
fn check_regular(
    file: std::io::Result<std::fs::File>,
    path: &Path,
) -> Result<(std::fs::File, u64)> {
    let file = file.map_err(io(path))?;
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
fn hash_utf8(mut file: std::fs::File, path: &Path) -> Result<(String, u64)> {
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
    use crate::db::hash_cache::Stamp;

    #[test]
    fn hashing_in_chunks_matches_hashing_at_once_and_finds_the_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sql");
        // 'é' straddles the 64 KiB chunk boundary.
        let mut text = "a".repeat(64 * 1024 - 1);
        text.push_str("é\nSELECT 1;\n");
        std::fs::write(&path, &text).unwrap();
        let (sum, len) = hash_utf8(std::fs::File::open(&path).unwrap(), &path).unwrap();
        assert_eq!(sum, checksum::sha256_hex(text.as_bytes()));
        assert_eq!(len, text.len() as u64);

        let mut bytes = b"SELECT 1;\nSELECT '".to_vec();
        bytes.push(0xff);
        bytes.extend_from_slice(b"';\n");
        std::fs::write(&path, &bytes).unwrap();
        let err = hash_utf8(std::fs::File::open(&path).unwrap(), &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid UTF-8 at byte 18 (line 2)"), "{err}");
        let err = read_utf8(&path).unwrap_err().to_string();
        assert!(err.contains("at byte 18 (line 2)"), "{err}");

        // Cut in the middle of a character at the end of the file.
        std::fs::write(&path, &"é".as_bytes()[..1]).unwrap();
        assert!(hash_utf8(std::fs::File::open(&path).unwrap(), &path).is_err());
    }

    /// `files` (path → text) under a new temporary folder.
    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn names(store: &Store) -> Vec<&str> {
        store.migrations.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn migrations_are_read_in_name_order_and_what_is_not_one_is_said() {
        let dir = folder(&[
            ("2_b/migration.sql", "SELECT 2;\n"),
            ("1_a/migration.sql", "SELECT 1;\n"),
            ("1_a/down.sql", "SELECT 0;\n"),
            ("3_empty/notes.txt", "no script"),
            (
                "4_odd/migration.sql/inner",
                "a folder named like the script",
            ),
            ("README.md", "about"),
            (".DS_Store", "skipped"),
            ("migration_lock.toml", "provider = \"postgresql\"\n"),
        ]);
        let store = Store::read(dir.path()).unwrap();
        assert_eq!(names(&store), ["1_a", "2_b"]);
        let first = &store.migrations[0];
        assert_eq!(first.checksum, checksum::sha256_hex(b"SELECT 1;\n"));
        assert_eq!(first.len, 10);
        assert_eq!(first.path, dir.path().join("1_a/migration.sql"));
        assert_eq!(
            store.ignored,
            [
                ("3_empty".into(), "folder without migration.sql".into()),
                ("4_odd".into(), "folder without migration.sql".into()),
                ("README.md".into(), "a file, not a migration folder".into()),
            ]
        );
        assert_eq!(store.provider.as_deref(), Some("postgresql"));
        assert!(Store::read(&dir.path().join("nothing here"))
            .unwrap()
            .migrations
            .is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_the_folder_are_read_and_links_out_of_it_refused() {
        use std::os::unix::fs::symlink;
        let outside = folder(&[("migration.sql", "SELECT 'secret';\n")]);
        let dir = folder(&[("1_a/migration.sql", "SELECT 1;\n")]);
        let root = dir.path();
        symlink(root.join("1_a"), root.join("2_same_folder")).unwrap();
        std::fs::create_dir(root.join("3_same_script")).unwrap();
        symlink(
            "../1_a/migration.sql",
            root.join("3_same_script/migration.sql"),
        )
        .unwrap();
        symlink(outside.path(), root.join(".hidden_link")).unwrap();
        let store = Store::read(root).unwrap();
        assert_eq!(names(&store), ["1_a", "2_same_folder", "3_same_script"]);
        assert!(store
            .migrations
            .iter()
            .all(|m| m.checksum == store.migrations[0].checksum));

        std::fs::create_dir(root.join("4_out")).unwrap();
        symlink(
            outside.path().join("migration.sql"),
            root.join("4_out/migration.sql"),
        )
        .unwrap();
        let err = Store::read(root).unwrap_err();
        assert!(matches!(err, StoreError::OutsideFolder { .. }), "{err}");
        assert!(err.to_string().contains("4_out/migration.sql"), "{err}");
        std::fs::remove_dir_all(root.join("4_out")).unwrap();

        symlink(outside.path(), root.join("5_linked_folder")).unwrap();
        let err = Store::read(root).unwrap_err();
        assert!(matches!(err, StoreError::OutsideFolder { .. }), "{err}");
        // `lint --since` asks about each folder only after its link was checked.
        let err = Store::read_where(root, None, &|_, _| false).unwrap_err();
        assert!(matches!(err, StoreError::OutsideFolder { .. }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_named_migration_sql_is_refused_without_waiting_for_a_writer() {
        let dir = folder(&[("1_a/migration.sql", "SELECT 1;\n")]);
        std::fs::create_dir(dir.path().join("2_fifo")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("2_fifo/migration.sql"))
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let root = dir.path().to_path_buf();
        // On a reader that opens the FIFO this thread blocks: the test then fails on the
        // timeout instead of hanging.
        std::thread::spawn(move || {
            let _ = tx.send(Store::read_cached(&root, Some(&root.join("cache"))));
        });
        let read = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading the folder blocked on the FIFO");
        let err = read.unwrap_err();
        assert!(matches!(err, StoreError::NotRegularFile(_)), "{err}");
        assert!(err
            .to_string()
            .contains("2_fifo/migration.sql: not a regular file"));
        let err = read_utf8(&dir.path().join("2_fifo/migration.sql")).unwrap_err();
        assert!(matches!(err, StoreError::NotRegularFile(_)), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_folder_name_that_is_not_utf8_is_read_under_its_lossy_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = folder(&[]);
        let raw = std::ffi::OsStr::from_bytes(b"1_caf\xe9");
        std::fs::create_dir(dir.path().join(raw)).unwrap();
        std::fs::write(dir.path().join(raw).join("migration.sql"), "SELECT 1;\n").unwrap();
        let cache = dir.path().join("cache");
        let store = Store::read_cached(dir.path(), Some(&cache)).unwrap();
        assert_eq!(names(&store), ["1_caf\u{FFFD}"]);
        let m = &store.migrations[0];
        assert_eq!(m.path, dir.path().join(raw).join("migration.sql"));
        assert_eq!(m.text().unwrap(), "SELECT 1;\n");
    }

    /// The stamp of `path` now.
    fn stamp(path: &Path) -> Stamp {
        Stamp::of(&std::fs::metadata(path).unwrap()).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn a_cached_checksum_is_used_until_the_file_changes_even_with_its_mtime_put_back() {
        let dir = folder(&[("1_a/migration.sql", "SELECT 1;\n")]);
        let (root, cache) = (dir.path().join("."), dir.path().join("cache"));
        let script = dir.path().join("1_a/migration.sql");
        // A cache that records another checksum for the file as it is: only a hit can
        // return it.
        let recorded = "c".repeat(64);
        let mut seeded = HashCache::load(cache.clone(), &root.canonicalize().unwrap());
        seeded.put("1_a", stamp(&script), &recorded);
        seeded.save_at(i128::MAX / 2);
        let read = || Store::read_cached(&root, Some(&cache)).unwrap().migrations[0].clone();
        assert_eq!(read().checksum, recorded, "taken from the cache");
        assert_eq!(read().checksum, recorded, "and kept in it");

        // Same size, mtime put back: the ctime moved, so the cache misses.
        let mtime = std::fs::metadata(&script).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&script, "SELECT 2;\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&script)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            std::fs::metadata(&script).unwrap().modified().unwrap(),
            mtime
        );
        assert_eq!(read().checksum, checksum::sha256_hex(b"SELECT 2;\n"));
    }

    #[cfg(unix)]
    #[test]
    fn a_long_history_read_with_its_stats_in_parallel_says_what_a_short_one_says() {
        // Over the threshold where the scripts are stat'ed by several threads.
        let count = 2 * crate::db::folder::STATS_PER_THREAD + 5;
        let files: Vec<(String, String)> = (0..count)
            .filter(|i| i % 700 != 3)
            .map(|i| (format!("{i:05}_m/migration.sql"), format!("SELECT {i};\n")))
            .collect();
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let dir = folder(&files);
        for i in (0..count).filter(|i| i % 700 == 3) {
            std::fs::create_dir(dir.path().join(format!("{i:05}_m"))).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let store = Store::read_cached(dir.path(), Some(&dir.path().join("cache"))).unwrap();
        assert_eq!(store.migrations.len(), count - 3);
        assert!(store.migrations.windows(2).all(|w| w[0].name < w[1].name));
        let expected = Store::read(dir.path()).unwrap();
        for (a, b) in store.migrations.iter().zip(&expected.migrations) {
            assert_eq!((&a.name, &a.checksum), (&b.name, &b.checksum));
        }
        assert_eq!(
            store.ignored,
            [
                (
                    "00003_m".to_string(),
                    "folder without migration.sql".to_string()
                ),
                ("00703_m".into(), "folder without migration.sql".into()),
                ("01403_m".into(), "folder without migration.sql".into()),
                ("notes.txt".into(), "a file, not a migration folder".into()),
            ]
        );
        // `lint --since`: only the wanted folders are read.
        let few = Store::read_where(dir.path(), None, &|name, _| name.ends_with("7_m")).unwrap();
        assert_eq!(
            few.migrations.len(),
            (0..count).filter(|i| i % 10 == 7).count()
        );
        // A FIFO among them is refused wherever it falls.
        let fifo = dir.path().join("02000_m/migration.sql");
        std::fs::remove_file(&fifo).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = Store::read(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::NotRegularFile(_)), "{err}");
    }

    /// The listing copy beside a hash cache at `cache`, recorded as if long settled with
    /// `entries` for the folder as it is now.
    #[cfg(unix)]
    fn record_listing(dir: &Path, cache: &Path, entries: &[&str]) {
        let mut listing = crate::db::folder::Listing::default();
        for name in entries {
            listing.push(name.as_bytes(), Kind::Dir);
        }
        let stamp = Stamp::of(&std::fs::metadata(dir).unwrap()).unwrap();
        crate::db::listing_cache::save(
            &cache.with_file_name(LISTING_CACHE),
            &dir.canonicalize().unwrap(),
            &stamp,
            i128::MAX / 2,
            &listing,
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_listing_copy_stands_for_the_folder_only_while_the_folder_is_unchanged() {
        let dir = folder(&[("1_a/migration.sql", "SELECT 1;\n")]);
        let cache = dir.path().join(".dbflow/hashes");
        let copy = cache.with_file_name(LISTING_CACHE);
        // Just made: too recent to record (a change in the same tick would not show).
        Store::read_cached(dir.path(), Some(&cache)).unwrap();
        assert!(
            !copy.exists(),
            "a folder changed in the last 2 s is not recorded"
        );

        // A copy recorded for the folder as it is now is what the next read lists: one
        // that names a folder that is not there proves it was used.
        record_listing(dir.path(), &cache, &["1_a", "2_only_in_the_copy"]);
        let store = Store::read_cached(dir.path(), Some(&cache)).unwrap();
        assert_eq!(names(&store), ["1_a"]);
        assert_eq!(
            store.ignored,
            [(
                "2_only_in_the_copy".to_string(),
                "folder without migration.sql".to_string()
            )]
        );

        // Any entry made, removed or renamed changes the folder's stamp: listed again.
        std::fs::create_dir(dir.path().join("3_c")).unwrap();
        std::fs::write(dir.path().join("3_c/migration.sql"), "SELECT 3;\n").unwrap();
        let store = Store::read_cached(dir.path(), Some(&cache)).unwrap();
        assert_eq!(names(&store), ["1_a", "3_c"]);
        assert!(store.ignored.iter().all(|(n, _)| n != "2_only_in_the_copy"));
        record_listing(dir.path(), &cache, &["1_a", "3_c"]);
        std::fs::rename(dir.path().join("3_c"), dir.path().join("4_d")).unwrap();
        assert_eq!(
            names(&Store::read_cached(dir.path(), Some(&cache)).unwrap()),
            ["1_a", "4_d"]
        );
        record_listing(dir.path(), &cache, &["1_a", "4_d"]);
        std::fs::remove_dir_all(dir.path().join("4_d")).unwrap();
        assert_eq!(
            names(&Store::read_cached(dir.path(), Some(&cache)).unwrap()),
            ["1_a"]
        );

        // What is inside a listed folder is not in the copy: its script is stat'ed and
        // hashed as always.
        record_listing(dir.path(), &cache, &["1_a"]);
        let before = Store::read_cached(dir.path(), Some(&cache))
            .unwrap()
            .migrations[0]
            .checksum
            .clone();
        std::fs::write(dir.path().join("1_a/migration.sql"), "SELECT 2;\n").unwrap();
        let after = Store::read_cached(dir.path(), Some(&cache))
            .unwrap()
            .migrations[0]
            .checksum
            .clone();
        assert_ne!(before, after);
        std::fs::remove_file(dir.path().join("1_a/migration.sql")).unwrap();
        let store = Store::read_cached(dir.path(), Some(&cache)).unwrap();
        assert!(store.migrations.is_empty(), "{:?}", names(&store));
    }
}
