//! The migration history table, identical to Prisma's `_prisma_migrations` (same
//! columns and types, PostgreSQL and SQLite variants), so Prisma and dbflow read each
//! other's rows.

use super::conn::{quote_ident, quote_literal, Conn, DbError};

/// One row of the history table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryRow {
    /// Row id (a UUID).
    pub id: String,
    /// Checksum recorded when the migration was applied.
    pub checksum: String,
    /// Migration (folder) name.
    pub migration_name: String,
    /// When it started (UTC, RFC 3339).
    pub started_at: String,
    /// When it finished, if it did.
    pub finished_at: Option<String>,
    /// When it was marked rolled back, if it was.
    pub rolled_back_at: Option<String>,
    /// Error output stored on failure.
    pub logs: Option<String>,
    /// Statements applied.
    pub applied_steps_count: i64,
}

/// `CREATE TABLE` for the history table, as Prisma writes it.
pub fn create_sql(conn: &Conn, table: &str) -> String {
    let t = quote_ident(table);
    if conn.is_postgres() {
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n    \"id\"                    VARCHAR(36) PRIMARY KEY NOT NULL,\n    \"checksum\"              VARCHAR(64) NOT NULL,\n    \"finished_at\"           TIMESTAMPTZ,\n    \"migration_name\"        VARCHAR(255) NOT NULL,\n    \"logs\"                  TEXT,\n    \"rolled_back_at\"        TIMESTAMPTZ,\n    \"started_at\"            TIMESTAMPTZ NOT NULL DEFAULT now(),\n    \"applied_steps_count\"   INTEGER NOT NULL DEFAULT 0\n)"
        )
    } else {
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n    \"id\"                    TEXT PRIMARY KEY NOT NULL,\n    \"checksum\"              TEXT NOT NULL,\n    \"finished_at\"           DATETIME,\n    \"migration_name\"        TEXT NOT NULL,\n    \"logs\"                  TEXT,\n    \"rolled_back_at\"        DATETIME,\n    \"started_at\"            DATETIME NOT NULL DEFAULT current_timestamp,\n    \"applied_steps_count\"   INTEGER UNSIGNED NOT NULL DEFAULT 0\n)"
        )
    }
}

/// Creates the table when missing.
pub async fn ensure(conn: &mut Conn, table: &str) -> Result<(), DbError> {
    if conn.table_exists(table).await? {
        return Ok(());
    }
    let sql = create_sql(conn, table);
    conn.batch(&sql).await
}

/// Reads every row, oldest first. A missing table reads as no rows.
pub async fn read(conn: &mut Conn, table: &str) -> Result<Vec<HistoryRow>, DbError> {
    if !conn.table_exists(table).await? {
        return Ok(Vec::new());
    }
    let t = quote_ident(table);
    let sql = if conn.is_postgres() {
        let ts = |c: &str| {
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
        };
        format!(
            "SELECT id::text, checksum::text, migration_name::text, {}, {}, {}, logs, applied_steps_count::text FROM {t} ORDER BY started_at, migration_name",
            ts("started_at"), ts("finished_at"), ts("rolled_back_at")
        )
    } else {
        // Prisma's SQLite engine stores these as integer milliseconds; accept text too.
        let ts = |c: &str| {
            format!("CASE typeof({c}) WHEN 'integer' THEN strftime('%Y-%m-%dT%H:%M:%fZ', {c} / 1000.0, 'unixepoch') ELSE CAST({c} AS TEXT) END")
        };
        format!(
            "SELECT CAST(id AS TEXT), CAST(checksum AS TEXT), CAST(migration_name AS TEXT), {}, {}, {}, CAST(logs AS TEXT), CAST(applied_steps_count AS TEXT) FROM {t} ORDER BY started_at, migration_name",
            ts("started_at"), ts("finished_at"), ts("rolled_back_at")
        )
    };
    Ok(conn
        .rows(&sql, 8)
        .await?
        .into_iter()
        .map(|r| HistoryRow {
            id: r[0].clone().unwrap_or_default(),
            checksum: r[1].clone().unwrap_or_default(),
            migration_name: r[2].clone().unwrap_or_default(),
            started_at: r[3].clone().unwrap_or_default(),
            finished_at: r[4].clone(),
            rolled_back_at: r[5].clone(),
            logs: r[6].clone(),
            applied_steps_count: r[7].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
        })
        .collect())
}

/// SQL expression for "now" in a timestamp column (SQLite: integer ms, as Prisma writes).
pub fn now_sql(conn: &Conn) -> &'static str {
    if conn.is_postgres() {
        "clock_timestamp()"
    } else {
        "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)"
    }
}

/// What an inserted history row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Applied and finished.
    Finished,
    /// Started, not finished yet (non-transactional migrations, before they run).
    Started,
    /// An attempt PostgreSQL rolled back: kept for its `logs`, ignored like Prisma's
    /// rolled-back rows.
    RolledBackAttempt,
}

/// INSERT of one history row with the given id.
pub fn insert_sql(
    conn: &Conn,
    table: &str,
    id: &str,
    name: &str,
    checksum: &str,
    kind: RowKind,
    logs: Option<&str>,
) -> String {
    let now = now_sql(conn);
    let started = if conn.is_postgres() { "now()" } else { now };
    format!(
        "INSERT INTO {} (\"id\", \"checksum\", \"finished_at\", \"migration_name\", \"logs\", \"rolled_back_at\", \"started_at\", \"applied_steps_count\") VALUES ({}, {}, {}, {}, {}, {}, {started}, {})",
        quote_ident(table),
        quote_literal(id),
        quote_literal(checksum),
        if kind == RowKind::Finished { now } else { "NULL" },
        quote_literal(name),
        logs.map(quote_literal).unwrap_or_else(|| "NULL".into()),
        if kind == RowKind::RolledBackAttempt { now } else { "NULL" },
        if kind == RowKind::Finished { 1 } else { 0 },
    )
}

/// A new row id (Prisma uses random UUIDs too).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
