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

/// `<YYYYMMDD_HHMMSS>[_label]`, with `-2`, `-3`, … when two backups share a second.
/// Catalogs a snapshot a Lua provider took (and its `wait` confirmed): a folder with only
/// the manifest, written under a temporary name and renamed like any backup.
#[allow(clippy::too_many_arguments)]
pub fn record_provider_snapshot(
    catalog: &Catalog,
    url: &DbUrl,
    provider: &str,
    snapshot_id: &str,
    label: Option<&str>,
    run_id: Option<&str>,
    migration_head: Option<String>,
    started: chrono::DateTime<Utc>,
) -> Result<Entry> {
    if let Some(label) = label {
        check_label(label)?;
    }
    create_private_dir_all(&catalog.dir)
        .map_err(|e| Error::io(format!("creating {}", catalog.dir.display()), e))?;
    let id = unique_id(catalog, started, label);
    let now = Utc::now();
    let mut manifest = unverified_manifest(catalog, &id, url, started, run_id, label);
    manifest.duration_ms = (now - started).num_milliseconds().max(0) as u64;
    manifest.format = Archive::Provider;
    manifest.migration_head = migration_head;
    manifest.verification = Verification {
        state: VerifyState::Verified,
        checked_at: now,
        detail: format!("provider `{provider}` reported snapshot {snapshot_id} available"),
    };
    manifest.provider = Some(super::manifest::ProviderSnapshot {
        name: provider.to_string(),
        snapshot_id: snapshot_id.to_string(),
    });
    let partial = catalog
        .dir
        .join(format!("{PARTIAL_PREFIX}{id}-{}", std::process::id()));
    create_private_dir(&partial)
        .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
    manifest.write(&partial)?;
    let dir = catalog.dir.join(&id);
    std::fs::rename(&partial, &dir).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", partial.display(), dir.display()),
            e,
        )
    })?;
    Ok(Entry { dir, manifest })
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

fn dump_postgres(
    partial: &Path,
    options: &CreateOptions<'_>,
    manifest: &mut Manifest,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
    session: Option<&mut Conn>,
) -> Result<PgTools> {
    let url = options.url;
    let timeout = options.lock_wait_timeout;
    let (mut conn, info) = rt.block_on(async {
        let mut conn = match session {
            Some(conn) => SourceConn::Shared(conn),
            None => SourceConn::Own(
                Conn::connect(url)
                    .await
                    .map_err(|e| crate::db::target::connect_error(url, e))?,
            ),
        };
        let read = source::read_postgres(
            &mut conn,
            options.key_tables,
            options.history_table,
            timeout,
        )
        .await;
        match read {
            Ok(info) => Ok::<_, Error>((conn, info)),
            Err(e) if blockers::is_lock_timeout(&e.to_string()) => {
                let _ = conn.batch("ROLLBACK").await;
                let found = blockers::find(&mut conn).await.unwrap_or_default();
                conn.finish().await;
                Err(Error::failed(blockers::message(
                    "counting the key tables' rows",
                    timeout,
                    &found,
                )))
            }
            Err(e) => {
                let _ = conn.batch("ROLLBACK").await;
                conn.finish().await;
                Err(db_error(url, e))
            }
        }
    })?;
    if let Some(clock) = info.clock {
        let ahead = clock.server_ahead_by();
        if ahead.abs() > FUTURE_TOLERANCE {
            let (who, by) = if ahead > chrono::Duration::zero() {
                ("behind", ahead)
            } else {
                ("ahead of", -ahead)
            };
            on_event(Event::Note(format!(
                "this machine's clock is {} {who} the database server's: backup ids and ages use this machine's clock (UTC); fix its time (NTP)",
                super::human_age(by)
            )));
        }
    }
    let mut progress = super::copy_progress::CopyProgress::open(&mut conn, rt);
    let result = (|| -> Result<PgTools> {
        let tools = PgTools::locate(info.server_major)?;
        on_event(Event::Note(format!("using {}", tools.describe())));
        let pg = PgConn::from_url(url)?;
        if !pg.dropped.is_empty() {
            on_event(Event::Note(format!(
                "not passed to pg_dump (libpq does not know them): {}",
                pg.dropped.join(", ")
            )));
        }
        record_source(manifest, &info);
        manifest.tool_version = Some(tools.version.text.clone());
        match options.format {
            DumpFormat::Custom => dump_custom(
                &tools,
                &pg,
                dump_args(&pg, &info, timeout),
                info.size_estimate,
                &mut progress,
                partial,
                manifest,
                on_event,
            )?,
            DumpFormat::Directory => dump_directory(
                &tools,
                &pg,
                dump_args(&pg, &info, timeout),
                info.size_estimate,
                &mut progress,
                options.jobs,
                partial,
                manifest,
                on_event,
            )?,
        }
        Ok(tools)
    })();
    progress.close();
    let result = rt.block_on(async {
        source::end_snapshot(&mut conn).await;
        let result = match result {
            Err(e) if blockers::is_lock_timeout(&e.to_string()) => {
                let found = blockers::find(&mut conn).await.unwrap_or_default();
                Err(Error::failed(format!(
                    "{}\n{e}",
                    blockers::message("pg_dump", timeout, &found)
                )))
            }
            other => other,
        };
        conn.finish().await;
        result
    });
    result
}

/// The connection a backup reads its source over: its own (closed afterwards) or a
/// run's session (left open, with the settings the read changed put back).
enum SourceConn<'a> {
    Own(Conn),
    Shared(&'a mut Conn),
}

impl std::ops::Deref for SourceConn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match self {
            SourceConn::Own(c) => c,
            SourceConn::Shared(c) => c,
        }
    }
}

impl std::ops::DerefMut for SourceConn<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        match self {
            SourceConn::Own(c) => c,
            SourceConn::Shared(c) => c,
        }
    }
}

impl SourceConn<'_> {
    async fn finish(self) {
        match self {
            SourceConn::Own(c) => c.close().await,
            SourceConn::Shared(c) => {
                let _ = c.batch("RESET lock_timeout").await;
            }
        }
    }
}

fn record_source(manifest: &mut Manifest, info: &SourceInfo) {
    manifest.server_version = info.server_version.clone();
    manifest.server_time = info.clock.map(|c| c.server);
    manifest.locale = info.locale.clone();
    manifest.migration_head = info.migration_head.clone();
    manifest.tables = info.tables.clone();
    manifest.row_counts = info.row_counts.clone();
}

/// `--lock-wait-timeout=60s` (or `=1500ms`): the value goes to PostgreSQL as a
/// `statement_timeout`, which reads these units.
pub fn lock_wait_arg(wait: Duration) -> String {
    let ms = wait.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("--lock-wait-timeout={}s", ms / 1000)
    } else {
        format!("--lock-wait-timeout={ms}ms")
    }
}

fn dump_args(pg: &PgConn, info: &SourceInfo, lock_wait: Duration) -> Vec<String> {
    // Without it pg_dump waits forever behind a session holding ACCESS EXCLUSIVE.
    let mut args = vec![lock_wait_arg(lock_wait), format!("--dbname={}", pg.uri())];
    if let Some(snapshot) = &info.snapshot {
        args.push(format!("--snapshot={snapshot}"));
    }
    args
}

/// `pg_dump --format=custom` to stdout, copied to `dump.pgdump` while hashing.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn dump_custom(
    tools: &PgTools,
    pg: &PgConn,
    source_args: Vec<String>,
    estimate: Option<u64>,
    progress: &mut super::copy_progress::CopyProgress<'_>,
    partial: &Path,
    manifest: &mut Manifest,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let path = partial.join("dump.pgdump");
    let mut args = vec!["--format=custom".to_string()];
    args.extend(source_args);
    on_event(Event::Phase(format!(
        "pg_dump --format=custom {}",
        pg.uri()
    )));
    if let Some(estimate) = estimate {
        on_event(Event::Total(estimate));
    }
    let reader = tools
        .command("pg_dump", Some(pg), &args)
        .stdin_null()
        .reader()
        .map_err(|e| Error::failed(format!("cannot start pg_dump: {e}")))?;
    let _children = crate::interrupt::children_of(reader.pids());
    let file =
        private_file(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let copied = copy_hashing(&reader, &mut out, &mut |n| {
        on_event(Event::Bytes(n));
        if let Some(read) = progress.poll() {
            on_event(Event::Read(read));
        }
    });
    let (size, sha256) = match copied {
        Ok(done) => done,
        Err(e) => {
            let _ = reader.kill();
            return Err(Error::io(format!("writing {}", path.display()), e));
        }
    };
    let output = reader
        .try_wait()
        .map_err(|e| Error::failed(format!("waiting for pg_dump: {e}")))?
        .cloned()
        .ok_or_else(|| Error::failed("pg_dump did not finish"))?;
    stop_if_interrupted()?;
    if !output.status.success() {
        return Err(Error::failed(tool_failure(
            "pg_dump",
            &output.status,
            &output.stderr,
        )));
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io(format!("writing {}", path.display()), e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    manifest.format = Archive::Custom;
    manifest.dump = "dump.pgdump".into();
    manifest.size = size;
    manifest.sha256 = sha256;
    Ok(())
}

/// `pg_dump --format=directory --jobs=N`, then every file hashed.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn dump_directory(
    tools: &PgTools,
    pg: &PgConn,
    source_args: Vec<String>,
    estimate: Option<u64>,
    progress: &mut super::copy_progress::CopyProgress<'_>,
    jobs: u32,
    partial: &Path,
    manifest: &mut Manifest,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let dir = partial.join("dump");
    let mut args = vec![
        "--format=directory".to_string(),
        format!("--jobs={jobs}"),
        format!("--file={}", dir.display()),
    ];
    args.extend(source_args);
    on_event(Event::Phase(format!(
        "pg_dump --format=directory --jobs={jobs} {}",
        pg.uri()
    )));
    if let Some(estimate) = estimate {
        on_event(Event::Total(estimate));
    }
    let handle = tools
        .command("pg_dump", Some(pg), &args)
        .stdin_null()
        .stdout_null()
        .start()
        .map_err(|e| Error::failed(format!("cannot start pg_dump: {e}")))?;
    let _children = crate::interrupt::children_of(handle.pids());
    let output = loop {
        match handle.wait_timeout(Duration::from_millis(250)) {
            Ok(Some(output)) => break output.clone(),
            Ok(None) => {
                on_event(Event::Bytes(folder_size(&dir)));
                if let Some(read) = progress.poll() {
                    on_event(Event::Read(read));
                }
            }
            Err(e) => return Err(Error::failed(format!("waiting for pg_dump: {e}"))),
        }
    };
    stop_if_interrupted()?;
    if !output.status.success() {
        return Err(Error::failed(tool_failure(
            "pg_dump",
            &output.status,
            &output.stderr,
        )));
    }
    let files = hash_folder(&dir)?;
    manifest.format = Archive::Directory;
    manifest.dump = "dump".into();
    manifest.size = files.iter().map(|f| f.size).sum();
    manifest.sha256 = listing_sha256(&files);
    manifest.files = files;
    Ok(())
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

/// SQLite: `VACUUM INTO` a consistent copy (readers and writers go on meanwhile).
fn dump_sqlite(
    partial: &Path,
    options: &CreateOptions<'_>,
    manifest: &mut Manifest,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let url = options.url;
    let source = super::sqlite_path(url);
    if !source.is_file() {
        return Err(Error::failed(format!(
            "cannot back up {}: {} does not exist",
            url.redacted(),
            source.display()
        )));
    }
    let copy = partial.join("database.sqlite");
    on_event(Event::Phase(format!("VACUUM INTO {}", copy.display())));
    let info = rt.block_on(async {
        let mut conn = Conn::connect(url)
            .await
            .map_err(|e| crate::db::target::connect_error(url, e))?;
        let result = async {
            let version = conn.string("SELECT sqlite_version()").await?;
            let head = source::migration_head(&mut conn, options.history_table).await?;
            conn.batch(&format!(
                "VACUUM INTO {}",
                crate::db::conn::quote_literal(&copy.to_string_lossy())
            ))
            .await?;
            Ok::<_, crate::db::DbError>((version, head))
        }
        .await;
        conn.close().await;
        let (version, head) = result.map_err(|e| db_error(url, e))?;
        // Tables and counts come from the copy: exactly what the backup holds.
        let mut copy_conn = super::open_sqlite_readonly(&copy)
            .await
            .map_err(|e| db_error(url, e))?;
        let tables = source::tables(&mut copy_conn).await;
        let counts = source::row_counts(&mut copy_conn, options.key_tables).await;
        copy_conn.close().await;
        Ok::<_, Error>(SourceInfo {
            server_version: version,
            migration_head: head,
            tables: tables.map_err(|e| db_error(url, e))?,
            row_counts: counts.map_err(|e| db_error(url, e))?,
            ..SourceInfo::default()
        })
    })?;
    record_source(manifest, &info);
    manifest.tool_version = info.server_version.clone().map(|v| format!("SQLite {v}"));
    let (size, sha256) = hash_file(&copy)?;
    on_event(Event::Bytes(size));
    manifest.format = Archive::Sqlite;
    manifest.dump = "database.sqlite".into();
    manifest.size = size;
    manifest.sha256 = sha256;
    Ok(())
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
