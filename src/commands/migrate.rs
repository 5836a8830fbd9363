//! `dbflow migrate status|deploy|resolve|down`, and the status rendering and progress
//! printing the `status` and `deploy` steps share.

use crate::app::App;
use crate::cli::MigrateAction;
use crate::config::ResolvedEnv;
use crate::db::migrate::{self, DeployOptions};
use crate::db::store::Store;
use crate::db::target::{pooler_warning, Target};
use crate::error::{Error, ExitCode, Result};
use crate::guard::deploy_gate::{DeployGate, GateError};
use crate::guard::{self, GuardTarget, Operation};
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
    if matches!(action, MigrateAction::Status) {
        return status(app, &env, &target, &runtime);
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
        MigrateAction::Status => "migrate status",
        MigrateAction::Deploy { .. } => "migrate deploy",
        MigrateAction::Resolve { .. } => "migrate resolve",
        MigrateAction::Down { .. } => "migrate down",
        MigrateAction::New { .. } => "migrate new",
    };
    let mut events: Vec<(&'static str, serde_json::Value)> = Vec::new();
    let result = runtime.block_on(async {
        let mut conn = conn?;
        let result = match action {
            MigrateAction::Status => unreachable!("handled before"),
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
                    Err(e) => Err(Error::failed(e.to_string())),
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
    let clean = status.problems(&all()).is_empty();
    if app.ui.json {
        app.ui
            .json_doc(&json!({ "env": env.name, "status": status, "clean": clean }));
    } else {
        app.ui.out(&format!(
            "environment `{}` ({})",
            env.name,
            target.url.redacted()
        ));
        app.ui.out(&render_status(&status));
    }
    Ok(if clean {
        ExitCode::Ok
    } else {
        ExitCode::NotClean
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

/// Before `migrate deploy`: the rails for `deploy`, then the gate the `deploy` step
/// runs too ([`DeployGate`]).
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
    let gate = DeployGate {
        project: &app.project,
        env,
        vars: &app.vars,
        ui: &app.ui,
        to,
        dry_run,
        yes,
        needs_confirmation: decision.needs_confirmation,
        backup: None,
        indent: "",
        reviewed: None,
    };
    gate.check(conn, store, target, &mut |event, fields| {
        events.push((event, fields))
    })
    .await
    .map_err(|e| match e {
        GateError::Blocked(m) => blocked(m),
        GateError::Failed(m) => Error::failed(m),
    })
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

// Rendering lives in `ui` (steps print it too); re-exported for callers of the old path.
pub use crate::ui::migrate::{progress_printer, render_status};
