//! `dbflow targets --env E`: the targets of a fleet environment, URLs redacted.

use crate::app::App;
use crate::error::{ExitCode, Result};
use crate::fleet::shard::{Shard, INDEX_VAR};
use serde_json::json;

/// Lists the (selected) targets.
pub fn run(
    app: &App,
    env_flag: Option<&str>,
    globs: &[String],
    shard: Option<&str>,
) -> Result<ExitCode> {
    let env = app.env(env_flag)?;
    let mut targets =
        crate::fleet::select(crate::fleet::list(&app.project, &env, &app.vars)?, globs)?;
    if let Some(text) = shard {
        let shard = Shard::parse(text, std::env::var(INDEX_VAR).ok().as_deref())?;
        targets.retain(|t| shard.contains(&t.name));
    }
    if app.ui.json {
        app.ui.json_doc(&json!({
            "env": env.name,
            "targets": targets.iter().map(|t| json!({ "name": t.name, "env": format!("{}/{}", env.name, t.name), "url": t.url.redacted() })).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::Ok);
    }
    let width = targets
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:<width$}  URL\n", "NAME");
    for t in &targets {
        out.push_str(&format!("{:<width$}  {}\n", t.name, t.url.redacted()));
    }
    out.push_str(&format!(
        "{} target{} of `{}` (one of them: --env {}/NAME or --target NAME)",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        env.name,
        env.name
    ));
    app.ui.out(&out);
    Ok(ExitCode::Ok)
}
