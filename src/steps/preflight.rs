//! `preflight`: the pre-migration checklist as checks — database reachable, migration
//! history healthy, a recent verified backup, disk space for the next one, `pg_dump`
//! present and as new as the server, pooler/direct-URL sanity. Prints PASS / WARN / FAIL
//! for each; the step fails if any FAILs. (Linting pending migrations is the `guard`
//! step's job; the shipped `preflight` workflow runs it first.)

use crate::config::{Diagnostic, Protection};
use crate::db::backup::{human_age, human_size, Catalog};
use crate::db::migrate::{self, State};
use crate::db::target::{pooler_warning, Target};
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `preflight` step kind.
pub struct PreflightKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    /// A backup older than this is a FAIL on shared and protected environments (default 24h).
    max_backup_age: Option<String>,
}

/// A configured `preflight` step.
#[derive(Debug)]
pub struct PreflightStep {
    max_age: std::time::Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Pass,
    Warn,
    Fail,
}

impl StepKind for PreflightKind {
    fn name(&self) -> &str {
        "preflight"
    }

    fn summary(&self) -> &str {
        "pre-migration checklist: reachable, history, backup age, disk, pg_dump, pooler"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let params: Params = if params.is_null() {
            Params::default()
        } else {
            parse_params(params)?
        };
        let max_age = match &params.max_backup_age {
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| format!("invalid max_backup_age `{t}`: {e}"))?,
            None => std::time::Duration::from_secs(24 * 3600),
        };
        Ok(Box::new(PreflightStep { max_age }))
    }
}

impl Step for PreflightStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        Ok(StepDoc {
            summary: "Pre-migration checklist".into(),
            details: format!(
                "Database reachable; no failed, modified or missing migration; a verified backup younger than {}; disk space in {} for another; pg_dump present and not older than the server; pooled URLs have a direct_url.",
                humantime::format_duration(self.max_age),
                cx.project.backups_dir
            ),
            commands: vec![
                format!("dbflow migrate status --env {}", cx.env.name),
                format!("dbflow backup list --env {}", cx.env.name),
                format!("df -h {}", cx.project.backups_dir),
                "pg_dump --version".into(),
            ],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let target = Target::for_env(cx.project, cx.env);
        let mut checks: Vec<(Mark, &str, String)> = Vec::new();
        let strict = cx.env.protection != Protection::Sandbox;
        let store = target.store();
        let probed = cx.runtime().block_on(async {
            let mut conn = target.connect().await.map_err(|e| e.to_string())?;
            let version = if conn.is_postgres() {
                conn.string("SELECT current_setting('server_version_num')")
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                conn.string("SELECT sqlite_version()")
                    .await
                    .map_err(|e| e.to_string())?
            };
            let status = match &store {
                Ok(store) => Some(
                    migrate::history_status(&mut conn, store, &target.table)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                Err(_) => None,
            };
            conn.close().await;
            Ok::<_, String>((version, status))
        });
        let mut server_major = None;
        match &probed {
            Ok((version, _)) => {
                let shown = version.clone().unwrap_or_default();
                if target.url.is_postgres() {
                    let num: u32 = shown.parse().unwrap_or(0);
                    server_major = Some(num / 10000);
                    checks.push((
                        Mark::Pass,
                        "database reachable",
                        format!(
                            "PostgreSQL {}.{} at {}",
                            num / 10000,
                            num % 10000,
                            target.url.redacted()
                        ),
                    ));
                } else {
                    checks.push((
                        Mark::Pass,
                        "database reachable",
                        format!("SQLite {shown} at {}", target.url.redacted()),
                    ));
                }
            }
            Err(e) => checks.push((Mark::Fail, "database reachable", e.clone())),
        }
        match (&store, &probed) {
            (Err(e), _) => checks.push((Mark::Fail, "migration history", e.to_string())),
            (Ok(_), Ok((_, Some(status)))) => {
                let bad: Vec<String> = status
                    .entries
                    .iter()
                    .filter(|e| {
                        matches!(
                            e.state,
                            State::Failed | State::Modified | State::MissingLocally
                        )
                    })
                    .map(|e| format!("{} is {}", e.name, e.state.as_str()))
                    .collect();
                let pending = status
                    .entries
                    .iter()
                    .filter(|e| matches!(e.state, State::Pending | State::RolledBack))
                    .count();
                if bad.is_empty() {
                    checks.push((
                        Mark::Pass,
                        "migration history",
                        format!("healthy; {pending} pending"),
                    ));
                } else {
                    checks.push((Mark::Fail, "migration history", bad.join("; ")));
                }
            }
            _ => checks.push((
                Mark::Fail,
                "migration history",
                "not read (database unreachable)".into(),
            )),
        }
        let catalog = Catalog::new(cx.project, &cx.env.name);
        let newest = catalog.newest_verified();
        match &newest {
            Some(entry) => {
                let age = entry.age(chrono::Utc::now());
                let too_old = age.to_std().map(|a| a > self.max_age).unwrap_or(false);
                let mark = if !too_old {
                    Mark::Pass
                } else if strict {
                    Mark::Fail
                } else {
                    Mark::Warn
                };
                checks.push((
                    mark,
                    "newest verified backup",
                    format!(
                        "{} ({} old, {})",
                        entry.id(),
                        human_age(age),
                        human_size(entry.manifest.size)
                    ),
                ));
            }
            None => checks.push((
                if strict { Mark::Fail } else { Mark::Warn },
                "newest verified backup",
                "none".into(),
            )),
        }
        let needed = newest.as_ref().map(|e| e.manifest.size).unwrap_or(0);
        match free_bytes(&catalog.root) {
            Some(free) if free < needed => checks.push((
                Mark::Fail,
                "disk space for backups",
                format!(
                    "{} free, the last backup took {}",
                    human_size(free),
                    human_size(needed)
                ),
            )),
            Some(free) if free < needed.saturating_mul(2) => checks.push((
                Mark::Warn,
                "disk space for backups",
                format!(
                    "{} free, the last backup took {}",
                    human_size(free),
                    human_size(needed)
                ),
            )),
            Some(free) => checks.push((
                Mark::Pass,
                "disk space for backups",
                format!("{} free", human_size(free)),
            )),
            None => checks.push((
                Mark::Warn,
                "disk space for backups",
                "could not be read (df)".into(),
            )),
        }
        if target.url.is_postgres() {
            match crate::db::pgtools::PgTools::locate(server_major) {
                Ok(tools) => {
                    checks.push((Mark::Pass, "pg_dump matches the server", tools.describe()))
                }
                Err(e) => checks.push((Mark::Fail, "pg_dump matches the server", e.to_string())),
            }
        }
        match pooler_warning(cx.env) {
            Some(w) => checks.push((Mark::Fail, "pooler and direct URL", w)),
            None => checks.push((
                Mark::Pass,
                "pooler and direct URL",
                if cx.env.direct_url.is_some() {
                    "direct_url declared".into()
                } else {
                    "no transaction pooler in the URL".into()
                },
            )),
        }
        let mut report = serde_json::Map::new();
        let mut journaled = indexmap::IndexMap::new();
        for (mark, name, detail) in &checks {
            let label = match mark {
                Mark::Pass => "PASS",
                Mark::Warn => "WARN",
                Mark::Fail => "FAIL",
            };
            cx.ui.out(&format!("  {label}  {name}: {detail}"));
            report.insert(
                name.to_string(),
                serde_json::json!({ "result": label, "detail": detail }),
            );
            journaled.insert(
                name.to_string(),
                crate::journal::PreflightCheck {
                    result: label.to_string(),
                    detail: detail.clone(),
                },
            );
        }
        cx.journal
            .log(crate::journal::Event::Preflight { checks: journaled });
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.0 == Mark::Fail)
            .map(|c| c.1)
            .collect();
        if failed.is_empty() {
            Ok(Outcome::done().with("checks", serde_json::Value::Object(report)))
        } else {
            Err(StepError::failed(format!(
                "preflight FAILED: {}",
                failed.join(", ")
            )))
        }
    }
}

/// Free bytes on the file system holding `dir` (or its nearest existing parent).
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut probe = dir.to_path_buf();
    while !probe.exists() {
        probe = probe.parent()?.to_path_buf();
        if probe.as_os_str().is_empty() {
            probe = ".".into();
        }
    }
    let out = duct::cmd("df", ["-Pk", &probe.to_string_lossy()])
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    line.split_whitespace()
        .nth(3)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}
