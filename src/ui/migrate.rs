//! How migrations look to a person: the status table and deploy progress lines.
//! Shared by `migrate status`/`migrate deploy` and the steps that deploy or report
//! status, so every path prints the same thing.

use crate::db::migrate::{DeployReport, Event, State, Status};
use crate::ui::Ui;

/// A status of more migrations than this is summarised unless `-v`.
const STATUS_ALL_UP_TO: usize = 12;
/// Applied migrations a summarised status still lists: the most recent ones.
const STATUS_LAST_APPLIED: usize = 5;

/// The status as a table for people. A long history is summarised unless `verbose`:
/// every row that is not applied (pending, failed, modified, missing locally, rolled
/// back) and the last few applied ones, each run of the others as one "… N applied"
/// line; the counts and the drift are always there.
pub fn render_status(status: &Status, verbose: bool) -> String {
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
    let summarise = !verbose && status.entries.len() > STATUS_ALL_UP_TO;
    // Applied rows before this index are folded into "… N applied" lines.
    let shown_from = if summarise {
        let applied: Vec<usize> = (0..status.entries.len())
            .filter(|i| status.entries[*i].state == State::Applied)
            .collect();
        applied
            .len()
            .checked_sub(STATUS_LAST_APPLIED)
            .map_or(0, |skip| applied[skip])
    } else {
        0
    };
    let mut folded = 0;
    let fold = |out: &mut String, folded: &mut usize| {
        if *folded > 0 {
            out.push_str(&format!(
                "  … {folded} applied (-v lists every migration)\n"
            ));
            *folded = 0;
        }
    };
    for (index, entry) in status.entries.iter().enumerate() {
        if entry.state == State::Applied && index < shown_from {
            folded += 1;
            continue;
        }
        fold(&mut out, &mut folded);
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
    fold(&mut out, &mut folded);
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

/// A deploy of more migrations than this is summarised unless `-v` (shorter ones print
/// every line: the summary would not be shorter).
const SUMMARISE_ABOVE: usize = 10;
/// ✔ lines shown at the start and at the end of a summarised deploy.
const HEAD: usize = 3;
const TAIL: usize = 3;

/// Prints deploy progress: a bar per deploy (on a terminal) plus, with `-v` or for a
/// short deploy, a line per migration. A long deploy prints the first and last few ✔
/// lines with "… N more applied" between, and in a log a progress line every
/// [`progress_log::interval`](crate::ui::progress_log::interval) or 10 %. The ✔ lines
/// come from the migrator's durability batches, so a migration is only ever reported
/// applied once it is durable. The held-back tail is printed when the printer is
/// dropped, so a failed deploy shows what it applied before its error.
pub fn progress_printer(ui: &Ui) -> impl FnMut(Event<'_>) + Send + '_ {
    let mut lines = DeployLines {
        ui,
        bar: None,
        summarise: false,
        total: 0,
        applied: 0,
        held: Vec::new(),
        started: std::time::Instant::now(),
        last_line: std::time::Instant::now(),
        interval: crate::ui::progress_log::interval(),
        next_tenth: 1,
    };
    move |event| lines.event(event)
}

/// The state of [`progress_printer`].
struct DeployLines<'a> {
    ui: &'a Ui,
    bar: Option<crate::ui::progress::Counter>,
    /// Decided at the first migration: a summary instead of every line.
    summarise: bool,
    total: usize,
    /// Migrations reported applied (durable) so far.
    applied: usize,
    /// ✔ lines past the first [`HEAD`], printed (the last few) at the end.
    held: Vec<String>,
    started: std::time::Instant,
    last_line: std::time::Instant,
    interval: std::time::Duration,
    next_tenth: usize,
}

impl DeployLines<'_> {
    fn event(&mut self, event: Event<'_>) {
        let ui = self.ui;
        match event {
            Event::WaitingForLock => {
                ui.out("  waiting for another deploy to release the migration lock…")
            }
            Event::Applying(name, i, n) => {
                if self.bar.is_none() {
                    self.total = n;
                    self.summarise = !ui.verbose && n > SUMMARISE_ABOVE;
                    self.started = std::time::Instant::now();
                    self.last_line = self.started;
                }
                let counter = self.bar.get_or_insert_with(|| {
                    crate::ui::progress::Counter::new(n as u64, ui.tty && !ui.json)
                });
                counter.set_message(&format!("applying {name}"));
                if ui.tty {
                    return;
                }
                if !self.summarise {
                    ui.out(&format!("  [{i}/{n}] applying {name}"));
                } else if self.due() {
                    // A slow migration in a log: say what it is waiting for.
                    let line = format!(
                        "  … applying {name} ({i}/{n}): {} applied, {} elapsed",
                        self.applied,
                        crate::ui::human_ms(self.started.elapsed().as_millis() as u64)
                    );
                    self.log(&line);
                }
            }
            Event::Applied(name, elapsed, transactional) => {
                self.applied += 1;
                let line = format!(
                    "  ✔ {name} ({}{})",
                    crate::ui::human_ms(elapsed.as_millis() as u64),
                    if transactional {
                        ""
                    } else {
                        ", outside a transaction"
                    }
                );
                if let Some(counter) = &self.bar {
                    counter.inc();
                }
                if !self.summarise || self.applied <= HEAD {
                    self.print(&line);
                    return;
                }
                self.held.push(line);
                if ui.tty || self.applied >= self.total {
                    return;
                }
                let percent = self.applied * 100 / self.total.max(1);
                let crossed = percent >= self.next_tenth * 10;
                if crossed {
                    self.next_tenth = percent / 10 + 1;
                }
                if crossed || self.due() {
                    let line = format!(
                        "  … {}/{} applied ({percent}%), {} elapsed",
                        self.applied,
                        self.total,
                        crate::ui::human_ms(self.started.elapsed().as_millis() as u64)
                    );
                    self.log(&line);
                }
            }
            Event::Retrying(name, attempt, pause) => ui.warn(&format!(
                "{name} hit lock_timeout; retry {attempt} in {}",
                humantime::format_duration(pause)
            )),
        }
    }

    /// Whether a log has been silent for the interval.
    fn due(&self) -> bool {
        self.last_line.elapsed() >= self.interval
    }

    fn log(&mut self, line: &str) {
        self.last_line = std::time::Instant::now();
        self.ui.out(line);
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(counter) => counter.println(self.ui, line),
            None => self.ui.out(line),
        }
    }
}

impl Drop for DeployLines<'_> {
    /// The end of a summarised deploy (finished or failed): "… N more applied" and the
    /// last few ✔ lines.
    fn drop(&mut self) {
        let held = std::mem::take(&mut self.held);
        if held.len() > TAIL + 1 {
            self.print(&format!(
                "  … {} more applied (-v lists every migration)",
                held.len() - TAIL
            ));
            for line in &held[held.len() - TAIL..] {
                self.print(line);
            }
        } else {
            for line in &held {
                self.print(line);
            }
        }
    }
}

/// What `dbflow migrate status` prints: the environment and the table, or with `--json`
/// one document (`env`, `status`, `clean`).
pub fn print_status(ui: &Ui, env: &str, url: &str, status: &Status, clean: bool) {
    if ui.json {
        ui.json_doc(&serde_json::json!({ "env": env, "clean": clean, "counts": status.counts(), "status": status }));
    } else {
        ui.out(&format!("environment `{env}` ({url})"));
        ui.out(&render_status(status, ui.verbose));
    }
}

/// What `dbflow migrate deploy` prints when it is done: what it applied (or, with
/// `--dry-run`, would apply: the first and last few of a long list unless `-v`), or with `--json` one document (`env`, `dry_run`, `report`).
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
            let n = report.pending.len();
            if ui.verbose || n <= SUMMARISE_ABOVE {
                for name in &report.pending {
                    ui.out(&format!("  {name}"));
                }
            } else {
                for name in &report.pending[..HEAD] {
                    ui.out(&format!("  {name}"));
                }
                ui.out(&format!(
                    "  … {} more (-v lists every migration)",
                    n - HEAD - TAIL
                ));
                for name in &report.pending[n - TAIL..] {
                    ui.out(&format!("  {name}"));
                }
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
