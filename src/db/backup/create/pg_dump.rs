//! PostgreSQL: reading the source (one snapshot for the manifest and pg_dump), and the
//! custom and directory dump formats.

use super::*;

pub(super) fn dump_postgres(
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
                crate::db::backup::human_age(by)
            )));
        }
    }
    let mut progress = crate::db::backup::copy_progress::CopyProgress::open(&mut conn, rt);
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

pub(super) fn record_source(manifest: &mut Manifest, info: &SourceInfo) {
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
    progress: &mut crate::db::backup::copy_progress::CopyProgress<'_>,
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
    progress: &mut crate::db::backup::copy_progress::CopyProgress<'_>,
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
