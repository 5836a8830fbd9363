//! Who holds the lock a backup waited for. pg_dump runs with `--lock-wait-timeout`
//! (and the session reading the key tables' row counts with `lock_timeout`), so a table
//! locked by someone else fails the backup instead of hanging it; this names that
//! someone. pg_dump has exited by then, so `pg_blocking_pids` has no waiter to ask:
//! the sessions are found by the locks that conflict with pg_dump's `ACCESS SHARE`,
//! which only `ACCESS EXCLUSIVE` does, granted or queued ahead of it.

use crate::db::conn::{Conn, DbError};

/// A session holding (or queued for) an `ACCESS EXCLUSIVE` lock on a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Backend pid.
    pub pid: String,
    /// `application_name`.
    pub application: String,
    /// Database user.
    pub user: String,
    /// `active`, `idle in transaction`, …
    pub state: String,
    /// When its transaction began (UTC), if known.
    pub since: Option<String>,
    /// Seconds its transaction has been open.
    pub seconds: Option<i64>,
    /// Its current or last statement (redacted, shortened).
    pub query: String,
    /// The tables, and whether it holds the lock or waits for it.
    pub locks: String,
}

/// Whether a pg_dump or server error says a lock was not obtained in time.
pub fn is_lock_timeout(text: &str) -> bool {
    text.contains("canceling statement due to statement timeout")
        || text.contains("canceling statement due to lock timeout")
        || text.contains("could not obtain lock")
}

const QUERY: &str = r#"
SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
       coalesce(a.state, ''), coalesce(a.query, ''),
       to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       extract(epoch FROM clock_timestamp() - a.xact_start)::bigint::text,
       string_agg(DISTINCT CASE WHEN l.granted THEN 'holds' ELSE 'waits for' END
                  || ' ACCESS EXCLUSIVE on ' || l.relation::regclass::text, ', ')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid <> pg_backend_pid()
GROUP BY a.pid, a.application_name, a.usename, a.state, a.query, a.xact_start
ORDER BY a.xact_start NULLS LAST
LIMIT 5"#;

/// The sessions whose locks keep a dump waiting. Run outside the dump's transaction
/// (pg_stat_activity is read once per transaction).
pub async fn find(conn: &mut Conn) -> Result<Vec<Blocker>, DbError> {
    let _ = conn.batch("SELECT pg_stat_clear_snapshot()").await;
    let rows = conn.rows(QUERY, 8).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cell = |i: usize| r[i].clone().unwrap_or_default();
            Blocker {
                pid: cell(0),
                application: cell(1),
                user: cell(2),
                state: cell(3),
                since: r[5].clone(),
                seconds: r[6].as_deref().and_then(|s| s.parse().ok()),
                query: shorten(&crate::redact::redact(&cell(4))),
                locks: cell(7),
            }
        })
        .collect())
}

fn shorten(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        format!("{}…", flat.chars().take(200).collect::<String>())
    } else {
        flat
    }
}

/// The error of a backup that gave up waiting for a lock: who holds it and how to go on.
pub fn message(what: &str, timeout: std::time::Duration, blockers: &[Blocker]) -> String {
    let waited = humantime::format_duration(timeout);
    let mut out = format!(
        "{what} gave up after waiting {waited} for a table lock (backups.lock_wait_timeout)"
    );
    if blockers.is_empty() {
        out.push_str(
            "; the session that held it has ended since, or is not visible to this user: take the backup again",
        );
        return out;
    }
    out.push_str(": blocked by");
    for (i, b) in blockers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        let application = if b.application.is_empty() {
            "(none)"
        } else {
            &b.application
        };
        let since = match (&b.since, b.seconds) {
            (Some(t), Some(s)) => format!(", in a transaction since {t} ({s}s)"),
            (Some(t), None) => format!(", in a transaction since {t}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n  pid {} (application `{application}`, user `{}`, {}{since}) {}; query: {}",
            b.pid, b.user, b.state, b.locks, b.query
        ));
    }
    let pids: Vec<&str> = blockers.iter().map(|b| b.pid.as_str()).collect();
    out.push_str(&format!(
        "\nlet it finish, or end it (`SELECT pg_terminate_backend({})`), then take the backup again (or raise backups.lock_wait_timeout to wait longer)",
        pids.join(")`, `SELECT pg_terminate_backend(")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_pg_dump_and_server_lock_timeouts() {
        assert!(is_lock_timeout(
            "pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout"
        ));
        assert!(is_lock_timeout(
            "ERROR: canceling statement due to lock timeout"
        ));
        assert!(is_lock_timeout(
            "pg_dump: error: could not obtain lock on relation \"public.x\""
        ));
        assert!(!is_lock_timeout("pg_dump: error: connection refused"));
    }
}
