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
    let mut sql = create_sql(conn, table);
    if let Some(schema) = conn.url_schema() {
        // Prisma creates the URL's `?schema=` when it is missing; so does dbflow.
        sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n{sql}",
            quote_ident(schema)
        );
    }
    conn.batch(&sql).await
}

/// Reads every row, oldest first. A missing table reads as no rows.
pub async fn read(conn: &mut Conn, table: &str) -> Result<Vec<HistoryRow>, DbError> {
    if !conn.table_exists(table).await? {
        return Ok(Vec::new());
    }
    let t = quote_ident(table);
    if conn.is_postgres() {
        // Plain text output (ISO, as every connection sets DateStyle), normalised and
        // sorted here: cheaper for a fresh backend than to_char and a sort per row. Each
        // row is made as it arrives, so the history is not also held as text rows.
        let mut rows = Vec::new();
        conn.each_text_row(&format!("SELECT {PG_COLUMNS} FROM {t}"), |values| {
            rows.push(from_text(values))
        })
        .await?;
        sort(&mut rows);
        return Ok(rows);
    }
    // Prisma's SQLite engine stores these as integer milliseconds; accept text too.
    let ts = |c: &str| {
        format!("CASE typeof({c}) WHEN 'integer' THEN strftime('%Y-%m-%dT%H:%M:%fZ', {c} / 1000.0, 'unixepoch') ELSE CAST({c} AS TEXT) END")
    };
    let sql = format!(
        "SELECT CAST(id AS TEXT), CAST(checksum AS TEXT), CAST(migration_name AS TEXT), {}, {}, {}, CAST(logs AS TEXT), CAST(applied_steps_count AS TEXT) FROM {t}",
        ts("started_at"), ts("finished_at"), ts("rolled_back_at")
    );
    Ok(from_rows(conn.rows(&sql, 8).await?))
}

/// The history columns as text, in the order [`from_rows`] reads them (PostgreSQL).
pub const PG_COLUMNS: &str = "id::text, checksum::text, migration_name::text, started_at::text, finished_at::text, rolled_back_at::text, logs, applied_steps_count::text";

/// History rows from text columns selected as [`PG_COLUMNS`], oldest first.
pub fn from_rows(rows: Vec<Vec<Option<String>>>) -> Vec<HistoryRow> {
    let mut rows: Vec<HistoryRow> = rows
        .iter()
        .map(|r| {
            let values: Vec<Option<&str>> = r.iter().map(Option::as_deref).collect();
            from_text(&values)
        })
        .collect();
    sort(&mut rows);
    rows
}

/// One history row from its text columns as [`PG_COLUMNS`] selects them (a missing or
/// NULL value reads as empty, or as none where the column may be NULL).
pub fn from_text(values: &[Option<&str>]) -> HistoryRow {
    let at = |i: usize| values.get(i).copied().flatten();
    HistoryRow {
        id: at(0).unwrap_or_default().to_string(),
        checksum: at(1).unwrap_or_default().to_string(),
        migration_name: at(2).unwrap_or_default().to_string(),
        started_at: at(3).map(utc_millis).unwrap_or_default(),
        finished_at: at(4).map(utc_millis),
        rolled_back_at: at(5).map(utc_millis),
        logs: at(6).map(str::to_string),
        applied_steps_count: at(7).and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

/// Oldest first (by start, then name), as Prisma lists them.
pub fn sort(rows: &mut [HistoryRow]) {
    rows.sort_by(|a, b| {
        (&a.started_at, &a.migration_name).cmp(&(&b.started_at, &b.migration_name))
    });
}

/// A timestamp as PostgreSQL prints it (`2024-01-01 12:00:00.123456+00`, any offset) as
/// RFC 3339 UTC with milliseconds (`2024-01-01T12:00:00.123Z`), the form Prisma shows;
/// text already in that form (SQLite) or not understood is kept as it is.
pub fn utc_millis(text: &str) -> String {
    // The common case (a UTC session, which every dbflow connection is) without a
    // general parser: status formats three timestamps per migration.
    if let Some(fast) = utc_millis_fast(text) {
        return fast;
    }
    match chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        Err(_) => text.to_string(),
    }
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

/// `YYYY-MM-DD HH:MM:SS[.f…]+00` → `YYYY-MM-DDTHH:MM:SS.mmmZ`; `None` for anything else.
fn utc_millis_fast(text: &str) -> Option<String> {
    let body = text.strip_suffix("+00")?;
    let b = body.as_bytes();
    let shape_ok = b.len() >= 19
        && b[10] == b' '
        && b[..19]
            .iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let fraction = match &body[19..] {
        "" => "",
        f if f.starts_with('.') && f.len() > 1 && f[1..].bytes().all(|c| c.is_ascii_digit()) => {
            &f[1..]
        }
        _ => return None,
    };
    // One allocation per timestamp (status formats two per migration).
    let mut out = String::with_capacity(24);
    out.push_str(&body[..10]);
    out.push('T');
    out.push_str(&body[11..19]);
    out.push('.');
    out.push_str(&fraction[..fraction.len().min(3)]);
    out.push_str(&"000"[fraction.len().min(3)..]);
    out.push('Z');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_timestamps_become_rfc3339_utc_milliseconds() {
        assert_eq!(
            utc_millis("2024-01-01 12:00:00.123456+00"),
            "2024-01-01T12:00:00.123Z"
        );
        assert_eq!(
            utc_millis("2024-01-01 12:00:00+00"),
            "2024-01-01T12:00:00.000Z"
        );
        assert_eq!(
            utc_millis("2024-01-01 17:30:00.5+05:30"),
            "2024-01-01T12:00:00.500Z"
        );
        assert_eq!(
            utc_millis("2024-01-01T12:00:00.123Z"),
            "2024-01-01T12:00:00.123Z"
        );
        assert_eq!(
            utc_millis("2024-01-01 12:00:00.1+00"),
            "2024-01-01T12:00:00.100Z"
        );
        assert_eq!(
            utc_millis("2024-01-01 12:00:00.12+00"),
            "2024-01-01T12:00:00.120Z"
        );
        assert_eq!(
            utc_millis("2024-01-01 12:00:00.+00"),
            "2024-01-01 12:00:00.+00"
        );
        assert_eq!(
            utc_millis("12024-01-01 12:00:00+00"),
            "12024-01-01 12:00:00+00"
        );
    }

    #[test]
    fn rows_are_read_oldest_first_whatever_order_they_come_in() {
        let row = |name: &str, started: &str| {
            let text = |v: &str| Some(v.to_string());
            vec![
                text("id"),
                text("c"),
                text(name),
                text(started),
                None,
                None,
                None,
                text("1"),
            ]
        };
        let rows = from_rows(vec![
            row("b", "2024-01-02 00:00:00+00"),
            row("a", "2024-01-01 23:00:00-02"),
            row("c", "2024-01-01 00:00:00+00"),
        ]);
        let names: Vec<&str> = rows.iter().map(|r| r.migration_name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert_eq!(rows[2].started_at, "2024-01-02T01:00:00.000Z");
        assert_eq!(rows[0].applied_steps_count, 1);
    }
}
