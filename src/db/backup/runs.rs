//! What the run journals (`.dbflow/runs/*.jsonl`) say about deploys: which runs reached
//! a `deploy` step on an environment, the backup each took (or reused) before its first
//! `deploy` step — its rollback point — and when each started, by this machine's clock
//! and, through the clock reading its `backup` step journaled, by the database
//! server's.

use crate::error::{Error, Result};
use crate::journal;
use chrono::{DateTime, Utc};
use std::path::Path;

/// One run, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Its id.
    pub run_id: String,
    /// The environment it ran on.
    pub env: String,
    /// `run_start`, by the clock of the machine it ran on.
    pub started: DateTime<Utc>,
    /// How far the database server's clock was ahead of that machine's (from the
    /// `server_clock` a `backup` step of the run journaled), if it was read.
    pub server_ahead_by: Option<chrono::Duration>,
    /// The backup a `backup` step took or reused before the first `deploy` step.
    pub rollback_point: Option<String>,
    /// Whether the run reached a `deploy` step.
    pub deployed: bool,
}

impl RunRecord {
    /// When the run started by the database server's clock, if the run read it.
    pub fn started_by_server(&self) -> Option<DateTime<Utc>> {
        self.server_ahead_by.map(|d| self.started + d)
    }
}

fn timestamp(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Reads one run from its journal events; `None` without a `run_start`.
pub fn record(events: &[serde_json::Value]) -> Option<RunRecord> {
    let start = events.iter().find(|e| e["event"] == "run_start")?;
    let mut run = RunRecord {
        run_id: start["run_id"].as_str()?.to_string(),
        env: start["env"].as_str().unwrap_or_default().to_string(),
        started: timestamp(&start["ts"])?,
        server_ahead_by: None,
        rollback_point: None,
        deployed: false,
    };
    for event in events {
        if event["event"] == "step_start" && event["kind"] == "deploy" {
            run.deployed = true;
        }
        if event["event"] != "step_end" || event["kind"] != "backup" {
            continue;
        }
        let outputs = &event["outputs"];
        if run.server_ahead_by.is_none() {
            let clock = &outputs["server_clock"];
            if let (Some(server), Some(host)) =
                (timestamp(&clock["server"]), timestamp(&clock["host"]))
            {
                run.server_ahead_by = Some(server - host);
            }
        }
        if !run.deployed && event["outcome"] == "succeeded" {
            if let Some(id) = outputs[crate::journal::BACKUP_ID].as_str() {
                run.rollback_point = Some(id.to_string());
            }
        }
    }
    Some(run)
}

/// The runs journaled here on `env`, newest first.
pub fn of_env(project_root: &Path, env: &str) -> Vec<RunRecord> {
    let mut runs: Vec<RunRecord> = journal::list(project_root)
        .iter()
        .filter_map(|path| journal::read(path).ok())
        .filter_map(|events| record(&events))
        .filter(|run| run.env == env)
        .collect();
    runs.sort_by(|a, b| (b.started, &b.run_id).cmp(&(a.started, &a.run_id)));
    runs
}

/// The run `run` (a unique prefix of its id is enough).
pub fn find(project_root: &Path, run: &str) -> Result<RunRecord> {
    let matches: Vec<_> = journal::list(project_root)
        .into_iter()
        .filter(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy().starts_with(run))
        })
        .collect();
    let path = match matches.as_slice() {
        [one] => one,
        [] => {
            return Err(Error::Usage(format!(
                "no run `{run}` in {} (`dbflow runs` lists them)",
                journal::RUNS_DIR
            )))
        }
        many => {
            return Err(Error::Usage(format!(
                "`{run}` matches {} runs: give more of its id",
                many.len()
            )))
        }
    };
    let events = journal::read(path)?;
    record(&events).ok_or_else(|| {
        Error::failed(format!(
            "{} has no readable run_start: cannot tell when run `{run}` started",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_rollback_point_is_the_backup_taken_before_the_first_deploy_step() {
        let events = vec![
            json!({"ts": "2024-07-04T10:00:00.000Z", "event": "run_start", "run_id": "r1", "env": "production"}),
            json!({"event": "step_start", "kind": "backup"}),
            json!({"event": "step_end", "kind": "backup", "outcome": "succeeded", "outputs": {
                "backup_id": "20240704_100001_pre-deploy",
                "server_clock": {"server": "2024-07-04T10:00:31Z", "host": "2024-07-04T10:00:01Z"}}}),
            json!({"event": "step_start", "kind": "deploy"}),
            json!({"event": "step_end", "kind": "deploy", "outcome": "failed"}),
            json!({"event": "step_end", "kind": "backup", "outcome": "succeeded", "outputs": {"backup_id": "later"}}),
            json!({"event": "step_end", "kind": "rollback", "outcome": "succeeded", "outputs": {"backup_id": "x"}}),
        ];
        let run = record(&events).unwrap();
        assert!(run.deployed);
        assert_eq!(
            run.rollback_point.as_deref(),
            Some("20240704_100001_pre-deploy")
        );
        assert_eq!(
            run.started_by_server().unwrap().to_rfc3339(),
            "2024-07-04T10:00:30+00:00"
        );
    }
}
