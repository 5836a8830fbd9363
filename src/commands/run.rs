//! `dbflow run NAME`: plan a workflow (or task), print it on `--dry-run`, else execute it
//! with a journal.

use crate::app::App;
use crate::engine::{plan, Executor, RunOptions};
use crate::error::{Error, ExitCode, Result};
use crate::journal::{new_run_id, Journal};
use serde_json::json;

pub fn run(
    app: &App,
    env_flag: Option<&str>,
    name: &str,
    dry_run: bool,
    yes: bool,
    confirm: Option<String>,
    cut_over: bool,
) -> Result<ExitCode> {
    let env = app.env(env_flag)?;
    let cx = app.plan_context(&env);
    let plan = if app.project.workflows.contains_key(name) {
        plan::plan_workflow(&cx, name)
    } else if let Some(task) = app.project.tasks.get(name) {
        if task.def.private {
            return Err(Error::Usage(format!(
                "task `{name}` is private: it runs only as a dependency or a step"
            )));
        }
        plan::plan_task(&cx, name)
    } else {
        plan::plan_workflow(&cx, name)
    }
    .map_err(Error::Config)?;

    if dry_run {
        if app.ui.json {
            app.ui.json_doc(&json!({ "dry_run": true, "plan": serde_json::to_value(&plan).unwrap_or_default() }));
        } else {
            app.ui.out(&plan.render());
            app.ui.out("Dry run: nothing was executed.");
        }
        return Ok(ExitCode::Ok);
    }

    let run_id = new_run_id();
    let journal = Journal::create(&app.root(), &run_id)?;
    let journal_path = journal.path().to_path_buf();
    app.ui.out(&format!(
        "Running {} `{name}` on `{}` ({}) — run {run_id}",
        if plan.is_task { "task" } else { "workflow" },
        env.name,
        env.url.redacted()
    ));
    let options = RunOptions {
        yes,
        dry_run,
        confirm,
        cut_over,
        ..RunOptions::default()
    };
    let executor = Executor {
        project: &app.project,
        env: &env,
        vars: &app.vars,
        options: &options,
        ui: &app.ui,
    };
    let report = executor.execute(&plan, &run_id, journal);
    let journal_shown = journal_path
        .strip_prefix(app.root())
        .unwrap_or(&journal_path)
        .display()
        .to_string();
    if app.ui.json {
        app.ui.json_doc(&json!({
            "run_id": report.run_id,
            "target": name,
            "env": env.name,
            "result": if report.failure.is_none() { "succeeded" } else { "failed" },
            "exit_code": final_code(&plan, report.code).code(),
            "failed_step": report.failure.as_ref().map(|f| &f.0),
            "error": report.failure.as_ref().map(|f| &f.1),
            "succeeded_steps": report.succeeded,
            "outputs": report.outputs,
            "journal": journal_shown,
        }));
    }
    match &report.failure {
        None => app
            .ui
            .out(&format!("✔ `{name}` succeeded (journal: {journal_shown})")),
        Some((step, message)) => {
            let done = if report.succeeded.is_empty() {
                "no step had succeeded".to_string()
            } else {
                format!("already done: {}", report.succeeded.join(", "))
            };
            app.ui.error(&format!(
                "`{name}` failed at step `{step}`: {message} ({done}; journal: {journal_shown})"
            ));
        }
    }
    Ok(final_code(&plan, report.code))
}

/// A task run directly passes its child's exit status through; a workflow maps any
/// child failure to 1 so its exit codes keep their documented meaning.
fn final_code(plan: &crate::engine::Plan, code: ExitCode) -> ExitCode {
    match code {
        ExitCode::Child(c) if plan.is_task => ExitCode::Child(c),
        ExitCode::Child(_) => ExitCode::Failed,
        other => other,
    }
}
