//! Backups: create (streamed, hashed, verified, cataloged atomically), verify, the
//! catalog, GFS retention, restore (new database by default), and the checks a
//! restored copy must pass. PostgreSQL through the real client tools, SQLite through
//! `VACUUM INTO`.
//!
//! Layout: `<backups.dir>/<env>/<YYYYMMDD_HHMMSS>[_label]/{manifest.json, dump…}`; the
//! folder name is the backup id.

pub mod blockers;
pub mod catalog;
pub mod checks;
pub mod copies;
pub mod copy_progress;
pub mod create;
pub mod hashing;
pub mod manifest;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod runs;
pub mod source;
pub mod verify;

pub use catalog::{age_text, human_age, human_size, Catalog, Entry};
pub use create::{create, CreateOptions};
pub use manifest::{Archive, Manifest, VerifyState};

use crate::config::DbUrl;
use crate::db::{Conn, DbError};
use std::path::{Path, PathBuf};

/// Progress reported by long operations; the caller shows it.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something worth a line (which tools were used, what was cleaned up).
    Note(String),
    /// What runs now.
    Phase(String),
    /// The total bytes the following progress counts towards.
    Total(u64),
    /// Bytes written or read so far.
    Bytes(u64),
    /// Bytes the tool has read so far (from the server, or the archive), which is what
    /// `Total` estimates when both come: progress not distorted by compression.
    Read(u64),
}

/// The file behind a `sqlite:` / `file:` URL.
pub fn sqlite_path(url: &DbUrl) -> PathBuf {
    let raw = url.expose();
    let rest = raw.split_once(':').map(|(_, r)| r).unwrap_or(raw);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// Opens a SQLite file read-only and immutable: checking a backup must not change a
/// byte of it (or its sha256 would no longer match).
pub async fn open_sqlite_readonly(path: &Path) -> Result<Conn, DbError> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true);
    Ok(Conn::from_sqlite(
        sqlx::SqliteConnection::connect_with(&options).await?,
    ))
}

/// How old the newest verified backup of an environment may be, checked before a deploy.
/// `Err` carries the message for the blocked step (exit 3).
pub fn require_fresh(
    catalog: &Catalog,
    max_age: std::time::Duration,
    as_written: &str,
) -> Result<Entry, String> {
    let now = chrono::Utc::now();
    match catalog.newest_verified() {
        None => {
            let future: Vec<String> = catalog
                .scan()
                .entries
                .iter()
                .filter(|e| e.verified() && e.future_dated(now))
                .map(|e| e.id().to_string())
                .collect();
            let skipped = if future.is_empty() {
                String::new()
            } else {
                format!(
                    " dated in the past ({} dated in the future by a skewed clock: its age cannot be told)",
                    future.join(", ")
                )
            };
            Err(format!(
                "no verified backup of `{}`{skipped} exists and max_backup_age is {as_written}: take one first (`dbflow backup create --env {}`, or a `backup` step before `deploy`)",
                catalog.env, catalog.env
            ))
        }
        Some(entry) => {
            let age = entry.age(now);
            let limit = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
            if age > limit {
                Err(format!(
                    "the newest verified backup of `{}` is `{}`, taken {} ago: older than max_backup_age {as_written}; take a fresh one first (`dbflow backup create --env {}`, or a `backup` step before `deploy`)",
                    catalog.env,
                    entry.id(),
                    human_age(age),
                    catalog.env
                ))
            } else {
                Ok(entry)
            }
        }
    }
}
