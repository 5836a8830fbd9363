//! `restore`: restore a verified backup into a new database (default `<db>_restore_<ts>`)
//! or, with `in_place` and the typed word RESTORE, over the environment's database
//! (never on a protected one), then validate the restored copy.

use super::restoring::{self, Destination, CONFIRM_WORD};
use crate::config::Diagnostic;
use crate::db::backup::{self, Catalog};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `restore` step kind.
pub struct RestoreKind;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Params {
    backup: Option<String>,
    into: Option<String>,
    #[serde(default)]
    in_place: bool,
    confirm: Option<String>,
}

/// A configured `restore` step.
#[derive(Debug)]
pub struct RestoreStep {
    backup: Option<String>,
    destination: Destination,
}

impl StepKind for RestoreKind {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Restore)
    }

    fn name(&self) -> &str {
        "restore"
    }

    fn summary(&self) -> &str {
        "restore a verified backup into a new database (in place only with RESTORE typed)"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let params: Params = match params {
            serde_json::Value::Null => Params::default(),
            serde_json::Value::String(id) => Params {
                backup: Some(id.clone()),
                ..Params::default()
            },
            other => parse_params(other)?,
        };
        Ok(Box::new(RestoreStep {
            backup: params.backup,
            destination: destination(params.into, params.in_place, params.confirm)?,
        }))
    }
}

/// `into` / `in_place` / `confirm` as a [`Destination`] (shared with `rollback`).
pub(crate) fn destination(
    into: Option<String>,
    in_place: bool,
    confirm: Option<String>,
) -> Result<Destination, String> {
    match (into, in_place) {
        (Some(_), true) => Err("`into` and `in_place` exclude each other".into()),
        (into, false) => {
            if let Some(name) = &into {
                // Checked here, at load, and again where the database is created.
                if name.is_empty() || name.starts_with('-') || name.chars().any(char::is_control) {
                    return Err(format!(
                        "`into: {}` cannot name a database: it is empty, starts with `-` (commands would read it as an option) or holds a control character",
                        name.escape_debug()
                    ));
                }
            }
            if confirm.is_some() {
                return Err("`confirm` only applies to `in_place: true`".into());
            }
            Ok(Destination::New(into))
        }
        (None, true) => Ok(Destination::InPlace { confirm }),
    }
}

/// What a restore destination means, for plans and runbooks.
pub(crate) fn describe_destination(
    cx: &PlanContext<'_>,
    destination: &Destination,
) -> (String, Vec<String>) {
    let target = Target::for_env(cx.project, cx.env);
    // In runbooks the URL stays a `${VAR}` reference: name and engine are unknown, and a
    // URL that is not SQLite's is PostgreSQL's.
    let db = Some(backup::restore::display_name(&target.url))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "<db>".into());
    let settings = cx.project.backup_settings(&cx.env.name);
    let pg_restore = |name: &str| match settings.format {
        crate::config::raw::DumpFormat::Custom => vec![
            "sha256sum <backup>/dump.pgdump   # must match manifest.json".to_string(),
            format!("createdb --template=template0 {name}"),
            format!("pg_restore --no-owner --exit-on-error --dbname={name} <backup>/dump.pgdump"),
        ],
        crate::config::raw::DumpFormat::Directory => vec![
            "(cd <backup>/dump && sha256sum *)   # must match manifest.json".to_string(),
            format!("createdb --template=template0 {name}"),
            format!(
                "pg_restore --no-owner --exit-on-error --jobs={} --dbname={name} <backup>/dump",
                settings.jobs
            ),
        ],
    };
    match destination {
        Destination::New(name) => {
            let name = name
                .clone()
                .unwrap_or_else(|| format!("{db}_restore_<YYYYMMDD_HHMMSS>"));
            let commands = if !target.url.is_sqlite() {
                pg_restore(&name)
            } else {
                vec![format!("cp <backup>/database.sqlite {name}")]
            };
            (
                format!("into a new database `{name}`; `{db}` is not touched"),
                commands,
            )
        }
        Destination::InPlace { .. } => {
            let copy = format!("{db}_restore_<YYYYMMDD_HHMMSS>");
            let aside = format!("{db}_pre_restore_<YYYYMMDD_HHMMSS>");
            let mut commands = vec![format!(
                "dbflow check restore-in-place --env {}   # the guard must answer ALLOWED",
                cx.env.name
            )];
            if !target.url.is_sqlite() {
                commands.extend(pg_restore(&copy));
            } else {
                commands.push(format!("cp <backup>/database.sqlite {copy}"));
            }
            if let Some(task) = cx.project.backup_settings(&cx.env.name).stop_writes {
                commands.push(format!(
                    "dbflow run {task} --env {}   # stop_writes",
                    cx.env.name
                ));
            }
            if !target.url.is_sqlite() {
                commands.push(format!(
                    "psql -d postgres -c 'ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false'   # while no deploy holds advisory lock {}",
                    crate::db::migrate::ADVISORY_LOCK_KEY
                ));
                commands.push(format!(
                    "psql -d postgres -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'\""
                ));
                commands.push(format!(
                    "psql -d postgres -1 -c 'ALTER DATABASE {db} RENAME TO {aside}' -c 'ALTER DATABASE {copy} RENAME TO {db}'"
                ));
                commands.push(format!(
                    "psql -d postgres -c 'ALTER DATABASE {aside} WITH ALLOW_CONNECTIONS true'"
                ));
            } else {
                commands.push(format!("ln {db} {aside} && mv {copy} {db}"));
            }
            (
                format!(
                    "IN PLACE over `{db}`, where the guard allows `restore-in-place` and after the word {CONFIRM_WORD} is typed: restored beside it as `{copy}` and validated, then (after stop_writes, holding the deployers' lock) swapped into its place in one transaction; the replaced database is kept as `{aside}` (`dbflow restore list`)"
                ),
                commands,
            )
        }
    }
}

impl Step for RestoreStep {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Restore)
    }

    fn confirmations(&self, cx: &PlanContext<'_>) -> Vec<crate::engine::Confirmation> {
        restoring::destination_confirmations(cx, &self.destination)
    }

    fn operations(&self) -> Vec<crate::guard::Operation> {
        restoring::destination_operations(&self.destination)
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let (where_to, commands) = describe_destination(cx, &self.destination);
        let which = match self.backup.as_deref() {
            None => "the backup taken earlier in the run, else the newest verified one".to_string(),
            Some("latest") => "the newest verified backup".to_string(),
            Some(id) => format!("backup {id}"),
        };
        let mut all = vec![format!(
            "dbflow restore {} --env {}{}",
            self.backup.as_deref().unwrap_or("<id>"),
            cx.env.name,
            match &self.destination {
                Destination::New(Some(name)) => format!(" --into {name}"),
                Destination::New(None) => String::new(),
                Destination::InPlace { .. } => " --in-place".into(),
            }
        )];
        all.extend(commands);
        Ok(StepDoc {
            summary: format!("Restore {which}"),
            details: format!(
                "Restores {where_to}. The dump's sha256 is checked first; the copy is then validated (tables, key row counts, migration status, drill.verify)."
            ),
            commands: all,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        restoring::check_destination(cx, &self.destination)?;
        let remote = crate::db::backup::repository::remote_for(cx.project, &cx.env.name, cx.vars)
            .map_err(|message| StepError {
            message,
            code: crate::error::ExitCode::BadInput,
        })?;
        let (entry, report) = match remote {
            Some(remote) => self.restore_from(cx, &remote)?,
            None => {
                let catalog = Catalog::new(cx.project, &cx.env.name);
                let entry = restoring::pick_backup(cx, &catalog, self.backup.as_deref())?;
                let report = restoring::restore(cx, &entry, &self.destination)?;
                (entry, report)
            }
        };
        let checks = restoring::validate(cx, &entry, &report.url, None)?;
        restoring::print_checks(cx, &checks);
        let outcome = Outcome::done()
            .with(crate::journal::BACKUP_ID, entry.id().to_string())
            .with("database", report.database.clone())
            .with(
                "in_place",
                matches!(self.destination, Destination::InPlace { .. }),
            )
            .with("duration_ms", report.duration.as_millis() as u64)
            .with("checks", serde_json::to_value(&checks).unwrap_or_default());
        restoring::checks_passed(&checks, &format!("restored `{}`", report.database))?;
        if matches!(self.destination, Destination::New(_)) {
            cx.ui
                .out(&format!("  the restored copy: {}", report.url.redacted()));
        }
        Ok(outcome)
    }
}

impl RestoreStep {
    /// Restores from an object-storage repository, the dump streamed into pg_restore:
    /// into a new database, or in place by the same restore-beside, validate and swap
    /// as from a folder.
    fn restore_from(
        &self,
        cx: &mut RunContext<'_>,
        remote: &crate::db::backup::repository::Remote,
    ) -> Result<(crate::db::backup::Entry, backup::restore::RestoreReport), StepError> {
        use crate::db::backup::repository::object;
        let runtime = object::runtime().map_err(restoring::step_error)?;
        let from_this_run = cx
            .outputs
            .values()
            .rev()
            .find_map(|o| o.get("backup_id").and_then(|v| v.as_str()))
            .map(str::to_string);
        let id = match (self.backup.as_deref(), from_this_run) {
            (Some(id), _) => id.to_string(),
            (None, Some(id)) => id,
            (None, None) => "latest".to_string(),
        };
        let entry = runtime
            .block_on(object::get(remote, &cx.env.name, &id))
            .map_err(restoring::step_error)?;
        let Destination::New(name) = &self.destination else {
            // Identities are read (and a missing one refused) before anything is asked.
            let identities =
                object::identities_for(&entry, cx.vars).map_err(restoring::step_error)?;
            cx.ui.out(&format!("  from {}", remote.shown));
            let origin = restoring::Origin::Repository {
                remote,
                identities: identities.as_deref(),
            };
            let report = restoring::restore_from(cx, &entry, &self.destination, origin)?;
            return Ok((entry, report));
        };
        let target = Target::for_env(cx.project, cx.env);
        let now = chrono::Utc::now();
        cx.ui.out(&format!(
            "  backup {} from {} ({} old, {}, migration head {})",
            entry.id(),
            remote.shown,
            backup::human_age(entry.age(now)),
            backup::human_size(entry.manifest.size),
            entry.manifest.migration_head.as_deref().unwrap_or("(none)")
        ));
        cx.journal.log(crate::journal::Event::RestoreStart {
            backup_id: entry.id().to_string(),
            repository: Some(remote.shown.to_string()),
            destination: "new".into(),
        });
        let source_db = backup::restore::display_name(&target.url);
        let name = name
            .clone()
            .unwrap_or_else(|| backup::restore::default_name(&source_db, "restore", now));
        let identities = object::identities_for(&entry, cx.vars).map_err(restoring::step_error)?;
        let mut transfer = crate::ui::progress::Transfer::new(cx.ui);
        let result = object::restore_into_new(
            remote,
            &entry,
            &target.url,
            &name,
            &runtime,
            identities.as_deref(),
            &mut super::show(&mut transfer),
        );
        transfer.finish();
        let report = result.map_err(restoring::step_error)?;
        Ok((entry, report))
    }
}
