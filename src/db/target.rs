//! Where migrations go for an environment: the URL to use (the direct one when declared),
//! the folder, the history table and the limits with their per-protection defaults.

use super::migrate::Limits;
use super::store::{Store, StoreError};
use super::{Conn, DbError};
use crate::config::{DbUrl, Diagnostic, Project, Protection, ResolvedEnv};
use std::path::PathBuf;
use std::time::Duration;

/// Where a project keeps its migration hash cache (see [`super::hash_cache`]).
pub const HASH_CACHE: &str = ".dbflow/migration-hashes";

/// Everything the migrator needs for one environment.
#[derive(Debug, Clone)]
pub struct Target {
    /// URL used for migrations, locks and backups (direct URL when declared).
    pub url: DbUrl,
    /// Migrations folder.
    pub dir: PathBuf,
    /// History table.
    pub table: String,
    /// Limits, defaults applied.
    pub limits: Limits,
    /// Schema of dbflow's own tables (`migrations.state_schema`, default `dbflow`).
    pub state_schema: String,
    /// The project's migration hash cache (`.dbflow/migration-hashes`).
    pub hash_cache: PathBuf,
}

impl Target {
    /// The target for `env`.
    pub fn for_env(project: &Project, env: &ResolvedEnv) -> Self {
        let url = env.direct_url.clone().unwrap_or_else(|| env.url.clone());
        let url = anchor_sqlite_path(&url, &project.root);
        let configured = &project.migration_limits;
        let lock_timeout = configured
            .lock_timeout
            .or_else(|| default_lock_timeout(env.protection));
        Target {
            url,
            dir: project.root.join(&project.migrations_dir),
            table: project.migrations_table.clone(),
            limits: Limits {
                lock_timeout,
                statement_timeout: configured.statement_timeout,
                lock_retries: configured.lock_retries,
                lock_wait: configured.lock_wait,
            },
            state_schema: project.state_schema.clone(),
            hash_cache: project.root.join(HASH_CACHE),
        }
    }

    /// Reads the migrations folder and checks `migration_lock.toml` against the URL.
    pub fn store(&self) -> Result<Store, StoreError> {
        let store = Store::read_cached(&self.dir, Some(&self.hash_cache))?;
        store.check_provider(&self.dir, self.url.is_postgres())?;
        Ok(store)
    }

    /// Connects.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        Conn::connect(&self.url)
            .await
            .map(|c| {
                // Next to the hash cache: `.dbflow/catalog-horizons`.
                let memo = self.hash_cache.with_file_name("catalog-horizons");
                c.with_state_schema(&self.state_schema)
                    .with_horizon_memo(memo)
            })
            .map_err(|e| connect_error(&self.url, e))
    }
}

/// The server `migrate status --shadow` makes its scratch database on:
/// `migrations.shadow_url` interpolated, `None` for the environment's own server.
/// A `${…}` that does not resolve is the Workflowfile's diagnostic (bad input).
pub fn shadow_server(
    project: &Project,
    vars: &crate::config::Vars,
) -> Result<Option<DbUrl>, Diagnostic> {
    let Some(text) = &project.shadow_url else {
        return Ok(None);
    };
    let raw = crate::config::interpolate::interpolate_text(text, vars, "migrations.shadow_url")?;
    Ok(Some(DbUrl::new(&raw)))
}

/// The `lock_timeout` dbflow sets per migration when nothing is configured.
pub fn default_lock_timeout(protection: Protection) -> Option<Duration> {
    match protection {
        Protection::Sandbox => None,
        // Shared databases serve traffic: a migration must not queue behind a long
        // transaction and block every query behind it.
        Protection::Shared | Protection::Protected => Some(Duration::from_secs(5)),
    }
}

/// Whether dbflow's deploy sets a (non-zero) `lock_timeout` at this protection level.
pub fn applies_lock_timeout(project: &Project, protection: Protection) -> bool {
    project
        .migration_limits
        .lock_timeout
        .or_else(|| default_lock_timeout(protection))
        .is_some_and(|t| !t.is_zero())
}

/// A connection that could not be opened: which database (redacted) and the server's
/// or driver's error. Mapped to exit 1 by `From<ConnectError> for crate::error::Error`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot connect to {url}: {error}{}", reopen_hint(.error, .database))]
pub struct ConnectError {
    /// The URL, password redacted.
    pub url: String,
    /// The database's name, for the hint.
    pub database: String,
    /// What the server or driver said. Not a `source()`: the message holds it already.
    pub error: DbError,
}

/// The error for a connection to `url` that failed with `e`.
pub fn connect_error(url: &DbUrl, e: DbError) -> ConnectError {
    ConnectError {
        url: url.redacted(),
        database: url.database_name().unwrap_or_default(),
        error: e,
    }
}

/// 55000 on connect: ALLOW_CONNECTIONS false, which dbflow sets only while an in-place
/// restore swaps databases; a restore killed in that moment leaves it set.
fn reopen_hint(e: &DbError, database: &str) -> String {
    if e.code.as_deref() == Some("55000") {
        format!(
            "\n  an in-place restore may be swapping this database right now; if none is running (one was killed), reopen it: psql -d postgres -c 'ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true'"
        )
    } else {
        String::new()
    }
}

/// SQLite paths in the Workflowfile are relative to the project root, not to wherever
/// dbflow happens to be started.
fn anchor_sqlite_path(url: &DbUrl, root: &std::path::Path) -> DbUrl {
    if !url.is_sqlite() || root == std::path::Path::new(".") {
        return url.clone();
    }
    let raw = url.expose();
    let (scheme, rest) = raw.split_once(':').unwrap_or(("sqlite", raw));
    let rest_path = rest.trim_start_matches("//");
    if rest_path.starts_with('/') || rest_path.starts_with(":memory:") {
        return url.clone();
    }
    DbUrl::new(&format!("{scheme}:{}", root.join(rest_path).display()))
}

/// A warning when the URL goes through a transaction pooler without a direct URL.
pub fn pooler_warning(env: &ResolvedEnv) -> Option<String> {
    if env.direct_url.is_some() || !env.url.is_postgres() {
        return None;
    }
    let raw = env.url.expose();
    let parsed = url::Url::parse(raw).ok()?;
    let flagged = parsed
        .query_pairs()
        .any(|(k, v)| k == "pgbouncer" && v == "true");
    let pooler_port = parsed.port() == Some(6432);
    (flagged || pooler_port).then(|| {
        format!(
            "environment `{}` connects through a pooler ({}) and has no direct_url: advisory locks and multi-statement transactions do not survive transaction pooling; declare `direct_url` (Prisma's directUrl)",
            env.name,
            if flagged { "pgbouncer=true" } else { "port 6432" }
        )
    })
}
