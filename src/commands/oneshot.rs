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
