//! `dbflow runs`: past runs from the journals.

use crate::app::App;
use crate::error::{Error, ExitCode, Result};
use crate::journal;
use serde_json::Value;

pub fn run(app: &App, last: bool, id: Option<&str>) -> Result<ExitCode> {
    let root = app.root();
    let paths = journal::list(&root);
    let wanted = match (last, id) {
        (true, _) => Some(
            paths
                .first()
                .cloned()
                .ok_or_else(|| Error::failed("no runs recorded yet"))?,
        ),
        (false, Some(id)) => Some(
            paths
                .iter()
                .find(|p| {
                    p.file_stem()
                        .is_some_and(|s| s.to_string_lossy().starts_with(id))
                })
                .cloned()
                .ok_or_else(|| Error::Usage(format!("no run `{id}` in {}", journal::RUNS_DIR)))?,
        ),
        _ => None,
    };
    if let Some(path) = wanted {
        let events = journal::read(&path)?;
        if app.ui.json {
            app.ui.json_doc(&Value::Array(events));
        } else {
            for event in &events {
                app.ui.out(&describe(event));
            }
        }
        return Ok(ExitCode::Ok);
    }
    let mut rows = Vec::new();
    for path in &paths {
        let events = journal::read(path)?;
        let start = events
            .iter()
            .find(|e| e["event"] == "run_start")
            .cloned()
            .unwrap_or(Value::Null);
        let end = events
            .iter()
            .find(|e| e["event"] == "run_end")
            .cloned()
            .unwrap_or(Value::Null);
        rows.push(serde_json::json!({
            "run_id": start["run_id"], "target": start["target"], "env": start["env"], "started": start["ts"],
            "result": if end.is_null() { Value::from("incomplete") } else { end["result"].clone() },
            "duration_ms": end["duration_ms"], "failed_step": end["failed_step"],
        }));
    }
    if app.ui.json {
        app.ui.json_doc(&Value::Array(rows));
        return Ok(ExitCode::Ok);
    }
    if rows.is_empty() {
        app.ui.out("no runs recorded yet");
    }
    for row in rows {
        let failed = row["failed_step"]
            .as_str()
            .map(|s| format!(" at {s}"))
            .unwrap_or_default();
        app.ui.out(&format!(
            "{}  {:<12} {:<10} {}{}  {}",
            row["run_id"].as_str().unwrap_or("?"),
            row["target"].as_str().unwrap_or("?"),
            row["env"].as_str().unwrap_or("?"),
            row["result"].as_str().unwrap_or("?"),
            failed,
            row["duration_ms"]
                .as_u64()
                .map(crate::ui::human_ms)
                .unwrap_or_default()
        ));
    }
    Ok(ExitCode::Ok)
}

fn describe(event: &Value) -> String {
    let ts = event["ts"].as_str().unwrap_or("");
    let kind = event["event"].as_str().unwrap_or("?");
    let step = event["step"].as_str().unwrap_or("");
    let detail = match kind {
        "run_start" => format!(
            "{} `{}` on {} ({}) by {}",
            event["kind"].as_str().unwrap_or(""),
            event["target"].as_str().unwrap_or(""),
            event["env"].as_str().unwrap_or(""),
            event["url"].as_str().unwrap_or(""),
            event["user"].as_str().unwrap_or("")
        ),
        "step_start" => format!("{step} [{}]", event["kind"].as_str().unwrap_or("")),
        "step_end" => format!(
            "{step}: {} ({} ms){}",
            event["outcome"].as_str().unwrap_or(""),
            event["duration_ms"],
            event["error"]
                .as_str()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        ),
        "step_skipped" => format!("{step}: {}", event["reason"].as_str().unwrap_or("")),
        "run_end" => format!(
            "{} (exit {}, {} ms)",
            event["result"].as_str().unwrap_or(""),
            event["exit_code"],
            event["duration_ms"]
        ),
        _ => {
            let mut rest = event.clone();
            if let Some(map) = rest.as_object_mut() {
                map.remove("ts");
                map.remove("event");
            }
            rest.to_string()
        }
    };
    format!("{ts}  {kind:<16} {detail}")
}
