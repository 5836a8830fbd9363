//! The Workflowfile's settings sections (migrations, backups, lint, guard), checked as
//! they are converted: each problem becomes a diagnostic at its key.

use super::build::text_of;
use crate::config::diagnostic::{Diagnostic, Loc};
use crate::config::model::{BackupOverrides, BackupSettings, ForbiddenList, GuardConfig};
use crate::config::raw::{Protection, RawBackups, RawEnvBackups, RawGuard, SStr};
use serde_saphyr::Spanned;
use std::path::PathBuf;
use std::sync::Arc;

/// `migrations:` timeouts and retries, with the defaults for what is not set.
pub(super) fn migration_limits(
    raw: Option<&crate::config::raw::RawMigrations>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> crate::config::model::MigrationLimits {
    let mut duration = |value: Option<&SStr>| -> Option<std::time::Duration> {
        let value = value?;
        match humantime::parse_duration(&value.value) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(
                    Diagnostic::at(
                        Loc::new(file, &value.referenced),
                        format!("invalid duration `{}`: {e}", value.value),
                    )
                    .with_help("write a duration such as `5s`, `2m` or `1h`"),
                );
                None
            }
        }
    };
    crate::config::model::MigrationLimits {
        lock_timeout: duration(raw.and_then(|r| r.lock_timeout.as_ref())),
        statement_timeout: duration(raw.and_then(|r| r.statement_timeout.as_ref())),
        lock_retries: raw.and_then(|r| r.lock_retries).unwrap_or(3),
        lock_wait: duration(raw.and_then(|r| r.lock_wait.as_ref()))
            .unwrap_or(std::time::Duration::from_secs(60)),
    }
}

/// The top-level `backups:` section over the defaults.
pub(super) fn backup_settings(
    raw: Option<&RawBackups>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> BackupSettings {
    let mut settings = BackupSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    settings.format = raw.format.unwrap_or(settings.format);
    if let Some(jobs) = &raw.jobs {
        settings.jobs = check_jobs(jobs, file, errors);
    }
    if let Some(r) = &raw.retention {
        settings.retention.daily = r.daily.unwrap_or(settings.retention.daily);
        settings.retention.weekly = r.weekly.unwrap_or(settings.retention.weekly);
        settings.retention.monthly = r.monthly.unwrap_or(settings.retention.monthly);
        if let Some(keep) = &r.keep_deploys {
            settings.retention.keep_deploys = check_keep_deploys(keep, file, errors);
        }
    }
    if let Some(timeout) = &raw.lock_wait_timeout {
        settings.lock_wait_timeout = check_lock_wait_timeout(timeout, file, errors);
    }
    settings.stop_writes = raw.stop_writes.as_ref().map(|t| t.value.clone());
    settings.switch_to_restored = raw.switch_to_restored.as_ref().map(|t| t.value.clone());
    settings.repository = raw
        .repository
        .as_ref()
        .map(|r| check_repository(r, file, errors));
    if let Some(e) = &raw.encryption {
        settings.recipients = check_recipients(e, file, errors);
    }
    settings
}

/// `backups.encryption.recipients`: each an `age1…` public key (an identity,
/// `AGE-SECRET-KEY-1…`, is refused without being echoed: it must never be in the file).
fn check_recipients(
    raw: &crate::config::raw::RawEncryption,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<String> {
    if raw.recipients.is_empty() {
        errors.push(Diagnostic::bare(format!(
            "{}: `backups.encryption.recipients` is empty: name at least one age1… public key",
            file.display()
        )));
    }
    for r in &raw.recipients {
        if let Err(why) = crate::config::repository::recipient(&r.value) {
            errors.push(Diagnostic::at(Loc::new(file, &r.referenced), why).with_help(
                "`age-keygen -o key.txt` prints the public key (age1…) to put here; the key file stays with whoever restores",
            ));
        }
    }
    raw.recipients.iter().map(|r| r.value.clone()).collect()
}

/// `backups.repository`: checked here when it holds no `${VAR}` (interpolated ones are
/// checked when used, with the same messages).
fn check_repository(value: &SStr, file: &Arc<PathBuf>, errors: &mut Vec<Diagnostic>) -> String {
    if value.value.contains("${") && !value.value.contains("://") {
        errors.push(
            Diagnostic::at(
                Loc::new(file, &value.referenced),
                "a folder `backups.repository` cannot use ${VAR}: write the folder, or an s3://, gs:// or az:// URL",
            )
            .with_help("object-storage URLs may use ${VAR}, e.g. `s3://${BACKUP_BUCKET}/dbflow`"),
        );
    } else if !value.value.contains("${") {
        if let Err(why) =
            crate::config::repository::Location::parse(&value.value, std::path::Path::new("."))
        {
            errors.push(Diagnostic::at(Loc::new(file, &value.referenced), why).with_help(
                "e.g. `repository: s3://my-bucket/dbflow` (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, endpoint from AWS_ENDPOINT_URL), or a folder",
            ));
        }
    }
    value.value.clone()
}

/// An environment's `backups:` section: only what it sets.
pub(super) fn backup_overrides(
    raw: Option<&RawEnvBackups>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> BackupOverrides {
    let Some(raw) = raw else {
        return BackupOverrides::default();
    };
    BackupOverrides {
        format: raw.format,
        jobs: raw.jobs.as_ref().map(|j| check_jobs(j, file, errors)),
        daily: raw.retention.as_ref().and_then(|r| r.daily),
        weekly: raw.retention.as_ref().and_then(|r| r.weekly),
        monthly: raw.retention.as_ref().and_then(|r| r.monthly),
        keep_deploys: raw
            .retention
            .as_ref()
            .and_then(|r| r.keep_deploys.as_ref())
            .map(|k| check_keep_deploys(k, file, errors)),
        lock_wait_timeout: raw
            .lock_wait_timeout
            .as_ref()
            .map(|t| check_lock_wait_timeout(t, file, errors)),
        stop_writes: raw.stop_writes.as_ref().map(|t| t.value.clone()),
        switch_to_restored: raw.switch_to_restored.as_ref().map(|t| t.value.clone()),
        repository: raw
            .repository
            .as_ref()
            .map(|r| check_repository(r, file, errors)),
        recipients: raw
            .encryption
            .as_ref()
            .map(|e| check_recipients(e, file, errors)),
    }
}

/// `retention.keep_deploys`: 0 would let `prune` delete the rollback point of the
/// deploy that just ran, the backup most needed after a bad deploy.
fn check_keep_deploys(
    keep: &Spanned<u32>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> u32 {
    if keep.value == 0 {
        errors.push(
            Diagnostic::at(
                Loc::new(file, &keep.referenced),
                "`keep_deploys` must be at least 1: the last deploy's pre-deploy backup is its rollback point",
            )
            .with_help("the default is 5; unwanted rollback points go with `dbflow backup prune` once newer deploys replace them"),
        );
        return 1;
    }
    keep.value
}

/// `backups.lock_wait_timeout`: a duration of at least one second (pg_dump would read 0
/// as "wait forever", the very hang the setting exists to prevent).
fn check_lock_wait_timeout(
    value: &SStr,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> std::time::Duration {
    let default = BackupSettings::default().lock_wait_timeout;
    match humantime::parse_duration(&value.value) {
        Ok(d) if d >= std::time::Duration::from_secs(1) => d,
        Ok(_) => {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &value.referenced),
                    format!("`lock_wait_timeout` `{}` is too short: use at least 1s", value.value),
                )
                .with_help("the default is 60s; pg_dump gives up (naming the session holding the lock) when a table stays locked this long"),
            );
            default
        }
        Err(e) => {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &value.referenced),
                    format!("invalid duration `{}`: {e}", value.value),
                )
                .with_help("write a duration such as `30s`, `2m` or `1h`"),
            );
            default
        }
    }
}

/// `jobs`: at least one process.
fn check_jobs(jobs: &Spanned<u32>, file: &Arc<PathBuf>, errors: &mut Vec<Diagnostic>) -> u32 {
    if jobs.value == 0 {
        errors.push(
            Diagnostic::at(
                Loc::new(file, &jobs.referenced),
                "`jobs` must be at least 1",
            )
            .with_help("1 dumps and restores with one process; 2–8 suits most servers"),
        );
        return 1;
    }
    jobs.value
}

/// The `lint:` section: the small-table threshold and the allowed findings.
pub(super) fn lint_settings(
    raw: Option<&crate::config::raw::RawLint>,
    file: &Arc<PathBuf>,
) -> crate::config::model::LintSettings {
    let mut settings = crate::config::model::LintSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    if let Some(rows) = raw.small_table_rows {
        settings.small_table_rows = rows;
    }
    settings.allow = raw
        .allow
        .iter()
        .map(|entry| crate::config::model::LintAllow {
            migration: text_of(file, &entry.value.migration),
            rule: text_of(file, &entry.value.rule),
            reason: text_of(file, &entry.value.reason),
            loc: Loc::new(file, &entry.referenced),
        })
        .collect();
    settings
}

/// The `guard:` section: operations forbidden per protection level and per environment.
pub(super) fn guard_config(raw: Option<&RawGuard>, file: &Arc<PathBuf>) -> GuardConfig {
    let Some(raw) = raw else {
        return GuardConfig::default();
    };
    let list = |ops: &Spanned<Vec<SStr>>| ForbiddenList {
        operations: ops.value.iter().map(|o| text_of(file, o)).collect(),
        loc: Loc::new(file, &ops.referenced),
    };
    let mut levels = Vec::new();
    if let Some(forbidden) = &raw.forbidden {
        for (level, ops) in [
            (Protection::Sandbox, &forbidden.sandbox),
            (Protection::Shared, &forbidden.shared),
            (Protection::Protected, &forbidden.protected),
        ] {
            if let Some(ops) = ops {
                levels.push((level, list(ops)));
            }
        }
    }
    GuardConfig {
        levels,
        environments: raw
            .environments
            .iter()
            .map(|(name, env)| (name.value.clone(), list(&env.forbidden)))
            .collect(),
    }
}
