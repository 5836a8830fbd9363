//! The drift check that needs no recorded state: the applied migrations are built in a
//! scratch ("shadow") database, as Prisma's `migrate dev` builds its shadow database, and
//! the two catalogs are compared listing by listing.
//!
//! The recorded schema (see [`super::schema`]) is the fast path and stays the common
//! one. It cannot tell another tool's migrations from hand-made changes, so when a tool
//! such as `prisma migrate deploy` applied migrations after dbflow recorded it (or
//! nothing was ever recorded), this comparison is the truthful one. The scratch database
//! is `<db>_shadow_<YYYYMMDD_HHMMSS>` on the environment's server (or on
//! `migrations.shadow_url`'s), one of dbflow's own-copy names, and it is dropped
//! afterwards through the guard's permit, whatever happened in between.

use super::conn::Conn;
use super::migrate::{self, DeployOptions, Limits, State, Status};
use super::schema;
use super::store::Store;
use super::target::Target;
use crate::config::{DbUrl, Protection};
use crate::guard::Permit;
use std::time::Duration;

/// When to compare with a scratch database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Always (`migrate status --shadow`).
    Forced,
    /// When the recorded schema is stale or missing, on shared and protected
    /// environments (where hidden drift costs most and a scratch database is cheap
    /// next to an incident); sandboxes are told how to ask for it.
    Auto(Protection),
}

impl Mode {
    /// Whether `status` calls for a comparison in this mode.
    pub fn wanted(self, status: &Status) -> bool {
        let untrusted = status.schema_stale.is_some()
            || (!status.schema_recorded && status.history_table_exists);
        match self {
            Mode::Forced => true,
            Mode::Auto(Protection::Sandbox) => false,
            Mode::Auto(_) => untrusted,
        }
    }
}

/// The scratch database's name beside `target`'s.
pub fn scratch_name(target: &Target) -> String {
    let db = target.url.database_name().unwrap_or_else(|| "db".into());
    super::backup::restore::default_name(&db, "shadow", chrono::Utc::now())
}

/// Compares the live schema with the one the applied migrations build, when `mode` calls
/// for it, and returns `status` with the result: drift named against the migrations
/// (or a note saying why it could not be checked), `drift_basis` saying what was done.
/// `server`: `migrations.shadow_url`, else the environment's server is used. `permit`
/// gives the guard's permit to drop the scratch database of the given name.
/// A clean comparison records the live schema as the new baseline, so the fast path
/// serves the next status again.
pub async fn settle(
    target: &Target,
    server: Option<&DbUrl>,
    store: &Store,
    mut status: Status,
    mode: Mode,
    permit: impl FnOnce(&str) -> Result<Permit, String>,
) -> Status {
    if !mode.wanted(&status) {
        return status;
    }
    let why = match (&status.schema_stale, status.schema_recorded, mode) {
        (Some(stale), _, _) => stale.clone(),
        (None, false, _) => "no deploy by dbflow recorded the schema yet".to_string(),
        (None, true, _) => "asked for with --shadow".to_string(),
    };
    if !target.url.is_postgres() {
        status.drift_note = Some(format!(
            "not checked: {why}, and a scratch-database comparison needs PostgreSQL"
        ));
        return status;
    }
    let missing: Vec<&str> = status
        .with_state(State::MissingLocally)
        .map(|e| e.name.as_str())
        .collect();
    if !missing.is_empty() {
        status.drift_note = Some(format!(
            "not checked: {why}, and the schema cannot be built without the applied migrations missing locally ({})",
            missing.join(", ")
        ));
        return status;
    }
    let name = scratch_name(target);
    let built = match permit(&name) {
        Ok(permit) => compare(target, server, store, &status, &name, &permit).await,
        Err(e) => Err(format!("no permit for the scratch database: {e}")),
    };
    match built {
        Ok(outcome) => {
            let applied = store_of_applied(store, &status).migrations.len();
            status.drift = outcome.drift;
            status.drift_checked = true;
            status.drift_note = None;
            status.drift_basis = Some(format!(
                "built the {applied} applied migration(s) in scratch database {name}{} ({why})",
                match &outcome.dropped {
                    Ok(()) => ", dropped afterwards".to_string(),
                    Err(e) => format!(", which could not be dropped: {e}; drop it with `dbflow restore drop {name}`"),
                }
            ));
            if outcome.rebaselined {
                status.schema_stale = None;
            }
        }
        Err(e) => {
            status.drift_note = Some(format!(
                "not checked: {why}, and the scratch-database comparison failed: {e}"
            ));
        }
    }
    status
}

/// What one comparison found.
struct Outcome {
    drift: Vec<String>,
    dropped: Result<(), String>,
    rebaselined: bool,
}

/// The migrations `status` shows as applied (modified ones as they are on disk now).
fn store_of_applied(store: &Store, status: &Status) -> Store {
    let applied: std::collections::HashSet<&str> = status
        .entries
        .iter()
        .filter(|e| matches!(e.state, State::Applied | State::Modified))
        .map(|e| e.name.as_str())
        .collect();
    Store {
        migrations: store
            .migrations
            .iter()
            .filter(|m| applied.contains(m.name.as_str()))
            .cloned()
            .collect(),
        provider: store.provider.clone(),
        ignored: Vec::new(),
    }
}

/// Creates `name`, builds the applied migrations there, compares, and drops it again
/// (also when building or comparing failed). An error before the database exists drops
/// nothing: a name already taken belongs to someone else.
async fn compare(
    target: &Target,
    server: Option<&DbUrl>,
    store: &Store,
    status: &Status,
    name: &str,
    permit: &Permit,
) -> Result<Outcome, String> {
    let server_url = server.cloned().unwrap_or_else(|| target.url.clone());
    let scratch_url = scratch_url(&server_url, &target.url, name);
    let mut admin = Conn::connect(&server_url)
        .await
        .map_err(|e| format!("connecting to {}: {e}", server_url.redacted()))?;
    if let Err(e) = admin
        .batch(&format!("CREATE DATABASE {}", quote_name(name)))
        .await
    {
        admin.close().await;
        return Err(format!("creating {name}: {e}"));
    }
    let result = build_and_diff(target, store, status, &scratch_url).await;
    let dropped = drop_scratch(&mut admin, name, permit).await;
    admin.close().await;
    let drift = result?;
    let mut rebaselined = false;
    if drift.is_empty() {
        // The live schema is what the migrations build: it is the baseline again.
        if let Ok(mut live) = target.connect().await {
            rebaselined = schema::record(&mut live, &target.table)
                .await
                .unwrap_or(false);
            live.close().await;
        }
    }
    Ok(Outcome {
        drift,
        dropped,
        rebaselined,
    })
}

/// The scratch database's URL: on `server`, with the target's `?schema=` so the
/// migrations' unqualified names land in the same schema as on the target.
fn scratch_url(server: &DbUrl, target: &DbUrl, name: &str) -> DbUrl {
    let url = server.with_database(name);
    match (target.prisma_schema(), url.prisma_schema()) {
        (Some(schema), None) => match url::Url::parse(url.expose()) {
            Ok(mut parsed) => {
                parsed.query_pairs_mut().append_pair("schema", &schema);
                DbUrl::new(parsed.as_str())
            }
            Err(_) => url,
        },
        _ => url,
    }
}

/// Applies the applied migrations in the scratch database and lists both catalogs.
async fn build_and_diff(
    target: &Target,
    store: &Store,
    status: &Status,
    scratch_url: &DbUrl,
) -> Result<Vec<String>, String> {
    let applied = store_of_applied(store, status);
    let mut scratch = Conn::connect(scratch_url)
        .await
        .map_err(|e| format!("connecting to the scratch database: {e}"))?
        .with_state_schema(&target.state_schema);
    // Nobody else uses the scratch database: no lock or statement limits.
    let limits = Limits {
        lock_timeout: None,
        statement_timeout: None,
        lock_retries: 0,
        lock_wait: Duration::from_secs(5),
    };
    let built = migrate::deploy(
        &mut scratch,
        &applied,
        &target.table,
        &limits,
        &DeployOptions::default(),
        &mut |_| {},
    )
    .await;
    let expected = match built {
        Ok(_) => schema::snapshot(&mut scratch, &target.table)
            .await
            .map_err(|e| format!("reading the scratch catalog: {e}")),
        Err(e) => Err(format!("building the migrations: {e}")),
    };
    scratch.close().await;
    let expected = expected?;
    let mut live = target.connect().await.map_err(|e| e.to_string())?;
    let observed = schema::snapshot_unless_locked(&mut live, &target.table).await;
    live.close().await;
    let live = observed
        .map_err(|e| format!("reading the live catalog: {e}"))?
        .ok_or_else(|| "the live catalog stayed locked".to_string())?;
    Ok(schema::diff(&expected, &live))
}

/// A database name quoted as one identifier (a dot is part of it).
fn quote_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Drops the scratch database through the guard's permit.
async fn drop_scratch(admin: &mut Conn, name: &str, permit: &Permit) -> Result<(), String> {
    permit.covers(name)?;
    // FORCE (PostgreSQL 13+): a connection a failed build left behind must not keep it.
    let force = admin
        .string("SELECT (current_setting('server_version_num')::int >= 130000)::text")
        .await
        .map_err(|e| e.to_string())?;
    let sql = format!(
        "DROP DATABASE IF EXISTS {}{}",
        quote_name(name),
        if force.as_deref() == Some("true") {
            " WITH (FORCE)"
        } else {
            ""
        }
    );
    admin.batch(&sql).await.map_err(|e| e.to_string())
}
