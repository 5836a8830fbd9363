//! How migrations look to a person: the status table and deploy progress lines.
//! Shared by `migrate status`/`migrate deploy` and the steps that deploy or report
//! status, so every path prints the same thing.

use crate::db::migrate::{DeployReport, Event, State, Status};
use crate::ui::Ui;

/// The status as a table for people.
pub fn render_status(status: &Status) -> String {
    let mut out = String::new();
    if status.entries.is_empty() {
        out.push_str("no migrations found\n");
    }
    let width = status
        .entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    for entry in &status.entries {
        let mark = match entry.state {
            State::Applied => "✔",
            State::Pending | State::RolledBack => "…",
            State::Failed | State::Modified | State::MissingLocally => "✘",
        };
        let state = entry.state.as_str().replace('_', " ");
        let at = entry
            .at
            .as_ref()
            .map(|a| format!("  {a}"))
            .unwrap_or_default();
        let note = entry
            .note
            .as_ref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        let line = format!("{mark} {:width$}  {state:<12}{at}{note}", entry.name);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let count = |s| status.with_state(s).count();
    out.push_str(&format!(
        "{} applied, {} pending, {} failed, {} modified, {} missing locally\n",
        count(State::Applied),
        count(State::Pending) + count(State::RolledBack),
        count(State::Failed),
        count(State::Modified),
        count(State::MissingLocally)
    ));
    if let Some(basis) = &status.drift_basis {
        out.push_str(&format!("schema compared with the migrations: {basis}\n"));
    }
    if let Some(note) = &status.drift_note {
        out.push_str(&format!("schema drift: {note}\n"));
    } else if status.drift.is_empty() && status.drift_basis.is_some() {
        out.push_str("schema drift: none\n");
    } else if status.drift.is_empty() {
        out.push_str("schema drift: none since the last deploy\n");
    } else {
        out.push_str(&format!(
            "schema drift: {} change(s) made outside migrations:\n",
            status.drift.len()
        ));
        for line in &status.drift {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.trim_end().to_string()
}

/// Prints deploy progress: a bar per deploy (on a terminal) plus a line per migration.
pub fn progress_printer(ui: &Ui) -> impl FnMut(Event<'_>) + Send + '_ {
    let mut bar: Option<crate::ui::progress::Counter> = None;
    move |event| match event {
        Event::WaitingForLock => {
            ui.out("  waiting for another deploy to release the migration lock…")
        }
        Event::Applying(name, i, n) => {
            let counter = bar.get_or_insert_with(|| {
                crate::ui::progress::Counter::new(n as u64, ui.tty && !ui.json)
            });
            counter.set_message(&format!("applying {name}"));
            if !ui.tty {
                ui.out(&format!("  [{i}/{n}] applying {name}"));
            }
        }
        Event::Applied(name, elapsed, transactional) => {
            let line = format!(
                "  ✔ {name} ({}{})",
                crate::ui::human_ms(elapsed.as_millis() as u64),
                if transactional {
                    ""
                } else {
                    ", outside a transaction"
                }
            );
            match &bar {
                Some(counter) => {
                    counter.inc();
                    counter.println(ui, &line);
                }
                None => ui.out(&line),
            }
        }
        Event::Retrying(name, attempt, pause) => ui.warn(&format!(
            "{name} hit lock_timeout; retry {attempt} in {}",
            humantime::format_duration(pause)
        )),
    }
}

/// What `dbflow migrate status` prints: the environment and the table, or with `--json`
/// one document (`env`, `status`, `clean`).
pub fn print_status(ui: &Ui, env: &str, url: &str, status: &Status, clean: bool) {
    if ui.json {
        ui.json_doc(&serde_json::json!({ "env": env, "clean": clean, "counts": status.counts(), "status": status }));
    } else {
        ui.out(&format!("environment `{env}` ({url})"));
        ui.out(&render_status(status));
    }
}

/// What `dbflow migrate deploy` prints when it is done: what it applied (or, with
/// `--dry-run`, would apply), or with `--json` one document (`env`, `dry_run`, `report`).
pub fn print_deploy(ui: &Ui, env: &str, dry_run: bool, report: &DeployReport) {
    if ui.json {
        ui.json_doc(&serde_json::json!({ "env": env, "dry_run": dry_run, "report": report }));
    } else if dry_run {
        if report.pending.is_empty() {
            ui.out("nothing to apply: the database is up to date");
        } else {
            ui.out(&format!(
                "would apply {} migration(s):",
                report.pending.len()
            ));
            for name in &report.pending {
                ui.out(&format!("  {name}"));
            }
        }
    } else if report.applied.is_empty() {
        ui.out("nothing to apply: the database is up to date");
    } else {
        ui.out(&format!(
            "✔ applied {} migration(s) to `{env}`",
            report.applied.len()
        ));
    }
}
