//! `sources`/`generates`: a task is skipped when the content hash of its sources (and its
//! own definition) equals the one recorded after its last successful run and every
//! `generates` pattern still matches a file.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Folder (under the project root) holding the recorded hashes.
pub const FINGERPRINT_DIR: &str = ".dbflow/tasks";

/// The files matched by `patterns`, sorted, relative to `root`.
pub fn expand(root: &Path, patterns: &[String]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = patterns
        .iter()
        .flat_map(|p| {
            glob::glob(&root.join(p).to_string_lossy())
                .map(|paths| {
                    paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Hash over the task definition and every source file's path and content.
pub fn compute(root: &Path, definition: &str, sources: &[String]) -> (String, usize) {
    let mut hasher = Sha256::new();
    hasher.update(definition.as_bytes());
    let files = expand(root, sources);
    for file in &files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        match std::fs::read(file) {
            Ok(bytes) => hasher.update(&bytes),
            Err(_) => hasher.update(b"<unreadable>"),
        }
        hasher.update([0]);
    }
    (hex::encode(hasher.finalize()), files.len())
}

fn record_path(root: &Path, task: &str) -> PathBuf {
    let safe: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join(FINGERPRINT_DIR).join(format!("{safe}.sha256"))
}

/// True when the task can be skipped: same hash as last time and outputs present.
pub fn unchanged(root: &Path, task: &str, hash: &str, generates: &[String]) -> bool {
    let recorded = std::fs::read_to_string(record_path(root, task)).unwrap_or_default();
    recorded.trim() == hash
        && generates
            .iter()
            .all(|g| !expand(root, std::slice::from_ref(g)).is_empty())
}

/// Records the hash after a successful run.
pub fn record(root: &Path, task: &str, hash: &str) -> std::io::Result<()> {
    let path = record_path(root, task);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{hash}\n"))
}
