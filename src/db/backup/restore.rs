//! Restoring a backup: into a new database by default (created with `createdb`, never
//! over an existing one), or in place (drop, recreate, restore) once the caller has
//! checked [`restore_in_place_allowed`] and had the word typed. The dump's sha256 is
//! checked again first: a changed dump is refused and marked failed.

use super::catalog::Entry;
use super::manifest::{Archive, Verification, VerifyState};
use super::{verify, Event};
use crate::config::{DbUrl, Protection, ResolvedEnv};
use crate::db::pgtools::{tool_failure, PgConn, PgTools};
use crate::db::Conn;
use crate::error::{Error, ExitCode, Result};
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// PostgreSQL truncates longer identifiers silently (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// Whether an environment's database may be replaced by a restore. Protected
/// environments never: restore next to them and switch the application instead.
/// (Kept small and separate so the guard module can take it over.)
pub fn restore_in_place_allowed(env: &ResolvedEnv) -> std::result::Result<(), String> {
    match env.protection {
        Protection::Protected => Err(format!(
            "environment `{}` is protected: restoring in place is refused; restore into a new database (the default) and point the application at it",
            env.name
        )),
        Protection::Shared | Protection::Sandbox => Ok(()),
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The database restored into (SQLite: the file's path).
    pub database: String,
    /// Its URL.
    pub url: DbUrl,
    /// How long the restore took (RTO).
    pub duration: Duration,
}

/// Provider snapshots live with the provider: dbflow cannot pg_restore them.
fn refuse_provider_snapshot(entry: &Entry) -> Result<()> {
    if let Some(p) = &entry.manifest.provider {
        return Err(Error::failed(format!(
            "backup `{}` is snapshot {} held by provider `{}`: restore it through the provider (a step `provider: {{ action: restore, id: {} }}`)",
            entry.id(),
            p.snapshot_id,
            p.name,
            p.snapshot_id
        )));
    }
    Ok(())
}

/// Refuses backups that failed verification, and dumps that changed since they were
/// taken (marking them failed).
pub fn check_restorable(entry: &Entry) -> Result<()> {
    refuse_provider_snapshot(entry)?;
    if !entry.verified() {
        let v = &entry.manifest.verification;
        return Err(Error::failed(format!(
            "backup `{}` failed verification ({}, {}); it is never restored",
            entry.id(),
            v.detail,
            v.checked_at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    if let Err(why) = verify::checksum_matches(&entry.dir, &entry.manifest) {
        let mut failed = entry.manifest.clone();
        failed.verification = Verification {
            state: VerifyState::Failed,
            checked_at: Utc::now(),
            detail: why.clone(),
        };
        let _ = failed.write(&entry.dir);
        return Err(Error::failed(format!(
            "backup `{}` changed since it was taken ({why}); refusing to restore it (now marked failed)",
            entry.id()
        )));
    }
    Ok(())
}

/// `<db>_<what>_<YYYYMMDD_HHMMSS>`, the database part shortened to fit PostgreSQL's
/// 63-byte identifiers.
pub fn default_name(source_db: &str, what: &str, at: chrono::DateTime<Utc>) -> String {
    let suffix = format!("_{what}_{}", at.format("%Y%m%d_%H%M%S"));
    let mut base = source_db.to_string();
    while base.len() + suffix.len() > MAX_IDENTIFIER {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// Where database `name` lives next to `source`: same server (PostgreSQL), or a file in
/// the same folder with the same extension (SQLite; a name with a `/` is a path).
pub fn target_url(source: &DbUrl, name: &str) -> DbUrl {
    if !source.is_sqlite() {
        return source.with_database(name);
    }
    if name.contains('/') {
        return source.with_database(name);
    }
    let path = super::sqlite_path(source);
    let file = match (Path::new(name).extension(), path.extension()) {
        (None, Some(ext)) => format!("{name}.{}", ext.to_string_lossy()),
        _ => name.to_string(),
    };
    let target = path.parent().map(|p| p.join(&file)).unwrap_or(file.into());
    source.with_database(&target.to_string_lossy())
}

/// Whether the database at `url` exists (PostgreSQL: connecting says "does not exist").
pub fn database_exists(url: &DbUrl, rt: &tokio::runtime::Runtime) -> Result<bool> {
    if url.is_sqlite() {
        return Ok(super::sqlite_path(url).exists());
    }
    rt.block_on(async {
        match Conn::connect(url).await {
            Ok(conn) => {
                conn.close().await;
                Ok(true)
            }
            Err(e) if e.code.as_deref() == Some("3D000") => Ok(false),
            Err(e) => Err(crate::db::target::connect_error(url, e)),
        }
    })
}

/// Restores `entry` into the new database `name` next to `source`.
pub fn restore_into_new(
    entry: &Entry,
    source: &DbUrl,
    name: &str,
    jobs: u32,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<RestoreReport> {
    check_engine(entry, source)?;
    let target = target_url(source, name);
    if display_name(&target) == display_name(source) {
        return Err(Error::Usage(format!(
            "`{name}` is the environment's own database: use --in-place to replace it"
        )));
    }
    if source.is_postgres() && (name.is_empty() || name.len() > MAX_IDENTIFIER) {
        return Err(Error::Usage(format!(
            "`{name}` cannot name a PostgreSQL database: use 1 to {MAX_IDENTIFIER} bytes"
        )));
    }
    if database_exists(&target, rt)? {
        return Err(Error::Failed {
            message: format!(
                "database `{name}` already exists: a restore never overwrites one; choose another name (--into) or drop it first"
            ),
            code: ExitCode::Failed,
        });
    }
    check_restorable(entry)?;
    let started = Instant::now();
    // SIGINT/SIGTERM stop pg_restore; the half-restored database is dropped below.
    let _scope = crate::interrupt::scope();
    if entry.is_postgres() {
        let tools = PgTools::locate(verify::archive_major(&entry.manifest))?;
        on_event(Event::Note(format!("using {}", tools.describe())));
        let server = PgConn::from_url(source)?;
        on_event(Event::Phase(format!("createdb {name}")));
        tools.createdb(&server, name, entry.manifest.locale.as_ref())?;
        let into = server.with_database(name);
        if let Err(e) = pg_restore(&tools, &into, entry, jobs, on_event) {
            // The half-restored database is ours: leaving it would only mislead.
            let dropped = tools.dropdb(&server, name);
            return Err(Error::Failed {
                message: format!(
                    "{e}\n{}",
                    match dropped {
                        Ok(()) => format!("the new database `{name}` was dropped again"),
                        Err(d) =>
                            format!("the half-restored database `{name}` could not be dropped: {d}"),
                    }
                ),
                code: e.exit_code(),
            });
        }
    } else {
        copy_sqlite(entry, &super::sqlite_path(&target), on_event)?;
    }
    Ok(RestoreReport {
        database: display_name(&target),
        url: target,
        duration: started.elapsed(),
    })
}

/// Replaces the database at `url` with `entry`: drop (other sessions terminated),
/// recreate, restore. The caller has checked permission and confirmation.
pub fn restore_in_place(
    entry: &Entry,
    url: &DbUrl,
    jobs: u32,
    on_event: &mut dyn FnMut(Event),
) -> Result<RestoreReport> {
    check_engine(entry, url)?;
    check_restorable(entry)?;
    let started = Instant::now();
    let _scope = crate::interrupt::scope();
    if entry.is_postgres() {
        let tools = PgTools::locate(verify::archive_major(&entry.manifest))?;
        on_event(Event::Note(format!("using {}", tools.describe())));
        let conn = PgConn::from_url(url)?;
        let name = conn.database();
        on_event(Event::Phase(format!(
            "dropdb --force {name} (terminates its sessions)"
        )));
        tools.dropdb(&conn, &name)?;
        on_event(Event::Phase(format!("createdb {name}")));
        tools.createdb(&conn, &name, entry.manifest.locale.as_ref())?;
        pg_restore(&tools, &conn, entry, jobs, on_event).map_err(|e| Error::Failed {
            message: format!(
                "{e}\n`{name}` is now only partly restored: fix the cause and restore again"
            ),
            code: e.exit_code(),
        })?;
    } else {
        copy_sqlite(entry, &super::sqlite_path(url), on_event)?;
    }
    Ok(RestoreReport {
        database: display_name(url),
        url: url.clone(),
        duration: started.elapsed(),
    })
}

/// Drops a database this module restored (drills clean up after themselves).
pub fn drop_database(url: &DbUrl) -> Result<()> {
    if url.is_sqlite() {
        let path = super::sqlite_path(url);
        for extra in ["-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(sibling(&path, extra));
        }
        return std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("removing {}", path.display()), e));
    }
    let tools = PgTools::locate(None)?;
    let conn = PgConn::from_url(url)?;
    tools.dropdb(&conn, &conn.database())
}

/// The name people know a database by: PostgreSQL's name, SQLite's path.
pub fn display_name(url: &DbUrl) -> String {
    if url.is_sqlite() {
        super::sqlite_path(url).display().to_string()
    } else {
        url.database_name().unwrap_or_default()
    }
}

fn check_engine(entry: &Entry, url: &DbUrl) -> Result<()> {
    refuse_provider_snapshot(entry)?;
    if entry.is_postgres() != url.is_postgres() {
        return Err(Error::Usage(format!(
            "backup `{}` is a {} backup and cannot be restored into {}",
            entry.id(),
            entry.manifest.engine,
            url.redacted()
        )));
    }
    Ok(())
}

/// `pg_restore --no-owner --exit-on-error`: a custom archive is fed through stdin (so
/// the progress bar knows how far it got), a directory one read with `--jobs`.
fn pg_restore(
    tools: &PgTools,
    into: &PgConn,
    entry: &Entry,
    jobs: u32,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let dump = entry.dump_path();
    let mut args = vec![
        "--no-owner".to_string(),
        "--exit-on-error".to_string(),
        format!("--dbname={}", into.uri()),
    ];
    let output = match entry.manifest.format {
        Archive::Directory => {
            args.push(format!("--jobs={jobs}"));
            args.push(dump.to_string_lossy().to_string());
            on_event(Event::Phase(format!(
                "pg_restore --jobs={jobs} {}",
                entry.manifest.dump
            )));
            let handle = tools
                .command("pg_restore", Some(into), &args)
                .stdin_null()
                .stdout_null()
                .start()
                .map_err(|e| Error::failed(format!("cannot run pg_restore: {e}")))?;
            let _children = crate::interrupt::children_of(handle.pids());
            handle
                .wait()
                .map_err(|e| Error::failed(format!("waiting for pg_restore: {e}")))?
                .clone()
        }
        _ => {
            on_event(Event::Phase(format!(
                "pg_restore --no-owner {}",
                entry.manifest.dump
            )));
            on_event(Event::Total(entry.manifest.size));
            let (read_end, mut write_end) =
                std::io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
            let expression = tools
                .command("pg_restore", Some(into), &args)
                .stdin_file(read_end)
                .stdout_null();
            let handle = expression
                .start()
                .map_err(|e| Error::failed(format!("cannot start pg_restore: {e}")))?;
            let _children = crate::interrupt::children_of(handle.pids());
            // Our copy of the read end must go, or a pg_restore that stops early
            // would leave the copy below writing into a pipe nobody reads.
            drop(expression);
            let file = std::fs::File::open(&dump)
                .map_err(|e| Error::io(format!("reading {}", dump.display()), e))?;
            let copied = super::create::copy_hashing(file, &mut write_end, &mut |n| {
                on_event(Event::Bytes(n))
            });
            drop(write_end);
            let output = handle
                .wait()
                .map_err(|e| Error::failed(format!("waiting for pg_restore: {e}")))?
                .clone();
            if output.status.success() {
                if let Err(e) = copied {
                    return Err(Error::io(
                        format!("feeding {} to pg_restore", dump.display()),
                        e,
                    ));
                }
            }
            output
        }
    };
    if let Some(signal) = crate::interrupt::received() {
        return Err(Error::interrupted(
            signal,
            format!(
                "interrupted by {}: pg_restore was stopped",
                crate::interrupt::name(signal)
            ),
        ));
    }
    if !output.status.success() {
        return Err(Error::failed(tool_failure(
            "pg_restore",
            &output.status,
            &output.stderr,
        )));
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Copies the SQLite backup to `target` through a temporary sibling renamed into place
/// (stale `-wal`/`-shm` files of a replaced database would corrupt the new one).
fn copy_sqlite(entry: &Entry, target: &Path, on_event: &mut dyn FnMut(Event)) -> Result<()> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    on_event(Event::Phase(format!("copying to {}", target.display())));
    on_event(Event::Total(entry.manifest.size));
    let tmp = sibling(target, ".dbflow-restore");
    let copied = (|| {
        let from = std::fs::File::open(entry.dump_path())?;
        let mut to = std::fs::File::create(&tmp)?;
        let (_, sha256) =
            super::create::copy_hashing(from, &mut to, &mut |n| on_event(Event::Bytes(n)))?;
        to.sync_all()?;
        Ok::<_, std::io::Error>(sha256)
    })();
    let sha256 = match copied {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(format!("writing {}", tmp.display()), e));
        }
    };
    if sha256 != entry.manifest.sha256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::failed(format!(
            "backup `{}` changed while it was being copied; nothing was replaced",
            entry.id()
        )));
    }
    for extra in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(target, extra));
    }
    std::fs::rename(&tmp, target).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), target.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_names_fit_postgres_identifiers() {
        let at = Utc.with_ymd_and_hms(2024, 7, 4, 2, 0, 0).unwrap();
        assert_eq!(
            default_name("shop", "restore", at),
            "shop_restore_20240704_020000"
        );
        let long = "x".repeat(60);
        let name = default_name(&long, "restore_drill", at);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_restore_drill_20240704_020000"));
    }

    #[test]
    fn sqlite_targets_sit_beside_the_source() {
        let source = DbUrl::new("sqlite:data/app.db");
        assert_eq!(
            target_url(&source, "app_restore_1").expose(),
            "sqlite:data/app_restore_1.db"
        );
        assert_eq!(
            target_url(&source, "copies/x.sqlite").expose(),
            "sqlite:copies/x.sqlite"
        );
        let pg = DbUrl::new("postgres://u:pw@h/shop?sslmode=disable");
        assert_eq!(
            target_url(&pg, "shop_restore_1").expose(),
            "postgres://u:pw@h/shop_restore_1?sslmode=disable"
        );
    }
}
