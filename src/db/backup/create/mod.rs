//! Taking a backup. The dump is streamed (never held in memory) into a `.partial-*`
//! folder while its sha256 is computed, read back, described by a manifest written
//! last, and only then renamed into the catalog: a backup that failed or was
//! interrupted never appears there, and its folder is removed.

use super::catalog::{Catalog, Entry, PARTIAL_PREFIX};
use super::hashing::{copy_hashing, folder_size, hash_file, hash_folder, listing_sha256};
use super::manifest::{
    create_private_dir, create_private_dir_all, make_private, private_file, sync_dir, Archive,
    Manifest, Verification, VerifyState, HOST_CLOCK,
};
use super::source::{self, SourceInfo};
use super::{blockers, verify, Event};
use crate::config::raw::DumpFormat;
use crate::config::DbUrl;
use crate::db::pgtools::{tool_failure, PgConn, PgTools};
use crate::db::Conn;
use crate::error::{Error, Result};
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod pg_dump;
mod provider;
mod sqlite;

pub use pg_dump::lock_wait_arg;
use pg_dump::{dump_postgres, record_source};
pub use provider::record_provider_snapshot;
use sqlite::dump_sqlite;

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct CreateOptions<'a> {
    /// The database (the direct URL when the environment has one).
    pub url: &'a DbUrl,
    /// pg_dump format (ignored for SQLite).
    pub format: DumpFormat,
    /// Parallel jobs for the directory format.
    pub jobs: u32,
    /// Label appended to the id.
    pub label: Option<&'a str>,
    /// The run taking it.
    pub run_id: Option<&'a str>,
    /// Tables whose exact row counts go into the manifest.
    pub key_tables: &'a [String],
    /// Migration history table (for the migration head).
    pub history_table: &'a str,
    /// How long pg_dump (and the row counts) wait for a table lock before giving up.
    pub lock_wait_timeout: Duration,
}

/// How far in the future a backup may be dated before it is distrusted: clocks of
/// well-run machines agree within seconds; minutes mean a skewed clock.
pub const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// Removes the partial folder unless the backup made it into the catalog.
struct PartialGuard {
    dir: PathBuf,
    armed: bool,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A label must make a readable, portable folder name.
pub fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 40
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid label `{label}`: use at most 40 letters, digits, `-` or `_`"
        )))
    }
}

/// Takes, verifies and catalogs a backup.
pub fn create(
    catalog: &Catalog,
    options: &CreateOptions<'_>,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<Entry> {
    create_with(catalog, options, rt, on_event, None)
}

/// [`create`] reading the source (version, clock, row counts, the snapshot pg_dump
/// shares) over `session`, a connection to `options.url` the caller keeps open (a
/// run's session), instead of a connection of its own. The session comes back as it
/// was: no transaction open, `lock_timeout` reset.
pub fn create_with(
    catalog: &Catalog,
    options: &CreateOptions<'_>,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
    session: Option<&mut Conn>,
) -> Result<Entry> {
    if let Some(label) = options.label {
        check_label(label)?;
    }
    // SIGINT/SIGTERM stop pg_dump (see `interrupt`); the partial folder goes with the guard.
    let _scope = crate::interrupt::scope();
    for removed in catalog.sweep_partials() {
        on_event(Event::Note(format!(
            "removed {} left by an interrupted backup",
            removed.display()
        )));
    }
    create_private_dir_all(&catalog.dir)
        .map_err(|e| Error::io(format!("creating {}", catalog.dir.display()), e))?;
    let started = Instant::now();
    let created_at = Utc::now();
    let id = unique_id(catalog, created_at, options.label);
    let partial = catalog
        .dir
        .join(format!("{PARTIAL_PREFIX}{id}-{}", std::process::id()));
    create_private_dir(&partial)
        .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
    let mut guard = PartialGuard {
        dir: partial.clone(),
        armed: true,
    };

    let url = options.url;
    let mut manifest =
        unverified_manifest(catalog, &id, url, created_at, options.run_id, options.label);

    let tools = if url.is_postgres() {
        let tools = dump_postgres(&partial, options, &mut manifest, rt, on_event, session)?;
        Some(tools)
    } else if url.is_sqlite() {
        dump_sqlite(&partial, options, &mut manifest, rt, on_event)?;
        None
    } else {
        return Err(Error::failed(format!(
            "cannot back up {}: only postgres:// and sqlite: URLs are supported",
            url.redacted()
        )));
    };

    on_event(Event::Phase("verifying the archive".into()));
    let detail = verify::archive_readable(&partial, &manifest, tools.as_ref(), rt)
        .map_err(|why| Error::failed(format!("the new backup does not read back: {why}")))?;
    manifest.verification = Verification {
        state: VerifyState::Verified,
        checked_at: Utc::now(),
        detail: format!("sha256 recorded while writing; {detail}"),
    };
    manifest.duration_ms = started.elapsed().as_millis() as u64;
    manifest.write(&partial)?;
    make_private(&partial).map_err(|e| {
        Error::io(
            format!("making {} private to its owner", partial.display()),
            e,
        )
    })?;

    let final_dir = catalog.dir.join(&id);
    std::fs::rename(&partial, &final_dir).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", partial.display(), final_dir.display()),
            e,
        )
    })?;
    guard.armed = false;
    sync_dir(&catalog.dir);
    Ok(Entry {
        dir: final_dir,
        manifest,
    })
}

/// A manifest with what is known before anything is dumped, marked not verified.
fn unverified_manifest(
    catalog: &Catalog,
    id: &str,
    url: &DbUrl,
    created_at: chrono::DateTime<Utc>,
    run_id: Option<&str>,
    label: Option<&str>,
) -> Manifest {
    Manifest {
        format_version: super::manifest::FORMAT_VERSION,
        id: id.to_string(),
        environment: catalog.env.clone(),
        engine: if url.is_sqlite() {
            "sqlite"
        } else {
            "postgresql"
        }
        .into(),
        database: url.database_name().unwrap_or_else(|| "database".into()),
        url: url.redacted(),
        created_at,
        clock: Some(HOST_CLOCK.into()),
        server_time: None,
        host: Some(super::catalog::host_name()),
        duration_ms: 0,
        format: Archive::Sqlite,
        dump: String::new(),
        size: 0,
        sha256: String::new(),
        files: Vec::new(),
        tool_version: None,
        server_version: None,
        locale: None,
        migration_head: None,
        run_id: run_id.map(str::to_string),
        label: label.map(str::to_string),
        tables: Vec::new(),
        row_counts: Default::default(),
        verification: Verification {
            state: VerifyState::Failed,
            checked_at: created_at,
            detail: "not verified yet".into(),
        },
        provider: None,
        pinned: None,
        encryption: None,
    }
}

/// `<YYYYMMDD_HHMMSS>[_label]`, with `-2`, `-3`, … when two backups share a second.
fn unique_id(catalog: &Catalog, at: chrono::DateTime<Utc>, label: Option<&str>) -> String {
    let base = match label {
        Some(l) => format!("{}_{l}", at.format("%Y%m%d_%H%M%S")),
        None => at.format("%Y%m%d_%H%M%S").to_string(),
    };
    let taken = |id: &str| {
        catalog.dir.join(id).exists()
            || catalog.scan().partial.iter().any(|p| {
                p.to_string_lossy()
                    .contains(&format!("{PARTIAL_PREFIX}{id}-"))
            })
    };
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken(id))
        .expect("some suffix is free")
}

fn db_error(url: &DbUrl, e: crate::db::DbError) -> Error {
    Error::failed(format!("reading {}: {e}", url.redacted()))
}

/// After pg_dump ended: when a signal stopped it, the backup ends here (the caller's
/// guard removes the partial folder).
fn stop_if_interrupted() -> Result<()> {
    match crate::interrupt::received() {
        Some(signal) => Err(Error::interrupted(
            signal,
            format!(
                "interrupted by {}: pg_dump was stopped and the unfinished backup removed; nothing was added to the catalog",
                crate::interrupt::name(signal)
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_wait_is_written_in_units_postgresql_reads() {
        assert_eq!(
            lock_wait_arg(Duration::from_secs(60)),
            "--lock-wait-timeout=60s"
        );
        assert_eq!(
            lock_wait_arg(Duration::from_millis(1500)),
            "--lock-wait-timeout=1500ms"
        );
    }
}
