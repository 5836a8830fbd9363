//! Verification: the dump's sha256 still matches the manifest, and the archive reads
//! back (`pg_restore --list` for PostgreSQL, `PRAGMA integrity_check` for SQLite). The
//! outcome is written into the manifest, so a failed backup stays marked.

use super::catalog::Entry;
use super::hashing::{hash_file, hash_folder, listing_sha256};
use super::manifest::{Archive, Manifest, Verification, VerifyState};
use crate::db::pgtools::PgTools;
use crate::error::Result;
use chrono::Utc;
use std::path::Path;

/// Checks the dump against the manifest's sha256 (and, for a folder, every file's).
pub fn checksum_matches(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    if manifest.format == Archive::Provider {
        // Nothing on disk to checksum: the provider vouched for it when it was taken.
        return Ok(());
    }
    let dump = dir.join(&manifest.dump);
    if !dump.exists() {
        return Err(format!("{} is missing", dump.display()));
    }
    if manifest.format == Archive::Directory {
        let files = hash_folder(&dump).map_err(|e| e.to_string())?;
        for expected in &manifest.files {
            match files.iter().find(|f| f.path == expected.path) {
                None => return Err(format!("{} is missing from the dump", expected.path)),
                Some(f) if f.sha256 != expected.sha256 => {
                    return Err(format!(
                        "{} changed: sha256 {}…, the manifest says {}…",
                        expected.path,
                        &f.sha256[..12],
                        &expected.sha256[..12.min(expected.sha256.len())]
                    ))
                }
                Some(_) => {}
            }
        }
        let actual = listing_sha256(&files);
        if actual != manifest.sha256 {
            return Err(format!(
                "the dump folder changed (files added or removed): sha256 {}…, the manifest says {}…",
                &actual[..12],
                &manifest.sha256[..12.min(manifest.sha256.len())]
            ));
        }
        return Ok(());
    }
    let (size, sha256) = hash_file(&dump).map_err(|e| e.to_string())?;
    if sha256 != manifest.sha256 {
        return Err(format!(
            "sha256 mismatch: {} is {}… ({size} bytes), the manifest says {}… ({} bytes)",
            manifest.dump,
            &sha256[..12],
            &manifest.sha256[..12.min(manifest.sha256.len())],
            manifest.size
        ));
    }
    Ok(())
}

/// Reads the archive back; returns what was checked.
pub fn archive_readable(
    dir: &Path,
    manifest: &Manifest,
    tools: Option<&PgTools>,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let dump = dir.join(&manifest.dump);
    match manifest.format {
        Archive::Custom | Archive::Directory => {
            let located;
            let tools = match tools {
                Some(t) => t,
                None => {
                    located =
                        PgTools::locate(archive_major(manifest)).map_err(|e| e.to_string())?;
                    &located
                }
            };
            let listing = tools
                .run(
                    "pg_restore",
                    None,
                    &["--list".to_string(), dump.to_string_lossy().to_string()],
                )
                .map_err(|e| e.to_string())?;
            let entries = listing
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
                .count();
            Ok(format!("pg_restore --list read {entries} archive entries"))
        }
        Archive::Provider => Ok(match &manifest.provider {
            Some(p) => format!("snapshot {} held by provider `{}`", p.snapshot_id, p.name),
            None => "provider snapshot".into(),
        }),
        Archive::Sqlite => {
            let result = rt.block_on(async {
                let mut conn = super::open_sqlite_readonly(&dump).await?;
                let rows = conn.strings("PRAGMA integrity_check").await;
                conn.close().await;
                rows
            });
            match result {
                Ok(rows) if rows == ["ok"] => Ok("PRAGMA integrity_check: ok".into()),
                Ok(rows) => Err(format!("PRAGMA integrity_check: {}", rows.join("; "))),
                Err(e) => Err(format!("cannot open the SQLite copy: {e}")),
            }
        }
    }
}

/// The major version of the pg_dump that wrote an archive: pg_restore must be as new.
pub fn archive_major(manifest: &Manifest) -> Option<u32> {
    manifest
        .tool_version
        .as_deref()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
}

/// Verifies a cataloged backup and records the outcome in its manifest. Returns the
/// updated entry; `Err` only when the manifest cannot be written.
pub fn verify(entry: &Entry, rt: &tokio::runtime::Runtime) -> Result<Entry> {
    let outcome = checksum_matches(&entry.dir, &entry.manifest)
        .and_then(|()| archive_readable(&entry.dir, &entry.manifest, None, rt));
    let mut updated = entry.clone();
    // Re-read: a pin set while the archive was being read must not be written away.
    if let Ok(current) = Manifest::read(&entry.dir) {
        updated.manifest = current;
    }
    updated.manifest.verification = match outcome {
        Ok(detail) => Verification {
            state: VerifyState::Verified,
            checked_at: Utc::now(),
            detail: format!("sha256 matches; {detail}"),
        },
        Err(why) => Verification {
            state: VerifyState::Failed,
            checked_at: Utc::now(),
            detail: why,
        },
    };
    updated.manifest.write(&updated.dir)?;
    Ok(updated)
}
