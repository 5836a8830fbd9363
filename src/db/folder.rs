//! The migrations folder, opened once: its entries listed into one buffer, and each
//! `NAME/migration.sql` looked up relative to the folder's descriptor.
//!
//! `status` on a 5,000-migration history stats 5,000 scripts. By the full path the kernel
//! walks every component from the working directory each time (a quarter of the whole
//! command's CPU at 5,000); relative to the open folder it walks two. The names are
//! listed into one buffer, sorted, so a caller also reads them in the order the hash
//! cache keeps them. Opening a script never blocks: a FIFO is opened without waiting for
//! a writer, and refused as soon as it is seen not to be a regular file.

use super::hash_cache::{now_ns, Stamp};
use super::listing_cache;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What a folder entry is, by its own type (a symbolic link is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A symbolic link (to anything, or dangling).
    Link,
    /// A regular file.
    File,
    /// Anything else: a FIFO, a socket, a device.
    Other,
}

/// What a stat of a script said.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Its type.
    pub kind: Kind,
    /// Its stamp for the hash cache (`None` where the platform has none).
    pub stamp: Option<Stamp>,
}

/// The folder's entries (without `.` and `..`), sorted by name.
#[derive(Debug, Default)]
pub struct Listing {
    names: Vec<u8>,
    entries: Vec<(u32, u32, Kind)>,
}

impl Listing {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the folder is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries: name and type.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, Kind)> + '_ {
        self.entries.iter().map(|&(at, len, kind)| {
            let bytes = &self.names[at as usize..(at + len) as usize];
            (sys::os_str(bytes), kind)
        })
    }

    /// Appends an entry (callers keep the names sorted, or call `sort`).
    pub(crate) fn push(&mut self, name: &[u8], kind: Kind) {
        self.entries
            .push((self.names.len() as u32, name.len() as u32, kind));
        self.names.extend_from_slice(name);
    }

    fn sort(&mut self) {
        let names = &self.names;
        let bytes = |&(at, len, _): &(u32, u32, Kind)| &names[at as usize..(at + len) as usize];
        self.entries.sort_unstable_by(|a, b| bytes(a).cmp(bytes(b)));
    }
}

/// The script of a migration folder, relative to the migrations folder.
const SCRIPT: &str = "migration.sql";

/// An open migrations folder.
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    inner: sys::Dir,
}

impl Folder {
    /// Opens the folder at `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Folder {
            path: path.to_path_buf(),
            inner: sys::Dir::open(path)?,
        })
    }

    /// Its entries, sorted by name (a directory listing without a type, as some file
    /// systems give, is completed with a stat of the entry that does not follow links).
    pub fn list(&self) -> std::io::Result<Listing> {
        let mut listing = self.inner.list()?;
        listing.sort();
        Ok(listing)
    }

    /// Whether this folder's file system keeps a ctime that every change moves, which is
    /// what the hash cache and the listing copy rely on (`touch -d` can put an mtime back,
    /// never a ctime). On Linux only the file systems known to do so are trusted; on FAT,
    /// exFAT, FUSE mounts, 9p (WSL's `/mnt/c`), SMB and anything unknown the caches are not
    /// used: every script is hashed and the folder listed on every run.
    pub fn stamps_are_trustworthy(&self) -> bool {
        self.inner.stamps_are_trustworthy()
    }

    /// [`Folder::list`], taken from the copy at `cache` (see [`super::listing_cache`])
    /// while the folder's stamp is the one recorded with it, and recorded there otherwise.
    /// `canonical`: the folder's canonical path, which the copy names.
    pub fn list_cached(&self, cache: &Path, canonical: &Path) -> std::io::Result<Listing> {
        // Stamped before listing: an entry made while the folder is listed moves the
        // stamp past the recorded one.
        let Some(stamp) = self.inner.stamp() else {
            return self.list();
        };
        let stamped_at = now_ns();
        if let Some(listing) = listing_cache::load(cache, canonical, &stamp) {
            return Ok(listing);
        }
        let listing = self.list()?;
        listing_cache::save(cache, canonical, &stamp, stamped_at, &listing);
        Ok(listing)
    }

    /// The path of `name`'s script, as people see it (in messages and in
    /// [`super::store::Migration::path`]).
    pub fn script_path(&self, name: &OsStr) -> PathBuf {
        let mut path =
            PathBuf::with_capacity(self.path.as_os_str().len() + name.len() + SCRIPT.len() + 2);
        path.push(&self.path);
        path.push(name);
        path.push(SCRIPT);
        path
    }

    /// Stats `name/migration.sql`; `follow`: through a symbolic link (the caller checked
    /// that it stays inside the folder).
    pub fn stat_script(&self, name: &OsStr, follow: bool) -> std::io::Result<Meta> {
        self.inner.stat_script(name, follow)
    }

    /// [`Folder::stat_script`] (not following links) of each of `names`, in order. A long
    /// list is split between threads: a stat is a system call of a microsecond or two
    /// (more in a virtual machine), so 5,000 of them are most of what `status` waits for,
    /// and they do not depend on each other.
    pub fn stat_scripts(&self, names: &[&OsStr]) -> Vec<std::io::Result<Meta>> {
        let threads = stat_threads(names.len());
        if threads <= 1 {
            return names.iter().map(|n| self.stat_script(n, false)).collect();
        }
        let chunk = names.len().div_ceil(threads);
        let stat_all = |part: &[&OsStr]| -> Vec<std::io::Result<Meta>> {
            part.iter().map(|n| self.stat_script(n, false)).collect()
        };
        std::thread::scope(|scope| {
            let mut parts = names.chunks(chunk);
            let first = parts.next().unwrap_or_default();
            // A part whose thread cannot be started (a process or thread limit) is done
            // here, in turn, instead.
            let others: Vec<_> = parts
                .map(|part| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || stat_all(part))
                        .map_err(|_| part)
                })
                .collect();
            // This thread takes the first part rather than waiting idle.
            let mut metas = stat_all(first);
            for other in others {
                match other {
                    Ok(thread) => match thread.join() {
                        Ok(part) => metas.extend(part),
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                    Err(part) => metas.extend(stat_all(part)),
                }
            }
            metas
        })
    }

    /// Opens `name/migration.sql` for reading without blocking (a FIFO does not wait for
    /// a writer); the caller checks that what it opened is a regular file.
    pub fn open_script(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
        self.inner.open_script(name)
    }
}

/// Below this many stats one thread does them all: starting a thread costs about as much
/// as a few hundred stats.
pub(crate) const STATS_PER_THREAD: usize = 1024;

/// How many threads stat `count` scripts: one per [`STATS_PER_THREAD`], at most one per
/// core and at most 4 (beyond that the directory's lookups contend).
fn stat_threads(count: usize) -> usize {
    let wanted = count / STATS_PER_THREAD;
    if wanted <= 1 {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    wanted.min(cores).min(4)
}

/// Linux file systems whose ctime every change of a file or folder moves (magic numbers
/// from `linux/magic.h`): ext2/3/4, XFS, Btrfs, tmpfs, overlayfs, ZFS, F2FS, bcachefs,
/// eCryptfs (over one of these) and NFS (the server's ctime).
#[cfg(target_os = "linux")]
fn trusted_file_system(magic: i64) -> bool {
    const TRUSTED: [i64; 10] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
        0x2FC1_2FC1, // ZFS
        0xF2F5_2010, // F2FS
        0xCA45_1A4E, // bcachefs
        0xF15F,      // eCryptfs
        0x6969,      // NFS
    ];
    // `f_type` is signed on some targets: compare its low 32 bits.
    TRUSTED.contains(&(magic & 0xFFFF_FFFF))
}

#[cfg(unix)]
mod sys {
    #[cfg(target_os = "linux")]
    use super::trusted_file_system;
    use super::{Kind, Listing, Meta, SCRIPT};
    use crate::db::hash_cache::Stamp;
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    pub fn os_str(bytes: &[u8]) -> &OsStr {
        OsStr::from_bytes(bytes)
    }

    #[derive(Debug)]
    pub struct Dir {
        fd: rustix::fd::OwnedFd,
    }

    fn kind(file_type: FileType) -> Kind {
        match file_type {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Link,
            FileType::RegularFile => Kind::File,
            _ => Kind::Other,
        }
    }

    impl Dir {
        pub fn open(path: &Path) -> std::io::Result<Self> {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            Ok(Dir {
                fd: rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty())?,
            })
        }

        // `f_type`'s type differs between targets (`i64`, `u32`, …).
        #[cfg(target_os = "linux")]
        #[allow(clippy::unnecessary_cast)]
        pub fn stamps_are_trustworthy(&self) -> bool {
            rustix::fs::fstatfs(&self.fd).is_ok_and(|fs| trusted_file_system(fs.f_type as i64))
        }

        #[cfg(not(target_os = "linux"))]
        pub fn stamps_are_trustworthy(&self) -> bool {
            true
        }

        /// The folder's own stamp (`fstat` of the open folder).
        // The fields' types differ between platforms (`c_long`, `i64`, `u32`, …).
        #[allow(clippy::unnecessary_cast)]
        pub fn stamp(&self) -> Option<Stamp> {
            let st = rustix::fs::fstat(&self.fd).ok()?;
            Some(Stamp::from_parts(
                st.st_size as u64,
                (st.st_mtime as i64, st.st_mtime_nsec as i64),
                (st.st_ctime as i64, st.st_ctime_nsec as i64),
                st.st_ino as u64,
                st.st_dev as u64,
            ))
        }

        pub fn list(&self) -> std::io::Result<Listing> {
            let mut listing = Listing::default();
            let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
            while let Some(entry) = dir.read() {
                let entry = entry?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let kind = match entry.file_type() {
                    FileType::Unknown => {
                        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) => kind(FileType::from_raw_mode(st.st_mode as _)),
                            Err(_) => Kind::Other,
                        }
                    }
                    t => kind(t),
                };
                listing.push(name, kind);
            }
            Ok(listing)
        }

        /// `name/migration.sql`, relative to the folder, as a path for the `*at` calls.
        fn script(name: &OsStr) -> Vec<u8> {
            let mut rel = Vec::with_capacity(name.len() + SCRIPT.len() + 1);
            rel.extend_from_slice(name.as_bytes());
            rel.push(b'/');
            rel.extend_from_slice(SCRIPT.as_bytes());
            rel
        }

        // The fields' types differ between platforms (`c_long`, `i64`, `u32`, …).
        #[allow(clippy::unnecessary_cast)]
        pub fn stat_script(&self, name: &OsStr, follow: bool) -> std::io::Result<Meta> {
            let flags = match follow {
                true => AtFlags::empty(),
                false => AtFlags::SYMLINK_NOFOLLOW,
            };
            let st = rustix::fs::statat(&self.fd, Self::script(name).as_slice(), flags)?;
            Ok(Meta {
                kind: kind(FileType::from_raw_mode(st.st_mode as _)),
                stamp: Some(Stamp::from_parts(
                    st.st_size as u64,
                    (st.st_mtime as i64, st.st_mtime_nsec as i64),
                    (st.st_ctime as i64, st.st_ctime_nsec as i64),
                    st.st_ino as u64,
                    st.st_dev as u64,
                )),
            })
        }

        pub fn open_script(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
            let fd = rustix::fs::openat(
                &self.fd,
                Self::script(name).as_slice(),
                flags,
                Mode::empty(),
            )?;
            Ok(std::fs::File::from(fd))
        }
    }
}

#[cfg(not(unix))]
mod sys {
    use super::{Kind, Listing, Meta, SCRIPT};
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};

    pub fn os_str(bytes: &[u8]) -> &OsStr {
        // Names are stored as UTF-8 here (converted lossily when listed).
        std::str::from_utf8(bytes).map_or(OsStr::new("\u{FFFD}"), OsStr::new)
    }

    #[derive(Debug)]
    pub struct Dir {
        path: PathBuf,
    }

    fn kind(t: std::fs::FileType) -> Kind {
        if t.is_symlink() {
            Kind::Link
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }

    impl Dir {
        pub fn open(path: &Path) -> std::io::Result<Self> {
            Ok(Dir {
                path: path.to_path_buf(),
            })
        }

        pub fn stamps_are_trustworthy(&self) -> bool {
            true
        }

        /// No stamp here: the listing is not copied.
        pub fn stamp(&self) -> Option<crate::db::hash_cache::Stamp> {
            None
        }

        pub fn list(&self) -> std::io::Result<Listing> {
            let mut listing = Listing::default();
            for entry in std::fs::read_dir(&self.path)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let kind = entry.file_type().map_or(Kind::Other, kind);
                listing.push(name.as_bytes(), kind);
            }
            Ok(listing)
        }

        pub fn stat_script(&self, name: &OsStr, follow: bool) -> std::io::Result<Meta> {
            let path = self.path.join(name).join(SCRIPT);
            let meta = match follow {
                true => std::fs::metadata(&path)?,
                false => std::fs::symlink_metadata(&path)?,
            };
            Ok(Meta {
                kind: kind(meta.file_type()),
                stamp: crate::db::hash_cache::Stamp::of(&meta),
            })
        }

        pub fn open_script(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
            std::fs::File::open(self.path.join(name).join(SCRIPT))
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The comparable part of a stat: its type and stamp, or the error's kind.
    fn seen(stat: &std::io::Result<Meta>) -> Result<(Kind, Option<Stamp>), std::io::ErrorKind> {
        stat.as_ref()
            .map(|m| (m.kind, m.stamp))
            .map_err(|e| e.kind())
    }

    #[test]
    fn stats_split_between_threads_come_back_in_order_and_equal_to_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        // Enough folders for several threads, with the odd ones spread through every
        // part: no script, a script that is a folder, a script that is a link.
        let count = 3 * STATS_PER_THREAD + 7;
        let mut names = Vec::new();
        for i in 0..count {
            let name = format!("{i:05}_m");
            let folder = dir.path().join(&name);
            std::fs::create_dir(&folder).unwrap();
            match i % 501 {
                7 => {}
                8 => std::fs::create_dir(folder.join(SCRIPT)).unwrap(),
                9 => std::os::unix::fs::symlink("elsewhere.sql", folder.join(SCRIPT)).unwrap(),
                _ => std::fs::write(folder.join(SCRIPT), format!("SELECT {i};\n")).unwrap(),
            }
            names.push(std::ffi::OsString::from(name));
        }
        let folder = Folder::open(dir.path()).unwrap();
        let names: Vec<&OsStr> = names.iter().map(|n| n.as_os_str()).collect();
        let together = folder.stat_scripts(&names);
        assert_eq!(together.len(), names.len());
        for (name, stat) in names.iter().zip(&together) {
            assert_eq!(
                seen(stat),
                seen(&folder.stat_script(name, false)),
                "{name:?}"
            );
        }
        let kinds = |k: Kind| {
            together
                .iter()
                .filter(|s| seen(s).is_ok_and(|(kind, _)| kind == k))
                .count()
        };
        let missing = together.iter().filter(|s| s.is_err()).count();
        assert_eq!((kinds(Kind::Dir), kinds(Kind::Link), missing), (7, 7, 7));
        assert_eq!(kinds(Kind::File), count - 21);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn caches_are_trusted_only_on_file_systems_whose_ctime_follows_every_change() {
        assert!(trusted_file_system(0xEF53), "ext4");
        assert!(trusted_file_system(0x0102_1994), "tmpfs");
        // Btrfs' magic with its sign bit set, as a signed 32-bit `f_type` gives it.
        assert!(
            trusted_file_system(0x9123_683E_u32 as i32 as i64),
            "btrfs, signed"
        );
        for (magic, what) in [
            (0x4D44, "vfat"),
            (0x2011_BAB0, "exFAT"),
            (0x6573_5546, "FUSE"),
            (0x0102_1997, "9p (WSL /mnt/c)"),
            (0xFE53_4D42, "SMB2"),
            (0, "unknown"),
        ] {
            assert!(!trusted_file_system(magic), "{what}");
        }
        // Where the tests run (ext4, tmpfs or overlayfs), the caches are used.
        let dir = tempfile::tempdir().unwrap();
        assert!(Folder::open(dir.path()).unwrap().stamps_are_trustworthy());
    }

    #[test]
    fn a_few_stats_stay_on_one_thread_and_many_use_at_most_four() {
        assert_eq!(stat_threads(0), 1);
        assert_eq!(stat_threads(2 * STATS_PER_THREAD - 1), 1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(stat_threads(100 * STATS_PER_THREAD), cores.min(4));
    }
}
