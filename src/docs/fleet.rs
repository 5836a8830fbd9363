//! The fleet section of a runbook: where an environment's targets come from, its waves,
//! concurrency and failure budget, in sentences made from the validated `fleet:` (the
//! object the fleet runner reads), never from hand-kept text. URLs are redacted.

use crate::config::fleet::{Fleet, MaxFailures, Source, Wave};
use serde::Serialize;

/// An environment's fleet as documentation shows it.
#[derive(Debug, Serialize, Clone)]
pub struct FleetDoc {
    /// Where the targets come from, in one sentence (Markdown).
    pub source: String,
    /// The targets the Workflowfile lists (empty for a query or a command), each as
    /// `name` or `name` with its own URL (redacted).
    pub targets: Vec<String>,
    /// The URL template for targets without their own URL ("" when none), redacted.
    pub url_template: String,
    /// The waves, in order, one sentence each.
    pub waves: Vec<String>,
    /// Targets at once, with where the number comes from.
    pub concurrency: String,
    /// The failure budget in words.
    pub max_failures: String,
}

/// Shown for a URL written in the Workflowfile: variables stay references, passwords
/// are masked.
fn shown_url(raw: &str) -> String {
    crate::config::DbUrl::new(raw).redacted()
}

fn wave_text(wave: &Wave) -> String {
    match wave {
        Wave::Targets(globs) => format!(
            "the targets whose names match {}",
            globs
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Wave::Percent(p) => {
            format!("{p} % of the selected targets (rounded up, at least one)")
        }
        Wave::Count(1) => "1 target".to_string(),
        Wave::Count(n) => format!("{n} targets"),
        Wave::Rest => "every target not run in an earlier wave".to_string(),
    }
}

/// The documentation of `fleet`; `default_concurrency` is what the runner uses when
/// neither `fleet.concurrency` nor `--concurrency` says.
pub fn fleet_doc(fleet: &Fleet, default_concurrency: usize) -> FleetDoc {
    let (source, targets) = match &fleet.source {
        Source::List(listed) => (
            format!(
                "listed in the Workflowfile ({} target{})",
                listed.len(),
                if listed.len() == 1 { "" } else { "s" }
            ),
            listed
                .iter()
                .map(|t| match &t.url {
                    Some(url) => format!("`{}` at `{}`", t.name, shown_url(&url.value)),
                    None => format!("`{}`", t.name),
                })
                .collect(),
        ),
        Source::Query { sql, catalog_url } => (
            format!(
                "the rows of a query on the catalog database ({}): first column the name, optional second column the URL: `{}`",
                match catalog_url {
                    Some(url) => format!("`{}`", shown_url(&url.value)),
                    None => "the environment's own `url`".to_string(),
                },
                crate::redact::redact(sql.value.trim())
            ),
            Vec::new(),
        ),
        Source::Command(command) => (
            format!(
                "the output of a command run with `sh -c` in the project folder (one target a line, or a JSON array; a failing command lists nothing and the run is refused): `{}`",
                crate::redact::redact(command.value.trim())
            ),
            Vec::new(),
        ),
    };
    let mut waves: Vec<String> = fleet.waves.iter().map(wave_text).collect();
    if waves.is_empty() {
        waves.push("every selected target (no `waves:` declared: one wave)".to_string());
    } else if !fleet.waves.contains(&Wave::Rest) {
        waves.push("the targets left after the declared waves (never silently skipped)".into());
    }
    FleetDoc {
        source,
        targets,
        url_template: fleet
            .url
            .as_ref()
            .map(|u| shown_url(&u.value))
            .unwrap_or_default(),
        waves,
        concurrency: match fleet.concurrency {
            Some(n) => format!(
                "{n} targets at once (`fleet.concurrency`; `--concurrency N` overrides)"
            ),
            None => format!(
                "{default_concurrency} targets at once (dbflow's default; set `fleet.concurrency` or pass `--concurrency N`)"
            ),
        },
        max_failures: match fleet.max_failures {
            None | Some(MaxFailures::Count(0)) => {
                "0: the first failed target stops new starts".to_string()
            }
            Some(MaxFailures::Count(n)) => format!(
                "{n}: once more than {n} target{} failed, no further target starts",
                if n == 1 { " has" } else { "s have" }
            ),
            Some(MaxFailures::Percent(p)) => format!(
                "{p} % of the selected targets: once more than that have failed, no further target starts"
            ),
        },
    }
}
