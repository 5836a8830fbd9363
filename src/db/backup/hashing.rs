//! Hashing files and folders for backups: sha256 while copying, per-file sums of a
//! directory-format dump, and the listing hash that stands for the folder. A leaf of
//! the backup module: `create`, `verify` and `restore` all use it, it uses none of them.

use super::manifest::FileSum;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Copies `from` into `to`, returning the byte count and the sha256 (hex).
pub fn copy_hashing(
    mut from: impl Read,
    to: &mut impl Write,
    on_bytes: &mut dyn FnMut(u64),
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        to.write_all(&buffer[..n])?;
        total += n as u64;
        on_bytes(total);
    }
    to.flush()?;
    Ok((total, hex::encode(hasher.finalize())))
}

/// sha256 and size of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    copy_hashing(file, &mut std::io::sink(), &mut |_| {})
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// Every file under `dir` (sorted, relative paths) with its size and sha256.
pub fn hash_folder(dir: &Path) -> Result<Vec<FileSum>> {
    let mut paths = Vec::new();
    collect_files(dir, &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let (size, sha256) = hash_file(&path)?;
            Ok(FileSum {
                path: path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/"),
                size,
                sha256,
            })
        })
        .collect()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let read =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The sha256 of a folder: of its `sha256sum`-style listing (`<sha>  <path>` lines).
pub fn listing_sha256(files: &[FileSum]) -> String {
    let listing: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    hex::encode(Sha256::digest(listing.as_bytes()))
}

/// Total size of the files under `dir` (0 when it cannot be read: progress only).
pub fn folder_size(dir: &Path) -> u64 {
    let mut files = Vec::new();
    if collect_files(dir, &mut files).is_err() {
        return 0;
    }
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}
