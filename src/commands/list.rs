//! `dbflow list`: tasks and workflows grouped by category.

use crate::app::App;
use crate::error::{ExitCode, Result};
use indexmap::IndexMap;
use serde_json::json;

pub fn run(app: &App, all: bool) -> Result<ExitCode> {
    let project = &app.project;
    let mut groups: IndexMap<String, Vec<(String, &str, String)>> = IndexMap::new();
    for workflow in project.workflows.values().filter(|w| all || !w.private) {
        let category = workflow
            .category
            .clone()
            .unwrap_or_else(|| "workflows".into());
        groups.entry(category).or_default().push((
            workflow.name.clone(),
            "workflow",
            workflow.description.clone().unwrap_or_default(),
        ));
    }
    for task in project.tasks.values().filter(|t| all || !t.def.private) {
        let category = task.def.category.clone().unwrap_or_else(|| "tasks".into());
        groups.entry(category).or_default().push((
            task.name.clone(),
            "task",
            task.def.description.clone().unwrap_or_default(),
        ));
    }
    if app.ui.json {
        let doc: serde_json::Map<String, serde_json::Value> = groups
            .iter()
            .map(|(category, items)| {
                (
                    category.clone(),
                    items
                        .iter()
                        .map(|(name, kind, description)| json!({"name": name, "kind": kind, "description": description}))
                        .collect(),
                )
            })
            .collect();
        app.ui.json_doc(&serde_json::Value::Object(doc));
        return Ok(ExitCode::Ok);
    }
    let width = groups
        .values()
        .flatten()
        .map(|(n, _, _)| n.len())
        .max()
        .unwrap_or(0);
    for (category, items) in &groups {
        app.ui.out(&format!("{category}:"));
        for (name, kind, description) in items {
            let tag = if *kind == "task" { " (task)" } else { "" };
            app.ui
                .out(format!("  {name:width$}  {description}{tag}").trim_end());
        }
    }
    if groups.is_empty() {
        app.ui.out("no tasks or workflows defined");
    }
    Ok(ExitCode::Ok)
}
