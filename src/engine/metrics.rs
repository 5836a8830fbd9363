//! Prometheus textfile-collector metrics (`metrics.textfile`), so the runbooks' alerts on
//! failed backups, failed migrations and stale restore drills have something to fire on.
//! After each backup, drill and deploy the outcome is folded into a small state file
//! (`.dbflow/metrics.json`, per operation and environment) and the whole textfile is
//! rewritten atomically from it (node_exporter never reads half a file).

use crate::config::Project;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Where the state behind the textfile is kept, under the project root.
pub const STATE_FILE: &str = ".dbflow/metrics.json";

/// One operation's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `backup`, `drill` or `deploy`.
    pub operation: &'static str,
    /// Environment name.
    pub env: String,
    /// Whether it succeeded.
    pub success: bool,
    /// How long it took.
    pub duration_seconds: f64,
    /// Extra gauges kept from the last success (`size_bytes`, `rpo_seconds`, …).
    pub gauges: Vec<(&'static str, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Series {
    last_success_timestamp_seconds: Option<f64>,
    last_failure_timestamp_seconds: Option<f64>,
    last_duration_seconds: Option<f64>,
    last_success: Option<f64>,
    successes_total: u64,
    failures_total: u64,
    #[serde(default)]
    gauges: BTreeMap<String, f64>,
}

type State = BTreeMap<String, BTreeMap<String, Series>>;

/// Records `sample` and rewrites the textfile; does nothing without `metrics.textfile`.
pub fn record(project: &Project, sample: &Sample) -> Result<(), String> {
    let Some(textfile) = &project.metrics_textfile else {
        return Ok(());
    };
    let state_path = project.root.join(STATE_FILE);
    let mut state: State = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let series = state
        .entry(sample.operation.to_string())
        .or_default()
        .entry(sample.env.clone())
        .or_default();
    series.last_duration_seconds = Some(sample.duration_seconds);
    series.last_success = Some(if sample.success { 1.0 } else { 0.0 });
    if sample.success {
        series.last_success_timestamp_seconds = Some(now);
        series.successes_total += 1;
        for (name, value) in &sample.gauges {
            series.gauges.insert(name.to_string(), *value);
        }
    } else {
        series.last_failure_timestamp_seconds = Some(now);
        series.failures_total += 1;
    }
    let json = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
    write_atomically(&state_path, &json)?;
    write_atomically(&project.root.join(textfile), &render(&project.name, &state))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .map_err(|e| format!("writing {}: {e}", Path::new(&tmp).display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful {op}.",
    ),
    (
        "last_failure_timestamp_seconds",
        "gauge",
        "Unix time of the last failed {op}.",
    ),
    (
        "last_duration_seconds",
        "gauge",
        "Duration of the last {op}, successful or not.",
    ),
    (
        "last_success",
        "gauge",
        "1 if the last {op} succeeded, 0 if it failed.",
    ),
    ("successes_total", "counter", "Successful {op}s recorded."),
    ("failures_total", "counter", "Failed {op}s recorded."),
];

fn gauge_help(name: &str) -> &'static str {
    match name {
        "size_bytes" => "Size of the last successful backup's dump.",
        "rpo_seconds" => "Age of the backup the last successful drill restored (recovery point).",
        "rto_seconds" => "Restore duration of the last successful drill (recovery time).",
        _ => "Value recorded by the last successful run.",
    }
}

/// The textfile: every series of every operation and environment.
fn render(project: &str, state: &State) -> String {
    let mut out = String::new();
    let label = |env: &str| {
        format!(
            "{{project=\"{}\",env=\"{}\"}}",
            escape(project),
            escape(env)
        )
    };
    for (op, envs) in state {
        for (suffix, kind, help) in HELP {
            let name = format!("dbflow_{op}_{suffix}");
            let _ = writeln!(out, "# HELP {name} {}", help.replace("{op}", op));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (env, s) in envs {
                let value = match *suffix {
                    "last_success_timestamp_seconds" => s.last_success_timestamp_seconds,
                    "last_failure_timestamp_seconds" => s.last_failure_timestamp_seconds,
                    "last_duration_seconds" => s.last_duration_seconds,
                    "last_success" => s.last_success,
                    "successes_total" => Some(s.successes_total as f64),
                    _ => Some(s.failures_total as f64),
                };
                if let Some(v) = value {
                    let _ = writeln!(out, "{name}{} {}", label(env), number(v));
                }
            }
        }
        let gauges: std::collections::BTreeSet<&String> =
            envs.values().flat_map(|s| s.gauges.keys()).collect();
        for gauge in gauges {
            let name = format!("dbflow_{op}_last_{gauge}");
            let _ = writeln!(out, "# HELP {name} {}", gauge_help(gauge));
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (env, s) in envs {
                if let Some(v) = s.gauges.get(gauge) {
                    let _ = writeln!(out, "{name}{} {}", label(env), number(*v));
                }
            }
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_textfile_format() {
        let mut state = State::new();
        state.entry("backup".into()).or_default().insert(
            "production".into(),
            Series {
                last_success_timestamp_seconds: Some(1_720_058_400.0),
                last_failure_timestamp_seconds: None,
                last_duration_seconds: Some(12.5),
                last_success: Some(1.0),
                successes_total: 3,
                failures_total: 1,
                gauges: BTreeMap::from([("size_bytes".into(), 1024.0)]),
            },
        );
        let text = render("acme \"shop\"", &state);
        assert!(text.contains("# TYPE dbflow_backup_failures_total counter\n"));
        assert!(text.contains(
            "dbflow_backup_last_success_timestamp_seconds{project=\"acme \\\"shop\\\"\",env=\"production\"} 1720058400\n"
        ));
        assert!(text.contains("dbflow_backup_last_duration_seconds{project=\"acme \\\"shop\\\"\",env=\"production\"} 12.500\n"));
        assert!(text.contains("dbflow_backup_last_size_bytes{project=\"acme \\\"shop\\\"\",env=\"production\"} 1024\n"));
        assert!(
            !text.contains("last_failure_timestamp_seconds{"),
            "never failed: no sample"
        );
    }
}
