//! `backup`: take a backup of the environment's database (pg_dump, or `VACUUM INTO` for
//! SQLite), verified before it is cataloged; or reuse a recent verified one of the same
//! migration head (`reuse_if_younger_than`). Outputs `backup_id` for later steps.

use crate::config::raw::DumpFormat;
use crate::config::Diagnostic;
use crate::db::backup::{self, human_age, human_size, source, Catalog, CreateOptions, Entry};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::ui::progress::Transfer;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// The `backup` step kind. With the Lua host, `via: provider` takes a provider snapshot.
#[derive(Default)]
pub struct BackupKind {
    /// Lua providers, when loaded.
    pub host: Option<std::sync::Arc<crate::lua::LuaHost>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    label: Option<String>,
    reuse_if_younger_than: Option<String>,
    format: Option<DumpFormat>,
    jobs: Option<u32>,
    via: Option<Via>,
}

/// How a backup is taken.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Via {
    /// pg_dump / VACUUM INTO into the catalog folder.
    #[default]
    Dump,
    /// The environment's Lua provider (`snapshot` + `wait`), cataloged by id.
    Provider,
}

/// A configured `backup` step.
pub struct BackupStep {
    via: Via,
    host: Option<std::sync::Arc<crate::lua::LuaHost>>,
    label: Option<String>,
    reuse: Option<(Duration, String)>,
    format: Option<DumpFormat>,
    jobs: Option<u32>,
}

impl StepKind for BackupKind {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Backup)
    }

    fn name(&self) -> &str {
        "backup"
    }

    fn summary(&self) -> &str {
        "take a verified backup (pg_dump / VACUUM INTO); outputs backup_id"
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
        if let Some(label) = &params.label {
            if !label.contains("${") {
                backup::create::check_label(label).map_err(|e| e.to_string())?;
            }
        }
        let reuse = match params.reuse_if_younger_than {
            Some(text) => Some((
                humantime::parse_duration(&text)
                    .map_err(|e| format!("invalid reuse_if_younger_than `{text}`: {e}"))?,
                text,
            )),
            None => None,
        };
        if params.jobs == Some(0) {
            return Err("`jobs` must be at least 1".into());
        }
        let via = params.via.unwrap_or_default();
        if via == Via::Provider && self.host.is_none() {
            return Err(
                "`via: provider` needs the Lua providers, which are not loaded here".into(),
            );
        }
        Ok(Box::new(BackupStep {
            via,
            host: self.host.clone(),
            label: params.label,
            reuse,
            format: params.format,
            jobs: params.jobs,
        }))
    }
}

impl std::fmt::Debug for BackupStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupStep({:?}, {:?})", self.via, self.label)
    }
}

impl BackupStep {
    fn format(&self, cx_project: &crate::config::Project, env: &str) -> (DumpFormat, u32) {
        let settings = cx_project.backup_settings(env);
        (
            self.format.unwrap_or(settings.format),
            self.jobs.unwrap_or(settings.jobs),
        )
    }
}

impl Step for BackupStep {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Backup)
    }

    fn uses_db_session(&self) -> bool {
        true
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let target = Target::for_env(cx.project, cx.env);
        let catalog = Catalog::new(cx.project, &cx.env.name);
        // Shown relative to the project root, so plans and generated docs do not depend
        // on where dbflow was started.
        let dir = catalog
            .dir
            .strip_prefix(&cx.project.root)
            .unwrap_or(&catalog.dir)
            .display()
            .to_string();
        let (format, jobs) = self.format(cx.project, &cx.env.name);
        let id = format!(
            "<YYYYMMDD_HHMMSS>{}",
            self.label
                .as_ref()
                .map(|l| format!("_{l}"))
                .unwrap_or_default()
        );
        let label_arg = self
            .label
            .as_ref()
            .map(|l| format!(" --label {l}"))
            .unwrap_or_default();
        let mut commands = vec![
            format!("dbflow backup create --env {}{label_arg}", cx.env.name),
            // By hand too: backups hold customer data.
            "umask 077".to_string(),
        ];
        let summary;
        // Docs render with unresolved `${VAR}` URLs: anything not SQLite is PostgreSQL.
        if !target.url.is_sqlite() {
            let lock_wait = backup::create::lock_wait_arg(
                cx.project.backup_settings(&cx.env.name).lock_wait_timeout,
            );
            summary = format!(
                "Back up {} with pg_dump --format={}",
                target
                    .url
                    .database_name()
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_else(|| "the database".into()),
                format.as_str()
            );
            match format {
                DumpFormat::Custom => {
                    commands.push(format!(
                        "pg_dump --format=custom {lock_wait} --file={dir}/{id}/dump.pgdump \"$DATABASE_URL\""
                    ));
                    commands.push(format!("sha256sum {dir}/{id}/dump.pgdump"));
                    commands.push(format!("pg_restore --list {dir}/{id}/dump.pgdump"));
                }
                DumpFormat::Directory => {
                    commands.push(format!(
                        "pg_dump --format=directory --jobs={jobs} {lock_wait} --file={dir}/{id}/dump \"$DATABASE_URL\""
                    ));
                    commands.push(format!("pg_restore --list {dir}/{id}/dump"));
                }
            }
        } else {
            let path = backup::sqlite_path(&target.url);
            summary = format!("Back up {} with VACUUM INTO", path.display());
            commands.push(format!(
                "sqlite3 {} \"VACUUM INTO '{dir}/{id}/database.sqlite'\"",
                path.display()
            ));
            commands.push(format!(
                "sqlite3 {dir}/{id}/database.sqlite 'PRAGMA integrity_check'"
            ));
        }
        let mut details = vec![format!(
            "Into {dir}/{id}/ (readable by its owner only) with a manifest (sha256, size, versions, migration head{}); verified before it counts, and an interrupted backup never enters the catalog.",
            if target.url.is_sqlite() {
                ""
            } else {
                ", the server's clock"
            }
        )];
        if !target.url.is_sqlite() {
            details.push(format!(
                "pg_dump waits at most {} for a table lock (backups.lock_wait_timeout), then fails naming the session that holds it.",
                humantime::format_duration(cx.project.backup_settings(&cx.env.name).lock_wait_timeout)
            ));
        }
        if let Some((_, text)) = &self.reuse {
            details.push(format!(
                "Reuses the newest verified backup of the same migration head when it is younger than {text} (never one dated in the future)."
            ));
        }
        Ok(StepDoc {
            summary,
            details: details.join("\n"),
            commands,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let started = Instant::now();
        let result = self.take(cx);
        let gauges = match &result {
            Ok(outcome) if outcome.outputs["reused"] == false => {
                vec![(
                    "size_bytes",
                    outcome.outputs["size"].as_f64().unwrap_or(0.0),
                )]
            }
            _ => Vec::new(),
        };
        let reused = matches!(&result, Ok(o) if o.outputs["reused"] == true);
        if !reused {
            super::record_metrics(cx, "backup", result.is_ok(), started.elapsed(), gauges);
        }
        result
    }
}

impl BackupStep {
    fn take(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let target = Target::for_env(cx.project, cx.env);
        let catalog = Catalog::new(cx.project, &cx.env.name);
        if self.via == Via::Provider {
            return self.take_via_provider(cx, &target, &catalog);
        }
        let remote = backup::repository::remote_for(cx.project, &cx.env.name, cx.vars).map_err(
            |message| StepError {
                message,
                code: crate::error::ExitCode::BadInput,
            },
        )?;
        if let Some(remote) = remote {
            return self.take_into(cx, &target, &remote);
        }
        if !cx
            .project
            .backup_settings(&cx.env.name)
            .recipients
            .is_empty()
        {
            // Never an unencrypted backup where an encrypted one was asked for.
            return Err(StepError {
                message: format!(
                    "backups.encryption is set for `{}` but its backups go to a folder, which dbflow does not encrypt yet: set backups.repository to object storage (s3://, gs://, az://), or remove backups.encryption",
                    cx.env.name
                ),
                code: crate::error::ExitCode::BadInput,
            });
        }
        if let Some((limit, text)) = &self.reuse {
            let (found, clock) = reusable(cx, &target, *limit, || Ok(catalog.scan().entries))?;
            if let Some(entry) = found {
                say_reused(cx, &entry, text);
                return Ok(with_clock(outputs(&entry).with("reused", true), clock));
            }
        }
        let (format, jobs) = self.format(cx.project, &cx.env.name);
        let options = CreateOptions {
            url: &target.url,
            format,
            jobs,
            label: self.label.as_deref(),
            run_id: Some(cx.run_id),
            key_tables: &cx.project.drill.key_tables,
            history_table: &target.table,
            lock_wait_timeout: cx.project.backup_settings(&cx.env.name).lock_wait_timeout,
        };
        let runtime = cx.runtime();
        // PostgreSQL: the source is read over the run's session (SQLite backups copy
        // the file through a connection of their own).
        let mut session = match target.url.is_postgres() {
            true => Some(cx.take_db()?),
            false => None,
        };
        let mut transfer = Transfer::new(cx.ui);
        let created = backup::create::create_with(
            &catalog,
            &options,
            runtime,
            &mut super::show(&mut transfer),
            session.as_mut(),
        );
        transfer.finish();
        if let Some(conn) = session {
            cx.session.give_back(conn);
        }
        let entry = created.map_err(super::restoring::step_error)?;
        let m = &entry.manifest;
        cx.ui.out(&format!(
            "  ✔ backup {} ({}, sha256 {}…, migration head {})",
            entry.id(),
            human_size(m.size),
            &m.sha256[..12],
            m.migration_head.as_deref().unwrap_or("(none)")
        ));
        cx.ui
            .out(&format!("    verified: {}", m.verification.detail));
        let clock = m.server_time.map(|server| source::ClockReading {
            server,
            host: m.created_at,
        });
        Ok(with_clock(outputs(&entry).with("reused", false), clock))
    }
}

impl BackupStep {
    /// Takes the backup straight into an object-storage repository, or reuses a recent
    /// one there (`reuse_if_younger_than`) encrypted to the configured recipients.
    fn take_into(
        &self,
        cx: &mut RunContext<'_>,
        target: &Target,
        remote: &backup::repository::Remote,
    ) -> Result<Outcome, StepError> {
        let recipients = cx.project.backup_settings(&cx.env.name).recipients;
        if let Some((limit, text)) = &self.reuse {
            let listed = || {
                let runtime =
                    backup::repository::object::runtime().map_err(super::restoring::step_error)?;
                let (entries, _) = runtime
                    .block_on(backup::repository::object::list(remote, &cx.env.name))
                    .map_err(super::restoring::step_error)?;
                // Never a backup sealed differently from what is asked now (a plain one
                // where encryption is configured, or one the new recipients cannot open).
                Ok(entries
                    .into_iter()
                    .filter(|e| sealed_for(e, &recipients))
                    .collect())
            };
            let (found, clock) = reusable(cx, target, *limit, listed)?;
            if let Some(entry) = found {
                say_reused(cx, &entry, text);
                return Ok(with_clock(
                    outputs(&entry)
                        .with("reused", true)
                        .with("repository", remote.shown.clone()),
                    clock,
                ));
            }
        }
        let (format, jobs) = self.format(cx.project, &cx.env.name);
        let options = CreateOptions {
            url: &target.url,
            format,
            jobs,
            label: self.label.as_deref(),
            run_id: Some(cx.run_id),
            key_tables: &cx.project.drill.key_tables,
            history_table: &target.table,
            lock_wait_timeout: cx.project.backup_settings(&cx.env.name).lock_wait_timeout,
        };
        let runtime =
            backup::repository::object::runtime().map_err(super::restoring::step_error)?;
        let mut transfer = Transfer::new(cx.ui);
        let created = backup::repository::object::create(
            remote,
            &cx.env.name,
            &options,
            &cx.project.backup_settings(&cx.env.name).recipients,
            &runtime,
            &mut super::show(&mut transfer),
        );
        transfer.finish();
        let entry = created.map_err(super::restoring::step_error)?;
        let m = &entry.manifest;
        cx.ui.out(&format!(
            "  ✔ backup {} in {} ({}, sha256 {}…, migration head {})",
            entry.id(),
            remote.shown,
            human_size(m.size),
            &m.sha256[..12],
            m.migration_head.as_deref().unwrap_or("(none)")
        ));
        cx.ui
            .out(&format!("    verified: {}", m.verification.detail));
        let clock = m.server_time.map(|server| source::ClockReading {
            server,
            host: m.created_at,
        });
        Ok(with_clock(
            outputs(&entry)
                .with("reused", false)
                .with("repository", remote.shown.clone()),
            clock,
        ))
    }
}

/// Journals the database server's clock next to this machine's (`server_clock`), so
/// `rollback --run` can tell, by the server's clock, which backups predate this run.
fn with_clock(outcome: Outcome, clock: Option<source::ClockReading>) -> Outcome {
    match clock {
        Some(c) => outcome.with(
            "server_clock",
            serde_json::json!({ "server": c.server, "host": c.host }),
        ),
        None => outcome,
    }
}

/// Whether `entry` is encrypted to exactly `recipients` (none: not encrypted).
fn sealed_for(entry: &Entry, recipients: &[String]) -> bool {
    let mut wanted: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let mut has: Vec<&str> = match &entry.manifest.encryption {
        Some(e) => e.recipients.iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    wanted.sort_unstable();
    has.sort_unstable();
    wanted == has
}

fn say_reused(cx: &RunContext<'_>, entry: &Entry, younger_than: &str) {
    cx.ui.out(&format!(
        "  ↺ reusing backup {} ({} old, younger than {younger_than}, same migration head {})",
        entry.id(),
        human_age(entry.age(chrono::Utc::now())),
        entry.manifest.migration_head.as_deref().unwrap_or("(none)")
    ));
}

/// The newest verified backup younger than `limit` taken at the database's current
/// migration head, never one dated in the future (its age says nothing); with the
/// server's clock read on the way. `list`: the catalog's backups, newest first.
fn reusable(
    cx: &mut RunContext<'_>,
    target: &Target,
    limit: Duration,
    list: impl FnOnce() -> Result<Vec<Entry>, StepError>,
) -> Result<(Option<Entry>, Option<source::ClockReading>), StepError> {
    let mut conn = cx.take_db()?;
    let read = cx.runtime().block_on(async {
        let head = source::migration_head(&mut conn, &target.table).await;
        let clock = source::read_clock(&mut conn).await.ok().flatten();
        head.map(|h| (h, clock))
    });
    cx.session.give_back(conn);
    let (head, clock) = read.map_err(|e| StepError::failed(e.to_string()))?;
    let now = chrono::Utc::now();
    let limit = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
    let entries = list()?;
    for skipped in entries.iter().filter(|e| e.future_dated(now)) {
        cx.ui.warn(&format!(
            "backup {} is dated {} in the future (the clock of the machine that took it was ahead?): not reused",
            skipped.id(),
            human_age(-skipped.age(now))
        ));
    }
    let found = entries
        .into_iter()
        .find(|e| e.usable(now) && e.age(now) <= limit && e.manifest.migration_head == head);
    Ok((found, clock))
}

impl BackupStep {
    /// `snapshot` then `wait` through the environment's provider, then a catalog entry.
    fn take_via_provider(
        &self,
        cx: &mut RunContext<'_>,
        target: &Target,
        catalog: &Catalog,
    ) -> Result<Outcome, StepError> {
        let host = self
            .host
            .as_ref()
            .ok_or_else(|| StepError::failed("Lua providers are not loaded"))?;
        let provider = cx.env.provider.clone().ok_or_else(|| {
            StepError::failed(format!(
                "environment `{}` declares no provider for `via: provider`",
                cx.env.name
            ))
        })?;
        let started = chrono::Utc::now();
        let mut call = |action: &str,
                        args: Vec<serde_json::Value>|
         -> Result<serde_json::Value, StepError> {
            let (function, def) = host.provider_function(&provider, action).ok_or_else(|| {
                StepError::failed(format!("provider `{provider}` does not define `{action}`"))
            })?;
            let context = host.run_context(cx, &def.path, def.writes(host));
            let (value, events) = host
                .call(
                    cx.runtime(),
                    &function,
                    context,
                    true,
                    args,
                    &format!("provider `{provider}` {action}"),
                )
                .map_err(|e| StepError::failed(e.0))?;
            for (event, data) in events {
                cx.journal.record(&event, data);
            }
            Ok(value)
        };
        let mut opts = serde_json::Map::new();
        if let Some(label) = &self.label {
            opts.insert("label".into(), label.clone().into());
        }
        let value = call("snapshot", vec![serde_json::Value::Object(opts)])?;
        let snapshot_id = value
            .as_str()
            .map(str::to_string)
            .or_else(|| value.get("id").and_then(|v| v.as_str()).map(str::to_string))
            .ok_or_else(|| {
                StepError::failed(format!(
                    "provider `{provider}` snapshot returned no id (got {value})"
                ))
            })?;
        call("wait", vec![serde_json::Value::String(snapshot_id.clone())])?;
        // The migration head is best effort: a provider database may not be reachable
        // from here (that is often why a provider is used).
        let head = (|| {
            let store = cx.store().ok()?;
            let mut conn = cx.take_db().ok()?;
            let status = cx
                .runtime()
                .block_on(crate::db::migrate::status(&mut conn, &store, &target.table))
                .ok();
            cx.session.give_back(conn);
            status.and_then(|s| s.head().map(str::to_string))
        })();
        let entry = backup::create::record_provider_snapshot(
            catalog,
            &target.url,
            &provider,
            &snapshot_id,
            self.label.as_deref(),
            Some(cx.run_id),
            head,
            started,
        )
        .map_err(|e| StepError::failed(e.to_string()))?;
        cx.ui.out(&format!(
            "  ✔ backup {} = provider `{provider}` snapshot {snapshot_id}",
            entry.id()
        ));
        Ok(outputs(&entry)
            .with("reused", false)
            .with("snapshot_id", snapshot_id)
            .with("provider", provider))
    }
}

fn outputs(entry: &Entry) -> Outcome {
    let m = &entry.manifest;
    Outcome::done()
        .with(crate::journal::BACKUP_ID, m.id.clone())
        .with("path", entry.dir.display().to_string())
        .with("environment", m.environment.clone())
        .with("size", m.size)
        .with("sha256", m.sha256.clone())
        .with("migration_head", m.migration_head.clone())
}
