//! The fleet journal: `.dbflow/fleets/<run-id>/<part>.jsonl`, one JSON object per line,
//! appended and flushed as targets start and end (a killed run leaves everything up to
//! the kill). `<part>` is `all`, or `shard-I-of-N` so that shards running at once on
//! other machines never write the same file. Each target's own run has its ordinary
//! journal in `.dbflow/runs/`; this one ties them together: the fleet summary and
//! `--resume` read it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Folder (under the project root) of the fleet journals.
pub const FLEETS_DIR: &str = ".dbflow/fleets";

/// How a target's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The workflow succeeded.
    Succeeded,
    /// The workflow failed (its `on_failure` ran, if it has one).
    Failed,
    /// A signal stopped it (between migrations).
    Interrupted,
    /// Never started (the failure budget was spent, or a signal came first).
    NotStarted,
    /// Started, and no end was recorded (the process was killed).
    Unknown,
}

impl Outcome {
    /// How it is shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::NotStarted => "not started",
            Outcome::Unknown => "unknown (killed?)",
        }
    }
}

/// One target's result, as the fleet journal records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    /// The target.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Migrations committed by its run.
    #[serde(default)]
    pub applied: Vec<String>,
    /// How long its run took.
    #[serde(default)]
    pub duration_ms: u64,
    /// The backup its run took or reused.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// Its run id (`dbflow runs ID`).
    #[serde(default)]
    pub run_id: Option<String>,
    /// Why it failed (first line).
    #[serde(default)]
    pub error: Option<String>,
    /// Its wave (1-based).
    #[serde(default)]
    pub wave: usize,
    /// Which journal part recorded it.
    #[serde(default)]
    pub part: String,
}

/// An open fleet journal part.
pub struct Record {
    file: std::sync::Mutex<std::fs::File>,
    path: PathBuf,
}

/// The folder of fleet run `run_id`.
pub fn dir(root: &Path, run_id: &str) -> PathBuf {
    root.join(FLEETS_DIR).join(run_id)
}

impl Record {
    /// Opens (appending) `<root>/.dbflow/fleets/<run_id>/<part>.jsonl`.
    pub fn open(root: &Path, run_id: &str, part: &str) -> Result<Record> {
        let dir = dir(root, run_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{part}.jsonl"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Record {
            file: std::sync::Mutex::new(file),
            path,
        })
    }

    /// Where it is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (redacted) with a timestamp, flushed at once.
    pub fn event(&self, event: &str, fields: Value) {
        let mut line = json!({
            "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "event": event,
        });
        if let (Value::Object(target), Value::Object(extra)) = (&mut line, fields) {
            target.extend(extra);
        }
        let line = crate::redact::redact_json(&line).to_string();
        if let Ok(mut file) = self.file.lock() {
            // A journal write failing must not hide the targets' own results.
            if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
                eprintln!(
                    "warning: cannot write fleet journal {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// What the journal parts in `dirs` say about each target, the last word per target
/// winning (a resumed run's result replaces the interrupted one). A target started and
/// never ended is `Unknown`. Also returns the workflow and environment recorded.
pub fn read(dirs: &[PathBuf]) -> Result<Read> {
    let mut out = Read::default();
    let mut lines: Vec<(String, String, Value)> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        for file in files {
            let part = file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            for value in crate::journal::read(&file)? {
                let ts = value["ts"].as_str().unwrap_or_default().to_string();
                lines.push((ts, part.clone(), value));
            }
            out.parts.push(part);
        }
    }
    // Parts from several machines interleave by time.
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, part, value) in lines {
        match value["event"].as_str() {
            Some("fleet_start") => {
                out.workflow = value["workflow"].as_str().map(str::to_string);
                out.env = value["env"].as_str().map(str::to_string);
                out.attempts += 1;
                *out.attempts_by_part.entry(part.clone()).or_default() += 1;
            }
            Some("target_start") => {
                let target = value["target"].as_str().unwrap_or_default().to_string();
                out.results.insert(
                    target.clone(),
                    TargetResult {
                        target,
                        outcome: Outcome::Unknown,
                        applied: Vec::new(),
                        duration_ms: 0,
                        backup_id: None,
                        run_id: value["run_id"].as_str().map(str::to_string),
                        error: None,
                        wave: value["wave"].as_u64().unwrap_or(0) as usize,
                        part,
                    },
                );
            }
            Some("target_end") => {
                if let Ok(mut result) = serde_json::from_value::<TargetResult>(value.clone()) {
                    result.part = part;
                    out.results.insert(result.target.clone(), result);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A fleet journal read back.
#[derive(Debug, Default)]
pub struct Read {
    /// The workflow run.
    pub workflow: Option<String>,
    /// The environment.
    pub env: Option<String>,
    /// How many times a part started (the first run plus resumes, over all parts).
    pub attempts: usize,
    /// How many times each part started.
    pub attempts_by_part: std::collections::HashMap<String, usize>,
    /// The parts read (`all`, `shard-0-of-4`, …).
    pub parts: Vec<String>,
    /// The last result of each target, in first-seen order.
    pub results: indexmap::IndexMap<String, TargetResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_merge_and_the_last_word_wins() {
        let dir = std::env::temp_dir().join(format!("dbflow-record-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Record::open(&dir, "r1", "shard-0-of-2").unwrap();
        let b = Record::open(&dir, "r1", "shard-1-of-2").unwrap();
        a.event(
            "fleet_start",
            json!({ "workflow": "deploy", "env": "prod" }),
        );
        b.event(
            "fleet_start",
            json!({ "workflow": "deploy", "env": "prod" }),
        );
        a.event(
            "target_start",
            json!({ "target": "x", "wave": 1, "run_id": "r1.x" }),
        );
        b.event(
            "target_start",
            json!({ "target": "y", "wave": 1, "run_id": "r1.y" }),
        );
        b.event(
            "target_end",
            json!({ "target": "y", "outcome": "failed", "applied": ["m1"] }),
        );
        // A resumed attempt of shard 1 ends y again.
        b.event(
            "fleet_start",
            json!({ "workflow": "deploy", "env": "prod" }),
        );
        b.event(
            "target_end",
            json!({ "target": "y", "outcome": "succeeded", "applied": ["m2"] }),
        );
        let read = read(&[super::dir(&dir, "r1")]).unwrap();
        assert_eq!(read.workflow.as_deref(), Some("deploy"));
        assert_eq!(read.attempts_by_part["shard-1-of-2"], 2);
        assert_eq!(
            read.results["x"].outcome,
            Outcome::Unknown,
            "started, never ended"
        );
        assert_eq!(read.results["y"].outcome, Outcome::Succeeded);
        assert_eq!(read.results["y"].applied, vec!["m2".to_string()]);
        assert_eq!(read.results["y"].part, "shard-1-of-2");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
