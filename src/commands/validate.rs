//! `dbflow validate`: load and check everything, then plan every workflow and task for
//! the selected environment (which catches missing variables) without running anything.

use crate::app::App;
use crate::engine::plan;
use crate::error::{Error, ExitCode, Result};

pub fn run(app: &App, flag: Option<&str>) -> Result<ExitCode> {
    let env = app.env(flag)?;
    let cx = app.plan_context(&env);
    let mut errors = Vec::new();
    for name in app.project.workflows.keys() {
        if let Err(mut e) = plan::plan_workflow(&cx, name) {
            errors.append(&mut e);
        }
    }
    for name in app.project.tasks.keys() {
        if let Err(mut e) = plan::plan_task(&cx, name) {
            errors.append(&mut e);
        }
    }
    errors.dedup();
    if !errors.is_empty() {
        return Err(Error::Config(errors));
    }
    let p = &app.project;
    let source = p
        .file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "built-in defaults (no Workflowfile)".into());
    if app.ui.json {
        app.ui.json_doc(&serde_json::json!({
            "valid": true, "file": source, "environment": env.name,
            "environments": p.environments.keys().collect::<Vec<_>>(),
            "tasks": p.tasks.len(), "workflows": p.workflows.len(),
        }));
    } else {
        app.ui.out(&format!(
            "✔ {source} is valid: {} environment{}, {} task{}, {} workflow{} (checked for environment `{}`)",
            p.environments.len(),
            plural(p.environments.len()),
            p.tasks.len(),
            plural(p.tasks.len()),
            p.workflows.len(),
            plural(p.workflows.len()),
            env.name
        ));
    }
    Ok(ExitCode::Ok)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
