//! The deployers' advisory lock (Prisma's key), and who holds it.

use super::deploy::Event;
use super::error::DeployError;
use crate::db::conn::{Conn, DbError};
use crate::db::interruption::Interruption;
use std::time::{Duration, Instant};

/// Prisma's advisory lock key (`prisma migrate deploy` takes the same one).
pub const ADVISORY_LOCK_KEY: i64 = 72707369;

/// Takes Prisma's advisory lock (PostgreSQL), waiting up to `wait`. Returns whether a
/// lock was taken (SQLite serialises through `BEGIN IMMEDIATE` per migration instead).
pub(super) async fn lock(
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
