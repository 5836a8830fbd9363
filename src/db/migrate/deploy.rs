//! Deploy: checks the status, takes the lock, applies the pending migrations in order,
//! reports each once durable, and records the schema it leaves behind.

use super::apply::{apply, Limits};
use super::error::DeployError;
use super::lock::{lock, ADVISORY_LOCK_KEY};
use super::observe::{status, status_within};
use super::status::{State, Status};
use crate::db::conn::{quote_ident, quote_literal, Conn};
use crate::db::history;
use crate::db::interruption::{cancelling, Interruption, Stopped};
use crate::db::schema;
use crate::db::store::Store;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Progress reported while deploying.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Waiting for the deploy lock held by someone else.
    WaitingForLock,
    /// A migration starts (index from 1, total).
    Applying(&'a str, usize, usize),
    /// A migration is applied.
    Applied(&'a str, Duration, bool),
    /// A migration failed on `lock_timeout` and will be retried after a pause.
    Retrying(&'a str, u32, Duration),
}

/// What a deploy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployReport {
    /// Migrations applied by this deploy, in order.
    pub applied: Vec<String>,
    /// Migrations that were pending (what a dry run would apply).
    pub pending: Vec<String>,
    /// Warnings shown (missing-locally migrations, drift, …).
    pub warnings: Vec<String>,
}

/// Options of one deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Stop after this migration.
    pub to: Option<String>,
    /// Stop before this migration (the bad one a rollback skips): it and everything
    /// after it stay pending.
    pub before: Option<String>,
    /// Only list what would be applied.
    pub dry_run: bool,
}

/// Applies pending migrations in order.
pub async fn deploy(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    limits: &Limits,
    options: &DeployOptions,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<DeployReport, DeployError> {
    if let Some(to) = &options.to {
        if store.get(to).is_none() {
            return Err(DeployError::Refused(format!(
                "--to {to}: no such migration in the migrations folder"
            )));
        }
    }
    if let Some(before) = &options.before {
        if store.get(before).is_none() {
            return Err(DeployError::Refused(format!(
                "stop before {before}: no such migration in the migrations folder"
            )));
        }
    }
    if options.dry_run {
        let status = status(conn, store, table).await?;
        return Ok(DeployReport {
            pending: pending_names(&status, options),
            ..DeployReport::default()
        });
    }
    // SIGINT/SIGTERM from here on cancel the running statement and end with a report.
    let _scope = crate::interrupt::scope();
    let locked = lock(conn, limits.lock_wait, on_event).await?;
    let result = deploy_locked(conn, store, table, limits, options, on_event).await;
    if locked {
        let _ = conn
            .batch(&format!("SELECT pg_advisory_unlock({ADVISORY_LOCK_KEY})"))
            .await;
    }
    result
}

fn pending_names(status: &Status, options: &DeployOptions) -> Vec<String> {
    let mut out = Vec::new();
    for entry in &status.entries {
        if Some(&entry.name) == options.before.as_ref() {
            break;
        }
        if matches!(entry.state, State::Pending | State::RolledBack) {
            out.push(entry.name.clone());
        }
        if Some(&entry.name) == options.to.as_ref() {
            break;
        }
    }
    out
}

async fn deploy_locked(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    limits: &Limits,
    options: &DeployOptions,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<DeployReport, DeployError> {
    history::ensure(conn, table).await?;
    let catalog_wait = limits.lock_timeout.unwrap_or(schema::CATALOG_LOCK_TIMEOUT);
    let status = status_within(conn, store, table, catalog_wait).await?;
    refuse_unless_clean(&status)?;
    let mut report = DeployReport::default();
    for entry in status.with_state(State::MissingLocally) {
        report.warnings.push(format!(
            "migration `{}` is recorded as applied but missing from the migrations folder",
            entry.name
        ));
    }
    for line in &status.drift {
        report
            .warnings
            .push(format!("schema drift before deploy: {line}"));
    }
    if let Some(before) = &options.before {
        if let Some(entry) = status.entries.iter().find(|e| &e.name == before) {
            if matches!(entry.state, State::Applied | State::Modified) {
                return Err(DeployError::Refused(format!(
                    "cannot stop before {before}: it is already applied"
                )));
            }
        }
    }
    report.pending = pending_names(&status, options);
    let before = status.live_schema.clone();
    if conn.is_postgres() && !report.pending.is_empty() {
        // The session's own commits are durable (a server, database or role running with
        // `synchronous_commit = off` is overridden; stronger settings are kept); see
        // `Durability` for which migrations commit without waiting for the flush.
        conn.batch(DURABLE_COMMITS).await?;
    }
    let canceller = match report.pending.is_empty() {
        true => None,
        false => conn.canceller().await?,
    };
    let _note = canceller.as_ref().map(|c| {
        crate::interrupt::note(format!(
            "the deploy's running statement may still be running on the server (backend pid {}); `dbflow migrate status` shows what was applied",
            c.pid()
        ))
    });
    let total = report.pending.len();
    let mut durability = Durability::new(conn.is_postgres());
    for (index, name) in report.pending.clone().iter().enumerate() {
        if let Some(signal) = crate::interrupt::received() {
            durability.confirm(conn, table, &mut report, on_event).await;
            record_after_failure(conn, table, !report.applied.is_empty(), before.as_deref()).await;
            return Err(DeployError::Interrupted(Interruption {
                signal,
                applied: report.applied,
                stopped: None,
                pending: report.pending[index..].to_vec(),
            }));
        }
        let migration = store
            .get(name)
            .expect("pending migrations come from the store");
        on_event(Event::Applying(name, index + 1, total));
        let started = Instant::now();
        let wait_for_flush = durability.flush_now(index + 1 == total);
        let applying = apply(conn, migration, table, limits, wait_for_flush, on_event);
        let transactional = match cancelling(applying, canceller.as_ref()).await {
            Ok(t) => t,
            Err(mut failure) => {
                let unconfirmed = durability.confirm(conn, table, &mut report, on_event).await;
                if !unconfirmed.is_empty() {
                    failure.message.push_str(&format!(
                        "\ncommitted but not confirmed durable before the failure (the server may have lost them; `dbflow migrate status` shows which it kept): {}",
                        unconfirmed.join(", ")
                    ));
                }
                // A record made stale by another tool stays as it is (status says so).
                let record = !report.applied.is_empty() && status.schema_stale.is_none();
                record_after_failure(conn, table, record, before.as_deref()).await;
                if let Some(signal) = failure.interrupted {
                    return Err(DeployError::Interrupted(Interruption {
                        signal,
                        stopped: Some(Stopped {
                            name: name.clone(),
                            partial: failure.partial,
                            detail: failure.message,
                        }),
                        pending: report.pending[index + 1..].to_vec(),
                        applied: report.applied,
                    }));
                }
                return Err(DeployError::MigrationFailed {
                    name: name.clone(),
                    message: failure.message,
                    applied: report.applied.clone(),
                    partial: failure.partial,
                });
            }
        };
        // Durable when its own commit waited for the flush, or it ran outside a
        // transaction (every statement then commits with the session's durable setting):
        // either flushed the WAL of every earlier commit too.
        durability.committed(
            name,
            started.elapsed(),
            transactional,
            wait_for_flush || !transactional,
            &mut report,
            on_event,
        );
    }
    let recorded = if status.schema_stale.is_some() {
        // Recording on top of a stale state would carry the other tool's changes as
        // drift; leaving it stale keeps status honest (it says so, and `--shadow` checks).
        report.warnings.push("the recorded schema is stale (migrations applied by another tool): not updated; `dbflow migrate status --shadow` compares with the migrations and records it again when clean".into());
        true
    } else if !report.applied.is_empty() {
        schema::record_change(conn, table, before.as_deref()).await?
    } else if !status.schema_recorded {
        // The first deploy by dbflow on this database: the baseline starts here.
        schema::record(conn, table).await?
    } else {
        true
    };
    if !recorded {
        report.warnings.push("the schema state could not be recorded (catalog locked); drift is checked against the previous deploy".into());
    }
    Ok(report)
}

/// How often at most a deploy waits for the WAL flush: migrations committed meanwhile
/// are reported applied together, once a later commit's flush covered them.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Migrations are reported applied only once durable. Waiting for the WAL flush at every
/// commit would cost one disk sync per migration, so on PostgreSQL most migrations commit
/// with `synchronous_commit = off` and are held back; about every [`FLUSH_EVERY`] (and
/// always for the last one) a migration's commit waits for the flush, which makes every
/// earlier commit durable too, and then the held-back ones are reported with it.
struct Durability {
    held: Vec<(String, Duration, bool)>,
    since: Option<Instant>,
    deferred: bool,
}

impl Durability {
    fn new(postgres: bool) -> Self {
        Durability {
            held: Vec::new(),
            since: None,
            deferred: postgres,
        }
    }

    /// Whether the next migration's commit must wait for the flush.
    fn flush_now(&self, last: bool) -> bool {
        !self.deferred || last || self.since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY)
    }

    /// A migration committed; reports it (and every one held back) once durable.
    fn committed(
        &mut self,
        name: &str,
        took: Duration,
        transactional: bool,
        durable: bool,
        report: &mut DeployReport,
        on_event: &mut (dyn FnMut(Event<'_>) + Send),
    ) {
        self.held.push((name.to_string(), took, transactional));
        if durable {
            self.release(report, on_event);
        } else {
            self.since.get_or_insert_with(Instant::now);
        }
    }

    fn release(&mut self, report: &mut DeployReport, on_event: &mut (dyn FnMut(Event<'_>) + Send)) {
        for (name, took, transactional) in self.held.drain(..) {
            on_event(Event::Applied(&name, took, transactional));
            report.applied.push(name);
        }
        self.since = None;
    }

    /// Before stopping: makes the held-back commits durable with a commit that waits for
    /// the flush and reports them; returns the ones that could not be confirmed.
    async fn confirm(
        &mut self,
        conn: &mut Conn,
        table: &str,
        report: &mut DeployReport,
        on_event: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Vec<String> {
        let Some((newest, _, _)) = self.held.last() else {
            return Vec::new();
        };
        // A write (a new version of the newest row, same values) gives the transaction a
        // commit record to wait for; a read-only one would not wait.
        let touch = format!(
            "UPDATE {} SET applied_steps_count = applied_steps_count WHERE migration_name = {} AND finished_at IS NOT NULL AND rolled_back_at IS NULL",
            quote_ident(table),
            quote_literal(newest)
        );
        // Twice: a cancel sent for the statement before may arrive only now.
        for _ in 0..2 {
            if conn.batch(&touch).await.is_ok() {
                self.release(report, on_event);
                return Vec::new();
            }
        }
        self.held.drain(..).map(|(name, _, _)| name).collect()
    }
}

/// Makes the session's commits wait for the WAL flush unless they already do (or more).
const DURABLE_COMMITS: &str = "SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'";

/// After a failure, record the schema the migrations applied so far left behind.
async fn record_after_failure(
    conn: &mut Conn,
    table: &str,
    applied_any: bool,
    before: Option<&[String]>,
) {
    if applied_any {
        let _ = schema::record_change(conn, table, before).await;
    }
}

fn refuse_unless_clean(status: &Status) -> Result<(), DeployError> {
    let mut problems = Vec::new();
    for entry in status.with_state(State::Failed) {
        problems.push(format!(
            "migration `{}` failed{}\n  fix the database by hand, then run `dbflow migrate resolve --rolled-back {}` to retry it, or `dbflow migrate resolve --applied {}` if you completed it by hand",
            entry.name,
            entry.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default(),
            entry.name,
            entry.name
        ));
    }
    for entry in status.with_state(State::Modified) {
        problems.push(format!(
            "migration `{}` was modified after it was applied ({})\n  applied migrations are immutable: restore the file (e.g. `git checkout -- <dir>/{}/migration.sql`) and put the change in a new migration",
            entry.name,
            entry.note.clone().unwrap_or_default(),
            entry.name
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(DeployError::Refused(format!(
        "refusing to deploy:\n{}",
        problems.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrate::Entry;

    fn status(entries: &[(&str, State)]) -> Status {
        Status {
            entries: entries
                .iter()
                .map(|(name, state)| Entry {
                    name: name.to_string(),
                    state: *state,
                    at: None,
                    note: Some(format!("note of {name}")),
                })
                .collect(),
            drift: Vec::new(),
            drift_checked: true,
            catalog_read: false,
            schema_recorded: true,
            drift_note: None,
            schema_stale: None,
            drift_basis: None,
            live_schema: None,
            history_table_exists: true,
            ignored: Vec::new(),
        }
    }

    fn options(to: Option<&str>, before: Option<&str>) -> DeployOptions {
        DeployOptions {
            to: to.map(str::to_string),
            before: before.map(str::to_string),
            dry_run: false,
        }
    }

    #[test]
    fn pending_and_rolled_back_migrations_are_applied_in_name_order() {
        let s = status(&[
            ("1_a", State::Applied),
            ("2_b", State::RolledBack),
            ("3_c", State::MissingLocally),
            ("4_d", State::Pending),
        ]);
        assert_eq!(pending_names(&s, &options(None, None)), ["2_b", "4_d"]);
    }

    #[test]
    fn to_includes_its_migration_and_before_excludes_it() {
        let s = status(&[
            ("1_a", State::Pending),
            ("2_b", State::Pending),
            ("3_c", State::Pending),
        ]);
        assert_eq!(
            pending_names(&s, &options(Some("2_b"), None)),
            ["1_a", "2_b"]
        );
        assert_eq!(pending_names(&s, &options(None, Some("2_b"))), ["1_a"]);
        assert_eq!(
            pending_names(&s, &options(None, Some("1_a"))),
            Vec::<String>::new()
        );
        // Whichever comes first stops it.
        assert_eq!(
            pending_names(&s, &options(Some("3_c"), Some("2_b"))),
            ["1_a"]
        );
    }

    #[test]
    fn a_clean_status_may_deploy() {
        let s = status(&[
            ("1_a", State::Applied),
            ("2_b", State::MissingLocally),
            ("3_c", State::RolledBack),
            ("4_d", State::Pending),
        ]);
        assert!(refuse_unless_clean(&s).is_ok());
    }

    #[test]
    fn failed_and_modified_migrations_refuse_with_how_to_proceed() {
        let s = status(&[
            ("1_a", State::Modified),
            ("2_b", State::Failed),
            ("3_c", State::Pending),
        ]);
        let Err(DeployError::Refused(message)) = refuse_unless_clean(&s) else {
            panic!("expected a refusal");
        };
        assert_eq!(
            message,
            "refusing to deploy:\n\
             migration `2_b` failed: note of 2_b\n  fix the database by hand, then run `dbflow migrate resolve --rolled-back 2_b` to retry it, or `dbflow migrate resolve --applied 2_b` if you completed it by hand\n\
             migration `1_a` was modified after it was applied (note of 1_a)\n  applied migrations are immutable: restore the file (e.g. `git checkout -- <dir>/1_a/migration.sql`) and put the change in a new migration"
        );
    }
}
