//! A per-project cache of `migration.sql` checksums, so `status` on a 5,000-migration
//! history stats each file instead of reading and hashing it.
//!
//! An entry is used only when the file's size, mtime, ctime, inode and device all equal
//! what was recorded: `touch -d` can put an mtime back but never a ctime (the kernel sets
//! it on every write and on every `touch`), so an edit that keeps the size and restores
//! the mtime still misses. Files changed in the last [`RACY_SECS`] seconds are not
//! recorded (a second write within the same timestamp tick would otherwise look
//! unchanged). A cache that cannot be read, does not parse, fails its check word or was
//! written for another folder is ignored as a whole; failing to write it only costs the
//! next run a re-hash.
//!
//! # Format (v2)
//!
//! Binary, little-endian, so that loading it is one read and one pass that indexes the
//! records in place (no string or map entry per migration):
//!
//! ```text
//! "dbflow migration hashes v2\n"
//! u32 folder length, folder bytes      the canonical migrations folder it was written for
//! u32 record count
//! records, names strictly ascending:
//!   u16 name length, name (UTF-8)
//!   u64 size, i128 mtime ns, i128 ctime ns, u64 inode, u64 device
//!   32 bytes SHA-256
//! u64 check word over everything before it
//! ```
//!
//! The check word catches a damaged or truncated file (it is not a defence against
//! someone who can write the cache: they can write the migrations too). v1 (text) caches
//! carry another header and are ignored, which costs one re-hash after an upgrade.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// First bytes of the file; anything else (another format) ignores the cache.
const HEADER: &[u8] = b"dbflow migration hashes v2\n";

/// Entries whose ctime is this recent when the cache is written are left out.
const RACY_SECS: i64 = 2;

/// Bytes of a record after its name: size, mtime, ctime, inode, device, SHA-256.
const FIXED: usize = 8 + 16 + 16 + 8 + 8 + 32;

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

    /// A stamp from its parts (a `stat` made without [`std::fs::Metadata`]): size,
    /// mtime and ctime as seconds and nanoseconds, inode, device.
    pub fn from_parts(len: u64, mtime: (i64, i64), ctime: (i64, i64), ino: u64, dev: u64) -> Self {
        Stamp::from_ns(len, ns(mtime.0, mtime.1), ns(ctime.0, ctime.1), ino, dev)
    }

    /// Bytes of a stamp as [`Stamp::write`] writes it.
    pub(crate) const LEN: usize = 8 + 16 + 16 + 8 + 8;

    /// A stamp from its parts, times in nanoseconds since the epoch.
    pub(crate) const fn from_ns(
        len: u64,
        mtime_ns: i128,
        ctime_ns: i128,
        ino: u64,
        dev: u64,
    ) -> Self {
        Stamp {
            len,
            mtime_ns,
            ctime_ns,
            ino,
            dev,
        }
    }

    /// Its mtime and ctime, in nanoseconds since the epoch.
    pub(crate) fn times_ns(&self) -> (i128, i128) {
        (self.mtime_ns, self.ctime_ns)
    }

    /// Appends its [`Stamp::LEN`] bytes (little-endian) to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.ctime_ns.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.dev.to_le_bytes());
    }

    /// The stamp at the start of `b` (at least [`Stamp::LEN`] bytes, as [`Stamp::write`]
    /// wrote it).
    pub(crate) fn read(b: &[u8]) -> Self {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let i128_at = |at: usize| i128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"));
        Stamp {
            len: u64_at(0),
            mtime_ns: i128_at(8),
            ctime_ns: i128_at(24),
            ino: u64_at(40),
            dev: u64_at(48),
        }
    }
}

fn ns(secs: i64, nanos: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nanos)
}

/// The cache of one migrations folder: folder name → (stamp, checksum).
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    folder: String,
    /// The file as read (empty when ignored); `records` index into it.
    bytes: Vec<u8>,
    /// Offset of each record's name-length field, in name order.
    records: Vec<u32>,
    /// Which records this run found unchanged on disk (kept when the cache is written).
    kept: Vec<bool>,
    kept_count: usize,
    /// Where the next lookup starts: callers that ask in name order find each record
    /// with one comparison instead of a binary search.
    cursor: usize,
    /// Checksums computed now (files not recorded, or changed).
    new: Vec<(String, Stamp, [u8; 32])>,
}

impl HashCache {
    /// Loads the cache at `path` for the migrations folder `folder` (canonical path);
    /// anything unreadable starts empty.
    pub fn load(path: PathBuf, folder: &Path) -> Self {
        let folder = folder.display().to_string();
        let bytes = read_bounded(&path, LIMIT).unwrap_or_default();
        let (bytes, records) = match index(&bytes, &folder) {
            Some(records) => (bytes, records),
            None => (Vec::new(), Vec::new()),
        };
        HashCache {
            path: Some(path),
            folder,
            kept: vec![false; records.len()],
            bytes,
            records,
            kept_count: 0,
            cursor: 0,
            new: Vec::new(),
        }
    }

    /// The name of record `i`, and the offset of its fixed part.
    fn record(&self, i: usize) -> (&[u8], usize) {
        let at = self.records[i] as usize;
        let len = usize::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]));
        (&self.bytes[at + 2..at + 2 + len], at + 2 + len)
    }

    /// The position of `name`'s record, if any.
    fn find(&self, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        if self.cursor < self.records.len() && self.record(self.cursor).0 == name {
            return Some(self.cursor);
        }
        self.records
            .binary_search_by(|&at| {
                let at = at as usize;
                let len = usize::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]));
                self.bytes[at + 2..at + 2 + len].cmp(name)
            })
            .ok()
    }

    /// The recorded checksum (lowercase hex) of migration `name` when its file still has
    /// `stamp`; the entry is then kept for the next run.
    pub fn get(&mut self, name: &str, stamp: &Stamp) -> Option<String> {
        let i = self.find(name)?;
        self.cursor = i + 1;
        let (_, fixed) = self.record(i);
        if Stamp::read(&self.bytes[fixed..]) != *stamp {
            return None;
        }
        if !self.kept[i] {
            self.kept[i] = true;
            self.kept_count += 1;
        }
        Some(to_hex(&self.bytes[fixed + FIXED - 32..fixed + FIXED]))
    }

    /// Notes `name`'s checksum (lowercase hex), computed now, for the next run.
    pub fn put(&mut self, name: &str, stamp: Stamp, checksum: &str) {
        let mut sum = [0u8; 32];
        // A name that is not exactly its folder's (a lossy conversion) is not recorded.
        if hex::decode_to_slice(checksum, &mut sum).is_ok() && !name.contains('\u{FFFD}') {
            self.new.push((name.to_string(), stamp, sum));
        }
    }

    /// Writes the cache when it changed (atomically: a reader sees the old or the new
    /// file, never half of one). Errors are ignored: the cache is only an optimisation.
    pub fn save(self) {
        self.save_at(now_ns());
    }

    /// [`HashCache::save`] as if it ran at `now` (ns since the epoch): the time before the
    /// recorded files were stat'ed (what `Store::read_where` passes: an entry is settled
    /// only when its file had not changed for [`RACY_SECS`] before its stat), or a test's
    /// time, to record a file it has just written.
    pub(crate) fn save_at(mut self, now: i128) {
        let Some(path) = self.path.take() else { return };
        if self.new.is_empty() && self.kept_count == self.records.len() {
            return;
        }
        let _ = write_atomically(&path, &self.encode(now));
    }

    /// The file to write at `now` (ns since the epoch): kept records and new ones, in
    /// name order, without the racy ones.
    fn encode(&mut self, now: i128) -> Vec<u8> {
        let racy = i128::from(RACY_SECS) * 1_000_000_000;
        let settled = |s: &Stamp| now - s.ctime_ns.max(s.mtime_ns) >= racy;
        self.new.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.new.dedup_by(|a, b| a.0 == b.0);
        let mut body = Vec::with_capacity(self.bytes.len() + self.new.len() * (FIXED + 40));
        let mut count = 0u32;
        let mut new = self.new.iter().peekable();
        for i in 0..self.records.len() {
            let (name, fixed) = self.record(i);
            while let Some((n, stamp, sum)) = new.next_if(|(n, _, _)| n.as_bytes() < name) {
                count += push_record(&mut body, n.as_bytes(), stamp, sum, &settled);
            }
            let replaced = new.peek().is_some_and(|(n, _, _)| n.as_bytes() == name);
            if self.kept[i] && !replaced {
                let start = self.records[i] as usize;
                let stamp = Stamp::read(&self.bytes[fixed..]);
                if settled(&stamp) {
                    body.extend_from_slice(&self.bytes[start..fixed + FIXED]);
                    count += 1;
                }
            }
        }
        for (n, stamp, sum) in new {
            count += push_record(&mut body, n.as_bytes(), stamp, sum, &settled);
        }
        let mut out = Vec::with_capacity(HEADER.len() + self.folder.len() + body.len() + 16);
        out.extend_from_slice(HEADER);
        out.extend_from_slice(&(self.folder.len() as u32).to_le_bytes());
        out.extend_from_slice(self.folder.as_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&body);
        let check = check_word(&out);
        out.extend_from_slice(&check.to_le_bytes());
        out
    }
}

/// Appends one record unless its file changed too recently (or its name is too long
/// for the format); 1 when written.
fn push_record(
    out: &mut Vec<u8>,
    name: &[u8],
    stamp: &Stamp,
    sum: &[u8; 32],
    settled: &dyn Fn(&Stamp) -> bool,
) -> u32 {
    let Ok(len) = u16::try_from(name.len()) else {
        return 0;
    };
    if !settled(stamp) {
        return 0;
    }
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(name);
    stamp.write(out);
    out.extend_from_slice(sum);
    1
}

/// Lowercase hex of `bytes` (a table lookup per nibble: `hex::encode`'s iterator costs
/// more than the rest of a cache hit).
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Now, in nanoseconds since the epoch.
pub(crate) fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// A cache larger than this is not read (20,000 migrations take about 2 MB).
const LIMIT: u64 = 256 << 20;

/// The whole file, read with one buffer of its size; an error when it is larger than
/// `limit` bytes (a cache is never that large: it is not read into memory) or is not a
/// regular file.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(std::io::Error::other("larger than a cache can be"));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    // Bounded again: the file may grow while it is read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other("larger than a cache can be"));
    }
    Ok(bytes)
}

/// `path` opened for reading when it is a regular file. dbflow only ever writes regular
/// files here: a FIFO would make a plain open wait for a writer (forever), and a device
/// such as `/dev/zero` never ends; either is an error, so the cache is ignored. Opened
/// without blocking, then checked on the open file (no window for a swap in between).
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // No effect on a regular file's reads.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The offsets of the records of a cache file written for `folder`; `None` when any part
/// of it is malformed, out of order or fails the check word.
fn index(bytes: &[u8], folder: &str) -> Option<Vec<u32>> {
    let rest = bytes.strip_prefix(HEADER)?;
    let (body, check) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    if check_word(&bytes[..bytes.len() - 8]).to_le_bytes() != check {
        return None;
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b = body.get(at..at + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let folder_len = u32_at(0)?;
    if body.get(4..4 + folder_len)? != folder.as_bytes() {
        return None;
    }
    let count = u32_at(4 + folder_len)?;
    let base = HEADER.len();
    let mut at = 8 + folder_len;
    let mut records = Vec::with_capacity(count.min(body.len() / (FIXED + 2)));
    let mut previous: &[u8] = &[];
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?));
        let name = body.get(at + 2..at + 2 + len)?;
        body.get(at + 2 + len..at + 2 + len + FIXED)?;
        if (!records.is_empty() && name <= previous) || std::str::from_utf8(name).is_err() {
            return None;
        }
        records.push(u32::try_from(base + at).ok()?);
        previous = name;
        at += 2 + len + FIXED;
    }
    (at == body.len()).then_some(records)
}

/// A 64-bit check word of `bytes` (catches damage and truncation; not cryptographic).
pub(crate) fn check_word(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, w: u64| {
        let h = (h ^ w).wrapping_mul(K);
        h ^ (h >> 29)
    };
    let mut h = 0x243F_6A88_85A3_08D3 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = mix(h, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    mix(mix(h, u64::from_le_bytes(tail)), K)
}

/// Writes `bytes` to `path` through a temporary file renamed over it: a reader sees the old
/// file or the new one, never half of one (also the catalog horizon memo's writer).
///
/// The temporary file is named by process and write (the targets of a fleet run write the
/// same memo from several threads at once) and created only where nothing is: a file or
/// link already there (left by a killed run whose process id came back, or planted) is
/// removed, never followed or written through.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.as_deref().unwrap_or("dbflow"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
    };
    let mut file = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            create()?
        }
        other => other?,
    };
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        len: 3,
        mtime_ns: 1,
        ctime_ns: 2,
        ino: 4,
        dev: 5,
    };

    fn hex_of(c: char) -> String {
        c.to_string().repeat(64)
    }

    /// A cache file for `/p` holding `entries`, as `save` writes it (long settled).
    fn file(entries: &[(&str, Stamp, &str)]) -> Vec<u8> {
        let mut cache = HashCache {
            folder: "/p".into(),
            ..HashCache::default()
        };
        for (name, stamp, sum) in entries {
            cache.put(name, *stamp, sum);
        }
        cache.encode(i128::MAX / 2)
    }

    fn load(bytes: &[u8]) -> HashCache {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes");
        std::fs::write(&path, bytes).unwrap();
        HashCache::load(path, Path::new("/p"))
    }

    #[test]
    fn a_cache_that_does_not_parse_or_names_another_folder_is_ignored() {
        let (a, b) = (hex_of('a'), hex_of('b'));
        let good = file(&[("m1", STAMP, &a), ("m2", STAMP, &b)]);
        assert_eq!(index(&good, "/p").unwrap().len(), 2);
        let mut cache = load(&good);
        assert_eq!(cache.get("m1", &STAMP), Some(a.clone()));
        assert_eq!(cache.get("m2", &STAMP), Some(b));

        assert!(index(&good, "/other").is_none(), "another folder");
        for cut in [1, 8, 9, good.len() / 2, good.len() - 1] {
            let truncated = &good[..good.len() - cut];
            assert!(index(truncated, "/p").is_none(), "cut by {cut}");
            assert_eq!(load(truncated).get("m1", &STAMP), None, "cut by {cut}");
        }
        for at in [
            HEADER.len() + 1,
            good.len() / 2,
            good.len() - 40,
            good.len() - 2,
        ] {
            let mut damaged = good.clone();
            damaged[at] ^= 0x10;
            assert!(index(&damaged, "/p").is_none(), "byte {at} damaged");
        }
        assert!(index(b"garbage", "/p").is_none());
        assert!(index(b"", "/p").is_none());
    }

    #[test]
    fn checksums_come_back_as_the_lowercase_hex_they_were_given() {
        let sum = "0123456789abcdef".repeat(4);
        assert_eq!(to_hex(&hex::decode(&sum).unwrap()), sum);
        let mut cache = load(&file(&[("m1", STAMP, &sum.to_uppercase())]));
        assert_eq!(cache.get("m1", &STAMP), Some(sum));
    }

    #[test]
    fn a_cache_in_the_text_format_of_v1_is_ignored() {
        let v1 = format!(
            "dbflow migration hashes v1\n/p\nm1\t3\t1\t2\t4\t5\t{}\n",
            hex_of('a')
        );
        let mut cache = load(v1.as_bytes());
        assert_eq!(cache.get("m1", &STAMP), None);
        assert!(cache.records.is_empty());
    }

    #[test]
    fn records_out_of_order_are_refused_even_with_a_good_check_word() {
        let a = hex_of('a');
        let good = file(&[("m1", STAMP, &a), ("m2", STAMP, &a)]);
        // Swap the two names (same length) and seal the file again.
        let mut swapped = good[..good.len() - 8].to_vec();
        let first = swapped.windows(2).position(|w| w == b"m1").unwrap();
        let second = swapped.windows(2).position(|w| w == b"m2").unwrap();
        swapped[first + 1] = b'2';
        swapped[second + 1] = b'1';
        let check = check_word(&swapped);
        swapped.extend_from_slice(&check.to_le_bytes());
        assert!(index(&swapped, "/p").is_none());
    }

    #[test]
    fn any_field_of_the_stamp_that_differs_misses() {
        let a = hex_of('a');
        let mut cache = load(&file(&[("m1", STAMP, &a)]));
        for other in [
            Stamp { len: 4, ..STAMP },
            Stamp {
                mtime_ns: 9,
                ..STAMP
            },
            Stamp {
                ctime_ns: 9,
                ..STAMP
            },
            Stamp { ino: 9, ..STAMP },
            Stamp { dev: 9, ..STAMP },
        ] {
            assert_eq!(cache.get("m1", &other), None, "{other:?}");
        }
        assert_eq!(cache.get("m0", &STAMP), None, "not recorded");
        assert_eq!(cache.get("m1", &STAMP), Some(a));
    }

    #[test]
    fn unchanged_entries_are_kept_without_a_rewrite_and_changed_ones_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes");
        let (a, b) = (hex_of('a'), hex_of('b'));
        let text = file(&[("m1", STAMP, &a), ("m2", STAMP, &a)]);
        std::fs::write(&path, &text).unwrap();
        let mut cache = HashCache::load(path.clone(), Path::new("/p"));
        for name in ["m1", "m2"] {
            assert_eq!(cache.get(name, &STAMP), Some(a.clone()));
        }
        std::fs::write(&path, "untouched").unwrap();
        cache.save();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "untouched");

        std::fs::write(&path, &text).unwrap();
        let mut cache = HashCache::load(path.clone(), Path::new("/p"));
        let edited = Stamp { len: 4, ..STAMP };
        assert_eq!(cache.get("m2", &edited), None, "another size misses");
        cache.put("m2", edited, &b);
        cache.put("m3", STAMP, &b);
        cache.save();
        let mut cache = HashCache::load(path.clone(), Path::new("/p"));
        assert_eq!(
            (
                cache.get("m1", &STAMP),
                cache.get("m2", &edited),
                cache.get("m3", &STAMP)
            ),
            (None, Some(b.clone()), Some(b)),
            "m1 is gone from the folder, m2 re-hashed, m3 new"
        );
        assert_eq!(cache.records.len(), 2);
    }

    #[test]
    fn files_changed_in_the_last_seconds_are_not_recorded() {
        let a = hex_of('a');
        let mut cache = HashCache {
            folder: "/p".into(),
            ..HashCache::default()
        };
        let now = 100 * 1_000_000_000;
        let fresh = Stamp {
            ctime_ns: now - 1_000_000_000,
            ..STAMP
        };
        cache.put("fresh", fresh, &a);
        cache.put("old", STAMP, &a);
        let bytes = cache.encode(now);
        let records = index(&bytes, "/p").unwrap();
        assert_eq!(records.len(), 1, "only the settled file");
    }

    #[test]
    fn lookups_in_any_order_find_every_record() {
        let a = hex_of('a');
        let names: Vec<String> = (0..200).map(|i| format!("{i:05}_m")).collect();
        let entries: Vec<(&str, Stamp, &str)> = names
            .iter()
            .map(|n| (n.as_str(), STAMP, a.as_str()))
            .collect();
        let mut cache = load(&file(&entries));
        for i in (0..200).rev().step_by(7).chain(0..200) {
            assert_eq!(cache.get(&names[i], &STAMP), Some(a.clone()), "{i}");
        }
        assert_eq!(cache.kept_count, 200);
    }

    #[test]
    fn a_cache_file_larger_than_the_bound_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes");
        std::fs::write(&path, vec![b'x'; 100]).unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap().len(), 100);
        assert!(read_bounded(&path, 99).is_err());
        // What `load` does with it: an empty cache, nothing trusted.
        let cache = HashCache::load(path, Path::new("/p"));
        assert!(cache.records.is_empty());
    }

    #[test]
    fn writers_on_several_threads_leave_one_whole_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memo");
        std::thread::scope(|scope| {
            for t in 0..8u8 {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..50 {
                        write_atomically(path, &vec![t; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(
            bytes.iter().all(|b| *b == bytes[0]),
            "one writer's whole file"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["memo"]);
    }
}
