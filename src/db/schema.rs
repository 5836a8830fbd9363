//! Schema drift without a shadow database: after each deploy dbflow records a canonical
//! listing of the live catalog (tables, columns with types/defaults/nullability,
//! constraints, indexes, enums) and its hash; `status` compares the live catalog with it
//! and names every difference.
//!
//! On PostgreSQL the state lives in dbflow's own schema (`dbflow` unless
//! `migrations.state_schema` says otherwise), never in the app's: `prisma migrate dev` and
//! `prisma db pull` read the app's schema and must find only the app's objects there.

use super::conn::{quote_literal, Conn, DbError};

/// dbflow's own table for the recorded schema state.
pub const STATE_TABLE: &str = "_dbflow_schema_state";

/// Where dbflow versions before the state schema kept the table (PostgreSQL); moved into
/// the state schema by the next deploy, read from here until then.
pub const LEGACY_STATE_TABLE: &str = "\"public\".\"_dbflow_schema_state\"";

/// The state table, quoted (schema-qualified on PostgreSQL).
pub fn state_table(conn: &Conn) -> String {
    if conn.is_postgres() {
        format!(
            "{}.{}",
            quote_part(conn.state_schema()),
            quote_part(STATE_TABLE)
        )
    } else {
        quote_part(STATE_TABLE)
    }
}

/// One identifier quoted as is (a dot in it is part of the name).
fn quote_part(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The quoted state table that holds a recorded state, if any: the state schema's, else
/// (PostgreSQL) the legacy one in `public`.
async fn state_location(conn: &mut Conn) -> Result<Option<String>, DbError> {
    if !conn.is_postgres() {
        return Ok(conn
            .table_exists(STATE_TABLE)
            .await?
            .then(|| quote_part(STATE_TABLE)));
    }
    let current = state_table(conn);
    let found = conn
        .string(&format!(
            "SELECT CASE WHEN to_regclass({}) IS NOT NULL THEN 'current' WHEN to_regclass({}) IS NOT NULL THEN 'legacy' END",
            quote_literal(&current),
            quote_literal(LEGACY_STATE_TABLE)
        ))
        .await?;
    Ok(match found.as_deref() {
        Some("current") => Some(current),
        Some("legacy") => Some(LEGACY_STATE_TABLE.to_string()),
        _ => None,
    })
}

/// How long a catalog read may wait for locks before drift is reported as unchecked:
/// `pg_get_expr`/`pg_get_indexdef` take AccessShareLock, so a session holding ACCESS
/// EXCLUSIVE on a table would otherwise make `status` hang.
pub const CATALOG_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Like [`snapshot`], but gives up with `None` when the catalog is locked for longer than
/// [`CATALOG_LOCK_TIMEOUT`].
pub async fn snapshot_unless_locked(
    conn: &mut Conn,
    history_table: &str,
) -> Result<Option<Vec<String>>, DbError> {
    snapshot_within(conn, history_table, CATALOG_LOCK_TIMEOUT).await
}

/// Like [`snapshot`], but gives up with `None` when the catalog stays locked for `wait`.
pub async fn snapshot_within(
    conn: &mut Conn,
    history_table: &str,
    wait: std::time::Duration,
) -> Result<Option<Vec<String>>, DbError> {
    if !conn.is_postgres() {
        return snapshot(conn, history_table).await.map(Some);
    }
    conn.batch(&format!(
        "SET lock_timeout = '{}ms'",
        wait.as_millis().max(1)
    ))
    .await?;
    let result = snapshot(conn, history_table).await;
    conn.batch("RESET lock_timeout").await?;
    match result {
        Ok(lines) => Ok(Some(lines)),
        Err(e) if e.code.as_deref() == Some("55P03") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The canonical catalog listing: one sorted line per object.
pub async fn snapshot(conn: &mut Conn, history_table: &str) -> Result<Vec<String>, DbError> {
    let mut lines = conn.strings(&listing_sql(conn, history_table)).await?;
    lines.sort();
    Ok(lines)
}

/// The query behind [`snapshot`]: one text row per object (unsorted), in a column `line`.
fn listing_sql(conn: &Conn, history_table: &str) -> String {
    let excluded = format!(
        "({}, {})",
        quote_literal(history_table.rsplit('.').next().unwrap_or(history_table)),
        quote_literal(STATE_TABLE)
    );
    // dbflow's own schema is not the app's: nothing in it is drift.
    let state_schema = quote_literal(conn.state_schema());
    if conn.is_postgres() {
        format!(
            r#"WITH rels AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r','p','v','m','f') AND n.nspname NOT IN ('pg_catalog','information_schema', {state_schema})
    AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%' AND c.relname NOT IN {excluded}
)
SELECT format('%s %I.%I', CASE relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' ELSE 'table' END, nspname, relname) AS line FROM rels
UNION ALL
SELECT format('column %I.%I.%I %s%s%s', r.nspname, r.relname, a.attname, format_type(a.atttypid, a.atttypmod),
  CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''))
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
UNION ALL
SELECT format('constraint %I.%I.%I %s', r.nspname, r.relname, con.conname, pg_get_constraintdef(con.oid))
FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
UNION ALL
SELECT format('index %I.%I %s', r.nspname, ic.relname, pg_get_indexdef(i.indexrelid))
FROM rels r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
UNION ALL
SELECT format('enum %I.%I (%s)', n.nspname, t.typname, string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
WHERE n.nspname NOT IN ('pg_catalog','information_schema', {state_schema}) GROUP BY n.nspname, t.typname"#
        )
    } else {
        format!(
            r#"SELECT m.type || ' ' || m.name || CASE WHEN m.type IN ('index','trigger') THEN ' ' || coalesce(m.sql, '') ELSE '' END AS line
FROM sqlite_master m WHERE m.name NOT LIKE 'sqlite_%' AND m.tbl_name NOT IN {excluded}
UNION ALL
SELECT 'column ' || m.name || '.' || p.name || ' ' || p.type || CASE WHEN p."notnull" THEN ' not null' ELSE '' END
  || CASE WHEN p.pk > 0 THEN ' primary key' ELSE '' END || coalesce(' default ' || p.dflt_value, '')
FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT IN {excluded}"#
        )
    }
}

/// PostgreSQL expressions over the listing `l(line)` (see [`listing_sql`]) computed by
/// the server: the listing joined in [`snapshot`]'s order, and its [`fingerprint`].
/// `COLLATE "C"` compares bytes, as Rust's `sort` does, so both sides hash the same text
/// (on a database whose encoding orders differently from UTF-8 the two may differ: status
/// then compares in full, never less).
const LISTING_TEXT: &str = r#"coalesce(string_agg(line, E'\n' ORDER BY line COLLATE "C"), '')"#;

fn listing_fingerprint_sql() -> String {
    format!("encode(sha256(convert_to({LISTING_TEXT}, 'UTF8')), 'hex')")
}

/// Hash of a snapshot (of its lines joined by newlines, hashed without joining them).
pub fn fingerprint(lines: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(line.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The state recorded after the last deploy.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Hash of the listing.
    pub fingerprint: String,
    /// The listing itself.
    pub lines: Vec<String>,
    /// When it was recorded.
    pub recorded_at: String,
    /// Catalog change token of the live catalog the listing was read from (PostgreSQL),
    /// when the listing is exactly that catalog.
    pub token: Option<String>,
}

/// SQL for a cheap catalog change token (PostgreSQL, one text value): over the catalog
/// rows of user objects, the count, and the sum and sum of squares of the ids of the
/// transactions that wrote them.
///
/// Any DDL writes new catalog row versions stamped with its transaction's id, so an
/// unchanged token means an unchanged schema and the costly deparsing listing (one
/// `pg_get_indexdef`/`pg_get_expr` per object) can be skipped; a changed token only means
/// "compare in full" (so temporary tables of other sessions or catalog freezing cost
/// time, never correctness). With the sum of squares, rows rewritten by one transaction
/// always change the token: k old ids with the same sum and sum of squares as k copies of
/// the new id would all have to equal it. ANALYZE and autovacuum update `pg_class` in
/// place and keep it. Ids are read through `age()`, relative to one stable id of the
/// statement (the differences are normalised back after aggregating), not as
/// `xmin::text::int8`: formatting thousands of ids as text was most of what `status` cost
/// a fresh backend. `age()` of a frozen id is `INT_MAX`; those rows are counted apart.
pub fn token_sql() -> String {
    token_over(CATALOG_AGES)
}

/// The `age(xmin)` of every catalog row the schema listing derives from (user objects).
const CATALOG_AGES: &str = "SELECT age(xmin) AS a FROM (
    SELECT xmin FROM pg_class WHERE oid >= 16384
    UNION ALL SELECT xmin FROM pg_attribute WHERE attrelid >= 16384 AND attnum > 0
    UNION ALL SELECT xmin FROM pg_attrdef
    UNION ALL SELECT xmin FROM pg_constraint
    UNION ALL SELECT xmin FROM pg_type WHERE oid >= 16384 AND typrelid = 0 AND typcategory <> 'A'
    UNION ALL SELECT xmin FROM pg_enum
    UNION ALL SELECT xmin FROM pg_namespace
    UNION ALL SELECT xmin FROM pg_proc WHERE oid >= 16384
  ) u";

/// The token folded from `ages` (a query whose column `a` is `age(xmin)` of each row):
/// count, frozen count, and the sum and sum of squares of `xmin - 3`, recovered from the
/// ages with the statement's own `age('3')`. Numeric where products can pass int8 (a
/// catalog with many bootstrap rows, each `INT_MAX`).
pub fn token_over(ages: &str) -> String {
    format!(
        r#"(SELECT n || ':' || f || ':' || ((n - f) * l - (sa - f * 2147483647::numeric))
  || ':' || ((n - f) * l * l - 2 * l * (sa - f * 2147483647::numeric) + (sq - f * 4611686014132420609::numeric))
FROM (
  SELECT count(*) AS n, count(*) FILTER (WHERE a = 2147483647) AS f,
    coalesce(sum(a), 0) AS sa, coalesce(sum(a::int8 * a), 0) AS sq
  FROM ({ages}) p
) s, (SELECT age('3'::xid)::numeric AS l) x)"#
    )
}

/// The commit horizon of `snapshot` (an SQL `txid_snapshot` expression) as text, with the
/// ids of transactions in `extra` (SQL of a set of numeric ids, or `None`) counted as still
/// running: `xmax:running,ids`. Two snapshots with the same horizon see the same set of
/// committed transactions (xids at or past `xmax` have not completed; below it, exactly
/// the listed ones are running), so they see the same catalog rows: transactional DDL
/// cannot change what a snapshot sees without completing a transaction.
///
/// Spelled with the `txid_*` functions: PostgreSQL 13 renamed them (`pg_current_snapshot`,
/// …) and keeps the old names, so these run on older servers too.
fn horizon_sql(snapshot: &str, xmax: &str, extra: Option<&str>) -> String {
    let extra = extra.map(|e| format!(" UNION ALL {e}")).unwrap_or_default();
    format!(
        "({xmax})::text || ':' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x) FROM (SELECT r::numeric AS x FROM txid_snapshot_xip({snapshot}) r{extra}) h), '')"
    )
}

/// The live commit horizon (see [`horizon_sql`]) of the statement's own snapshot: what
/// `status` compares with the one recorded next to the token ([`recorded_horizon_sql`]).
/// Equal horizons mean no transaction completed since the record anywhere in the
/// cluster, so the recorded token is the live one without reading the catalog; any
/// other horizon (a busy cluster) reads the token in full. Cost: one snapshot, not one
/// row per catalog entry.
///
/// Spelled as the snapshot's text without its `xmin` (`xmin:xmax:ids` → `xmax:ids`): the
/// ids come sorted and without repeats, as [`horizon_sql`] lists them, and a fresh backend
/// plans this in a fraction of the set-returning form (~0.1 against ~0.45 ms).
/// `tests/catalog_horizon.rs` compares it with a recorded horizon while another
/// transaction runs.
pub fn live_horizon_sql() -> String {
    "(SELECT substr(s, strpos(s, ':') + 1) FROM (SELECT txid_current_snapshot()::text AS s) snap)"
        .to_string()
}

/// The horizon a later snapshot has when, after this statement, only the recording
/// transaction itself completes: its own id `me` becomes committed (so `xmax` is at least
/// `me + 1`), and ids between the statement's `xmax` and `me` (transactions that had not
/// completed) are counted as running. Any of those completing later changes the live
/// horizon, so the match then fails (compare in full); never the other way round. `NULL`
/// when that gap is implausibly large (compare in full). Evaluated in the recording
/// statement, after the transaction has its id.
fn recorded_horizon_sql() -> String {
    let xmax = "txid_snapshot_xmax(txid_current_snapshot())::numeric";
    let me = "txid_current()::numeric";
    format!(
        "CASE WHEN {me} - {xmax} <= 64 THEN {} END",
        horizon_sql(
            "txid_current_snapshot()",
            &format!("greatest({xmax}, {me} + 1)"),
            Some(&format!("SELECT generate_series({xmax}, {me} - 1)"))
        )
    )
}

/// The live catalog change token (see [`token_sql`]); `None` on SQLite.
pub async fn token(conn: &mut Conn) -> Result<Option<String>, DbError> {
    if !conn.is_postgres() {
        return Ok(None);
    }
    conn.string(&format!("SELECT {}", token_sql())).await
}

/// [`token`], giving up with `None` when a catalog it reads stays locked for longer than
/// `wait` (a `VACUUM FULL` or an explicit `LOCK` on a catalog table): the caller then
/// compares the listing, which says the catalog was locked, instead of hanging.
pub async fn token_within(
    conn: &mut Conn,
    wait: std::time::Duration,
) -> Result<Option<String>, DbError> {
    if !conn.is_postgres() {
        return Ok(None);
    }
    conn.batch(&format!(
        "SET lock_timeout = '{}ms'",
        wait.as_millis().max(1)
    ))
    .await?;
    let result = token(conn).await;
    conn.batch("RESET lock_timeout").await?;
    match result {
        Err(e) if e.code.as_deref() == Some("55P03") => Ok(None),
        other => other,
    }
}

/// Records the live schema as the expected one (a new baseline). Returns false when the
/// catalog stayed locked and nothing was recorded.
pub async fn record(conn: &mut Conn, history_table: &str) -> Result<bool, DbError> {
    if !conn.is_postgres() {
        let lines = snapshot(conn, history_table).await?;
        write(conn, history_table, Some(&lines), false).await?;
        return Ok(true);
    }
    // The server lists, hashes and stores the catalog in one statement: nothing as large
    // as the schema is held by dbflow, and the token is read in the listing's snapshot.
    write_unless_locked(conn, history_table, None).await
}

/// [`write`] waiting at most [`CATALOG_LOCK_TIMEOUT`] for the catalog (listing it takes
/// locks); false when nothing was written because it stayed locked. `lines` are written
/// even then, without a token (status then compares in full).
async fn write_unless_locked(
    conn: &mut Conn,
    history_table: &str,
    lines: Option<&[String]>,
) -> Result<bool, DbError> {
    conn.batch(&format!(
        "SET lock_timeout = '{}ms'",
        CATALOG_LOCK_TIMEOUT.as_millis().max(1)
    ))
    .await?;
    let result = write(conn, history_table, lines, true).await;
    conn.batch("RESET lock_timeout").await?;
    match (result, lines) {
        (Ok(()), _) => Ok(true),
        // One transaction: nothing was written.
        (Err(e), None) if e.code.as_deref() == Some("55P03") => Ok(false),
        (Err(e), Some(lines)) if e.code.as_deref() == Some("55P03") => {
            write(conn, history_table, Some(lines), false).await?;
            Ok(true)
        }
        (Err(e), _) => Err(e),
    }
}

/// Records what dbflow itself changed since `before` (a deploy, a down) on top of the
/// recorded state, so drift that existed before stays reported instead of being
/// absorbed into the new baseline. Without `before` (the catalog was locked then), the
/// live schema becomes the new baseline. Returns false when the catalog stayed locked and
/// nothing was recorded.
pub async fn record_change(
    conn: &mut Conn,
    history_table: &str,
    before: Option<&[String]>,
) -> Result<bool, DbError> {
    let Some(before) = before else {
        return record(conn, history_table).await;
    };
    // No drift before (the record was `before`, line for line): the change applied to the
    // record is the live schema itself, recorded without reading it here.
    match recorded(conn, false).await? {
        Some(previous) if previous.fingerprint != fingerprint(before) => {}
        _ => return record(conn, history_table).await,
    }
    let Some(after) = snapshot_unless_locked(conn, history_table).await? else {
        return Ok(false);
    };
    let Some(previous) = recorded(conn, true).await? else {
        return record(conn, history_table).await;
    };
    let lines = merge_change(previous.lines, before, &after);
    drop(after);
    write_unless_locked(conn, history_table, Some(&lines)).await?;
    Ok(true)
}

/// `previous` without what went away between `before` and `after`, plus what appeared,
/// sorted: linear in the listings' sizes (hash sets), not quadratic.
fn merge_change(previous: Vec<String>, before: &[String], after: &[String]) -> Vec<String> {
    use std::collections::HashSet;
    let before_set: HashSet<&str> = before.iter().map(String::as_str).collect();
    let after_set: HashSet<&str> = after.iter().map(String::as_str).collect();
    let mut lines: Vec<String> = previous
        .into_iter()
        .filter(|l| after_set.contains(l.as_str()) || !before_set.contains(l.as_str()))
        .collect();
    lines.extend(
        after
            .iter()
            .filter(|l| !before_set.contains(l.as_str()))
            .cloned(),
    );
    lines.sort();
    lines.dedup();
    lines
}

/// Writes the state row in one transaction. `lines`: the listing to record; `None`: the
/// live one, listed by the server in the writing statement (PostgreSQL).
///
/// The token (PostgreSQL) is stored only when the recorded listing is exactly the live
/// catalog: `lines` get one only with `check_live`, when the same statement lists the
/// catalog again and finds the same hash. A schema changed by someone else between
/// dbflow's read and this write then leaves no token, and status compares in full instead
/// of trusting one. Computed after the state table exists, the token counts the table's
/// own catalog rows.
async fn write(
    conn: &mut Conn,
    history_table: &str,
    lines: Option<&[String]>,
    check_live: bool,
) -> Result<(), DbError> {
    let t = state_table(conn);
    let (create, now) = if conn.is_postgres() {
        // The schema is created on first use; a table left in `public` by an older dbflow
        // is moved (or, when both exist, dropped: the one in the state schema is newer).
        let schema = quote_part(conn.state_schema());
        let legacy = LEGACY_STATE_TABLE;
        (format!("CREATE SCHEMA IF NOT EXISTS {schema};
DO $dbflow$ BEGIN
  IF to_regclass({legacy_lit}) IS NOT NULL AND to_regclass({legacy_lit}) IS DISTINCT FROM to_regclass({t_lit}) THEN
    IF to_regclass({t_lit}) IS NULL THEN ALTER TABLE {legacy} SET SCHEMA {schema}; ELSE DROP TABLE {legacy}; END IF;
  END IF;
END $dbflow$;
CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, snapshot TEXT NOT NULL, recorded_at TIMESTAMPTZ NOT NULL, token TEXT, horizon TEXT);
ALTER TABLE {t} ADD COLUMN IF NOT EXISTS token TEXT;
ALTER TABLE {t} ADD COLUMN IF NOT EXISTS horizon TEXT",
            legacy_lit = quote_literal(legacy), t_lit = quote_literal(&t)), "now()")
    } else {
        (format!("CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, snapshot TEXT NOT NULL, recorded_at TEXT NOT NULL, token TEXT)"), "strftime('%Y-%m-%dT%H:%M:%SZ','now')")
    };
    // PostgreSQL: the transaction takes its id before the recording statement's snapshot,
    // so the horizon recorded next to the token can count it (see `recorded_horizon_sql`).
    let (horizon_column, own_id) = match conn.is_postgres() {
        true => (", horizon", "SELECT txid_current();\n"),
        false => ("", ""),
    };
    let mut sql = format!(
        "{create};\nDELETE FROM {t};\n{own_id}INSERT INTO {t} (id, fingerprint, snapshot, recorded_at, token{horizon_column})\nSELECT 1, "
    );
    let Some(lines) = lines else {
        sql.push_str(&format!(
            "{}, {LISTING_TEXT}, {now}, {}, {} FROM (\n{}\n) l",
            listing_fingerprint_sql(),
            token_sql(),
            recorded_horizon_sql(),
            listing_sql(conn, history_table)
        ));
        return conn.batch_owned(sql).await;
    };
    let sum = quote_literal(&fingerprint(lines));
    sql.push_str(&format!("{sum}, "));
    push_joined_literal(&mut sql, lines);
    if check_live && conn.is_postgres() {
        let live = listing_fingerprint_sql();
        sql.push_str(&format!(
            ", {now}, CASE WHEN same THEN {} END, CASE WHEN same THEN {} END FROM (SELECT {live} = {sum} AS same FROM (\n{}\n) l) q",
            token_sql(),
            recorded_horizon_sql(),
            listing_sql(conn, history_table)
        ));
    } else if conn.is_postgres() {
        sql.push_str(&format!(", {now}, NULL, NULL"));
    } else {
        sql.push_str(&format!(", {now}, NULL"));
    }
    conn.batch_owned(sql).await
}

/// Appends `lines` joined by newlines as one SQL string literal, without building the
/// joined text and its quoted copy first.
fn push_joined_literal(sql: &mut String, lines: &[String]) {
    sql.reserve(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    sql.push('\'');
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            sql.push('\n');
        }
        for part in line.split_inclusive('\'') {
            sql.push_str(part);
            if part.ends_with('\'') {
                sql.push('\'');
            }
        }
    }
    sql.push('\'');
}

/// The recorded state, if a deploy ever recorded one.
/// With `with_lines` false the listing is not transferred (`lines` is empty): enough to
/// compare tokens and fingerprints.
pub async fn recorded(conn: &mut Conn, with_lines: bool) -> Result<Option<Recorded>, DbError> {
    let Some(t) = state_location(conn).await? else {
        return Ok(None);
    };
    // Read through to_jsonb so a table recorded before the token column existed still reads.
    let token = if conn.is_postgres() {
        "to_jsonb(s)->>'token'"
    } else {
        "token"
    };
    let snapshot = if with_lines { "snapshot" } else { "''" };
    let rows = conn
        .rows(
            &format!(
                "SELECT fingerprint, {snapshot}, CAST(recorded_at AS TEXT), {token} FROM {t} s WHERE id = 1"
            ),
            4,
        )
        .await?;
    Ok(rows.into_iter().next().map(|r| Recorded {
        fingerprint: r[0].clone().unwrap_or_default(),
        lines: r[1]
            .clone()
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect(),
        recorded_at: r[2].clone().unwrap_or_default(),
        token: r[3].clone(),
    }))
}

/// What changed between the recorded and the live listing, for people. Linear in the
/// listings' sizes (hash sets): a 5,000-table schema lists ~35,000 lines, and comparing
/// each with every other took seconds.
pub fn diff(recorded: &[String], live: &[String]) -> Vec<String> {
    use std::collections::HashSet;
    let recorded_set: HashSet<&str> = recorded.iter().map(String::as_str).collect();
    let live_set: HashSet<&str> = live.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for line in live.iter().filter(|l| !recorded_set.contains(l.as_str())) {
        out.push(format!("added outside migrations: {line}"));
    }
    for line in recorded.iter().filter(|l| !live_set.contains(l.as_str())) {
        out.push(format!("removed or changed outside migrations: {line}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_what_was_added_and_what_went_away_in_a_large_listing() {
        let recorded: Vec<String> = (0..35_000)
            .map(|i| format!("column t{i}.id integer"))
            .collect();
        let mut live = recorded.clone();
        live[17_000] = "column t17000.id bigint".into();
        live.push("table public.by_hand".into());
        assert_eq!(
            diff(&recorded, &live),
            [
                "added outside migrations: column t17000.id bigint",
                "added outside migrations: table public.by_hand",
                "removed or changed outside migrations: column t17000.id integer",
            ]
        );
        assert!(diff(&live, &live).is_empty());
    }
}
