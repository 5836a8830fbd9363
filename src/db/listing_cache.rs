//! A per-project copy of the migrations folder's listing, used while the folder itself is
//! unchanged: `status` on a 5,000-migration history then reads one small file instead of
//! the directory (the kernel sorts a large directory's entries by hash on every listing).
//!
//! The folder's stamp (inode, device, mtime, ctime, size) is taken with `fstat` on the
//! open folder before it is listed, and the copy is used only while that stamp is the
//! same: creating, removing or renaming an entry always sets the folder's mtime and
//! ctime. A folder changed in the last [`RACY_SECS`] seconds before its stamp was taken is
//! not recorded: a change in the same timestamp tick would otherwise leave the stamp as
//! it was. What is inside each migration folder is not covered: every `migration.sql` is
//! still stat'ed on every run. A copy that cannot be read, fails its check word, was
//! written for another folder or holds a name that is not a plain entry name (empty, `.`,
//! `..`, a `/` or a NUL byte) is ignored as a whole.
//!
//! # Format (v1)
//!
//! ```text
//! "dbflow migration listing v1\n"
//! u32 folder length, folder bytes      the canonical migrations folder
//! u64 size, i128 mtime ns, i128 ctime ns, u64 inode, u64 device   the folder's stamp
//! u32 entry count
//! entries, names strictly ascending (bytes):
//!   u16 name length, name bytes, u8 kind (0 folder, 1 link, 2 file, 3 other)
//! u64 check word over everything before it
//! ```

use super::folder::{Kind, Listing};
use super::hash_cache::{check_word, read_bounded, write_atomically, Stamp};
use std::path::Path;

/// First bytes of the file; anything else (another format) ignores the copy.
const HEADER: &[u8] = b"dbflow migration listing v1\n";

/// A folder whose mtime or ctime is this recent when its stamp is taken is not recorded.
const RACY_SECS: i64 = 2;

/// A copy larger than this is not read (20,000 migrations take about 600 KB).
const LIMIT: u64 = 64 << 20;

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Dir => 0,
        Kind::Link => 1,
        Kind::File => 2,
        Kind::Other => 3,
    }
}

fn kind_of(byte: u8) -> Option<Kind> {
    Some(match byte {
        0 => Kind::Dir,
        1 => Kind::Link,
        2 => Kind::File,
        3 => Kind::Other,
        _ => return None,
    })
}

/// The listing recorded at `path` for `folder` (canonical) when the folder's stamp is
/// still `stamp`.
pub fn load(path: &Path, folder: &Path, stamp: &Stamp) -> Option<Listing> {
    let bytes = read_bounded(path, LIMIT).ok()?;
    decode(&bytes, folder.as_os_str().as_encoded_bytes(), stamp)
}

/// Records `listing` of `folder` (canonical), whose stamp `stamp` was taken at
/// `stamped_at` (ns since the epoch) before it was listed, unless the folder changed too
/// recently for the stamp to tell a later change apart. Errors are ignored: the copy
/// only saves work.
pub fn save(path: &Path, folder: &Path, stamp: &Stamp, stamped_at: i128, listing: &Listing) {
    if !settled(stamp, stamped_at) {
        return;
    }
    let bytes = encode(folder.as_os_str().as_encoded_bytes(), stamp, listing);
    let _ = write_atomically(path, &bytes);
}

/// Whether a change after `stamped_at` would give the folder another stamp: its last
/// change is at least [`RACY_SECS`] older.
fn settled(stamp: &Stamp, stamped_at: i128) -> bool {
    let (mtime, ctime) = stamp.times_ns();
    stamped_at - mtime.max(ctime) >= i128::from(RACY_SECS) * 1_000_000_000
}

fn encode(folder: &[u8], stamp: &Stamp, listing: &Listing) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER.len() + folder.len() + 64 + listing.len() * 24);
    out.extend_from_slice(HEADER);
    out.extend_from_slice(&(folder.len() as u32).to_le_bytes());
    out.extend_from_slice(folder);
    stamp.write(&mut out);
    out.extend_from_slice(&(listing.len() as u32).to_le_bytes());
    for (name, kind) in listing.iter() {
        let name = name.as_encoded_bytes();
        // The listing came from the folder: a name is at most 255 bytes.
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.push(kind_byte(kind));
    }
    let check = check_word(&out);
    out.extend_from_slice(&check.to_le_bytes());
    out
}

fn decode(bytes: &[u8], folder: &[u8], stamp: &Stamp) -> Option<Listing> {
    let rest = bytes.strip_prefix(HEADER)?;
    let (body, check) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    if check_word(&bytes[..bytes.len() - 8]).to_le_bytes() != check {
        return None;
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let folder_len = u32_at(0)?;
    if body.get(4..4 + folder_len)? != folder {
        return None;
    }
    let mut at = 4 + folder_len;
    if Stamp::read(body.get(at..at + Stamp::LEN)?) != *stamp {
        return None;
    }
    at += Stamp::LEN;
    let count = u32_at(at)?;
    at += 4;
    let mut listing = Listing::default();
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?));
        let name = body.get(at + 2..at + 2 + len)?;
        let kind = kind_of(*body.get(at + 2 + len)?)?;
        // Each name becomes part of a path looked up relative to the folder: only a
        // plain entry name, in order, is accepted.
        let plain = !name.is_empty()
            && name != b"."
            && name != b".."
            && !name.contains(&b'/')
            && !name.contains(&0);
        if !plain || previous.is_some_and(|p| p >= name) {
            return None;
        }
        listing.push(name, kind);
        previous = Some(name);
        at += 3 + len;
    }
    (at == body.len()).then_some(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp::from_ns(4096, 10_000_000_000, 10_000_000_000, 7, 8);

    fn listing(entries: &[(&str, Kind)]) -> Listing {
        let mut l = Listing::default();
        for (name, kind) in entries {
            l.push(name.as_bytes(), *kind);
        }
        l
    }

    fn entries(l: &Listing) -> Vec<(String, Kind)> {
        l.iter()
            .map(|(n, k)| (n.to_string_lossy().into_owned(), k))
            .collect()
    }

    const SOME: &[(&str, Kind)] = &[
        ("20240101_a", Kind::Dir),
        ("20240102_b", Kind::Link),
        ("migration_lock.toml", Kind::File),
        ("pipe", Kind::Other),
    ];

    #[test]
    fn a_recorded_listing_is_read_back_only_for_the_same_folder_and_stamp() {
        let bytes = encode(b"/p", &STAMP, &listing(SOME));
        let back = decode(&bytes, b"/p", &STAMP).expect("read back");
        assert_eq!(entries(&back), entries(&listing(SOME)));
        assert!(decode(&bytes, b"/q", &STAMP).is_none(), "another folder");
        let touched = Stamp::from_ns(4096, 10_000_000_000, 10_000_000_001, 7, 8);
        assert!(decode(&bytes, b"/p", &touched).is_none(), "another ctime");
        let moved = Stamp::from_ns(4096, 10_000_000_000, 10_000_000_000, 9, 8);
        assert!(decode(&bytes, b"/p", &moved).is_none(), "another inode");
    }

    #[test]
    fn a_damaged_truncated_or_forged_listing_is_ignored() {
        let bytes = encode(b"/p", &STAMP, &listing(SOME));
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                decode(&bytes[..cut], b"/p", &STAMP).is_none(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 20;
        flipped[at] ^= 1;
        assert!(decode(&flipped, b"/p", &STAMP).is_none());
        // Names that would leave the folder or are out of order, with a valid check word.
        for bad in [
            &[("../../etc", Kind::Dir)][..],
            &[("a/b", Kind::Dir)],
            &[("..", Kind::Dir)],
            &[(".", Kind::Dir)],
            &[("", Kind::Dir)],
            &[("a\0b", Kind::Dir)],
            &[("b", Kind::Dir), ("a", Kind::Dir)],
            &[("a", Kind::Dir), ("a", Kind::File)],
        ] {
            let forged = encode(b"/p", &STAMP, &listing(bad));
            assert!(decode(&forged, b"/p", &STAMP).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_folder_changed_in_the_last_two_seconds_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("listing");
        let changed = 10_000_000_000i128;
        save(
            &path,
            Path::new("/p"),
            &STAMP,
            changed + 1_999_999_999,
            &listing(SOME),
        );
        assert!(!path.exists());
        save(
            &path,
            Path::new("/p"),
            &STAMP,
            changed + 2_000_000_000,
            &listing(SOME),
        );
        let back = load(&path, Path::new("/p"), &STAMP).expect("recorded");
        assert_eq!(back.len(), SOME.len());
    }
}
