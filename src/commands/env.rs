//! `dbflow env`: the detected environment and what decided it.

use crate::app::App;
use crate::config::environment::DETECTION_VARS;
use crate::error::{ExitCode, Result};
use serde_json::json;

pub fn run(app: &App, flag: Option<&str>) -> Result<ExitCode> {
    let env = app.env(flag)?;
    let chain: Vec<(String, Option<String>)> =
        std::iter::once(("--env".to_string(), flag.map(str::to_string)))
            .chain(
                DETECTION_VARS
                    .iter()
                    .map(|v| (v.to_string(), app.vars.non_empty(v).map(str::to_string))),
            )
            .chain(std::iter::once((
                "default_env".to_string(),
                app.project.default_env.as_ref().map(|d| d.value.clone()),
            )))
            .collect();
    if app.ui.json {
        app.ui.json_doc(&json!({
            "name": env.name,
            "alias": env.alias,
            "decided_by": env.decided_by.to_string(),
            "protection": env.protection.as_str(),
            "url": env.url.redacted(),
            "direct_url": env.direct_url.as_ref().map(|u| u.redacted()),
            "database": env.url.database_name(),
            "provider": env.provider,
            "vars": env.vars,
            "workflowfile": app.project.file.as_ref().map(|f| f.display().to_string()),
            "chain": chain.iter().map(|(k, v)| json!({"source": k, "value": v})).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::Ok);
    }
    let ui = &app.ui;
    let alias = env
        .alias
        .as_ref()
        .map(|a| format!(" (alias `{a}`)"))
        .unwrap_or_default();
    ui.out(&format!("environment: {}{alias}", env.name));
    ui.out(&format!("decided by:  {}", env.decided_by));
    ui.out(&format!("protection:  {}", env.protection.as_str()));
    ui.out(&format!("url:         {}", env.url.redacted()));
    if let Some(direct) = &env.direct_url {
        ui.out(&format!("direct url:  {}", direct.redacted()));
    }
    if let Some(provider) = &env.provider {
        ui.out(&format!("provider:    {provider}"));
    }
    ui.out(&format!(
        "workflowfile: {}",
        app.project
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "none (zero-config: DATABASE_URL and built-in workflows)".into())
    ));
    for (key, value) in &env.vars {
        ui.out(&format!("var {key} = {value}"));
    }
    ui.out("detection chain (first set wins):");
    for (source, value) in chain {
        ui.out(&format!(
            "  {source:12} {}",
            value.unwrap_or_else(|| "-".into())
        ));
    }
    Ok(ExitCode::Ok)
}
