//! The operations page: one HTML document, inline CSS, no script, readable from
//! `file://`. Every piece of recorded text passes through [`crate::redact`] before it is
//! escaped, whatever the recorder already did: a journal written by an older dbflow, or
//! edited by hand, must not put a password on a page people share.

use super::chart::{self, Chart, Point, Series, Unit};
use super::history::{Drill, History, Run};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// The page's stylesheet (inline in the page; the site may reuse it).
pub const OPS_CSS: &str = include_str!("ops.css");

/// How many drills the table lists (newest first); the charts show every one.
pub const RECENT_DRILLS: usize = 50;

/// Recorded text made safe for the page: redacted, then escaped.
fn t(text: &str) -> String {
    chart::escape(&crate::redact::redact(text))
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn seconds(s: Option<f64>) -> String {
    s.map(|s| chart::format_value(Unit::Seconds, s))
        .unwrap_or_else(|| "–".into())
}

/// The whole page for `project_name` from `history`.
pub fn render(project_name: &str, history: &History) -> String {
    let mut body = String::new();
    let newest = [
        history.drills.iter().map(|d| d.date).max(),
        history
            .backups
            .iter()
            .flat_map(|e| e.backups.iter().map(|b| b.created_at))
            .max(),
        history.runs.iter().map(|r| r.started).max(),
    ]
    .into_iter()
    .flatten()
    .max();
    let _ = write!(
        body,
        r##"<header><h1>Operations · {}</h1><p class="lede">Built from what dbflow recorded: restore drill reports, the backup catalogs and the run journals{}. Regenerate with <code>dbflow docs --site DIR</code>.</p><nav class="toc"><a href="#drills">Restore drills</a> · <a href="#backups">Backups</a> · <a href="#runs">Recent runs</a>{}</nav></header>"##,
        t(project_name),
        newest
            .map(|n| format!(" (newest record: {})", when(n)))
            .unwrap_or_default(),
        if history.fleets.is_empty() {
            ""
        } else {
            r##" · <a href="#fleets">Fleets</a>"##
        }
    );
    drills_section(&mut body, history);
    backups_section(&mut body, history);
    runs_section(&mut body, &history.runs, history.total_runs);
    super::fleet::section(&mut body, &history.fleets);
    if !history.skipped.is_empty() {
        body.push_str(r#"<section id="skipped"><h2>Records not shown</h2><p>These could not be read and are left out of the figures above:</p><ul>"#);
        for s in &history.skipped {
            let _ = write!(body, "<li><code>{}</code></li>", t(s));
        }
        body.push_str("</ul></section>");
    }
    // The site's bar: the index, each environment's runbook, this page (the names
    // `dbflow docs --site` gives its pages).
    let mut nav = format!("<a href=\"index.html\">{}</a>", t(project_name));
    for env in &history.backups {
        let _ = write!(
            nav,
            " · <a href=\"runbook-{0}.html\">{0}</a>",
            chart::escape(&env.env)
        );
    }
    nav.push_str(" · <a href=\"operations.html\">operations</a>");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Operations · {}</title>\n<style>\n{OPS_CSS}</style>\n</head>\n<body>\n<nav class=\"site\">{nav}</nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        t(project_name)
    )
}

fn figure(out: &mut String, chart: &Chart, caption: &str) {
    let svg = chart::svg(chart);
    if svg.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<figure>{svg}<figcaption>{}{}</figcaption></figure>",
        chart::escape(caption),
        chart::legend(chart)
    );
}

fn drill_label(d: &Drill) -> String {
    format!(
        "{} · {} · {} · RPO {} · RTO {}",
        when(d.date),
        d.environment,
        if d.passed { "PASS" } else { "FAIL" },
        seconds(d.rpo_seconds),
        seconds(d.rto_seconds)
    )
}

fn drills_section(out: &mut String, history: &History) {
    out.push_str(r#"<section id="drills"><h2>Restore drills</h2>"#);
    let drills = &history.drills;
    if drills.is_empty() {
        out.push_str("<p class=\"empty\">No restore drill recorded yet. <code>dbflow drill --env ENV</code> runs one and records its report.</p></section>");
        return;
    }
    let passed = drills.iter().filter(|d| d.passed).count();
    let _ = write!(
        out,
        r#"<p class="summary"><span class="badge pass">{passed} PASS</span> <span class="badge fail">{} FAIL</span> of {} drills, from <code>{}</code>.</p>"#,
        drills.len() - passed,
        drills.len(),
        t(&history.drill_sources.join(", "))
    );
    // Only the results chart colours its points by verdict; RPO and RTO keep their
    // series' colours, so the legend reads.
    let point = |d: &Drill, value: Option<f64>, verdict: bool| {
        value.map(|value| Point {
            at: d.date,
            value,
            label: crate::redact::redact(&drill_label(d)),
            class: verdict.then_some(if d.passed { "pass" } else { "fail" }),
        })
    };
    let results = Chart {
        title: "Restore drill results over time".into(),
        unit: Unit::Verdict,
        series: vec![Series {
            name: "drills".into(),
            key: "drill-result".into(),
            points: drills
                .iter()
                .filter_map(|d| point(d, Some(if d.passed { 1.0 } else { 0.0 }), true))
                .collect(),
        }],
    };
    figure(out, &results, "PASS/FAIL, one point per drill.");
    let times = Chart {
        title: "RPO and RTO of each drill".into(),
        unit: Unit::Seconds,
        series: vec![
            Series {
                name: "RPO (age of the backup restored)".into(),
                key: "rpo".into(),
                points: drills
                    .iter()
                    .filter_map(|d| point(d, d.rpo_seconds, false))
                    .collect(),
            },
            Series {
                name: "RTO (time to restore)".into(),
                key: "rto".into(),
                points: drills
                    .iter()
                    .filter_map(|d| point(d, d.rto_seconds, false))
                    .collect(),
            },
        ],
    };
    figure(
        out,
        &times,
        "RPO and RTO, one point per drill that measured them.",
    );
    if drills.len() > RECENT_DRILLS {
        let _ = write!(
            out,
            "<p>The newest {RECENT_DRILLS} of {} drills (the charts have them all; <code>drills.md</code> beside the reports tells each one).</p>",
            drills.len()
        );
    }
    out.push_str("<table class=\"drills\"><thead><tr><th>Date</th><th>Environment</th><th>Result</th><th>Backup</th><th>RPO</th><th>RTO</th><th>Why it failed</th></tr></thead><tbody>");
    for d in drills.iter().rev().take(RECENT_DRILLS) {
        let why = d
            .error
            .clone()
            .or_else(|| {
                (!d.failed_checks.is_empty())
                    .then(|| format!("failed checks: {}", d.failed_checks.join(", ")))
            })
            .unwrap_or_default();
        let (class, result) = if d.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        let _ = write!(
            out,
            r#"<tr class="{class}"><td>{}</td><td>{}</td><td><span class="badge {class}">{result}</span></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            when(d.date),
            t(&d.environment),
            t(d.backup_id.as_deref().unwrap_or("–")),
            seconds(d.rpo_seconds),
            seconds(d.rto_seconds),
            t(&why)
        );
    }
    out.push_str("</tbody></table></section>");
}

fn backups_section(out: &mut String, history: &History) {
    out.push_str(r#"<section id="backups"><h2>Backups</h2>"#);
    out.push_str("<table class=\"backups\"><thead><tr><th>Environment</th><th>Where</th><th>Backups</th><th>Total size</th><th>Newest</th><th>Verified</th></tr></thead><tbody>");
    for env in &history.backups {
        if env.remote {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td><code>{}</code></td><td colspan="4">in object storage: <code>dbflow backup list --env {}</code> lists them</td></tr>"#,
                t(&env.env),
                t(&env.location),
                t(&env.env)
            );
            continue;
        }
        let total: u64 = env.backups.iter().map(|b| b.size).sum();
        let verified = env.backups.iter().filter(|b| b.verified).count();
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{verified} of {}</td></tr>"#,
            t(&env.env),
            t(&env.location),
            env.backups.len(),
            crate::db::backup::human_size(total),
            env.backups
                .last()
                .map(|b| when(b.created_at))
                .unwrap_or_else(|| "–".into()),
            env.backups.len()
        );
    }
    out.push_str("</tbody></table>");
    // Over time: after each backup still in the catalog, how many it held and their size
    // (backups pruned since are gone from the catalog, so they are not counted).
    let mut count = Vec::new();
    let mut size = Vec::new();
    for env in history.backups.iter().filter(|e| !e.backups.is_empty()) {
        let mut total = 0u64;
        let mut counted = Vec::new();
        let mut sized = Vec::new();
        for (i, b) in env.backups.iter().enumerate() {
            total += b.size;
            let label = crate::redact::redact(&format!(
                "{} · {} · {} · {} backup{}, {} in all",
                when(b.created_at),
                env.env,
                b.id,
                i + 1,
                if i == 0 { "" } else { "s" },
                crate::db::backup::human_size(total)
            ));
            counted.push(Point {
                at: b.created_at,
                value: (i + 1) as f64,
                label: label.clone(),
                class: None,
            });
            sized.push(Point {
                at: b.created_at,
                value: total as f64,
                label,
                class: None,
            });
        }
        count.push(Series {
            name: env.env.clone(),
            key: format!("backup-count:{}", env.env),
            points: counted,
        });
        size.push(Series {
            name: env.env.clone(),
            key: format!("backup-size:{}", env.env),
            points: sized,
        });
    }
    if count.is_empty() {
        out.push_str("<p class=\"empty\">No backup in a catalog yet. <code>dbflow backup create --env ENV</code> takes one.</p>");
    }
    figure(
        out,
        &Chart {
            title: "Backups in the catalog over time".into(),
            unit: Unit::Count,
            series: count,
        },
        "Backups kept, per environment, one point per backup.",
    );
    figure(
        out,
        &Chart {
            title: "Size of the catalog over time".into(),
            unit: Unit::Bytes,
            series: size,
        },
        "Total size of the backups kept, per environment, one point per backup.",
    );
    out.push_str("</section>");
}

fn runs_section(out: &mut String, runs: &[Run], total: usize) {
    out.push_str(r#"<section id="runs"><h2>Recent runs</h2>"#);
    if runs.is_empty() {
        out.push_str(
            "<p class=\"empty\">No run journaled yet (<code>.dbflow/runs/</code>).</p></section>",
        );
        return;
    }
    if total > runs.len() {
        let _ = write!(
            out,
            "<p>The newest {} of {total} journals; <code>dbflow runs</code> lists them all.</p>",
            runs.len()
        );
    }
    out.push_str("<table class=\"runs\"><thead><tr><th>Started</th><th>Workflow</th><th>Environment</th><th>Outcome</th><th>Duration</th><th>Who</th><th>Run</th></tr></thead><tbody>");
    for r in runs {
        let failure = match (&r.failed_step, &r.error) {
            (Some(step), Some(error)) => {
                format!("<div class=\"why\">at {}: {}</div>", t(step), t(error))
            }
            (Some(step), None) => format!("<div class=\"why\">at {}</div>", t(step)),
            (None, Some(error)) => format!("<div class=\"why\">{}</div>", t(error)),
            (None, None) => String::new(),
        };
        let class = match r.outcome.as_str() {
            "succeeded" => "pass",
            "incomplete" => "warn",
            _ => "fail",
        };
        let kind = if r.kind == "task" {
            " <small>(task)</small>"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<tr class="{class}"><td>{}</td><td>{}{kind}</td><td>{}</td><td><span class="badge {class}">{}</span>{failure}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>"#,
            when(r.started),
            t(&r.target),
            t(&r.env),
            t(&r.outcome),
            r.duration_ms
                .map(crate::ui::human_ms)
                .unwrap_or_else(|| "–".into()),
            t(&r.user),
            t(&r.run_id)
        );
    }
    out.push_str("</tbody></table></section>");
}
