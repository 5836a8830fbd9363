//! The operations page's version matrix of each fleet environment, from what the fleet
//! runs recorded (`.dbflow/fleets/<run id>/*.jsonl`, read by the runner's own reader):
//! how many targets stand at each migration their runs applied last, and how each
//! target's latest run ended. It never connects to a database: `dbflow migrate status`
//! is the live view, and the page says so.

use crate::config::Project;
use crate::fleet::record;
use indexmap::IndexMap;
use std::fmt::Write;
use std::path::Path;

/// How many of an environment's newest fleet runs the matrix folds together.
pub const FLEET_RUNS: usize = 50;

/// One fleet environment's recorded state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetEnv {
    /// The environment.
    pub env: String,
    /// Fleet runs read (their ids, oldest first).
    pub runs: Vec<String>,
    /// The newest run's workflow.
    pub latest_workflow: String,
    /// Per target: the outcome of its latest run and the last migration a run of it
    /// applied (`None`: none recorded), in first-seen order.
    pub targets: IndexMap<String, (String, Option<String>)>,
}

impl FleetEnv {
    /// Targets per last applied migration, most targets first.
    pub fn by_head(&self) -> Vec<(Option<String>, Vec<String>)> {
        group(self.targets.iter().map(|(t, (_, head))| (head.clone(), t)))
    }

    /// Targets per outcome of their latest run, most targets first.
    pub fn by_outcome(&self) -> Vec<(String, Vec<String>)> {
        group(self.targets.iter().map(|(t, (o, _))| (o.clone(), t)))
    }
}

fn group<K: Ord + Clone + std::hash::Hash>(
    items: impl Iterator<Item = (K, impl ToString)>,
) -> Vec<(K, Vec<String>)> {
    let mut groups: IndexMap<K, Vec<String>> = IndexMap::new();
    for (k, target) in items {
        groups.entry(k).or_default().push(target.to_string());
    }
    let mut out: Vec<_> = groups.into_iter().collect();
    // Targets finish in any order under concurrency: the page lists them by name.
    for (_, targets) in &mut out {
        targets.sort();
    }
    out.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    out
}

/// Every fleet environment of `project` with what its newest fleet runs recorded;
/// journals that cannot be read go to `skipped`.
pub fn read(project: &Project, skipped: &mut Vec<String>) -> Vec<FleetEnv> {
    let fleet_envs: Vec<&String> = project
        .environments
        .iter()
        .filter(|(_, e)| e.fleet.is_some())
        .map(|(n, _)| n)
        .collect();
    if fleet_envs.is_empty() {
        return Vec::new();
    }
    let root = project.root.join(record::FLEETS_DIR);
    // In the order the runs started (`--run-id` may name a run anything).
    let mut ids: Vec<(String, String)> = std::fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| {
                    (
                        started(&e.path()),
                        e.file_name().to_string_lossy().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    let mut out: Vec<FleetEnv> = fleet_envs
        .iter()
        .map(|env| FleetEnv {
            env: env.to_string(),
            ..FleetEnv::default()
        })
        .collect();
    let mut read_runs = Vec::new();
    // Newest first, so only the newest FLEET_RUNS of each environment are read in full.
    for id in ids.iter().rev() {
        let dir = record::dir(&project.root, id);
        match record::read(std::slice::from_ref(&dir)) {
            Ok(read) => {
                let Some(env) = read.env.clone() else {
                    skipped.push(format!("{}: no fleet_start event", shown(&dir, project)));
                    continue;
                };
                let count = read_runs
                    .iter()
                    .filter(|(e, _, _): &&(String, String, record::Read)| *e == env)
                    .count();
                if count < FLEET_RUNS {
                    read_runs.push((env, id.clone(), read));
                }
            }
            Err(e) => skipped.push(format!("{}: {e}", shown(&dir, project))),
        }
    }
    // Oldest first: a later run's word on a target replaces an earlier one's.
    for (env, id, read) in read_runs.into_iter().rev() {
        let Some(fleet) = out.iter_mut().find(|f| f.env == env) else {
            continue;
        };
        fleet.runs.push(id);
        fleet.latest_workflow = read.workflow.clone().unwrap_or_default();
        for (target, result) in read.results {
            let entry = fleet
                .targets
                .entry(target)
                .or_insert_with(|| (String::new(), None));
            entry.0 = result.outcome.as_str().to_string();
            // A run that applied nothing (up to date, or failed and restored) leaves the
            // target where an earlier run put it.
            if let Some(last) = result.applied.last() {
                entry.1 = Some(last.clone());
            }
        }
    }
    out
}

/// When a fleet run started: the earliest first timestamp of its parts (each part's
/// first line is its `fleet_start`); "" when unreadable (sorted first, then by name).
fn started(dir: &Path) -> String {
    use std::io::BufRead;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| {
            let file = std::fs::File::open(e.path()).ok()?;
            let line = std::io::BufReader::new(file).lines().next()?.ok()?;
            let value: serde_json::Value = serde_json::from_str(&line).ok()?;
            value["ts"].as_str().map(str::to_string)
        })
        .min()
        .unwrap_or_default()
}

fn shown(path: &Path, project: &Project) -> String {
    path.strip_prefix(&project.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn t(text: &str) -> String {
    super::chart::escape(text)
}

/// The section for every fleet environment (nothing when the project has none).
pub fn section(out: &mut String, fleets: &[FleetEnv]) {
    if fleets.is_empty() {
        return;
    }
    out.push_str(r#"<section id="fleets"><h2>Fleets: version matrix</h2><p>From the fleet journals (<code>.dbflow/fleets/</code>), not from the databases: <code>dbflow migrate status --env ENV</code> reads every target's history table (and exits 4 if any is not clean).</p>"#);
    for fleet in fleets {
        let _ = write!(out, r#"<h3 id="fleet-{0}">{0}</h3>"#, t(&fleet.env));
        if fleet.runs.is_empty() {
            let _ = write!(
                out,
                "<p class=\"empty\">No fleet run recorded yet (<code>dbflow run WORKFLOW --env {}</code>).</p>",
                t(&fleet.env)
            );
            continue;
        }
        let latest = fleet.runs.last().cloned().unwrap_or_default();
        let _ = write!(
            out,
            "<p>{} target{} seen in {} fleet run{}; the newest: <code>{}</code> (<code>{}</code>, <code>dbflow fleet summary {}</code>).</p>",
            fleet.targets.len(),
            if fleet.targets.len() == 1 { "" } else { "s" },
            fleet.runs.len(),
            if fleet.runs.len() == 1 { "" } else { "s" },
            t(&latest),
            t(&fleet.latest_workflow),
            t(&latest)
        );
        out.push_str("<table class=\"matrix\"><thead><tr><th>Last migration applied</th><th>Targets</th><th></th></tr></thead><tbody>");
        for (head, targets) in fleet.by_head() {
            let head = match head {
                Some(h) => format!("<code>{}</code>", t(&h)),
                None => "none recorded (nothing applied by these runs)".to_string(),
            };
            let _ = write!(
                out,
                "<tr><td>{head}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                targets.len(),
                t(&targets.join(", "))
            );
        }
        out.push_str("</tbody></table>");
        out.push_str("<table class=\"matrix\"><thead><tr><th>Latest run of the target</th><th>Targets</th><th></th></tr></thead><tbody>");
        for (outcome, targets) in fleet.by_outcome() {
            let class = match outcome.as_str() {
                "succeeded" => "pass",
                "interrupted" | "not started" => "warn",
                _ => "fail",
            };
            let _ = write!(
                out,
                r#"<tr class="{class}"><td><span class="badge {class}">{}</span></td><td class="num">{}</td><td>{}</td></tr>"#,
                t(&outcome),
                targets.len(),
                t(&targets.join(", "))
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}
