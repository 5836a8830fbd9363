//! The run journal: one JSON object per line in `.dbflow/runs/<run-id>.jsonl`, written
//! as the run goes (flushed per line, so a crash leaves everything up to the crash).
//! Every value passes through the redaction layer.
//!
//! Events are typed ([`Event`], written with [`Journal::log`]); events named at run time
//! (Lua steps and providers) go through [`Journal::record`]. Both write the same line
//! shape, and [`events`] reads either back.

mod event;

pub use event::{
    Changes, CheckResult, Event, GuardRule, Line, LintTotals, PreflightCheck, Recorded, StepEnd,
};

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The output key under which a step names the backup it took, restored or chose
/// (`backup`, `restore`, `rollback`, `drill`): later steps find the run's backup by it,
/// and `rollback --run` and `backup list` read it back from journals.
pub const BACKUP_ID: &str = "backup_id";

/// Folder (under the project root) holding the journals.
pub const RUNS_DIR: &str = ".dbflow/runs";

/// An open journal.
pub struct Journal {
    file: Option<File>,
    path: PathBuf,
    /// For [`Journal::deferred`]: the run's frame, held until something worth keeping.
    held: Option<Vec<Held>>,
}

/// A line of a deferred journal's frame, held until the journal is written (if ever).
enum Held {
    /// A line ready to write.
    Line(String),
    /// The run's start, stamped when it was logged, its fields gathered only if written.
    RunStart(String, Box<dyn FnOnce() -> Event + Send>),
}

/// The events every run has; a deferred journal is written only once another one comes.
const FRAME_EVENTS: &[&str] = &["run_start", "step_start", "step_end", "run_end"];

impl Journal {
    /// Creates `<root>/.dbflow/runs/<run_id>.jsonl`.
    pub fn create(root: &Path, run_id: &str) -> Result<Self> {
        let dir = root.join(RUNS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{run_id}.jsonl"));
        let file = File::create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(Journal {
            file: Some(file),
            path,
            held: None,
        })
    }

    /// A journal written only if the run records more than its frame (start, steps,
    /// end): a guard decision, an override, a confirmation given or refused. Commands
    /// such as `migrate status` run through the engine like workflows, yet leave a
    /// journal only when there is something to audit, as they always did.
    pub fn deferred(root: &Path, run_id: &str) -> Self {
        Journal {
            file: None,
            path: root.join(RUNS_DIR).join(format!("{run_id}.jsonl")),
            held: Some(Vec::new()),
        }
    }

    /// A journal that records nothing (dry runs).
    pub fn disabled() -> Self {
        Journal {
            file: None,
            path: PathBuf::new(),
            held: None,
        }
    }

    /// Where the journal is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a typed event (redacted) with a timestamp.
    pub fn log(&mut self, event: Event) {
        if self.file.is_none() && self.held.is_none() {
            return;
        }
        self.append(event.name(), line_of(now(), &event));
    }

    /// Logs the run's start. Who ran it and on which machine take a look-up each (NSS,
    /// `/etc/hostname`): a deferred journal that is never written (a clean `migrate
    /// status`) does not make them; one that is written later has the line it would
    /// have had, time stamp included.
    pub fn log_run_start(&mut self, make: impl FnOnce() -> Event + Send + 'static) {
        if self.file.is_none() && self.held.is_none() {
            return;
        }
        let ts = now();
        match self.held.as_mut() {
            Some(held) => held.push(Held::RunStart(ts, Box::new(make))),
            None => {
                let event = make();
                self.append(event.name(), line_of(ts, &event));
            }
        }
    }

    /// Appends an event named at run time with its fields (redacted) and a timestamp.
    pub fn record(&mut self, event: &str, fields: Value) {
        if self.file.is_none() && self.held.is_none() {
            return;
        }
        let mut line = json!({ "ts": now(), "event": event });
        if let (Value::Object(target), Value::Object(extra)) = (&mut line, fields) {
            target.extend(extra);
        }
        self.append(event, line);
    }

    /// Writes one line (held back while a deferred journal has only its frame).
    fn append(&mut self, event: &str, line: Value) {
        let line = crate::redact::redact_json(&line).to_string();
        if let Some(held) = self.held.as_mut() {
            held.push(Held::Line(line));
            if FRAME_EVENTS.contains(&event) {
                return;
            }
            self.write_held();
            return;
        }
        self.write_line(&line);
    }

    /// Creates the file of a deferred journal and writes what it held.
    fn write_held(&mut self) {
        let held = self.held.take().unwrap_or_default();
        let created = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| File::create(&self.path));
        match created {
            Ok(file) => self.file = Some(file),
            Err(e) => {
                eprintln!("warning: cannot write journal {}: {e}", self.path.display());
                return;
            }
        }
        for line in held {
            match line {
                Held::Line(line) => self.write_line(&line),
                Held::RunStart(ts, make) => {
                    let line = crate::redact::redact_json(&line_of(ts, &make())).to_string();
                    self.write_line(&line);
                }
            }
        }
    }

    fn write_line(&mut self, line: &str) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        // A journal write failing must not hide the operation's own result; it is
        // reported once and the run goes on.
        if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
            eprintln!("warning: cannot write journal {}: {e}", self.path.display());
            self.file = None;
        }
    }
}

/// The line of `event` stamped `ts`.
fn line_of(ts: String, event: &Event) -> Value {
    let mut line = Map::new();
    line.insert("ts".into(), Value::from(ts));
    line.extend(event.to_json());
    Value::Object(line)
}

/// The time stamp of a line written now.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new run id: sortable UTC timestamp plus a short random suffix. The timestamp has
/// milliseconds so that two runs in the same second still sort in the order they ran
/// (`dbflow runs --last` takes the greatest id).
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos() as u64 ^ (std::process::id() as u64).rotate_left(17);
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        (nanos ^ (nanos >> 16)) & 0xffff
    )
}

/// Reads a journal back, one value per line (unreadable lines are skipped and counted).
pub fn read(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    Ok(BufReader::new(file)
        .lines()
        .map_while(std::result::Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// Reads a journal back as events, one per line (unreadable lines are skipped). Lines
/// written before events were typed read back as the same events.
pub fn events(path: &Path) -> Result<Vec<Recorded>> {
    Ok(read(path)?
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(object) => Some(Recorded::from_json(object)),
            _ => None,
        })
        .collect())
}

/// All journals under `root`, newest first.
pub fn list(root: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(RUNS_DIR))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.reverse();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of a journal without their time stamps.
    fn lines_without_ts(path: &Path) -> Vec<String> {
        read(path)
            .unwrap()
            .into_iter()
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("ts");
                v.to_string()
            })
            .collect()
    }

    #[test]
    fn a_typed_event_is_written_as_the_untyped_call_wrote_it_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::create(dir.path(), "r1").unwrap();
        let reason = "deploy with postgres://app:hunter2@db/app".to_string();
        journal.log(Event::OnFailureSkipped {
            workflow: "deploy".into(),
            failed_step: "deploy-3".into(),
            handler: "rollback".into(),
            reason: reason.clone(),
        });
        journal.record(
            "on_failure_skipped",
            json!({ "workflow": "deploy", "failed_step": "deploy-3", "handler": "rollback", "reason": reason }),
        );
        let path = journal.path().to_path_buf();
        drop(journal);
        let lines = lines_without_ts(&path);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], lines[1]);
        assert!(!lines[0].contains("hunter2"), "{}", lines[0]);
        let events = events(&path).unwrap();
        assert!(matches!(
            &events[0].line,
            Line::Event(Event::OnFailureSkipped { failed_step, .. }) if failed_step == "deploy-3"
        ));
        assert_eq!(events[0].line, events[1].line);
    }

    #[test]
    fn a_deferred_journal_still_holds_back_a_typed_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::deferred(dir.path(), "r2");
        journal.log(Event::FailureIgnored { step: "s".into() });
        assert!(journal.path().exists(), "failure_ignored is worth keeping");
        let mut quiet = Journal::deferred(dir.path(), "r3");
        quiet.log(Event::StepStart {
            workflow: "w".into(),
            step: "s".into(),
            name: "s".into(),
            kind: "status".into(),
            index: 1,
        });
        assert!(!quiet.path().exists(), "a frame alone leaves no journal");
    }

    fn run_start(user: &str) -> Event {
        Event::RunStart {
            run_id: "r".into(),
            target: "migrate status".into(),
            kind: "workflow".into(),
            env: "prod".into(),
            env_decided_by: "--env".into(),
            protection: "protected".into(),
            url: "postgres://app:hunter2@db/app".into(),
            user: user.into(),
            host: "h".into(),
            pid: 7,
            dbflow_version: "0".into(),
            yes: false,
        }
    }

    /// A deferred journal gathers the run start's fields only if it is written, and then
    /// writes the line it would have written at once: same stamp, same fields, redacted.
    #[test]
    fn a_deferred_run_start_is_made_only_when_the_journal_is_written() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let made = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&made);
        let mut quiet = Journal::deferred(dir.path(), "quiet");
        quiet.log_run_start(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            run_start("nobody")
        });
        quiet.log(Event::RunEnd {
            result: "succeeded".into(),
            exit_code: 0,
            failed_step: None,
            changes: Changes::default(),
            error: None,
            duration_ms: 1,
        });
        assert!(!quiet.path().exists());
        drop(quiet);
        assert_eq!(
            made.load(Ordering::SeqCst),
            0,
            "made for a journal never written"
        );

        let counter = Arc::clone(&made);
        let mut kept = Journal::deferred(dir.path(), "kept");
        let before = now();
        kept.log_run_start(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            run_start("alice")
        });
        std::thread::sleep(std::time::Duration::from_millis(5));
        kept.log(Event::FailureIgnored { step: "s".into() });
        let path = kept.path().to_path_buf();
        drop(kept);
        assert_eq!(made.load(Ordering::SeqCst), 1);
        let lines = read(&path).unwrap();
        assert_eq!(lines.len(), 2);
        let ts = lines[0]["ts"].as_str().unwrap();
        assert!(ts >= before.as_str() && ts < lines[1]["ts"].as_str().unwrap());
        assert!(!lines[0].to_string().contains("hunter2"), "{}", lines[0]);
        let events = events(&path).unwrap();
        let Line::Event(event) = &events[0].line else {
            panic!("not a typed line: {:?}", events[0].line)
        };
        let mut expected = run_start("alice");
        if let Event::RunStart { url, .. } = &mut expected {
            *url = crate::redact::redact(url);
        }
        assert_eq!(event, &expected);

        let mut direct = Journal::create(dir.path(), "direct").unwrap();
        direct.log_run_start(|| run_start("bob"));
        let path = direct.path().to_path_buf();
        drop(direct);
        assert!(read(&path).unwrap()[0]["user"] == "bob");
    }
}
