//! What the `restore`, `rollback` and `drill` kinds share: choosing the backup, the
//! in-place safeguards (permission, typed confirmation, `stop_writes`), and validating
//! the restored copy.

use crate::config::DbUrl;
use crate::db::backup::checks::{self, Check, Expectations};
use crate::db::backup::restore::{self, RestoreReport};
use crate::db::backup::{human_age, Catalog, Entry};
use crate::db::target::Target;
use crate::engine::{RunContext, StepError};
use crate::error::{Error, ExitCode};
use crate::guard::{self, Operation};
use crate::ui::progress::Transfer;
use crate::ui::prompt::{self, Answer};

/// The word typed to confirm replacing a database.
pub const CONFIRM_WORD: &str = "RESTORE";

/// Where a backup goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A new database: this name, or `<db>_restore_<ts>`.
    New(Option<String>),
    /// Over the environment's own database; `confirm` is the pre-typed word, if any.
    InPlace {
        /// What `--confirm` / `confirm:` gave.
        confirm: Option<String>,
    },
}

/// Where the backup is read from.
#[derive(Clone, Copy)]
pub enum Origin<'a> {
    /// The environment's backups folder.
    Folder,
    /// An object-storage repository: the dump streams from it into pg_restore,
    /// decrypted with `identities` when it is encrypted.
    Repository {
        /// The repository.
        remote: &'a crate::db::backup::repository::Remote,
        /// The identities of an encrypted backup (`None`: it is not encrypted).
        identities: Option<&'a [crate::db::backup::repository::crypt::Identity]>,
    },
}

/// Restores `entry` from `origin` into the new database `name` beside `live`.
pub fn restore_copy(
    cx: &mut RunContext<'_>,
    entry: &Entry,
    live: &DbUrl,
    name: &str,
    origin: Origin<'_>,
) -> Result<RestoreReport, StepError> {
    let mut transfer = Transfer::new(cx.ui);
    let result = match origin {
        Origin::Folder => {
            let jobs = cx.project.backup_settings(&cx.env.name).jobs;
            restore::restore_into_new(
                entry,
                live,
                name,
                jobs,
                cx.runtime(),
                &mut super::show(&mut transfer),
            )
        }
        Origin::Repository { remote, identities } => {
            use crate::db::backup::repository::object;
            object::runtime().and_then(|rt| {
                object::restore_into_new(
                    remote,
                    entry,
                    live,
                    name,
                    &rt,
                    identities,
                    &mut super::show(&mut transfer),
                )
            })
        }
    };
    transfer.finish();
    result.map_err(step_error)
}

/// The question an in-place restore asks before it replaces `database`.
pub fn in_place_question(database: &str, env: &str, backup: &str) -> String {
    format!("Replace database `{database}` of `{env}` with backup {backup}? Everything written since it was taken is lost")
}

/// What a destination asks and which guarded operation it needs, for runbooks: an
/// in-place restore asks for the word RESTORE (or `confirm:` / `--confirm RESTORE`).
pub fn destination_confirmations(
    cx: &crate::engine::PlanContext<'_>,
    destination: &Destination,
) -> Vec<crate::engine::Confirmation> {
    match destination {
        Destination::New(_) => Vec::new(),
        Destination::InPlace { confirm } => {
            let target = Target::for_env(cx.project, cx.env);
            let database = Some(restore::display_name(&target.url))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "<db>".into());
            vec![crate::engine::Confirmation {
                question: in_place_question(&database, &cx.env.name, "<ID>"),
                answer: prompt::typed_hint(CONFIRM_WORD),
                unattended: match confirm {
                    Some(word) if word == CONFIRM_WORD => {
                        "answered by the step's `confirm:`".into()
                    }
                    _ => format!("--confirm {CONFIRM_WORD}"),
                },
            }]
        }
    }
}

/// The guarded operations a destination needs.
pub fn destination_operations(destination: &Destination) -> Vec<Operation> {
    match destination {
        Destination::New(_) => Vec::new(),
        Destination::InPlace { .. } => vec![Operation::RestoreInPlace],
    }
}

/// An [`Error`] as a step failure with the same exit code.
pub fn step_error(e: impl Into<Error>) -> StepError {
    let e: Error = e.into();
    StepError {
        code: e.exit_code(),
        message: e.to_string(),
    }
}

/// Refuses an in-place destination the guard blocks (`restore-in-place`: the same
/// decision `dbflow check restore-in-place` prints), before anything else is looked at;
/// overrides used are printed and journaled here, once.
pub fn check_destination(
    cx: &mut RunContext<'_>,
    destination: &Destination,
) -> Result<(), StepError> {
    if let Destination::InPlace { .. } = destination {
        crate::guard::authorize(
            cx.project,
            cx.env,
            Operation::RestoreInPlace,
            cx.ui,
            Some(&mut *cx.journal),
        )
        .map_err(|d| StepError::blocked(d.blocked_message()))?;
    }
    Ok(())
}

/// The backup to use: `latest` (the newest verified), an id, or by default the one an
/// earlier step of this run produced, else the newest verified.
pub fn pick_backup(
    cx: &RunContext<'_>,
    catalog: &Catalog,
    requested: Option<&str>,
) -> Result<Entry, StepError> {
    let newest = || {
        catalog.newest_verified().ok_or_else(|| {
            StepError::failed(format!(
                "no verified backup of `{}` in {}",
                catalog.env,
                catalog.dir.display()
            ))
        })
    };
    match requested {
        Some("latest") => newest(),
        Some(id) => catalog.get(id).map_err(step_error),
        None => {
            let from_this_run = cx
                .outputs
                .values()
                .rev()
                .find_map(|o| o.get(crate::journal::BACKUP_ID).and_then(|v| v.as_str()));
            match from_this_run {
                Some(id) => {
                    cx.ui
                        .out(&format!("  using backup {id}, taken earlier in this run"));
                    catalog.get(id).map_err(step_error)
                }
                None => newest(),
            }
        }
    }
}

/// Restores `entry` to `destination`, with the in-place safeguards.
pub fn restore(
    cx: &mut RunContext<'_>,
    entry: &Entry,
    destination: &Destination,
) -> Result<RestoreReport, StepError> {
    restore_from(cx, entry, destination, Origin::Folder)
}

/// Restores `entry`, read from `origin`, to `destination`, with the in-place
/// safeguards: in place always by restore-beside, validate, then swap, whatever the
/// origin.
pub fn restore_from(
    cx: &mut RunContext<'_>,
    entry: &Entry,
    destination: &Destination,
    origin: Origin<'_>,
) -> Result<RestoreReport, StepError> {
    let target = Target::for_env(cx.project, cx.env);
    let now = chrono::Utc::now();
    cx.ui.out(&format!(
        "  backup {} ({} old, {}, migration head {})",
        entry.id(),
        human_age(entry.age(now)),
        crate::db::backup::human_size(entry.manifest.size),
        entry.manifest.migration_head.as_deref().unwrap_or("(none)")
    ));
    cx.journal.log(crate::journal::Event::RestoreStart {
        backup_id: entry.id().to_string(),
        repository: None,
        destination: format!("{destination:?}"),
    });
    let runtime = cx.runtime();
    let source_db = restore::display_name(&target.url);
    let source_db = std::path::Path::new(&source_db)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or(source_db);
    let report = match destination {
        Destination::New(name) => {
            let name = match name {
                Some(name) => name.clone(),
                None => restore::unused_default_name(&target.url, &source_db, "restore", runtime)
                    .map_err(step_error)?,
            };
            restore_copy(cx, entry, &target.url, &name, origin)?
        }
        Destination::InPlace { confirm } => {
            // Decided again without printing: check_destination announced it.
            let permit = guard::permit::permit_for(guard::check(
                cx.project,
                cx.env,
                Operation::RestoreInPlace,
            ))
            .map_err(|d| StepError::blocked(d.blocked_message()))?;
            let database = restore::display_name(&target.url);
            let question = in_place_question(&database, &cx.env.name, entry.id());
            let answer = prompt::typed(CONFIRM_WORD, &question, confirm.as_deref());
            cx.journal.log(crate::journal::Event::Confirmation {
                question: question.clone(),
                answer: format!("{answer:?}"),
                variable: None,
                yes_answers: None,
            });
            match answer {
                Answer::Yes | Answer::AssumedYes => {}
                Answer::No => {
                    return Err(StepError::blocked(format!(
                        "in-place restore not confirmed: the word to type is {CONFIRM_WORD}"
                    )))
                }
                Answer::CannotAsk(reason) => {
                    return Err(StepError::blocked(format!(
                        "in-place restore needs the word {CONFIRM_WORD} typed, and nobody can be asked ({reason}); pass --confirm {CONFIRM_WORD}"
                    )))
                }
            }
            replace_in_place(cx, entry, &target.url, &source_db, &permit, origin)?
        }
    };
    cx.ui.out(&format!(
        "  ✔ restored backup {} into `{}` in {}",
        entry.id(),
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

/// In place, by swap: restore a copy beside the live database, validate it, stop writes,
/// then swap it into place under the deployers' lock (the live one is kept aside).
fn replace_in_place(
    cx: &mut RunContext<'_>,
    entry: &Entry,
    live: &DbUrl,
    source_db: &str,
    permit: &guard::Permit,
    origin: Origin<'_>,
) -> Result<RestoreReport, StepError> {
    let runtime = cx.runtime();
    let copy_name =
        restore::unused_default_name(live, source_db, "restore", runtime).map_err(step_error)?;
    let copy = restore_copy(cx, entry, live, &copy_name, origin)?;
    cx.ui.out(&format!(
        "  restored into `{}`; validating it before anything is replaced",
        copy.database
    ));
    let checks = validate(cx, entry, &copy.url, None)?;
    print_checks(cx, &checks);
    if let Err(mut e) = checks_passed(&checks, &format!("restored copy `{}`", copy.database)) {
        let dropped = drop_own_copy(cx, &copy.url);
        e.message.push_str(&match dropped {
            Ok(()) => format!(
                "; nothing was replaced and the copy `{}` was dropped",
                copy.database
            ),
            Err(d) => format!(
                "; nothing was replaced; the copy `{}` is left ({d})",
                copy.database
            ),
        });
        return Err(e);
    }
    if let Some(task) = cx.project.backup_settings(&cx.env.name).stop_writes {
        cx.ui.out(&format!("  stopping writes: task `{task}`"));
        super::run_hook_task(cx, &task, &[])?;
    }
    let mut transfer = Transfer::new(cx.ui);
    let lock_wait = Target::for_env(cx.project, cx.env).limits.lock_wait;
    let swapped = restore::swap_into_place(
        live,
        &copy.url,
        permit,
        lock_wait,
        runtime,
        &mut super::show(&mut transfer),
    );
    transfer.finish();
    let aside = match swapped {
        Ok(aside) => aside,
        Err(e) => {
            // The swap is one transaction: when it fails the live database is as it
            // was, and the copy would only pile up.
            let mut error = step_error(e);
            error.message.push_str(&match drop_own_copy(cx, &copy.url) {
                Ok(()) => format!(
                    "\n  the restored copy `{}` was dropped again",
                    copy.database
                ),
                Err(d) => format!("\n  the restored copy `{}` is left ({d})", copy.database),
            });
            return Err(error);
        }
    };
    cx.ui.out(&format!(
        "  ✔ `{}` replaced; the database it replaced is kept as `{aside}` (`dbflow restore list`, `dbflow restore drop`)",
        restore::display_name(live)
    ));
    cx.journal.log(crate::journal::Event::RestoreSwap {
        database: restore::display_name(live),
        from: copy.database.clone(),
        kept_aside: aside.clone(),
    });
    Ok(RestoreReport {
        database: restore::display_name(live),
        url: live.clone(),
        duration: copy.duration,
        kept_aside: Some(aside),
    })
}

/// Drops a copy this run made beside the environment's database (drill, rehearsal),
/// through the guard's own-copy permit: never the environment's database itself.
pub fn drop_own_copy(cx: &RunContext<'_>, url: &DbUrl) -> Result<(), Error> {
    let permit = guard::own_copy(
        &guard::GuardTarget::of(cx.env),
        &url.database_name().unwrap_or_default(),
    )
    .map_err(Error::blocked)?;
    restore::drop_database(url, &permit)
}

/// Validates the restored copy at `url` against `entry`; `expected_head` defaults to the
/// backup's.
pub fn validate(
    cx: &RunContext<'_>,
    entry: &Entry,
    url: &DbUrl,
    expected_head: Option<Option<&str>>,
) -> Result<Vec<Check>, StepError> {
    let target = Target::for_env(cx.project, cx.env);
    let store = target.store().map_err(step_error)?;
    let expectations = Expectations {
        manifest: &entry.manifest,
        key_tables: &cx.project.drill.key_tables,
        verify_sql: &cx.project.drill.verify,
        store: &store,
        history_table: &target.table,
        expected_head: expected_head.unwrap_or(entry.manifest.migration_head.as_deref()),
    };
    cx.runtime()
        .block_on(async {
            let mut conn = crate::db::Conn::connect(url)
                .await
                .map_err(|e| crate::db::target::connect_error(url, e))?;
            let checks = checks::validate(&mut conn, &expectations).await;
            conn.close().await;
            checks.map_err(|e| Error::failed(format!("validating {}: {e}", url.redacted())))
        })
        .map_err(step_error)
}

/// Prints checks as ✔/✘ lines.
pub fn print_checks(cx: &RunContext<'_>, checks: &[Check]) {
    for check in checks {
        let mark = if check.passed { "✔" } else { "✘" };
        cx.ui
            .out(&format!("    {mark} {}: {}", check.name, check.detail));
    }
}

/// The failure for checks that did not pass, or `Ok` when all did.
pub fn checks_passed(checks: &[Check], what: &str) -> Result<(), StepError> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(StepError {
        message: format!(
            "{what}: {} check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        ),
        code: ExitCode::Failed,
    })
}
