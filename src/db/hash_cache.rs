//! A per-project cache of `migration.sql` checksums, so `status` on a 5,000-migration
//! history stats each file instead of reading and hashing it.
//!
//! An entry is used only when the file's size, mtime, ctime, inode and device all equal
//! what was recorded: `touch -d` can put an mtime back but never a ctime (the kernel sets
//! it on every write and on every `touch`), so an edit that keeps the size and restores
//! the mtime still misses. Files changed in the last [`RACY_SECS`] seconds are not
//! recorded (a second write within the same timestamp tick would otherwise look
//! unchanged). A cache that cannot be read or parsed, or that was written for another
//! folder, is ignored as a whole; failing to write it only costs the next run a re-hash.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// First line of the file; a different one (another format) ignores the cache.
const HEADER: &str = "dbflow migration hashes v1";

/// Entries whose ctime is this recent when the cache is written are left out.
const RACY_SECS: i64 = 2;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Stamp {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// The stamp of `meta` (`None` where the platform gives no ctime/inode).
    pub fn of(meta: &std::fs::Metadata) -> Option<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            Some(Stamp {
                len: meta.len(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
                ino: meta.ino(),
                dev: meta.dev(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// The cache of one migrations folder: folder name → (stamp, checksum).
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    folder: String,
    old: HashMap<String, (Stamp, String)>,
    new: Vec<(String, Stamp, String)>,
    dirty: bool,
}

impl HashCache {
    /// Loads the cache at `path` for the migrations folder `folder` (canonical path);
    /// anything unreadable starts empty.
    pub fn load(path: PathBuf, folder: &Path) -> Self {
        let folder = folder.display().to_string();
        let old = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text, &folder))
            .unwrap_or_default();
        HashCache {
            path: Some(path),
            folder,
            old,
            new: Vec::new(),
            dirty: false,
        }
    }

    /// The recorded checksum of migration `name` when its file still has `stamp`.
    pub fn get(&self, name: &str, stamp: &Stamp) -> Option<&str> {
        match self.old.get(name) {
            Some((s, sum)) if s == stamp => Some(sum),
            _ => None,
        }
    }

    /// Notes `name`'s checksum for the next run; `hit`: it came from the cache.
    pub fn put(&mut self, name: &str, stamp: Stamp, checksum: &str, hit: bool) {
        self.dirty |= !hit;
        self.new
            .push((name.to_string(), stamp, checksum.to_string()));
    }

    /// Writes the cache when it changed (atomically: a reader sees the old or the new
    /// file, never half of one). Errors are ignored: the cache is only an optimisation.
    pub fn save(self) {
        let Some(path) = &self.path else { return };
        if !self.dirty && self.new.len() == self.old.len() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let racy = i128::from(RACY_SECS) * 1_000_000_000;
        let mut text = format!("{HEADER}\n{}\n", self.folder);
        for (name, s, sum) in &self.new {
            if now - s.ctime_ns.max(s.mtime_ns) < racy || name.contains(['\t', '\n']) {
                continue;
            }
            text.push_str(&format!(
                "{name}\t{}\t{}\t{}\t{}\t{}\t{sum}\n",
                s.len, s.mtime_ns, s.ctime_ns, s.ino, s.dev
            ));
        }
        let _ = write_atomically(path, text.as_bytes());
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".migration-hashes.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The entries of a cache file written for `folder`; `None` when any line is malformed.
fn parse(text: &str, folder: &str) -> Option<HashMap<String, (Stamp, String)>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER || lines.next()? != folder {
        return None;
    }
    let mut map = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, len, mtime, ctime, ino, dev, sum] = f[..] else {
            return None;
        };
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let stamp = Stamp {
            len: len.parse().ok()?,
            mtime_ns: mtime.parse().ok()?,
            ctime_ns: ctime.parse().ok()?,
            ino: ino.parse().ok()?,
            dev: dev.parse().ok()?,
        };
        map.insert(name.to_string(), (stamp, sum.to_ascii_lowercase()));
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_that_does_not_parse_or_names_another_folder_is_ignored() {
        let good = format!("{HEADER}\n/p\nm1\t3\t1\t2\t4\t5\t{}\n", "a".repeat(64));
        assert_eq!(parse(&good, "/p").unwrap().len(), 1);
        assert!(parse(&good, "/other").is_none());
        assert!(parse(&good.replace("\t3\t", "\tx\t"), "/p").is_none());
        assert!(parse(&good.replace(&"a".repeat(64), "zz"), "/p").is_none());
        assert!(parse("garbage", "/p").is_none());
    }
}
