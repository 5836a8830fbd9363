//! `drill`: the restore drill runbooks ask for. Backup (fresh, or an existing one) →
//! restore into `<db>_restore_drill_<ts>` → validate → drop (unless `keep`) → report,
//! appended as Markdown and JSON to `<backups.dir>/drills/` (and, with an object-storage
//! repository, stored there too as `<env>/.drills/<date>_<run>.{json,md}`), with RPO (the
//! backup's age) and RTO (the restore's duration). The primary database is only ever read.

use super::restoring::{self, Destination};
use crate::config::{DbUrl, Diagnostic, Project, Protection, ResolvedEnv, Text};
use crate::db::backup::checks::Check;
use crate::db::backup::{self, human_age, restore, Catalog, CreateOptions, Entry};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::ui::progress::Transfer;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Instant;

/// Folder under `<backups.dir>` where drill reports are appended.
pub const REPORTS_DIR: &str = "drills";

/// The `drill` step kind.
pub struct DrillKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    keep: bool,
    backup: Option<String>,
}

/// A configured `drill` step.
#[derive(Debug)]
pub struct DrillStep {
    keep: bool,
    backup: Option<String>,
}

impl StepKind for DrillKind {
    fn name(&self) -> &str {
        "drill"
    }

    fn summary(&self) -> &str {
        "restore drill: backup → restore into a scratch database → validate → drop → report"
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
        Ok(Box::new(DrillStep {
            keep: params.keep,
            backup: params.backup,
        }))
    }
}

/// One drill's record, as appended to `drills.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// When the drill started (UTC, RFC 3339).
    pub date: String,
    /// Environment drilled.
    pub environment: String,
    /// `PASS` or `FAIL`.
    pub result: String,
    /// The run.
    pub run_id: String,
    /// The backup restored.
    pub backup_id: Option<String>,
    /// Whether the drill took that backup itself.
    pub fresh_backup: bool,
    /// RPO: the backup's age when the restore started.
    pub backup_age_seconds: Option<f64>,
    /// RTO: how long the restore took.
    pub restore_seconds: Option<f64>,
    /// The whole drill.
    pub duration_seconds: f64,
    /// The scratch database.
    pub database: Option<String>,
    /// The other server it was restored on (redacted URL), for a protected environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Whether it was dropped afterwards.
    pub dropped: bool,
    /// The validation.
    pub checks: Vec<Check>,
    /// What stopped the drill, if something did.
    pub error: Option<String>,
}

impl Step for DrillStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let target = Target::for_env(cx.project, cx.env);
        let db = restore::display_name(&target.url);
        let which = match self.backup.as_deref() {
            None => "a fresh backup".to_string(),
            Some("latest") => "the newest verified backup".to_string(),
            Some(id) => format!("backup {id}"),
        };
        let scratch = format!("{db}_restore_drill_<YYYYMMDD_HHMMSS>");
        let mut commands = vec![format!("dbflow drill --env {}", cx.env.name)];
        let server = match drill_server_text(cx.project, cx.env) {
            Some(text) if cx.env.protection == Protection::Protected => Some(DbUrl::new(
                &crate::config::interpolate::interpolate_text(text, cx.vars, "drill.server_url")?,
            )),
            None if cx.env.protection == Protection::Protected => {
                return Ok(StepDoc {
                    summary: format!(
                        "Restore drill of `{}`: refused until drill.server_url is set",
                        cx.env.name
                    ),
                    details: refusal(&cx.env.name),
                    commands: Vec::new(),
                });
            }
            _ => None,
        };
        let on = server
            .as_ref()
            .map(|s| {
                format!(
                    " on the drill server {} (never the primary's)",
                    s.redacted()
                )
            })
            .unwrap_or_default();
        // On a drill server, every tool is pointed at it explicitly.
        let host = server
            .as_ref()
            .map(|s| format!(" --maintenance-db={}", s.redacted()))
            .unwrap_or_default();
        let into = server
            .as_ref()
            .map(|s| {
                s.with_database(&scratch)
                    .redacted()
                    .replace("%3C", "<")
                    .replace("%3E", ">")
            })
            .unwrap_or_else(|| scratch.clone());
        if target.url.is_postgres() {
            commands.push(format!("createdb{host} --template=template0 {scratch}"));
            commands.push(match cx.project.backup_settings(&cx.env.name).format {
                crate::config::raw::DumpFormat::Custom => format!(
                    "pg_restore --no-owner --exit-on-error --dbname={into} <backup>/dump.pgdump"
                ),
                crate::config::raw::DumpFormat::Directory => format!(
                    "pg_restore --no-owner --exit-on-error --jobs={} --dbname={into} <backup>/dump",
                    cx.project.backup_settings(&cx.env.name).jobs
                ),
            });
            if !self.keep {
                commands.push(format!("dropdb{host} {scratch}"));
            }
        }
        let mut checks = vec!["same tables as the primary".to_string()];
        if !cx.project.drill.key_tables.is_empty() {
            checks.push(format!(
                "row counts of {}",
                cx.project.drill.key_tables.join(", ")
            ));
        }
        checks.push("clean migration status".into());
        if !cx.project.drill.verify.is_empty() {
            checks.push(format!(
                "{} drill.verify queries",
                cx.project.drill.verify.len()
            ));
        }
        // Only when a repository is configured, so folder projects' runbooks stay as
        // they were.
        let also = match backup::repository::configured(cx.project, &cx.env.name, cx.vars) {
            Ok(Some(location)) if location.is_object() => format!(
                " and stores it in {}/{}/{}/",
                location.display(),
                cx.env.name,
                backup::repository::object::DRILLS
            ),
            _ => String::new(),
        };
        Ok(StepDoc {
            summary: format!("Restore drill of `{}` from {which}", cx.env.name),
            details: format!(
                "Restores into {scratch}{on}, checks {}, {} it, and appends the report (PASS/FAIL, RPO, RTO) to {}/{REPORTS_DIR}/{also}. `{db}` is only read.",
                checks.join(", "),
                if self.keep { "keeps" } else { "drops" },
                cx.project.backups_dir
            ),
            commands,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let started = Instant::now();
        let catalog = Catalog::new(cx.project, &cx.env.name);
        let mut report = DrillReport {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            environment: cx.env.name.clone(),
            result: "FAIL".into(),
            run_id: cx.run_id.to_string(),
            backup_id: None,
            fresh_backup: self.backup.is_none(),
            backup_age_seconds: None,
            restore_seconds: None,
            duration_seconds: 0.0,
            database: None,
            server: None,
            dropped: false,
            checks: Vec::new(),
            error: None,
        };
        let outcome = self.drill(cx, &catalog, &mut report);
        if let Err(e) = &outcome {
            report.error = Some(e.message.clone());
        }
        let passed = outcome.is_ok() && report.checks.iter().all(|c| c.passed);
        report.result = if passed { "PASS" } else { "FAIL" }.into();
        report.duration_seconds = started.elapsed().as_secs_f64();
        let written = append_report(&catalog.root, &report);
        let stored = store_report(cx, &report);
        let gauges = [
            ("rpo_seconds", report.backup_age_seconds),
            ("rto_seconds", report.restore_seconds),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        super::record_metrics(cx, "drill", passed, started.elapsed(), gauges);
        let reports = match &written {
            Ok(path) => path.display().to_string(),
            Err(e) => {
                cx.ui.warn(&format!("drill report not written: {e}"));
                String::from("(not written)")
            }
        };
        let in_repository = match stored {
            Ok(Some(url)) => Some(url),
            Ok(None) => None,
            Err(e) => {
                cx.ui
                    .warn(&format!("drill report not written to the repository: {e}"));
                None
            }
        };
        let shown = match &in_repository {
            Some(url) => format!("{reports} and {url}"),
            None => reports.clone(),
        };
        cx.ui.out(&format!(
            "  drill {}: backup {} (RPO {}), restore {} (RTO), report in {shown}",
            report.result,
            report.backup_id.as_deref().unwrap_or("-"),
            report
                .backup_age_seconds
                .map(|s| human_age(chrono::Duration::milliseconds((s * 1000.0) as i64)))
                .unwrap_or_else(|| "-".into()),
            report
                .restore_seconds
                .map(|s| crate::ui::human_ms((s * 1000.0) as u64))
                .unwrap_or_else(|| "-".into()),
        ));
        outcome?;
        restoring::checks_passed(&report.checks, "drill FAILED")?;
        Ok(Outcome::done()
            .with("result", report.result.clone())
            .with(crate::journal::BACKUP_ID, report.backup_id.clone())
            .with("rpo_seconds", report.backup_age_seconds)
            .with("rto_seconds", report.restore_seconds)
            .with("database", report.database.clone())
            .with("dropped", report.dropped)
            .with("report", reports)
            .with("repository_report", in_repository))
    }
}

/// Stores the report in the environment's object-storage repository too (`None`: its
/// backups live in a folder, where [`append_report`] already wrote it), so a drill run
/// on a runner that is gone a minute later still leaves its evidence.
fn store_report(cx: &RunContext<'_>, report: &DrillReport) -> Result<Option<String>, String> {
    let Some(remote) = backup::repository::remote_for(cx.project, &cx.env.name, cx.vars)? else {
        return Ok(None);
    };
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let name = format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        report.run_id
    );
    let rt = backup::repository::object::runtime().map_err(|e| e.to_string())?;
    rt.block_on(backup::repository::object::put_drill_report(
        &remote,
        &cx.env.name,
        &name,
        &json,
        &render_markdown(report),
    ))
    .map(Some)
    .map_err(|e| e.to_string())
}

impl DrillStep {
    fn drill(
        &self,
        cx: &mut RunContext<'_>,
        catalog: &Catalog,
        report: &mut DrillReport,
    ) -> Result<(), StepError> {
        // A signal stops the backup or restore that runs; the scratch database is still
        // dropped below before the drill reports.
        let _scope = crate::interrupt::scope();
        let target = Target::for_env(cx.project, cx.env);
        // Checked before anything is dumped: a refused drill leaves nothing behind.
        let server = drill_server(cx, &target)?;
        report.server = server.as_ref().map(DbUrl::redacted);
        let remote = backup::repository::remote_for(cx.project, &cx.env.name, cx.vars).map_err(
            |message| StepError {
                message,
                code: crate::error::ExitCode::BadInput,
            },
        )?;
        let repository_runtime = match &remote {
            Some(_) => Some(backup::repository::object::runtime().map_err(restoring::step_error)?),
            None => None,
        };
        let entry = match (&remote, &repository_runtime, &self.backup) {
            (Some(remote), Some(rt), Some(id)) => rt
                .block_on(backup::repository::object::get(remote, &cx.env.name, id))
                .map_err(restoring::step_error)?,
            (Some(remote), Some(rt), None) => fresh_remote_backup(cx, remote, rt, &target)?,
            (_, _, Some(id)) => restoring::pick_backup(cx, catalog, Some(id))?,
            (_, _, None) => fresh_backup(cx, catalog, &target)?,
        };
        report.backup_id = Some(entry.id().to_string());
        let now = chrono::Utc::now();
        report.backup_age_seconds = Some(entry.age(now).num_milliseconds() as f64 / 1000.0);
        let source_db = restore::display_name(&target.url);
        let stem = std::path::Path::new(&source_db)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or(source_db);
        let scratch = restore::default_name(&stem, "restore_drill", now);
        let restored = match (&remote, &repository_runtime, &server) {
            (Some(remote), Some(rt), server) => {
                let onto = server.as_ref().unwrap_or(&target.url);
                restore_from_repository(cx, remote, rt, &entry, onto, &scratch)?
            }
            (_, _, Some(server)) => restore_on_server(cx, &entry, server, &scratch)?,
            (_, _, None) => restoring::restore(cx, &entry, &Destination::New(Some(scratch)))?,
        };
        report.database = Some(restored.database.clone());
        report.restore_seconds = Some(restored.duration.as_secs_f64());
        let checks = restoring::validate(cx, &entry, &restored.url, None);
        if let Ok(checks) = &checks {
            restoring::print_checks(cx, checks);
            report.checks = checks.clone();
        }
        if self.keep {
            cx.ui.out(&format!(
                "  kept `{}` (--keep): drop it when done",
                restored.database
            ));
        } else {
            match restoring::drop_own_copy(cx, &restored.url) {
                Ok(()) => {
                    report.dropped = true;
                    cx.ui.out(&format!("  dropped `{}`", restored.database));
                }
                Err(e) => cx
                    .ui
                    .warn(&format!("could not drop `{}`: {e}", restored.database)),
            }
        }
        if let Some(signal) = crate::interrupt::received() {
            return Err(StepError {
                message: format!(
                    "interrupted by {} during the drill's checks",
                    crate::interrupt::name(signal)
                ),
                code: crate::error::ExitCode::Interrupted(signal),
            });
        }
        checks.map(|_| ())
    }
}

/// The configured drill server of `env`: its own `drill.server_url`, else the project's.
fn drill_server_text<'p>(project: &'p Project, env: &ResolvedEnv) -> Option<&'p Text> {
    project.drill_server_url(&env.name)
}

/// How a protected environment's drill is refused without a drill server.
fn refusal(env: &str) -> String {
    format!(
        "`{env}` is protected: a restore drill never restores onto the primary's server. Set `drill.server_url` to another PostgreSQL server (for every environment, or under `environments.{env}.drill`), e.g. `server_url: ${{DRILL_SERVER_URL}}`; or drill through the provider: restore a snapshot into a new instance with a `provider: {{ action: restore }}` step"
    )
}

/// For a protected environment, the other server the drill restores onto (checked to
/// be another server than the primary's); `None` elsewhere (the primary's server is
/// fine for a scratch copy of a shared or sandbox database).
fn drill_server(cx: &mut RunContext<'_>, target: &Target) -> Result<Option<DbUrl>, StepError> {
    if cx.env.protection != Protection::Protected {
        return Ok(None);
    }
    let Some(text) = drill_server_text(cx.project, cx.env) else {
        return Err(StepError::blocked(format!(
            "blocked by the guard: drill of {}",
            refusal(&cx.env.name)
        )));
    };
    let url = crate::config::interpolate::interpolate_text(text, cx.vars, "drill.server_url")
        .map(|u| DbUrl::new(&u))
        .map_err(|d| StepError {
            message: d.to_string(),
            code: crate::error::ExitCode::BadInput,
        })?;
    let checked = cx
        .runtime()
        .block_on(crate::guard::server::check_drill_server(&target.url, &url));
    cx.journal.log(crate::journal::Event::DrillServer {
        server: url.redacted().to_string(),
        allowed: checked.is_ok(),
        refused: checked.as_ref().err().cloned(),
    });
    checked.map_err(|why| StepError::blocked(format!("blocked by the guard: {why}")))?;
    cx.ui.out(&format!(
        "  ✔ drill server {} is not the primary's server",
        url.redacted()
    ));
    Ok(Some(url))
}

/// Restores `entry` into the new database `name` on `server` (not the primary's).
fn restore_on_server(
    cx: &mut RunContext<'_>,
    entry: &Entry,
    server: &DbUrl,
    name: &str,
) -> Result<restore::RestoreReport, StepError> {
    let jobs = cx.project.backup_settings(&cx.env.name).jobs;
    cx.journal.log(crate::journal::Event::RestoreStart {
        backup_id: entry.id().to_string(),
        repository: None,
        destination: format!("{name} on {}", server.redacted()),
    });
    let runtime = cx.runtime();
    let mut transfer = Transfer::new(cx.ui);
    let result = restore::restore_into_new(
        entry,
        server,
        name,
        jobs,
        runtime,
        &mut super::show(&mut transfer),
    );
    transfer.finish();
    let report = result.map_err(restoring::step_error)?;
    cx.ui.out(&format!(
        "  ✔ restored backup {} into `{}` on {} in {}",
        entry.id(),
        report.database,
        server.redacted(),
        crate::ui::human_ms(report.duration.as_millis() as u64)
    ));
    cx.journal.log(crate::journal::Event::RestoreEnd {
        backup_id: entry.id().to_string(),
        database: report.database.clone(),
        server: Some(server.redacted().to_string()),
        duration_ms: report.duration.as_millis() as u64,
    });
    Ok(report)
}

/// A drill's fresh backup, taken straight into the object-storage repository.
fn fresh_remote_backup(
    cx: &mut RunContext<'_>,
    remote: &backup::repository::Remote,
    rt: &tokio::runtime::Runtime,
    target: &Target,
) -> Result<Entry, StepError> {
    let settings = cx.project.backup_settings(&cx.env.name);
    let options = CreateOptions {
        url: &target.url,
        format: settings.format,
        jobs: settings.jobs,
        label: Some("drill"),
        run_id: Some(cx.run_id),
        key_tables: &cx.project.drill.key_tables,
        history_table: &target.table,
        lock_wait_timeout: settings.lock_wait_timeout,
    };
    let started = Instant::now();
    let mut transfer = Transfer::new(cx.ui);
    let created = backup::repository::object::create(
        remote,
        &cx.env.name,
        &options,
        &settings.recipients,
        rt,
        &mut super::show(&mut transfer),
    );
    transfer.finish();
    let gauges = match &created {
        Ok(entry) => vec![("size_bytes", entry.manifest.size as f64)],
        Err(_) => Vec::new(),
    };
    super::record_metrics(cx, "backup", created.is_ok(), started.elapsed(), gauges);
    let entry = created.map_err(restoring::step_error)?;
    cx.journal.log(crate::journal::Event::BackupUsed {
        backup_id: entry.id().to_string(),
        repository: Some(remote.shown.to_string()),
    });
    cx.ui.out(&format!(
        "  ✔ backup {} in {} ({})",
        entry.id(),
        remote.shown,
        backup::human_size(entry.manifest.size)
    ));
    Ok(entry)
}

/// Restores a backup of the object-storage repository into the scratch database on
/// `server` (the primary's server, or the drill server of a protected environment).
fn restore_from_repository(
    cx: &mut RunContext<'_>,
    remote: &backup::repository::Remote,
    rt: &tokio::runtime::Runtime,
    entry: &Entry,
    server: &DbUrl,
    name: &str,
) -> Result<restore::RestoreReport, StepError> {
    use backup::repository::object;
    cx.journal.log(crate::journal::Event::RestoreStart {
        backup_id: entry.id().to_string(),
        repository: Some(remote.shown.to_string()),
        destination: format!("{name} on {}", server.redacted()),
    });
    let identities = object::identities_for(entry, cx.vars).map_err(restoring::step_error)?;
    let mut transfer = Transfer::new(cx.ui);
    let result = object::restore_into_new(
        remote,
        entry,
        server,
        name,
        rt,
        identities.as_deref(),
        &mut super::show(&mut transfer),
    );
    transfer.finish();
    let report = result.map_err(restoring::step_error)?;
    cx.ui.out(&format!(
        "  ✔ restored backup {} from {} into `{}` in {}",
        entry.id(),
        remote.shown,
        report.database,
        crate::ui::human_ms(report.duration.as_millis() as u64)
    ));
    cx.journal.log(crate::journal::Event::RestoreEnd {
        backup_id: entry.id().to_string(),
        database: report.database.clone(),
        server: None,
        duration_ms: report.duration.as_millis() as u64,
    });
    Ok(report)
}

fn fresh_backup(
    cx: &mut RunContext<'_>,
    catalog: &Catalog,
    target: &Target,
) -> Result<Entry, StepError> {
    let settings = cx.project.backup_settings(&cx.env.name);
    let options = CreateOptions {
        url: &target.url,
        format: settings.format,
        jobs: settings.jobs,
        label: Some("drill"),
        run_id: Some(cx.run_id),
        key_tables: &cx.project.drill.key_tables,
        history_table: &target.table,
        lock_wait_timeout: settings.lock_wait_timeout,
    };
    let runtime = cx.runtime();
    let started = Instant::now();
    let mut transfer = Transfer::new(cx.ui);
    let created = backup::create(catalog, &options, runtime, &mut super::show(&mut transfer));
    transfer.finish();
    let gauges = match &created {
        Ok(entry) => vec![("size_bytes", entry.manifest.size as f64)],
        Err(_) => Vec::new(),
    };
    super::record_metrics(cx, "backup", created.is_ok(), started.elapsed(), gauges);
    let entry = created.map_err(restoring::step_error)?;
    cx.journal.log(crate::journal::Event::BackupUsed {
        backup_id: entry.id().to_string(),
        repository: None,
    });
    cx.ui.out(&format!(
        "  ✔ backup {} ({})",
        entry.id(),
        backup::human_size(entry.manifest.size)
    ));
    Ok(entry)
}

/// Appends the report to `drills.md` and `drills.jsonl`; returns the Markdown file.
fn append_report(
    root: &std::path::Path,
    report: &DrillReport,
) -> Result<std::path::PathBuf, String> {
    let dir = root.join(REPORTS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let append = |name: &str, text: &str| -> Result<std::path::PathBuf, String> {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        file.write_all(crate::redact::redact(text).as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    };
    let json = serde_json::to_string(report).map_err(|e| e.to_string())?;
    append("drills.jsonl", &format!("{json}\n"))?;
    append("drills.md", &render_markdown(report))
}

/// One drill as a Markdown section.
pub fn render_markdown(report: &DrillReport) -> String {
    let seconds = |s: Option<f64>| s.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "## {} · {} · {}\n\n",
        report.date, report.environment, report.result
    );
    out.push_str("| | |\n|---|---|\n");
    out.push_str(&format!(
        "| Backup | `{}`{} |\n",
        report.backup_id.as_deref().unwrap_or("-"),
        if report.fresh_backup {
            " (taken by the drill)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "| RPO (backup age at restore) | {} |\n",
        seconds(report.backup_age_seconds)
    ));
    out.push_str(&format!(
        "| RTO (restore duration) | {} |\n",
        seconds(report.restore_seconds)
    ));
    out.push_str(&format!(
        "| Restored into | `{}` ({}) |\n",
        report.database.as_deref().unwrap_or("-"),
        if report.dropped { "dropped" } else { "kept" }
    ));
    if let Some(server) = &report.server {
        out.push_str(&format!("| Drill server | {server} |\n"));
    }
    out.push_str(&format!(
        "| Drill duration | {} |\n",
        seconds(Some(report.duration_seconds))
    ));
    out.push_str(&format!("| Run | `{}` |\n\n", report.run_id));
    if !report.checks.is_empty() {
        out.push_str("| Check | Result | Detail |\n|---|---|---|\n");
        for check in &report.checks {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                check.name.replace('|', "\\|"),
                if check.passed { "PASS" } else { "FAIL" },
                check.detail.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    if let Some(error) = &report.error {
        out.push_str(&format!(
            "**Stopped:** {}\n\n",
            error.lines().collect::<Vec<_>>().join(" ")
        ));
    }
    out
}
