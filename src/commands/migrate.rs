//! `dbflow migrate status|deploy|resolve|down`, and the status rendering and progress
//! printing the `status` and `deploy` steps share.

use crate::app::App;
use crate::cli::MigrateAction;
use crate::config::ResolvedEnv;
use crate::db::migrate::{self, DeployOptions, Event, State, Status};
use crate::db::store::Store;
use crate::db::target::{pooler_warning, Target};
use crate::error::{Error, ExitCode, Result};
use crate::guard::{self, GuardTarget, Operation};
use crate::ui::Ui;
use serde_json::json;

pub fn run(app: &App, env_flag: Option<&str>, action: MigrateAction) -> Result<ExitCode> {
    if let MigrateAction::New { name, down } = &action {
        return new_migration(app, name, *down);
    }
    let env = app.env(env_flag)?;
    let target = Target::for_env(&app.project, &env);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    if let MigrateAction::Status { shadow } = action {
        return status(app, &env, &target, &runtime, shadow);
    }
    // Reading and hashing the migrations overlaps the connection's startup (hundreds of
    // files, and a fresh backend to wait for).
    let (store, conn) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| target.store());
        let conn = runtime.block_on(target.connect());
        (join(reading), conn)
    });
    let store = store?;
    warn_ignored(app, &target, &store);
    let command = match &action {
        MigrateAction::Status { .. } => "migrate status",
        MigrateAction::Deploy { .. } => "migrate deploy",
        MigrateAction::Resolve { .. } => "migrate resolve",
        MigrateAction::Down { .. } => "migrate down",
        MigrateAction::New { .. } => "migrate new",
    };
    let mut events: Vec<(&'static str, serde_json::Value)> = Vec::new();
    let result = runtime.block_on(async {
        let mut conn = conn?;
        let result = match action {
            MigrateAction::Status { .. } => unreachable!("handled before"),
            MigrateAction::Deploy { dry_run, to, yes } => {
                if let Some(warning) = pooler_warning(&env) {
                    app.ui.warn(&warning);
                }
                let gate = gate_deploy(
                    app,
                    &env,
                    &target,
                    &store,
                    &mut conn,
                    to.as_deref(),
                    dry_run,
                    yes,
                    &mut events,
                )
                .await;
                if let Err(e) = gate {
                    conn.close().await;
                    return Err(e);
                }
                let options = DeployOptions {
                    to,
                    dry_run,
                    ..DeployOptions::default()
                };
                let mut on_event = progress_printer(&app.ui);
                let report = migrate::deploy(
                    &mut conn,
                    &store,
                    &target.table,
                    &target.limits,
                    &options,
                    &mut on_event,
                )
                .await;
                match report {
                    Ok(report) => {
                        for warning in &report.warnings {
                            app.ui.warn(warning);
                        }
                        if app.ui.json {
                            app.ui.json_doc(
                                &json!({ "env": env.name, "dry_run": dry_run, "report": report }),
                            );
                        } else if dry_run {
                            if report.pending.is_empty() {
                                app.ui.out("nothing to apply: the database is up to date");
                            } else {
                                app.ui.out(&format!(
                                    "would apply {} migration(s):",
                                    report.pending.len()
                                ));
                                for name in &report.pending {
                                    app.ui.out(&format!("  {name}"));
                                }
                            }
                        } else if report.applied.is_empty() {
                            app.ui.out("nothing to apply: the database is up to date");
                        } else {
                            app.ui.out(&format!(
                                "✔ applied {} migration(s) to `{}`",
                                report.applied.len(),
                                env.name
                            ));
                        }
                        Ok(ExitCode::Ok)
                    }
                    Err(e) => match e.interrupted_by() {
                        Some(signal) => {
                            events.push((
                                "interrupted",
                                json!({ "signal": crate::interrupt::name(signal), "state": e.to_string() }),
                            ));
                            Err(Error::interrupted(signal, e.to_string()))
                        }
                        None => Err(Error::failed(e.to_string())),
                    },
                }
            }
            MigrateAction::Resolve {
                applied,
                rolled_back,
                yes,
            } => {
                let (name, as_applied) = match (applied, rolled_back) {
                    (Some(n), None) => (n, true),
                    (None, Some(n)) => (n, false),
                    _ => {
                        return Err(Error::Usage(
                            "give exactly one of --applied NAME or --rolled-back NAME".into(),
                        ))
                    }
                };
                let question = format!(
                    "Mark `{name}` as {} in the history of protected `{}`?",
                    if as_applied { "applied" } else { "rolled back" },
                    env.name
                );
                guard_simple(
                    app,
                    &env,
                    Operation::MigrateResolve,
                    &question,
                    yes,
                    &mut events,
                )?;
                let message = migrate::resolve(&mut conn, &store, &target.table, &name, as_applied)
                    .await
                    .map_err(|e| Error::failed(e.to_string()))?;
                app.ui.out(&message);
                Ok(ExitCode::Ok)
            }
            MigrateAction::New { .. } => unreachable!("handled before connecting"),
            MigrateAction::Down { name, yes } => {
                let question = format!("Run the down.sql of `{name}` on protected `{}`?", env.name);
                guard_simple(
                    app,
                    &env,
                    Operation::MigrateDown,
                    &question,
                    yes,
                    &mut events,
                )?;
                let message = migrate::down(&mut conn, &store, &target.table, &name)
                    .await
                    .map_err(|e| Error::failed(e.to_string()))?;
                app.ui.out(&message);
                Ok(ExitCode::Ok)
            }
        };
        conn.close().await;
        result
    });
    guard::journal_command(
        &app.root(),
        command,
        &GuardTarget::of(&env),
        &events,
        match &result {
            Ok(_) => "succeeded",
            Err(e) if matches!(e.exit_code(), ExitCode::Interrupted(_)) => "interrupted",
            Err(_) => "failed",
        },
    );
    result
}

/// `migrate status`: the database is read (history, drift) while the migrations folder is
/// read and hashed on other threads; the two meet only to compare.
fn status(
    app: &App,
    env: &ResolvedEnv,
    target: &Target,
    runtime: &tokio::runtime::Runtime,
    shadow: bool,
) -> Result<ExitCode> {
    let (store, observed) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| target.store());
        let observed = runtime.block_on(async {
            let mut conn = target.connect().await?;
            let observed = migrate::observe(&mut conn, &target.table).await;
            conn.close().await;
            observed.map_err(|e| Error::failed(e.to_string()))
        });
        (join(reading), observed)
    });
    // A problem with the folder is reported first: it is local and the same every time.
    let store = store?;
    warn_ignored(app, target, &store);
    let status = observed?.status(&store);
    let mode = match shadow {
        true => crate::db::shadow::Mode::Forced,
        false => crate::db::shadow::Mode::Auto(env.protection),
    };
    let server = crate::db::target::shadow_server(&app.project, &app.vars)?;
    let status = runtime.block_on(crate::db::shadow::settle(
        target,
        server.as_ref(),
        &store,
        status,
        mode,
        |name| guard::own_copy(&GuardTarget::of(env), name),
    ));
    let clean = status.problems(&all()).is_empty();
    if app.ui.json {
        app.ui
            .json_doc(&json!({ "env": env.name, "clean": clean, "counts": status.counts(), "status": status }));
    } else {
        app.ui.out(&format!(
            "environment `{}` ({})",
            env.name,
            target.url.redacted()
        ));
        app.ui.out(&render_status(&status));
    }
    Ok(if !clean {
        ExitCode::NotClean
    } else if shadow && !status.drift_checked {
        // Asked for the comparison and did not get it: not a clean bill of health.
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn warn_ignored(app: &App, target: &Target, store: &Store) {
    for (name, why) in &store.ignored {
        app.ui
            .warn(&format!("{}/{name} ignored: {why}", target.dir.display()));
    }
}

fn blocked(message: String) -> Error {
    Error::Failed {
        message,
        code: ExitCode::Blocked,
    }
}

/// The rails for `operation`, then confirmation on a protected environment.
fn guard_simple(
    app: &App,
    env: &ResolvedEnv,
    operation: Operation,
    question: &str,
    yes: bool,
    events: &mut Vec<(&'static str, serde_json::Value)>,
) -> Result<()> {
    let decision = guard::check(&app.project, env, operation);
    guard::announce(&app.ui, &decision);
    events.extend(guard::journal_events(&decision));
    if !decision.allowed {
        return Err(blocked(decision.blocked_message()));
    }
    if decision.needs_confirmation {
        let by = guard::migrations::confirm(question, yes).map_err(blocked)?;
        events.push((
            "protected_confirmation",
            json!({ "operation": operation.name(), "question": question, "confirmed_by": by }),
        ));
    }
    Ok(())
}

/// Before `migrate deploy`: the rails for `deploy`, the lint of the pending migrations
/// (errors block on shared and protected environments), and on a protected environment
/// the preview a person confirms.
#[allow(clippy::too_many_arguments)]
async fn gate_deploy(
    app: &App,
    env: &ResolvedEnv,
    target: &Target,
    store: &Store,
    conn: &mut crate::db::Conn,
    to: Option<&str>,
    dry_run: bool,
    yes: bool,
    events: &mut Vec<(&'static str, serde_json::Value)>,
) -> Result<()> {
    let decision = guard::check(&app.project, env, Operation::Deploy);
    guard::announce(&app.ui, &decision);
    events.extend(guard::journal_events(&decision));
    if !decision.allowed {
        return Err(blocked(decision.blocked_message()));
    }
    let status = migrate::history_status(conn, store, &target.table)
        .await
        .map_err(|e| Error::failed(e.to_string()))?;
    let catalog = guard::migrations::catalog_for_pending(conn, &status).await;
    let mut review = guard::migrations::review(
        &app.project,
        env.protection,
        target.url.is_postgres(),
        store,
        &status,
        catalog,
    );
    // The migrator refuses modified applied migrations itself, with the fix.
    review.modified.clear();
    if let Some(to) = to {
        if let Some(end) = review.pending.iter().position(|(name, _)| name == to) {
            review.pending.truncate(end + 1);
        }
    }
    if !dry_run {
        let pending = guard::promotion::pending(&status, to);
        guard::promotion::check_deploy(&app.project, env, &app.vars, store, &pending)
            .await
            .report(&app.ui, |event, fields| events.push((event, fields)))
            .map_err(blocked)?;
    }
    if review.pending.is_empty() {
        return Ok(());
    }
    let s = review.summary();
    if s.errors + s.warnings + s.allowed > 0 || !review.not_linted.is_empty() {
        app.ui
            .out(guard::migrations::render_review(&review, &env.name, app.ui.verbose).trim_end());
    }
    if dry_run {
        return Ok(());
    }
    if let Some(reason) = review.blocked_reason() {
        return Err(blocked(format!(
            "blocked by the guard: deploy to `{}` ({}): {reason}",
            env.name,
            env.protection.as_str()
        )));
    }
    if decision.needs_confirmation {
        app.ui
            .out(guard::migrations::render_preview(&review, &env.name, None).trim_end());
        let question = format!(
            "Apply {} migration(s) to protected `{}`?",
            review.pending.len(),
            env.name
        );
        let by = guard::migrations::confirm(&question, yes).map_err(blocked)?;
        events.push((
            "protected_confirmation",
            json!({
                "operation": "deploy",
                "pending": review.pending.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "confirmed_by": by,
            }),
        ));
    }
    Ok(())
}

/// `dbflow migrate new NAME [--down]`: a timestamped folder in Prisma's layout.
fn new_migration(app: &App, name: &str, down: bool) -> Result<ExitCode> {
    let slug: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .split('_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if slug.is_empty() {
        return Err(Error::Usage(format!(
            "`{name}` has no letters or digits to name a migration with"
        )));
    }
    let dir = app.project.root.join(&app.project.migrations_dir);
    let folder = dir.join(format!(
        "{}_{slug}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    ));
    if folder.exists() {
        return Err(Error::Usage(format!("{} already exists", folder.display())));
    }
    std::fs::create_dir_all(&folder)
        .map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
    let script = folder.join("migration.sql");
    std::fs::write(&script, format!("-- {name}\n-- Expand–contract: add, backfill, switch, then drop in a later release.\n\n"))
        .map_err(|e| Error::io(format!("writing {}", script.display()), e))?;
    app.ui.out(&format!("created {}", script.display()));
    if down {
        let down_path = folder.join("down.sql");
        std::fs::write(
            &down_path,
            format!("-- Undo {name} (run by `dbflow migrate down`)\n\n"),
        )
        .map_err(|e| Error::io(format!("writing {}", down_path.display()), e))?;
        app.ui.out(&format!("created {}", down_path.display()));
    }
    if app.ui.json {
        app.ui.json_doc(&json!({ "migration": folder.file_name().map(|n| n.to_string_lossy().to_string()), "path": script.display().to_string() }));
    }
    Ok(ExitCode::Ok)
}

fn all() -> Vec<String> {
    migrate::ALL_CATEGORIES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The status as a table for people.
pub fn render_status(status: &Status) -> String {
    let mut out = String::new();
    if status.entries.is_empty() {
        out.push_str("no migrations found\n");
    }
    let width = status
        .entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    for entry in &status.entries {
        let mark = match entry.state {
            State::Applied => "✔",
            State::Pending | State::RolledBack => "…",
            State::Failed | State::Modified | State::MissingLocally => "✘",
        };
        let state = entry.state.as_str().replace('_', " ");
        let at = entry
            .at
            .as_ref()
            .map(|a| format!("  {a}"))
            .unwrap_or_default();
        let note = entry
            .note
            .as_ref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        let line = format!("{mark} {:width$}  {state:<12}{at}{note}", entry.name);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let count = |s| status.with_state(s).count();
    out.push_str(&format!(
        "{} applied, {} pending, {} failed, {} modified, {} missing locally\n",
        count(State::Applied),
        count(State::Pending) + count(State::RolledBack),
        count(State::Failed),
        count(State::Modified),
        count(State::MissingLocally)
    ));
    if let Some(basis) = &status.drift_basis {
        out.push_str(&format!("schema compared with the migrations: {basis}\n"));
    }
    if let Some(note) = &status.drift_note {
        out.push_str(&format!("schema drift: {note}\n"));
    } else if status.drift.is_empty() && status.drift_basis.is_some() {
        out.push_str("schema drift: none\n");
    } else if status.drift.is_empty() {
        out.push_str("schema drift: none since the last deploy\n");
    } else {
        out.push_str(&format!(
            "schema drift: {} change(s) made outside migrations:\n",
            status.drift.len()
        ));
        for line in &status.drift {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.trim_end().to_string()
}

/// Prints deploy progress: a bar per deploy (on a terminal) plus a line per migration.
pub fn progress_printer(ui: &Ui) -> impl FnMut(Event<'_>) + Send + '_ {
    let mut bar: Option<crate::ui::progress::Counter> = None;
    move |event| match event {
        Event::WaitingForLock => {
            ui.out("  waiting for another deploy to release the migration lock…")
        }
        Event::Applying(name, i, n) => {
            let counter = bar.get_or_insert_with(|| {
                crate::ui::progress::Counter::new(n as u64, ui.tty && !ui.json)
            });
            counter.set_message(&format!("applying {name}"));
            if !ui.tty {
                ui.out(&format!("  [{i}/{n}] applying {name}"));
            }
        }
        Event::Applied(name, elapsed, transactional) => {
            let line = format!(
                "  ✔ {name} ({}{})",
                crate::ui::human_ms(elapsed.as_millis() as u64),
                if transactional {
                    ""
                } else {
                    ", outside a transaction"
                }
            );
            match &bar {
                Some(counter) => {
                    counter.inc();
                    counter.println(ui, &line);
                }
                None => ui.out(&line),
            }
        }
        Event::Retrying(name, attempt, pause) => ui.warn(&format!(
            "{name} hit lock_timeout; retry {attempt} in {}",
            humantime::format_duration(pause)
        )),
    }
}
