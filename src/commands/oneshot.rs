//! Commands that are workflows of built-in steps (`backup create`, `restore`, `rollback`,
//! `drill`, `backup prune`) run through the engine, so they are journaled, report and
//! fail exactly like `dbflow run` does.

use crate::app::App;
use crate::config::ResolvedEnv;
use crate::engine::{plan, Executor, RunOptions};
use crate::error::{Error, ExitCode, Result};
use crate::journal::{new_run_id, Journal};
use serde_json::json;

/// Plans and runs `steps` (kind, display name, parameters) as command `command`.
pub fn execute(
    app: &App,
    env: &ResolvedEnv,
    command: &str,
    steps: Vec<(&str, String, serde_json::Value)>,
) -> Result<ExitCode> {
    execute_with(app, env, command, steps, &RunOptions::default())
}

/// [`execute`] with run options (`--yes`, `--cut-over`).
pub fn execute_with(
    app: &App,
    env: &ResolvedEnv,
    command: &str,
    steps: Vec<(&str, String, serde_json::Value)>,
    options: &RunOptions,
) -> Result<ExitCode> {
    let cx = app.plan_context(env);
    let plan = plan::plan_command(&cx, command, steps).map_err(Error::Config)?;
    let run_id = new_run_id();
    let journal = Journal::create(&app.root(), &run_id)?;
    let executor = Executor {
        project: &app.project,
        env,
        vars: &app.vars,
        options,
        ui: &app.ui,
    };
    let report = executor.execute(&plan, &run_id, journal);
    if app.ui.json {
        app.ui.json_doc(&json!({
            "run_id": report.run_id,
            "command": command,
            "env": env.name,
            "result": if report.failure.is_none() { "succeeded" } else { "failed" },
            "exit_code": report.code.code(),
            "error": report.failure.as_ref().map(|f| &f.1),
            "outputs": report.outputs,
        }));
    }
    if report.failure.is_some() {
        app.ui.error(&format!(
            "`dbflow {command}` failed (run {run_id}; `dbflow runs {run_id}` shows its journal)"
        ));
    }
    Ok(match report.code {
        ExitCode::Child(_) => ExitCode::Failed,
        other => other,
    })
}

/// Runs `step` as command `command` with the engine in bare mode: no step lines, the
/// step prints what the command prints, and the journal is kept only when the run
/// records more than its frame (a guard decision, a confirmation). A failure comes back
/// as the error the command exits with; exit code 4 (`status` not clean) comes back as
/// a code, with nothing more to say.
pub fn execute_bare(
    app: &App,
    env: &ResolvedEnv,
    command: &str,
    kind: &str,
    step: std::sync::Arc<dyn crate::engine::Step>,
    yes: bool,
) -> Result<ExitCode> {
    let cx = app.plan_context(env);
    let plan = plan::plan_steps(&cx, command, vec![(kind, command.to_string(), step)])
        .map_err(Error::Config)?;
    let run_id = new_run_id();
    let options = RunOptions {
        yes,
        bare: true,
        ..RunOptions::default()
    };
    let executor = Executor {
        project: &app.project,
        env,
        vars: &app.vars,
        options: &options,
        ui: &app.ui,
    };
    let report = executor.execute(&plan, &run_id, Journal::deferred(&app.root(), &run_id));
    match report.failure {
        None => Ok(ExitCode::Ok),
        Some(_) if report.code == ExitCode::NotClean => Ok(ExitCode::NotClean),
        Some((_, message)) => Err(Error::Failed {
            message,
            code: report.code,
        }),
    }
}
