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
    old: HashMap<String, Entry>,
    /// Entries of `old` still current (found on disk with the same stamp).
    kept: usize,
    /// Checksums computed now (files not in `old`, or changed).
    new: Vec<(String, Stamp, String)>,
}

/// One recorded file: its stamp and checksum, and whether this run found it unchanged.
#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    sum: String,
    kept: bool,
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
            kept: 0,
            new: Vec::new(),
        }
    }

    /// The recorded checksum of migration `name` when its file still has `stamp`.
    pub fn get(&self, name: &str, stamp: &Stamp) -> Option<&str> {
        match self.old.get(name) {
            Some(e) if &e.stamp == stamp => Some(&e.sum),
            _ => None,
        }
    }

    /// Notes `name`'s checksum for the next run; `hit`: it came from the cache (and is
    /// kept as it is, without a copy).
    pub fn put(&mut self, name: &str, stamp: Stamp, checksum: &str, hit: bool) {
        if hit {
            if let Some(e) = self.old.get_mut(name) {
                if !e.kept {
                    e.kept = true;
                    self.kept += 1;
                }
                return;
            }
        }
        self.new
            .push((name.to_string(), stamp, checksum.to_string()));
    }

    /// Writes the cache when it changed (atomically: a reader sees the old or the new
    /// file, never half of one). Errors are ignored: the cache is only an optimisation.
    pub fn save(self) {
        let Some(path) = &self.path else { return };
        if self.new.is_empty() && self.kept == self.old.len() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let racy = i128::from(RACY_SECS) * 1_000_000_000;
        let mut entries: Vec<(&str, &Stamp, &str)> = self
            .old
            .iter()
            .filter(|(_, e)| e.kept)
            .map(|(name, e)| (name.as_str(), &e.stamp, e.sum.as_str()))
            .chain(
                self.new
                    .iter()
                    .map(|(n, s, sum)| (n.as_str(), s, sum.as_str())),
            )
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut text = format!("{HEADER}\n{}\n", self.folder);
        for (name, s, sum) in entries {
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
fn parse(text: &str, folder: &str) -> Option<HashMap<String, Entry>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER || lines.next()? != folder {
        return None;
    }
    let mut map = HashMap::with_capacity(text.bytes().filter(|b| *b == b'\n').count());
    for line in lines {
        let mut f = line.split('\t');
        let mut field = || f.next();
        let (name, len, mtime, ctime, ino, dev, sum) = (
            field()?,
            field()?,
            field()?,
            field()?,
            field()?,
            field()?,
            field()?,
        );
        if field().is_some() || sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let stamp = Stamp {
            len: len.parse().ok()?,
            mtime_ns: mtime.parse().ok()?,
            ctime_ns: ctime.parse().ok()?,
            ino: ino.parse().ok()?,
            dev: dev.parse().ok()?,
        };
        let entry = Entry {
            stamp,
            sum: sum.to_ascii_lowercase(),
            kept: false,
        };
        map.insert(name.to_string(), entry);
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
        let sum = "a".repeat(64);
        let extra_field = good.replace(&format!("{sum}\n"), &format!("{sum}\textra\n"));
        assert!(parse(&extra_field, "/p").is_none());
    }

    #[test]
    fn unchanged_entries_are_kept_without_a_rewrite_and_changed_ones_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let text = format!("{HEADER}\n/p\nm1\t3\t1\t2\t4\t5\t{a}\nm2\t3\t1\t2\t4\t5\t{a}\n");
        std::fs::write(&path, &text).unwrap();
        let stamp = Stamp {
            len: 3,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 4,
            dev: 5,
        };
        let mut cache = HashCache::load(path.clone(), Path::new("/p"));
        for name in ["m1", "m2"] {
            assert_eq!(cache.get(name, &stamp), Some(a.as_str()));
            cache.put(name, stamp, &a, true);
        }
        std::fs::write(&path, "untouched").unwrap();
        cache.save();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "untouched");

        std::fs::write(&path, &text).unwrap();
        let mut cache = HashCache::load(path.clone(), Path::new("/p"));
        let edited = Stamp { len: 4, ..stamp };
        assert_eq!(cache.get("m2", &edited), None, "another size misses");
        cache.put("m2", edited, &b, false);
        cache.put("m3", stamp, &b, false);
        cache.save();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n/p\nm2\t4\t1\t2\t4\t5\t{b}\nm3\t3\t1\t2\t4\t5\t{b}\n"),
            "m1 is gone from the folder, m2 re-hashed, m3 new"
        );
    }
}
