//! What dbflow recorded, read back for the operations page: the drill reports
//! (`<backups>/drills/drills.jsonl`), each environment's backup catalog and the run
//! journals (`.dbflow/runs/*.jsonl`). Reading never fails the page: a record that cannot
//! be read is named in [`History::skipped`] instead of being dropped silently.

use crate::config::repository::Location;
use crate::config::Project;
use crate::db::backup::Catalog;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where `steps::drill` appends its JSON reports, under the catalog root (a layer above
/// this one owns the constant; `tests/ops_page.rs` checks the two agree).
pub const DRILL_REPORTS: &str = "drills/drills.jsonl";

/// How many runs the page lists (newest first); it says how many it left out.
pub const RECENT_RUNS: usize = 50;

/// One restore drill, as its report recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    /// When it started.
    pub date: DateTime<Utc>,
    /// Environment drilled.
    pub environment: String,
    /// PASS (every check passed and nothing stopped it) or FAIL.
    pub passed: bool,
    /// The run.
    pub run_id: String,
    /// The backup restored.
    pub backup_id: Option<String>,
    /// RPO: the backup's age when the restore started.
    pub rpo_seconds: Option<f64>,
    /// RTO: how long the restore took.
    pub rto_seconds: Option<f64>,
    /// The names of the checks that failed.
    pub failed_checks: Vec<String>,
    /// What stopped the drill, if something did.
    pub error: Option<String>,
}

/// One backup of a catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    /// Its id.
    pub id: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Bytes of the dump.
    pub size: u64,
    /// Whether its last verification passed.
    pub verified: bool,
}

/// The backups of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvBackups {
    /// The environment.
    pub env: String,
    /// Where they live, as shown (relative to the project root when inside it).
    pub location: String,
    /// Backups in the catalog, oldest first; empty when they live in object storage.
    pub backups: Vec<Backup>,
    /// True when the backups live in object storage, which this page does not list
    /// (that would need credentials and the network; `dbflow backup list` does it).
    pub remote: bool,
}

/// One run, from its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id.
    pub run_id: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// The workflow or task.
    pub target: String,
    /// `workflow` or `task`.
    pub kind: String,
    /// The environment.
    pub env: String,
    /// Who ran it (`crate::actor`).
    pub user: String,
    /// `succeeded`, `failed`, `interrupted`, or `incomplete` (no `run_end`: still
    /// running, or the process died).
    pub outcome: String,
    /// How long it took, when it ended.
    pub duration_ms: Option<u64>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Everything the operations page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Drills, oldest first.
    pub drills: Vec<Drill>,
    /// Per environment, in the Workflowfile's order.
    pub backups: Vec<EnvBackups>,
    /// The newest runs (at most [`RECENT_RUNS`]), newest first.
    pub runs: Vec<Run>,
    /// How many journals there are in all.
    pub total_runs: usize,
    /// Where the drill reports were read from.
    pub drill_sources: Vec<String>,
    /// Records that could not be read, each with where and why.
    pub skipped: Vec<String>,
    /// Each fleet environment's recorded version matrix.
    pub fleets: Vec<super::fleet::FleetEnv>,
}

impl History {
    /// Reads everything `project` recorded.
    pub fn read(project: &Project) -> History {
        let mut history = History::default();
        let mut roots = BTreeSet::new();
        for env in project.environments.keys() {
            let (backups, root) = env_backups(project, env, &mut history.skipped);
            if let Some(root) = root {
                roots.insert(root);
            }
            history.backups.push(backups);
        }
        for root in roots {
            let path = root.join(DRILL_REPORTS);
            if path.exists() {
                history.drill_sources.push(shown(project, &path));
                history
                    .drills
                    .extend(drills(&path, &shown(project, &path), &mut history.skipped));
            }
        }
        history
            .drills
            .sort_by(|a, b| (a.date, &a.run_id).cmp(&(b.date, &b.run_id)));
        (history.runs, history.total_runs) = runs(&project.root, &mut history.skipped);
        history.fleets = super::fleet::read(project, &mut history.skipped);
        history
    }
}

/// A path relative to the project root when it is inside it (absolute paths of the
/// machine that built the page tell a reader nothing).
fn shown(project: &Project, path: &Path) -> String {
    path.strip_prefix(&project.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

/// The catalog of `env`, and the folder its drill reports live under (none for object
/// storage).
fn env_backups(
    project: &Project,
    env: &str,
    skipped: &mut Vec<String>,
) -> (EnvBackups, Option<PathBuf>) {
    let repository = project.backup_settings(env).repository;
    if let Some(Ok(location @ Location::Object { .. })) = repository
        .as_deref()
        .map(|raw| Location::parse(raw, &project.root))
    {
        let backups = EnvBackups {
            env: env.to_string(),
            location: location.display(),
            backups: Vec::new(),
            remote: true,
        };
        return (backups, None);
    }
    let catalog = Catalog::new(project, env);
    let listing = catalog.scan();
    for (path, why) in &listing.unreadable {
        skipped.push(format!("{}: {why}", shown(project, path)));
    }
    let mut backups: Vec<Backup> = listing
        .entries
        .iter()
        .map(|e| Backup {
            id: e.id().to_string(),
            created_at: e.manifest.created_at,
            size: e.manifest.size,
            verified: e.verified(),
        })
        .collect();
    backups.reverse();
    let backups = EnvBackups {
        env: env.to_string(),
        location: shown(project, &catalog.dir),
        backups,
        remote: false,
    };
    (backups, Some(catalog.root))
}

/// The drill reports of one `drills.jsonl`.
fn drills(path: &Path, shown: &str, skipped: &mut Vec<String>) -> Vec<Drill> {
    let text_of_file = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            skipped.push(format!("{shown}: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, line) in text_of_file.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| drill(&v))
        {
            Some(d) => out.push(d),
            None => skipped.push(format!("{shown}:{}: not a drill report", i + 1)),
        }
    }
    out
}

fn drill(v: &Value) -> Option<Drill> {
    Some(Drill {
        date: timestamp(&v["date"])?,
        environment: text(&v["environment"])?,
        passed: v["result"] == "PASS",
        run_id: text(&v["run_id"]).unwrap_or_default(),
        backup_id: text(&v["backup_id"]),
        rpo_seconds: v["backup_age_seconds"].as_f64(),
        rto_seconds: v["restore_seconds"].as_f64(),
        failed_checks: v["checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|c| c["passed"] == false)
                    .filter_map(|c| text(&c["name"]))
                    .collect()
            })
            .unwrap_or_default(),
        error: text(&v["error"]),
    })
}

/// The newest [`RECENT_RUNS`] journaled runs, newest first, and how many journals there
/// are. Run ids start with their UTC start time, so the newest journals are the first
/// names: a long history is listed, not read.
fn runs(root: &Path, skipped: &mut Vec<String>) -> (Vec<Run>, usize) {
    let mut runs = Vec::new();
    let paths = crate::journal::list(root);
    let total = paths.len();
    for path in paths {
        if runs.len() == RECENT_RUNS {
            break;
        }
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match crate::journal::read(&path).map(|events| run(&events)) {
            Ok(Some(run)) => runs.push(run),
            Ok(None) => skipped.push(format!("{shown}: no run_start event")),
            Err(e) => skipped.push(format!("{shown}: {e}")),
        }
    }
    runs.sort_by(|a, b| (b.started, &b.run_id).cmp(&(a.started, &a.run_id)));
    (runs, total)
}

fn run(events: &[Value]) -> Option<Run> {
    let start = events.iter().find(|e| e["event"] == "run_start")?;
    let end = events.iter().find(|e| e["event"] == "run_end");
    Some(Run {
        run_id: text(&start["run_id"])?,
        started: timestamp(&start["ts"])?,
        target: text(&start["target"]).unwrap_or_default(),
        kind: text(&start["kind"]).unwrap_or_default(),
        env: text(&start["env"]).unwrap_or_default(),
        user: text(&start["user"]).unwrap_or_default(),
        outcome: end
            .and_then(|e| text(&e["result"]))
            .unwrap_or_else(|| "incomplete".to_string()),
        duration_ms: end.and_then(|e| e["duration_ms"].as_u64()),
        failed_step: end.and_then(|e| text(&e["failed_step"])),
        error: end.and_then(|e| text(&e["error"])),
    })
}
