//! The native migrator: status, deploy, resolve and down, on Prisma's files and history
//! table. Orchestration is written once; [`Conn`] hides the backend.
//!
//! Deploy semantics beyond Prisma's: on PostgreSQL each migration and its history row
//! commit in one transaction (so a failed migration leaves nothing behind and stays
//! pending), except migrations with statements that cannot run in a transaction, which
//! are run statement by statement between a "started" and a "finished" row, as Prisma
//! does. An advisory lock on Prisma's key serialises deployers, dbflow and Prisma alike.

use super::conn::{quote_ident, quote_literal, Conn, DbError};
use super::history::{self, HistoryRow, RowKind};
use super::interruption::{cancelling, Interruption, Stopped};
use super::schema;
use super::store::{Migration, Store};
use crate::sql::{self as statements, line_of};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Prisma's advisory lock key (`prisma migrate deploy` takes the same one).
pub const ADVISORY_LOCK_KEY: i64 = 72707369;

/// The state of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied and unchanged.
    Applied,
    /// On disk, not applied.
    Pending,
    /// Started, not finished, not rolled back.
    Failed,
    /// Applied, but the file changed since (checksum differs).
    Modified,
    /// In the history table, not on disk.
    #[serde(rename = "missing")]
    MissingLocally,
    /// Only rolled-back attempts recorded: it will be applied again.
    RolledBack,
}

impl State {
    /// The name used in `fail_on` and output.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Failed => "failed",
            State::Modified => "modified",
            State::MissingLocally => "missing",
            State::RolledBack => "rolled_back",
        }
    }
}

/// One line of the status.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Migration name.
    pub name: String,
    /// Its state.
    pub state: State,
    /// When it finished (applied) or started (failed).
    pub at: Option<String>,
    /// Extra information: the failure log's first line, the checksums that differ, …
    pub note: Option<String>,
}

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// One entry per migration, in name order (missing-locally ones included).
    pub entries: Vec<Entry>,
    /// Schema changes made outside migrations since the last deploy.
    pub drift: Vec<String>,
    /// Whether drift was checked (a recorded state existed and the catalog was readable).
    pub drift_checked: bool,
    /// Whether a deploy by dbflow recorded the schema state.
    pub schema_recorded: bool,
    /// Why drift was not checked, when it was not.
    pub drift_note: Option<String>,
    /// Why the recorded schema cannot be trusted: migrations were applied after dbflow
    /// recorded it (by another tool, such as `prisma migrate deploy`). Drift is then not
    /// compared with it (that would name the other tool's changes as drift).
    pub schema_stale: Option<String>,
    /// What drift was compared with when not the recorded schema (a scratch database
    /// built from the migrations, see `db::shadow`).
    pub drift_basis: Option<String>,
    /// The live catalog listing read for the drift check (reused by deploy).
    #[serde(skip)]
    pub live_schema: Option<Vec<String>>,
    /// Whether the history table exists.
    pub history_table_exists: bool,
    /// Folder entries that are not migrations, with why.
    pub ignored: Vec<(String, String)>,
}

impl Status {
    /// Migrations in a given state.
    pub fn with_state(&self, state: State) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.state == state)
    }

    /// The problems among `fail_on` categories (`pending`, `failed`, `modified`,
    /// `missing`, `drift`), for people.
    pub fn problems(&self, fail_on: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for entry in &self.entries {
            let category = match entry.state {
                State::Applied => continue,
                State::RolledBack => "pending",
                other => other.as_str(),
            };
            if fail_on.iter().any(|f| f == category) {
                out.push(format!(
                    "{} is {}",
                    entry.name,
                    entry.state.as_str().replace('_', " ")
                ));
            }
        }
        if fail_on.iter().any(|f| f == "drift") {
            out.extend(self.drift.iter().cloned());
        }
        out
    }

    /// How many migrations are in each state, every state present (zero included), plus
    /// `total` and `drift` (schema changes found), for `migrate status --json`.
    pub fn counts(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut counts = serde_json::Map::new();
        for state in [
            State::Applied,
            State::Pending,
            State::Failed,
            State::Modified,
            State::MissingLocally,
            State::RolledBack,
        ] {
            counts.insert(state.as_str().into(), self.with_state(state).count().into());
        }
        counts.insert("total".into(), self.entries.len().into());
        counts.insert("drift".into(), self.drift.len().into());
        counts
    }

    /// The newest applied migration.
    pub fn head(&self) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.state == State::Applied || e.state == State::Modified)
            .map(|e| e.name.as_str())
    }
}

/// Every category `fail_on` knows.
pub const ALL_CATEGORIES: &[&str] = &["pending", "failed", "modified", "missing", "drift"];

/// Computes the status of `store` against the database.
pub async fn status(conn: &mut Conn, store: &Store, table: &str) -> Result<Status, DbError> {
    Ok(observe(conn, table).await?.status(store))
}

/// What the database says (history rows, schema drift), before it is compared with the
/// migrations on disk: reading the database needs no migration files, so a caller can
/// read the folder meanwhile.
#[derive(Debug, Clone)]
pub struct Observed {
    rows: Vec<HistoryRow>,
    history_table_exists: bool,
    drift: Vec<String>,
    drift_checked: bool,
    schema_recorded: bool,
    drift_note: Option<String>,
    schema_stale: Option<String>,
    live_schema: Option<Vec<String>>,
}

impl Observed {
    /// The status of `store` against what was observed.
    pub fn status(self, store: &Store) -> Status {
        Status {
            entries: entries_from(store, &self.rows),
            drift: self.drift,
            drift_checked: self.drift_checked,
            schema_recorded: self.schema_recorded,
            drift_note: self.drift_note,
            schema_stale: self.schema_stale,
            drift_basis: None,
            live_schema: self.live_schema,
            history_table_exists: self.history_table_exists,
            ignored: store.ignored.clone(),
        }
    }
}

/// Reads the history and checks drift (what a plain status needs from the database).
pub async fn observe(conn: &mut Conn, table: &str) -> Result<Observed, DbError> {
    observe_inner(conn, table, schema::CATALOG_LOCK_TIMEOUT).await
}

/// The migrations' states from the history table alone, without the drift check (no
/// catalog reads, so it never waits on a table lock): what the guard reads before a
/// deploy.
pub async fn history_status(
    conn: &mut Conn,
    store: &Store,
    table: &str,
) -> Result<Status, DbError> {
    let (rows, history_table_exists) = history_rows(conn, table).await?;
    Ok(Status {
        entries: entries_from(store, &rows),
        drift: Vec::new(),
        drift_checked: false,
        schema_recorded: false,
        drift_note: Some("not checked".into()),
        schema_stale: None,
        drift_basis: None,
        live_schema: None,
        history_table_exists,
        ignored: store.ignored.clone(),
    })
}

/// The history rows (none when the table does not exist yet) and whether it exists.
async fn history_rows(conn: &mut Conn, table: &str) -> Result<(Vec<HistoryRow>, bool), DbError> {
    let exists = conn.table_exists(table).await?;
    let rows = if exists {
        history::read(conn, table).await?
    } else {
        Vec::new()
    };
    Ok((rows, exists))
}

/// Every migration's state from the history rows (oldest first), plus the rows of
/// migrations that are not on disk. Linear in rows + migrations: projects have hundreds.
fn entries_from(store: &Store, rows: &[HistoryRow]) -> Vec<Entry> {
    let mut by_name: HashMap<&str, Vec<&HistoryRow>> = HashMap::new();
    for row in rows {
        by_name
            .entry(row.migration_name.as_str())
            .or_default()
            .push(row);
    }
    let mut entries: Vec<Entry> = store
        .migrations
        .iter()
        .map(|m| {
            entry_for(
                m,
                by_name.get(m.name.as_str()).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    let on_disk: HashSet<&str> = store.migrations.iter().map(|m| m.name.as_str()).collect();
    let mut reported = HashSet::new();
    let missing = rows.iter().filter(|r| {
        r.rolled_back_at.is_none()
            && !on_disk.contains(r.migration_name.as_str())
            && reported.insert(r.migration_name.as_str())
    });
    for row in missing {
        entries.push(Entry {
            name: row.migration_name.clone(),
            state: State::MissingLocally,
            at: row
                .finished_at
                .clone()
                .or_else(|| Some(row.started_at.clone())),
            note: Some(
                "recorded in the history table but not found in the migrations folder".into(),
            ),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// [`status`] whose drift check waits at most `catalog_wait` for catalog locks.
pub async fn status_within(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    catalog_wait: Duration,
) -> Result<Status, DbError> {
    Ok(observe_inner(conn, table, catalog_wait)
        .await?
        .status(store))
}

/// What [`observe`] reads, waiting at most `catalog_wait` for catalog locks.
async fn observe_inner(
    conn: &mut Conn,
    table: &str,
    catalog_wait: Duration,
) -> Result<Observed, DbError> {
    let probe = match conn.is_postgres() {
        true => probe(conn, table).await?,
        false => None,
    };
    let (rows, history_table_exists, recorded, live_token) = match probe {
        Some(probe) => (probe.rows, true, Some(probe.recorded), probe.token),
        None => {
            let (rows, exists) = history_rows(conn, table).await?;
            let recorded = schema::recorded(conn, false).await?;
            let token = match &recorded {
                Some(r) if r.token.is_some() => schema::token(conn).await?,
                _ => None,
            };
            (rows, exists, recorded, token)
        }
    };
    let (mut drift, mut drift_checked, mut drift_note, mut live_schema) =
        (Vec::new(), false, None, None);
    let schema_recorded = recorded.is_some();
    let schema_stale = match &recorded {
        Some(r) if conn.is_postgres() => stale_reason(&rows, &r.recorded_at),
        _ => None,
    };
    if let Some(why) = &schema_stale {
        drift_note = Some(format!(
            "not compared with the recorded schema: {why}; `dbflow migrate status --shadow` compares with the schema the migrations build"
        ));
    }
    match recorded {
        Some(_) if schema_stale.is_some() => {}
        Some(recorded) if recorded.token.is_some() && live_token == recorded.token => {
            // Nothing in the catalog was rewritten since the listing was recorded. No
            // `live_schema` either: a change then records the live catalog as it is
            // (what it would compute from the record), without holding either listing.
            drift_checked = true;
        }
        Some(recorded) => match schema::snapshot_within(conn, table, catalog_wait).await? {
            Some(live) => {
                if schema::fingerprint(&live) != recorded.fingerprint {
                    let lines = schema::recorded(conn, true)
                        .await?
                        .map(|r| r.lines)
                        .unwrap_or_default();
                    drift = schema::diff(&lines, &live);
                }
                drift_checked = true;
                live_schema = Some(live);
            }
            None => {
                drift_note = Some(format!(
                "not checked: the catalog stayed locked for {} (a session holds an exclusive lock)",
                humantime::format_duration(catalog_wait)
            ))
            }
        },
        None => {
            drift_note = Some("not checked (no deploy by dbflow recorded the schema yet)".into())
        }
    }
    Ok(Observed {
        rows,
        history_table_exists,
        drift,
        drift_checked,
        schema_recorded,
        drift_note,
        schema_stale,
        live_schema,
    })
}

/// Why a schema recorded at `recorded_at` is stale: migrations finished after it
/// (PostgreSQL's clock on both sides). dbflow records after its own migrations commit,
/// so only another tool's rows (or a `migrate resolve --applied` by one) are later.
fn stale_reason(rows: &[HistoryRow], recorded_at: &str) -> Option<String> {
    let recorded = history::utc_millis(recorded_at);
    let mut later: Vec<&str> = rows
        .iter()
        .filter(|r| r.rolled_back_at.is_none())
        .filter(|r| {
            r.finished_at
                .as_deref()
                .is_some_and(|f| f > recorded.as_str())
        })
        .map(|r| r.migration_name.as_str())
        .collect();
    later.dedup();
    let (first, last) = (later.first()?, later.last()?);
    let which = if later.len() == 1 {
        format!("`{first}`")
    } else {
        format!("`{first}` … `{last}`")
    };
    Some(format!(
        "{} migration(s) ({which}) were applied after dbflow recorded the schema at {recorded}, by another tool",
        later.len()
    ))
}

/// What a plain status reads, in one round trip.
struct Probe {
    rows: Vec<HistoryRow>,
    recorded: schema::Recorded,
    token: Option<String>,
}

/// The history rows, the recorded schema state (without its listing) and the live catalog
/// token in one statement (PostgreSQL): a fresh backend pays for every statement it
/// plans, so `status` asks once. `None` when the history or state table does not exist
/// yet; the caller then reads step by step.
async fn probe(conn: &mut Conn, table: &str) -> Result<Option<Probe>, DbError> {
    // Two statements in one message, their rows told apart by width (7, 4); the token is
    // computed by the statement that reads the state row, so a state table without its
    // row returns neither (and the careful path says "not recorded").
    let sql = format!(
        "SELECT checksum, migration_name, started_at, finished_at, rolled_back_at, logs, applied_steps_count FROM {t};\nSELECT fingerprint, recorded_at, token, {token} FROM {state}",
        t = quote_ident(table),
        state = schema::state_table(conn),
        token = schema::token_sql(),
    );
    let rows = match conn.text_rows(&sql).await {
        Ok(rows) => rows,
        // Undefined table, schema or column (a state table from before tokens): not
        // deployed by this dbflow yet; the careful path reads step by step.
        Err(e) if matches!(e.code.as_deref(), Some("42P01" | "3F000" | "42703")) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let (mut history_rows, mut recorded, mut token) = (Vec::new(), None, None);
    for mut row in rows {
        if row.len() == 7 {
            row.insert(0, None);
            history_rows.push(row);
            continue;
        }
        token = row.get_mut(3).and_then(Option::take);
        recorded = Some(schema::Recorded {
            fingerprint: row[0].take().unwrap_or_default(),
            lines: Vec::new(),
            recorded_at: row[1].take().unwrap_or_default(),
            token: row[2].take(),
        });
    }
    // A state table without its row reads as "not recorded": the careful path says so.
    let Some(recorded) = recorded else {
        return Ok(None);
    };
    Ok(Some(Probe {
        rows: history::from_rows(history_rows),
        recorded,
        token,
    }))
}

/// `mine`: the migration's own history rows, oldest first.
fn entry_for(migration: &Migration, mine: &[&HistoryRow]) -> Entry {
    let active: Vec<&&HistoryRow> = mine.iter().filter(|r| r.rolled_back_at.is_none()).collect();
    let entry = |state, at: Option<String>, note: Option<String>| Entry {
        name: migration.name.clone(),
        state,
        at,
        note,
    };
    if let Some(failed) = active.iter().find(|r| r.finished_at.is_none()) {
        let log = failed
            .logs
            .as_deref()
            .and_then(|l| l.lines().next())
            .map(str::to_string);
        return entry(State::Failed, Some(failed.started_at.clone()), log);
    }
    if let Some(applied) = active.last() {
        if applied.checksum.eq_ignore_ascii_case(&migration.checksum)
            || migration.matches_checksum(&applied.checksum)
        {
            return entry(State::Applied, applied.finished_at.clone(), None);
        }
        return entry(
            State::Modified,
            applied.finished_at.clone(),
            Some(format!(
                "applied checksum {}…, file now {}…",
                short(&applied.checksum),
                short(&migration.checksum)
            )),
        );
    }
    if let Some(attempt) = mine.last() {
        let log = attempt
            .logs
            .as_deref()
            .and_then(|l| l.lines().next())
            .map(|l| format!("last attempt rolled back: {l}"));
        return entry(State::RolledBack, attempt.rolled_back_at.clone(), log);
    }
    entry(State::Pending, None, None)
}

fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(12)]
}

/// Limits for applying migrations, with environment defaults already applied.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `lock_timeout` per migration.
    pub lock_timeout: Option<Duration>,
    /// `statement_timeout` per migration.
    pub statement_timeout: Option<Duration>,
    /// Retries after a `lock_timeout` failure.
    pub lock_retries: u32,
    /// How long to wait for another deployer's lock.
    pub lock_wait: Duration,
}

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

/// Why a deploy stopped.
#[derive(Debug, Clone)]
pub enum DeployError {
    /// It would not start: failed or modified migrations, or bad arguments.
    Refused(String),
    /// The deploy lock could not be had in time.
    LockTimeout(String),
    /// A migration failed; `applied` lists what this deploy applied before it.
    MigrationFailed {
        /// The failing migration.
        name: String,
        /// Error with statement and line.
        message: String,
        /// Applied before the failure.
        applied: Vec<String>,
        /// True when part of it stayed applied (non-transactional).
        partial: bool,
    },
    /// The database itself failed (connection lost, …).
    Db(DbError),
    /// SIGINT or SIGTERM stopped it; says where every migration of the deploy was left.
    Interrupted(Interruption),
}

impl DeployError {
    /// The signal that stopped the deploy, when one did.
    pub fn interrupted_by(&self) -> Option<i32> {
        match self {
            DeployError::Interrupted(i) => Some(i.signal),
            _ => None,
        }
    }
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployError::Refused(m) | DeployError::LockTimeout(m) => f.write_str(m),
            DeployError::MigrationFailed {
                name,
                message,
                applied,
                partial,
            } => {
                write!(f, "migration `{name}` failed: {message}")?;
                if *partial {
                    write!(f, "\nit ran outside a transaction and is now marked failed; fix the database, then `dbflow migrate resolve --rolled-back {name}` (to retry) or `--applied {name}` (if finished by hand)")?;
                } else {
                    write!(f, "\nPostgreSQL rolled it back: nothing of it was applied and it is still pending")?;
                }
                if applied.is_empty() {
                    write!(f, "\nno migration was applied by this deploy")
                } else {
                    write!(f, "\napplied before the failure: {}", applied.join(", "))
                }
            }
            DeployError::Db(e) => write!(f, "{e}"),
            DeployError::Interrupted(i) => write!(f, "{i}"),
        }
    }
}

// No `source()`: Display already prints the database's error (for `Db` it is the
// whole message), and a source would make it print twice.
impl std::error::Error for DeployError {}

impl From<DbError> for DeployError {
    fn from(e: DbError) -> Self {
        DeployError::Db(e)
    }
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

/// Takes Prisma's advisory lock (PostgreSQL), waiting up to `wait`. Returns whether a
/// lock was taken (SQLite serialises through `BEGIN IMMEDIATE` per migration instead).
async fn lock(
    conn: &mut Conn,
    wait: Duration,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<bool, DeployError> {
    if !conn.is_postgres() {
        return Ok(false);
    }
    let started = Instant::now();
    let mut announced = false;
    loop {
        if try_lock_once(conn).await? {
            return Ok(true);
        }
        if !announced {
            on_event(Event::WaitingForLock);
            announced = true;
        }
        if let Some(signal) = crate::interrupt::received() {
            return Err(DeployError::Interrupted(Interruption {
                signal,
                applied: Vec::new(),
                stopped: None,
                pending: Vec::new(),
            }));
        }
        if started.elapsed() >= wait {
            let holder = lock_holder(conn)
                .await
                .unwrap_or_else(|e| format!("(could not read pg_stat_activity: {e})"));
            return Err(DeployError::LockTimeout(format!(
                "another deploy holds the migration lock (advisory lock {ADVISORY_LOCK_KEY}); gave up after {}\n  holder: {holder}",
                humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = crate::interrupt::wait() => {}
        }
    }
}

/// Tries the deployers' advisory lock once (PostgreSQL), without waiting.
pub async fn try_lock_once(conn: &mut Conn) -> Result<bool, DbError> {
    let got = conn
        .string(&format!(
            "SELECT pg_try_advisory_lock({ADVISORY_LOCK_KEY})::text"
        ))
        .await?;
    Ok(got.as_deref() == Some("true"))
}

/// Who holds the deployers' advisory lock in `conn`'s database: pid, application, user,
/// state, since when, and the query.
pub async fn lock_holder(conn: &mut Conn) -> Result<String, DbError> {
    let rows = conn
        .rows(
            &format!(
                "SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(a.state, ''), \
                 to_char(coalesce(a.xact_start, a.backend_start) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), left(coalesce(a.query, ''), 200) \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.classid = 0 AND l.objid = {ADVISORY_LOCK_KEY} AND a.pid <> pg_backend_pid()"
            ),
            6,
        )
        .await?;
    Ok(match rows.first() {
        Some(r) => format!(
            "pid {} ({}, user {}, {} since {}), query: {}",
            r[0].clone().unwrap_or_default(),
            r[1].clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "no application_name".into()),
            r[2].clone().unwrap_or_default(),
            r[3].clone().unwrap_or_default(),
            r[4].clone().unwrap_or_default(),
            r[5].clone().unwrap_or_default()
        ),
        None => "unknown (the lock was released while looking)".into(),
    })
}

struct ApplyFailure {
    message: String,
    partial: bool,
    /// The signal that stopped it (its statement was cancelled or never started).
    interrupted: Option<i32>,
}

const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Applies one migration; returns whether it ran in a transaction.
async fn apply(
    conn: &mut Conn,
    migration: &Migration,
    table: &str,
    limits: &Limits,
    wait_for_flush: bool,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<bool, ApplyFailure> {
    // The script's text is in memory once; the statements are split out (a copy) only
    // when they run one by one, so a 50 MB script of INSERTs is not held twice.
    let sql = migration.text().map_err(|e| ApplyFailure {
        message: e.to_string(),
        partial: false,
        interrupted: None,
    })?;
    if !conn.is_postgres() {
        apply_sqlite(conn, migration, &sql, table).await?;
        return Ok(true);
    }
    let statements = statements::runs_outside_transaction(&sql)
        .unwrap_or(false)
        .then(|| statements::split(&sql).ok())
        .flatten();
    let outside = statements.is_some();
    let mut attempt = 0;
    loop {
        let result = if outside {
            apply_outside_transaction(
                conn,
                migration,
                statements.as_deref().unwrap_or_default(),
                table,
                limits,
            )
            .await
        } else {
            apply_in_transaction(conn, migration, &sql, table, limits, wait_for_flush).await
        };
        match result {
            Err((err, partial))
                if err.code.as_deref() == Some(LOCK_NOT_AVAILABLE)
                    && !partial
                    && attempt < limits.lock_retries
                    && crate::interrupt::received().is_none() =>
            {
                attempt += 1;
                let pause =
                    Duration::from_millis(500 * 2u64.pow(attempt - 1)).min(Duration::from_secs(10));
                on_event(Event::Retrying(&migration.name, attempt, pause));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = crate::interrupt::wait() => {}
                }
            }
            Err((err, partial)) => {
                let split;
                let described = match &statements {
                    Some(s) => Some(s.as_slice()),
                    None if sql.len() <= statements::SPLIT_FOR_ERRORS_LIMIT => {
                        split = statements::split(&sql).ok();
                        split.as_deref()
                    }
                    None => None,
                };
                let message = describe_failure(&err, &sql, migration, described, partial);
                // Stopped on purpose: no attempt row (nothing of it was applied, and the
                // session should do no more than it must after a Ctrl-C).
                let interrupted = crate::interrupt::received();
                if !partial && interrupted.is_none() {
                    // Keep the error in `logs` the way Prisma users look for it, on a row
                    // marked rolled back so that it does not count as applied or failed.
                    let row = migration_row(
                        conn,
                        table,
                        migration,
                        RowKind::RolledBackAttempt,
                        Some(&message),
                    );
                    let _ = conn.batch(&row).await;
                }
                return Err(ApplyFailure {
                    message,
                    partial,
                    interrupted,
                });
            }
            Ok(()) => return Ok(!outside),
        }
    }
}

fn set_limits(limits: &Limits, local: bool) -> String {
    let scope = if local { "SET LOCAL" } else { "SET" };
    let mut out = String::new();
    if let Some(t) = limits.lock_timeout {
        out.push_str(&format!("{scope} lock_timeout = '{}ms';\n", t.as_millis()));
    }
    if let Some(t) = limits.statement_timeout {
        out.push_str(&format!(
            "{scope} statement_timeout = '{}ms';\n",
            t.as_millis()
        ));
    }
    out
}

/// One round trip: BEGIN, limits, the script, the history row, COMMIT.
async fn apply_in_transaction(
    conn: &mut Conn,
    migration: &Migration,
    sql: &str,
    table: &str,
    limits: &Limits,
    wait_for_flush: bool,
) -> Result<(), (DbError, bool)> {
    let deferred = match wait_for_flush {
        true => "",
        false => "SET LOCAL synchronous_commit = off;\n",
    };
    let prefix = format!("BEGIN;\n{deferred}{}", set_limits(limits, true));
    let row = migration_row(conn, table, migration, RowKind::Finished, None);
    let script = format!("{prefix}{sql}\n;\n{row};\nCOMMIT;");
    match conn.batch_owned(script).await {
        Ok(()) => Ok(()),
        Err(mut err) => {
            let _ = conn.batch("ROLLBACK").await;
            // Map the position from the combined script back into migration.sql.
            err.position = err.position.and_then(|p| {
                let prefix_chars = prefix.chars().count();
                (p > prefix_chars && p <= prefix_chars + sql.chars().count())
                    .then(|| p - prefix_chars)
            });
            Err((err, false))
        }
    }
}

/// Prisma's way for scripts that cannot run in a transaction: a "started" row, each
/// statement on its own, then "finished". A failure leaves the row failed, with the
/// statement it stopped at in `logs`.
async fn apply_outside_transaction(
    conn: &mut Conn,
    migration: &Migration,
    statements: &[statements::Statement],
    table: &str,
    limits: &Limits,
) -> Result<(), (DbError, bool)> {
    let id = history::new_id();
    let t = quote_ident(table);
    let row = history::insert_sql(
        conn,
        table,
        &id,
        &migration.name,
        &migration.checksum,
        RowKind::Started,
        None,
    );
    conn.batch(&row).await.map_err(|e| (e, false))?;
    let limits_sql = set_limits(limits, false);
    if !limits_sql.is_empty() {
        conn.batch(&limits_sql).await.map_err(|e| (e, true))?;
    }
    for (index, statement) in statements.iter().enumerate() {
        if let Some(signal) = crate::interrupt::received() {
            let _ = conn
                .batch("RESET lock_timeout; RESET statement_timeout")
                .await;
            let why = format!(
                "interrupted by {} before statement {} of {} (line {} of {})",
                crate::interrupt::name(signal),
                index + 1,
                statements.len(),
                statement.line,
                migration.path.display()
            );
            if index == 0 {
                // Nothing of it ran: the attempt is rolled back, the migration pending.
                let now = history::now_sql(conn);
                let _ = conn
                    .batch(&format!(
                        "UPDATE {t} SET rolled_back_at = {now}, logs = {} WHERE id = {}",
                        quote_literal(&why),
                        quote_literal(&id)
                    ))
                    .await;
                return Err((DbError::message(why), false));
            }
            let update = format!(
                "UPDATE {t} SET logs = {}, applied_steps_count = {index} WHERE id = {}",
                quote_literal(&why),
                quote_literal(&id)
            );
            let _ = conn.batch(&update).await;
            return Err((DbError::message(why), true));
        }
        if let Err(mut err) = conn.batch(&statement.sql).await {
            let _ = conn.batch("ROLLBACK").await;
            let _ = conn
                .batch("RESET lock_timeout; RESET statement_timeout")
                .await;
            err.position = err.position.map(|p| {
                statement
                    .sql
                    .chars()
                    .take(p.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum::<usize>()
                    + statement.offset
                    + 1
            });
            let log = format!(
                "{err}\nstopped at statement {} of {} (line {} of {}):\n{}",
                index + 1,
                statements.len(),
                statement.line,
                migration.path.display(),
                statement.sql
            );
            let update = format!(
                "UPDATE {t} SET logs = {}, applied_steps_count = {index} WHERE id = {}",
                quote_literal(&log),
                quote_literal(&id)
            );
            let _ = conn.batch(&update).await;
            // Partial only when something of it stayed applied.
            return Err((err, true));
        }
    }
    let _ = conn
        .batch("RESET lock_timeout; RESET statement_timeout")
        .await;
    let finish = format!(
        "UPDATE {t} SET finished_at = clock_timestamp(), applied_steps_count = {} WHERE id = {}",
        statements.len(),
        quote_literal(&id)
    );
    conn.batch(&finish).await.map_err(|e| (e, true))
}

/// The INSERT of a new history row for `migration`.
fn migration_row(
    conn: &Conn,
    table: &str,
    migration: &Migration,
    kind: RowKind,
    logs: Option<&str>,
) -> String {
    history::insert_sql(
        conn,
        table,
        &history::new_id(),
        &migration.name,
        &migration.checksum,
        kind,
        logs,
    )
}

/// SQLite: `BEGIN IMMEDIATE` takes the write lock, then the history is re-checked so two
/// deployers never apply the same migration.
async fn apply_sqlite(
    conn: &mut Conn,
    migration: &Migration,
    sql: &str,
    table: &str,
) -> Result<(), ApplyFailure> {
    let fail = |err: DbError| ApplyFailure {
        message: format!("{err}\nin {}", migration.path.display()),
        partial: false,
        interrupted: None,
    };
    conn.batch("BEGIN IMMEDIATE").await.map_err(fail)?;
    let already = conn
        .string(&format!(
            "SELECT CAST(count(*) AS TEXT) FROM {} WHERE migration_name = {} AND rolled_back_at IS NULL",
            quote_ident(table),
            quote_literal(&migration.name)
        ))
        .await;
    match already {
        Ok(Some(n)) if n != "0" => {
            let _ = conn.batch("ROLLBACK").await;
            return Ok(());
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK").await;
            return Err(fail(e));
        }
        _ => {}
    }
    let row = migration_row(conn, table, migration, RowKind::Finished, None);
    if let Err(err) = conn.batch_owned(format!("{sql}\n;\n{row};\nCOMMIT;")).await {
        let _ = conn.batch("ROLLBACK").await;
        let failure = fail(err);
        let attempt = migration_row(
            conn,
            table,
            migration,
            RowKind::RolledBackAttempt,
            Some(&failure.message),
        );
        let _ = conn.batch(&attempt).await;
        return Err(failure);
    }
    Ok(())
}

/// The database error with the file, line and statement when they are known.
fn describe_failure(
    err: &DbError,
    sql: &str,
    migration: &Migration,
    statements: Option<&[statements::Statement]>,
    partial: bool,
) -> String {
    if partial {
        return format!("{err}");
    }
    let Some(position) = err.position else {
        return format!("{err}\nin {}", migration.path.display());
    };
    let offset: usize = sql
        .chars()
        .take(position.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let line = line_of(sql, offset);
    let statement = statements
        .and_then(|s| s.iter().rev().find(|st| st.offset <= offset))
        .map(|st| format!(":\n{}", st.sql))
        .unwrap_or_default();
    format!(
        "{err}\nat line {line} of {}{statement}",
        migration.path.display()
    )
}

/// Marks a migration applied or rolled back, with Prisma's `migrate resolve` semantics.
pub async fn resolve(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    name: &str,
    applied: bool,
) -> Result<String, DeployError> {
    history::ensure(conn, table).await?;
    let status = status(conn, store, table).await?;
    let entry = status
        .entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            DeployError::Refused(format!(
                "no migration `{name}` in the migrations folder or the history table"
            ))
        })?;
    let t = quote_ident(table);
    let now = history::now_sql(conn);
    let mark_failed_rolled_back = format!(
        "UPDATE {t} SET rolled_back_at = {now} WHERE migration_name = {} AND finished_at IS NULL AND rolled_back_at IS NULL",
        quote_literal(name)
    );
    if applied {
        let migration = store.get(name).ok_or_else(|| {
            DeployError::Refused(format!("`{name}` is not in the migrations folder"))
        })?;
        if matches!(entry.state, State::Applied | State::Modified) {
            return Err(DeployError::Refused(format!(
                "migration `{name}` is already applied"
            )));
        }
        let insert = history::insert_sql(
            conn,
            table,
            &history::new_id(),
            name,
            &migration.checksum,
            RowKind::Finished,
            None,
        );
        conn.batch(&format!(
            "BEGIN;\n{mark_failed_rolled_back};\n{insert};\nCOMMIT;"
        ))
        .await?;
        schema::record(conn, table).await?;
        return Ok(format!("migration `{name}` marked as applied"));
    }
    if entry.state != State::Failed {
        return Err(DeployError::Refused(format!(
            "migration `{name}` is {}, not failed: only a failed migration can be marked rolled back",
            entry.state.as_str().replace('_', " ")
        )));
    }
    conn.batch(&mark_failed_rolled_back).await?;
    Ok(format!(
        "migration `{name}` marked as rolled back; the next deploy applies it again"
    ))
}

/// Runs `down.sql` of the newest applied migration and marks it rolled back, in one
/// transaction.
pub async fn down(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    name: &str,
) -> Result<String, DeployError> {
    let status = status_within(conn, store, table, schema::CATALOG_LOCK_TIMEOUT).await?;
    let newest = status
        .entries
        .iter()
        .rev()
        .find(|e| e.state == State::Applied);
    if newest.map(|e| e.name.as_str()) != Some(name) {
        return Err(DeployError::Refused(format!(
            "`{name}` is not the newest applied migration{}; roll back newer ones first",
            newest
                .map(|e| format!(" (that is `{}`)", e.name))
                .unwrap_or_default()
        )));
    }
    let migration = store
        .get(name)
        .expect("applied entries come from the store");
    let down_path = migration.down().ok_or_else(|| {
        DeployError::Refused(format!("`{name}` has no down.sql beside its migration.sql"))
    })?;
    let down_sql = std::fs::read_to_string(&down_path)
        .map_err(|e| DeployError::Refused(format!("cannot read {}: {e}", down_path.display())))?;
    let t = quote_ident(table);
    let now = history::now_sql(conn);
    let mark = format!(
        "UPDATE {t} SET rolled_back_at = {now} WHERE migration_name = {} AND rolled_back_at IS NULL",
        quote_literal(name)
    );
    let before = status.live_schema.clone();
    let begin = if conn.is_postgres() {
        "BEGIN"
    } else {
        "BEGIN IMMEDIATE"
    };
    if let Err(err) = conn
        .batch(&format!("{begin};\n{down_sql}\n;\n{mark};\nCOMMIT;"))
        .await
    {
        let _ = conn.batch("ROLLBACK").await;
        return Err(DeployError::MigrationFailed {
            name: format!("{name} (down.sql)"),
            message: format!("{err}"),
            applied: Vec::new(),
            partial: false,
        });
    }
    schema::record_change(conn, table, before.as_deref()).await?;
    Ok(format!("rolled back `{name}` with its down.sql"))
}
