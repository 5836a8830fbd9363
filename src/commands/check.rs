//! `dbflow check "<operation or command line>"`: ALLOWED (exit 0) or BLOCKED (exit 3),
//! with the rule, the reason and the override.

use crate::app::App;
use crate::config::diagnostic::did_you_mean;
use crate::error::{Error, ExitCode, Result};
use crate::guard::command_line::{self, Detected, ScriptLookup};
use crate::guard::{self, GuardTarget, Operation, Overrides};
use serde_json::json;

pub fn run(app: &App, env_flag: Option<&str>, what: &str) -> Result<ExitCode> {
    let target = GuardTarget::resolve(&app.project, env_flag, &app.vars)?;
    let overrides = Overrides::from_process();
    for warning in overrides.unknown() {
        app.ui.warn(&warning);
    }
    let what = what.trim();
    let detected = match Operation::parse(what) {
        Some(operation) => vec![Detected {
            operation,
            command: what.to_string(),
            database: None,
            via_script: None,
        }],
        None => {
            let scripts = command_line::package_scripts(&app.root());
            let single_word = !what.contains(char::is_whitespace);
            // `dbflow check db:seed`: a package.json script asked about by its name.
            if single_word && scripts.script(what).is_some() {
                command_line::detect(&format!("npm run {what}"), &scripts)
            } else {
                command_line::detect(what, &scripts)
            }
        }
    };
    if detected.is_empty() {
        let single_word = !what.contains(char::is_whitespace);
        if single_word && what.contains('-') && !what.contains('/') {
            return Err(Error::Usage(format!(
                "unknown operation `{what}`; {}",
                did_you_mean(what, Operation::names()).unwrap_or_else(|| format!(
                    "known operations: {}",
                    Operation::names().collect::<Vec<_>>().join(", ")
                ))
            )));
        }
        if app.ui.json {
            app.ui.json_doc(
                &json!({ "what": what, "allowed": true, "target": target, "decisions": [] }),
            );
        } else {
            app.ui.out(&format!(
                "ALLOWED: `{what}` performs no operation the guard rules on (known: {})",
                Operation::names().collect::<Vec<_>>().join(", ")
            ));
        }
        return Ok(ExitCode::Ok);
    }
    let mut decisions: Vec<guard::Decision> = Vec::new();
    let mut vias = Vec::new();
    for d in &detected {
        if decisions.iter().any(|x| x.operation == d.operation) {
            continue;
        }
        let at = target.with_database(d.database.clone());
        decisions.push(guard::decide(&app.project, &at, d.operation, &overrides));
        if let Some(script) = &d.via_script {
            if !vias.contains(script) {
                vias.push(script.clone());
            }
        }
    }
    // A deploy also answers to the environment's origin rule, exactly as `migrate deploy`
    // and the deploy step do (guard::promotion); require_applied_on needs the other
    // environment's database, so it is named, not decided, here.
    let (origin, origin_note) = if decisions
        .iter()
        .any(|d| d.operation == Operation::Deploy && d.allowed)
    {
        let (gate, note) = guard::promotion::check_for_check(&app.project, &target);
        (Some(gate), note)
    } else {
        (None, None)
    };
    let origin_blocked = origin.as_ref().and_then(|g| g.blocked.clone());
    let allowed = decisions.iter().all(|d| d.allowed) && origin_blocked.is_none();
    for d in &decisions {
        guard::announce(&app.ui, d);
    }
    for warning in origin.iter().flat_map(|g| &g.warnings) {
        app.ui.warn(warning);
    }
    if app.ui.json {
        app.ui.json_doc(&json!({
            "what": what,
            "allowed": allowed,
            "target": target,
            "decisions": decisions,
            "deploy_origin_blocked": origin_blocked,
        }));
    } else {
        let is_name = Operation::parse(what).is_some();
        if !is_name {
            app.ui.out(&format!(
                "{}: `{what}` on {}",
                if allowed { "ALLOWED" } else { "BLOCKED" },
                target.describe()
            ));
            let via = if vias.is_empty() {
                String::new()
            } else {
                format!(
                    " (through package.json script {})",
                    vias.iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            app.ui.out(&format!(
                "  runs: {}{via}\n",
                decisions
                    .iter()
                    .map(|d| d.operation.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let rendered: Vec<String> = decisions
            .iter()
            .map(|d| match &origin_blocked {
                Some(why) if d.operation == Operation::Deploy => format!(
                    "BLOCKED: `{}` on {}\n  ✘ rule deploy-from-ci: {}\n",
                    d.operation,
                    d.target.describe(),
                    why.trim_start_matches("blocked by the guard: ")
                ),
                _ => d.render(),
            })
            .collect();
        app.ui.out(rendered.join("\n").trim_end());
        if let Some(note) = &origin_note {
            app.ui.out(&format!("  note: {note}"));
        }
    }
    let events: Vec<_> = decisions
        .iter()
        .flat_map(guard::journal_events)
        .chain(origin.into_iter().flat_map(|g| g.events))
        .filter(|(event, _)| *event != "guard_blocked")
        .collect();
    guard::journal_command(
        &app.root(),
        &format!("check {what}"),
        &target,
        &events,
        if allowed { "allowed" } else { "blocked" },
    );
    Ok(if allowed {
        ExitCode::Ok
    } else {
        ExitCode::Blocked
    })
}
