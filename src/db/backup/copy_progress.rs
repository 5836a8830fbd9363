//! How much of the database pg_dump has read so far, from the server's own counters
//! (`pg_stat_progress_copy`, PostgreSQL 14+): progress measured on the data leaving the
//! server, which the archive's compression cannot distort the way its size would
//! (a pgbench database of 256 MiB dumps to 5 MiB). Unavailable (older server, a role that
//! cannot see pg_dump's session): no reading, and progress counts the archive's bytes.

use crate::db::Conn;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the server is asked.
const EVERY: Duration = Duration::from_millis(250);

/// Reads pg_dump's COPY progress over the connection the backup already reads its source
/// with (the run's one session): that connection holds the transaction whose snapshot
/// pg_dump shares, so each reading first drops the transaction's cached statistics
/// (`pg_stat_clear_snapshot()`), or it would never move.
pub struct CopyProgress<'a> {
    rt: &'a tokio::runtime::Runtime,
    conn: Option<&'a mut Conn>,
    since: String,
    seen: HashMap<(String, String), u64>,
    last: Option<Instant>,
}

impl<'a> CopyProgress<'a> {
    /// Readings over `conn`; without the view (PostgreSQL before 14), every reading is
    /// `None`.
    pub fn open(conn: &'a mut Conn, rt: &'a tokio::runtime::Runtime) -> Self {
        // pg_dump's sessions start after this moment (same server clock).
        let since = rt
            .block_on(conn.string(
                "SELECT statement_timestamp()::text \
                 WHERE to_regclass('pg_catalog.pg_stat_progress_copy') IS NOT NULL",
            ))
            .ok()
            .flatten();
        let (conn, since) = match since {
            Some(since) => (Some(conn), since),
            None => (None, String::new()),
        };
        CopyProgress {
            rt,
            conn,
            since,
            seen: HashMap::new(),
            last: None,
        }
    }

    /// Bytes pg_dump's COPY commands have sent so far (summed over its tables and, with
    /// --jobs, its workers), asked at most every 250 ms; `None` between readings.
    pub fn poll(&mut self) -> Option<u64> {
        if self.last.is_some_and(|l| l.elapsed() < EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        let conn = self.conn.as_mut()?;
        let sql = format!(
            "SELECT p.pid::text, p.relid::bigint::text, p.bytes_processed::text \
             FROM pg_stat_progress_copy p JOIN pg_stat_activity a ON a.pid = p.pid \
             WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND p.command = 'COPY TO' AND a.application_name = 'pg_dump' \
             AND a.backend_start >= {}::timestamptz",
            crate::db::conn::quote_literal(&self.since)
        );
        let rows = self
            .rt
            .block_on(async {
                conn.batch("SELECT pg_stat_clear_snapshot()").await?;
                conn.rows(&sql, 3).await
            })
            .ok()?;
        for row in rows {
            let key = (
                row[0].clone().unwrap_or_default(),
                row[1].clone().unwrap_or_default(),
            );
            let bytes: u64 = row[2].as_deref().and_then(|b| b.parse().ok()).unwrap_or(0);
            let entry = self.seen.entry(key).or_default();
            *entry = (*entry).max(bytes);
        }
        Some(self.seen.values().sum())
    }

    /// Done: the connection goes back to the backup.
    pub fn close(self) {}
}
