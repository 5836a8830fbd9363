//! What a backup records about the database it reads: server version, locale, migration
//! head, the table list and the key tables' exact row counts, all read in one
//! repeatable-read snapshot that `pg_dump --snapshot` then dumps, so the counts describe
//! exactly the data in the archive. Nothing here writes to the database.

use crate::db::conn::{quote_ident, quote_literal, Conn, DbError};
use crate::db::pgtools::DbLocale;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;

/// Facts about the source database.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    /// `server_version` (PostgreSQL) or the SQLite library version.
    pub server_version: Option<String>,
    /// Major version of a PostgreSQL server.
    pub server_major: Option<u32>,
    /// Encoding and locale (PostgreSQL).
    pub locale: Option<DbLocale>,
    /// Newest applied migration.
    pub migration_head: Option<String>,
    /// Every table, sorted.
    pub tables: Vec<String>,
    /// Exact row counts of the key tables that exist.
    pub row_counts: IndexMap<String, u64>,
    /// The exported snapshot pg_dump should use (PostgreSQL), when one could be exported.
    pub snapshot: Option<String>,
    /// The server's clock (`now()`) in the snapshot's transaction, with this machine's
    /// clock read just after it (PostgreSQL).
    pub clock: Option<ClockReading>,
    /// The tables' size (their pages in the catalog, else `pg_database_size`): the
    /// estimate a dump's progress percentage counts towards (PostgreSQL).
    pub size_estimate: Option<u64>,
}

/// The database server's clock and this machine's, read at (nearly) the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// `now()` on the server.
    pub server: DateTime<Utc>,
    /// `Utc::now()` here, just after the server answered.
    pub host: DateTime<Utc>,
}

impl ClockReading {
    /// How far the server's clock is ahead of this machine's (negative: behind).
    pub fn server_ahead_by(&self) -> chrono::Duration {
        self.server - self.host
    }
}

/// Reads the server's clock, as UTC, and this machine's.
pub async fn read_clock(conn: &mut Conn) -> Result<Option<ClockReading>, DbError> {
    if !conn.is_postgres() {
        return Ok(None);
    }
    let micros = conn
        .string("SELECT (extract(epoch FROM now()) * 1000000)::bigint::text")
        .await?;
    let host = Utc::now();
    Ok(micros
        .and_then(|m| m.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_micros)
        .map(|server| ClockReading { server, host }))
}

/// Opens a read-only repeatable-read transaction, exports its snapshot and reads
/// everything in it. The transaction stays open (the snapshot lives only as long as it
/// does): end it with [`end_snapshot`] once pg_dump has finished. Counting a key table
/// waits at most `lock_wait` for its lock, as pg_dump will.
pub async fn read_postgres(
    conn: &mut Conn,
    key_tables: &[String],
    history_table: &str,
    lock_wait: std::time::Duration,
) -> Result<SourceInfo, DbError> {
    conn.batch(&format!(
        "SET lock_timeout = {}",
        lock_wait.as_millis().max(1)
    ))
    .await?;
    let mut info = SourceInfo {
        server_version: conn.string("SHOW server_version").await?,
        ..SourceInfo::default()
    };
    info.server_major = conn
        .string("SHOW server_version_num")
        .await?
        .and_then(|v| v.parse::<u32>().ok())
        .map(crate::db::pgtools::Version::server_major);
    let locale = conn
        .rows(
            "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text FROM pg_database WHERE datname = current_database()",
            3,
        )
        .await?;
    info.locale = locale.first().map(|r| DbLocale {
        encoding: r[0].clone().unwrap_or_default(),
        collate: r[1].clone().unwrap_or_default(),
        ctype: r[2].clone().unwrap_or_default(),
    });
    // Read outside the transaction: a role without CONNECT on its own database cannot,
    // and that must cost only the percentage, not the backup.
    // What pg_dump reads is the tables' data: their pages as the catalog last counted
    // them (VACUUM, ANALYZE, CREATE INDEX keep relpages), else pg_database_size. Both
    // read no table, so a session holding a lock cannot make this wait.
    info.size_estimate = conn
        .string(
            "SELECT coalesce(nullif((SELECT sum(c.relpages::bigint + coalesce(t.relpages, 0)) \
             * current_setting('block_size')::bigint FROM pg_class c \
             LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')), 0), \
             pg_database_size(current_database()))::bigint::text",
        )
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok());
    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    // A hot standby before PostgreSQL 10, or a pooler, cannot export: then the dump
    // takes its own snapshot and the counts are read just before it.
    info.snapshot = match conn.string("SELECT pg_export_snapshot()").await {
        Ok(s) => s,
        Err(_) => {
            conn.batch("ROLLBACK").await?;
            conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            None
        }
    };
    info.clock = read_clock(conn).await?;
    info.migration_head = migration_head(conn, history_table).await?;
    info.tables = tables(conn).await?;
    info.row_counts = row_counts(conn, key_tables).await?;
    Ok(info)
}

/// Ends the transaction [`read_postgres`] opened.
pub async fn end_snapshot(conn: &mut Conn) {
    let _ = conn.batch("COMMIT").await;
}

/// The newest applied migration, when the history table exists.
pub async fn migration_head(conn: &mut Conn, table: &str) -> Result<Option<String>, DbError> {
    if !conn.table_exists(table).await? {
        return Ok(None);
    }
    conn.string(&format!(
        "SELECT migration_name FROM {} WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name DESC LIMIT 1",
        quote_ident(table)
    ))
    .await
}

/// Every user table: `schema.table` on PostgreSQL (quoted where needed), `table` on
/// SQLite, sorted.
pub async fn tables(conn: &mut Conn) -> Result<Vec<String>, DbError> {
    let sql = if conn.is_postgres() {
        r"SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%' ORDER BY 1"
    } else {
        r"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY 1"
    };
    let mut names = conn.strings(sql).await?;
    names.sort();
    Ok(names)
}

/// Exact row counts of the tables in `names` that exist.
pub async fn row_counts(
    conn: &mut Conn,
    names: &[String],
) -> Result<IndexMap<String, u64>, DbError> {
    let mut counts = IndexMap::new();
    for name in names {
        if !table_exists(conn, name).await? {
            continue;
        }
        let count = conn
            .string(&format!(
                "SELECT CAST(count(*) AS TEXT) FROM {}",
                quote_ident(name)
            ))
            .await?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        counts.insert(name.clone(), count);
    }
    Ok(counts)
}

/// Whether a table named as a user writes it (`User`, `public.User`) exists.
pub async fn table_exists(conn: &mut Conn, name: &str) -> Result<bool, DbError> {
    if conn.is_postgres() {
        let sql = format!(
            "SELECT (to_regclass({}) IS NOT NULL)::text",
            quote_literal(&quote_ident(name))
        );
        return Ok(conn.string(&sql).await?.as_deref() == Some("true"));
    }
    conn.table_exists(name).await
}
