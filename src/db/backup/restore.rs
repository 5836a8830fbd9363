//! Restoring a backup: always into a new database (created with `createdb`, never over an
//! existing one). "In place" is that, then [`swap_into_place`]: under the deployers'
//! lock, the live database is renamed aside and the restored copy renamed into its
//! place in one transaction, so there is never an empty database under the live name.
//! The dump's sha256 is checked again first: a changed dump is refused and marked failed.

use super::catalog::Entry;
use super::manifest::{Archive, Verification, VerifyState};
use super::{verify, Event};
use crate::config::DbUrl;
use crate::db::pgtools::{tool_failure, PgConn, PgTools};
use crate::db::Conn;
use crate::error::{Error, ExitCode, Result};
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::db::pgtools::{check_database_name, MAX_IDENTIFIER};
use crate::guard::Permit;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The database restored into (SQLite: the file's path).
    pub database: String,
    /// Its URL.
    pub url: DbUrl,
    /// How long the restore took (RTO).
    pub duration: Duration,
    /// In place: the name the replaced database was kept under.
    pub kept_aside: Option<String>,
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

/// [`default_name`] for a database that does not exist yet beside `source`. Names are to
/// the second, so when one made this second exists (a restore right after another), it
/// waits for the next second rather than collide or leave the name's shape.
pub fn unused_default_name(
    source: &DbUrl,
    source_db: &str,
    what: &str,
    rt: &tokio::runtime::Runtime,
) -> Result<String> {
    for _ in 0..3 {
        let now = Utc::now();
        let name = default_name(source_db, what, now);
        if !database_exists(&target_url(source, &name), rt)? {
            return Ok(name);
        }
        let rest = 1000 - u64::from(now.timestamp_subsec_millis()).min(999);
        std::thread::sleep(Duration::from_millis(rest + 10));
    }
    Err(Error::failed(format!(
        "databases named like {} already exist for three seconds in a row; choose a name with --into",
        default_name(source_db, what, Utc::now())
    )))
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
            Err(e) => Err(crate::db::target::connect_error(url, e).into()),
        }
    })
}

/// The URL of the new database `name` beside `source`, once it is known to be a name a
/// restore may create: not the environment's own database, a valid name, and not an
/// existing database (a restore never overwrites one).
pub fn new_target(source: &DbUrl, name: &str, rt: &tokio::runtime::Runtime) -> Result<DbUrl> {
    let target = target_url(source, name);
    if display_name(&target) == display_name(source) {
        return Err(Error::Usage(format!(
            "`{name}` is the environment's own database: use --in-place to replace it"
        )));
    }
    if source.is_postgres() {
        check_database_name(name)?;
    } else if name.starts_with('-') {
        return Err(Error::Usage(format!(
            "`{}` cannot name a database file: it starts with `-`",
            name.escape_debug()
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
    Ok(target)
}

/// Creates the PostgreSQL database `name` on `server` (with the backup's locale) and
/// has `fill` restore into it; when `fill` fails the half-restored database, which is
/// ours, is dropped again: leaving it would only mislead.
pub fn into_new_database(
    tools: &PgTools,
    server: &PgConn,
    name: &str,
    entry: &Entry,
    on_event: &mut dyn FnMut(Event),
    fill: impl FnOnce(&PgConn, &mut dyn FnMut(Event)) -> Result<()>,
) -> Result<()> {
    on_event(Event::Phase(format!("createdb {name}")));
    tools.createdb(server, name, entry.manifest.locale.as_ref())?;
    let into = server.with_database(name);
    let Err(e) = fill(&into, on_event) else {
        return Ok(());
    };
    let dropped = crate::guard::permit::half_restored(name)
        .and_then(|permit| Ok(tools.dropdb(server, name, &permit)?));
    Err(Error::Failed {
        message: format!(
            "{e}\n{}",
            match dropped {
                Ok(()) => format!("the new database `{name}` was dropped again"),
                Err(d) => format!("the half-restored database `{name}` could not be dropped: {d}"),
            }
        ),
        code: e.exit_code(),
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
    let target = new_target(source, name, rt)?;
    check_restorable(entry)?;
    let started = Instant::now();
    // SIGINT/SIGTERM stop pg_restore; the half-restored database is dropped below.
    let _scope = crate::interrupt::scope();
    if entry.is_postgres() {
        let tools = PgTools::locate(verify::archive_major(&entry.manifest))?;
        on_event(Event::Note(format!("using {}", tools.describe())));
        let server = PgConn::from_url(source)?;
        into_new_database(&tools, &server, name, entry, on_event, |into, on_event| {
            pg_restore(&tools, into, entry, jobs, on_event)
        })?;
    } else {
        copy_sqlite(entry, &super::sqlite_path(&target), on_event)?;
    }
    Ok(RestoreReport {
        database: display_name(&target),
        url: target,
        duration: started.elapsed(),
        kept_aside: None,
    })
}

/// Puts the restored copy `copy` in the place of the live database at `live`, keeping
/// the live one aside as `<db>_pre_restore_<ts>` (returned). PostgreSQL: holding the
/// deployers' advisory lock (refused, naming the holder, while a deploy runs), new
/// connections to the live database are refused and its sessions ended, then both
/// renames commit in one transaction. SQLite: the live file is hard-linked aside and the
/// copy renamed over it (one atomic rename).
pub fn swap_into_place(
    live: &DbUrl,
    copy: &DbUrl,
    permit: &Permit,
    lock_wait: Duration,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<String> {
    if live.is_sqlite() {
        permit
            .covers(&live.database_name().unwrap_or_default())
            .map_err(Error::blocked)?;
        return swap_sqlite(
            &super::sqlite_path(live),
            &super::sqlite_path(copy),
            on_event,
        );
    }
    let live_name = display_name(live);
    permit.covers(&live_name).map_err(Error::blocked)?;
    let copy_name = display_name(copy);
    check_database_name(&copy_name)?;
    let aside = default_name(&live_name, "pre_restore", Utc::now());
    on_event(Event::Phase(format!(
        "swapping: `{live_name}` → `{aside}`, `{copy_name}` → `{live_name}`"
    )));
    rt.block_on(swap_postgres(
        live, &live_name, &copy_name, &aside, lock_wait, on_event,
    ))?;
    Ok(aside)
}

async fn swap_postgres(
    live: &DbUrl,
    live_name: &str,
    copy: &str,
    aside: &str,
    lock_wait: Duration,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    use crate::db::conn::{quote_ident, quote_literal};
    // A first Ctrl-C waits for the swap: stopping between refusing connections and the
    // renames would leave the live database closed.
    let _scope = crate::interrupt::scope();
    let db_error = |what: &str, e: crate::db::DbError| Error::failed(format!("{what}: {e}"));
    // The deployers' lock is taken in the live database: while we hold it no deploy runs.
    let mut locker = Conn::connect(live)
        .await
        .map_err(|e| crate::db::target::connect_error(live, e))?;
    // A deploy holding it is waited for as long as deployers wait for each other.
    let started = Instant::now();
    let mut announced = false;
    let mut locked = false;
    loop {
        if crate::db::migrate::try_lock_once(&mut locker)
            .await
            .map_err(|e| db_error("taking the migration lock", e))?
        {
            locked = true;
            break;
        }
        if started.elapsed() >= lock_wait {
            break;
        }
        if !announced {
            on_event(Event::Note(
                "waiting for the deploy holding the migration lock…".into(),
            ));
            announced = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !locked {
        let holder = crate::db::migrate::lock_holder(&mut locker)
            .await
            .unwrap_or_else(|e| format!("(could not read pg_stat_activity: {e})"));
        locker.close().await;
        return Err(Error::blocked(format!(
            "a deploy holds the migration lock on `{live_name}` (waited {}); nothing was swapped\n  holder: {holder}\n  run the restore again once it has finished",
            humantime::format_duration(Duration::from_secs(lock_wait.as_secs()))
        )));
    }
    let locker_pid = locker
        .string("SELECT pg_backend_pid()::text")
        .await
        .map_err(|e| db_error("reading the session pid", e))?
        .unwrap_or_default();
    let maintenance = live.with_database("postgres");
    let mut admin = Conn::connect(&maintenance)
        .await
        .map_err(|e| crate::db::target::connect_error(&maintenance, e))?;
    let (live_q, copy_q, aside_q) = (
        quote_ident(live_name),
        quote_ident(copy),
        quote_ident(aside),
    );
    admin
        .batch(&format!(
            "ALTER DATABASE {live_q} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .map_err(|e| db_error(&format!("refusing new connections to `{live_name}`"), e))?;
    let swapped = async {
        let others = format!(
            "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity WHERE datname = {} AND pid <> {}",
            quote_literal(live_name),
            locker_pid.parse::<i64>().unwrap_or(0)
        );
        admin.string(&others).await?;
        // Nobody can connect now, so the lock can go with its session.
        locker.close().await;
        let remaining = format!(
            "SELECT count(*)::text FROM pg_stat_activity WHERE datname IN ({}, {})",
            quote_literal(live_name),
            quote_literal(copy)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = admin.string(&remaining).await?.unwrap_or_default();
            if left == "0" || Instant::now() >= deadline {
                break;
            }
            admin.string(&others).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin
            .batch(&format!(
                "BEGIN; ALTER DATABASE {live_q} RENAME TO {aside_q}; ALTER DATABASE {copy_q} RENAME TO {live_q}; COMMIT"
            ))
            .await
    }
    .await;
    let reopen = match &swapped {
        Ok(()) => &aside_q,
        Err(_) => &live_q,
    };
    let reopened = admin
        .batch(&format!(
            "ALTER DATABASE {reopen} WITH ALLOW_CONNECTIONS true"
        ))
        .await;
    admin.close().await;
    swapped.map_err(|e| {
        Error::failed(format!(
            "swapping `{copy}` into the place of `{live_name}` failed: {e}; `{live_name}` is unchanged{}",
            match &reopened {
                Ok(()) => " and accepts connections again".to_string(),
                Err(r) => format!(
                    ", but connections to it are still refused ({r}): ALTER DATABASE {live_q} WITH ALLOW_CONNECTIONS true"
                ),
            }
        ))
    })?;
    if let Err(e) = reopened {
        return Err(Error::failed(format!(
            "`{copy}` is now `{live_name}`, but the old database kept as `{aside}` still refuses connections: {e}"
        )));
    }
    Ok(())
}

fn swap_sqlite(live: &Path, copy: &Path, on_event: &mut dyn FnMut(Event)) -> Result<String> {
    let stem = live
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut aside_name = default_name(&stem, "pre_restore", Utc::now());
    if let Some(ext) = live.extension() {
        aside_name = format!("{aside_name}.{}", ext.to_string_lossy());
    }
    let aside = live.with_file_name(&aside_name);
    on_event(Event::Phase(format!(
        "swapping: {} kept as {}",
        live.display(),
        aside.display()
    )));
    if live.exists() {
        std::fs::hard_link(live, &aside)
            .or_else(|_| std::fs::copy(live, &aside).map(|_| ()))
            .map_err(|e| Error::io(format!("keeping {} aside", live.display()), e))?;
    }
    for extra in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(live, extra));
    }
    std::fs::rename(copy, live).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", copy.display(), live.display()),
            e,
        )
    })?;
    Ok(aside.display().to_string())
}

/// Drops a database the guard's permit covers (a drill or rehearsal copy, a sandbox
/// being reset, a restored copy named by `dbflow restore drop`).
pub fn drop_database(url: &DbUrl, permit: &Permit) -> Result<()> {
    if url.is_sqlite() {
        let path = super::sqlite_path(url);
        permit
            .covers(&url.database_name().unwrap_or_default())
            .map_err(Error::blocked)?;
        for extra in ["-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(sibling(&path, extra));
        }
        return std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("removing {}", path.display()), e));
    }
    let tools = PgTools::locate(None)?;
    let conn = PgConn::from_url(url)?;
    Ok(tools.dropdb(&conn, &conn.database(), permit)?)
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
    let args = vec![
        "--no-owner".to_string(),
        "--exit-on-error".to_string(),
        format!("--dbname={}", into.uri()),
    ];
    let output = match entry.manifest.format {
        Archive::Directory => {
            return pg_restore_folder(tools, into, &dump, &entry.manifest.dump, jobs, on_event)
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
            let copied = super::hashing::copy_hashing(file, &mut write_end, &mut |n| {
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

/// `pg_restore --no-owner --exit-on-error --jobs=N` of the directory-format dump in
/// `dump` (shown as `shown`) into `into`: a folder repository's dump, or the files a
/// bucket's backup was downloaded (and checked) into.
pub fn pg_restore_folder(
    tools: &PgTools,
    into: &PgConn,
    dump: &Path,
    shown: &str,
    jobs: u32,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let args = vec![
        "--no-owner".to_string(),
        "--exit-on-error".to_string(),
        format!("--dbname={}", into.uri()),
        format!("--jobs={}", jobs.max(1)),
        dump.to_string_lossy().to_string(),
    ];
    on_event(Event::Phase(format!("pg_restore --jobs={jobs} {shown}")));
    let handle = tools
        .command("pg_restore", Some(into), &args)
        .stdin_null()
        .stdout_null()
        .start()
        .map_err(|e| Error::failed(format!("cannot run pg_restore: {e}")))?;
    let _children = crate::interrupt::children_of(handle.pids());
    let output = handle
        .wait()
        .map_err(|e| Error::failed(format!("waiting for pg_restore: {e}")))?
        .clone();
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
            super::hashing::copy_hashing(from, &mut to, &mut |n| on_event(Event::Bytes(n)))?;
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
