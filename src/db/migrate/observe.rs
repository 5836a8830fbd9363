//! Reading what the database says: the history rows, the recorded schema state and the
//! drift check, then comparing them with the migrations folder.

use super::status::{entries_from, Status};
use crate::db::conn::{quote_ident, quote_literal, Conn, DbError};
use crate::db::history::{self, HistoryRow};
use crate::db::history_copy;
use crate::db::horizon_memo;
use crate::db::schema;
use crate::db::store::Store;
use std::time::Duration;

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
    catalog_read: bool,
}

impl Observed {
    /// The status of `store` against what was observed.
    pub fn status(self, store: &Store) -> Status {
        Status {
            entries: entries_from(store, &self.rows),
            drift: self.drift,
            drift_checked: self.drift_checked,
            catalog_read: self.catalog_read,
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
        catalog_read: false,
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
        true => match probe(conn, table, true, catalog_wait, true).await? {
            // A state table recorded before horizons (no such column until the next
            // deploy): the same probe without the recorded horizon, not the careful path.
            Err(Missing::Horizon) => probe(conn, table, false, catalog_wait, true).await?.ok(),
            // The history copy did not add up (see `probe`): read in full, without it.
            Err(Missing::Copy) => probe(conn, table, true, catalog_wait, false).await?.ok(),
            found => found.ok(),
        },
        false => None,
    };
    let (rows, history_table_exists, recorded, live_token, mut catalog_read) = match probe {
        Some(probe) => (
            probe.rows,
            true,
            Some(probe.recorded),
            probe.token,
            probe.catalog_read,
        ),
        None => {
            let (rows, exists) = history_rows(conn, table).await?;
            let recorded = schema::recorded(conn, false).await?;
            let token = match &recorded {
                Some(r) if r.token.is_some() => schema::token_within(conn, catalog_wait).await?,
                _ => None,
            };
            let read = token.is_some();
            (rows, exists, recorded, token, read)
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
                catalog_read = true;
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
        catalog_read,
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
    /// Whether the token was read from the catalog (not known current from a horizon).
    catalog_read: bool,
}

/// Why the one-statement probe could not answer.
enum Missing {
    /// The state table has no `horizon` column (recorded by a dbflow before it).
    Horizon,
    /// No history table, state table or state row (or a state table without tokens):
    /// the careful path reads step by step and says what is missing.
    Table,
    /// The history copy matched the snapshot but not the rows with logs read in it, or its
    /// rows could not be read back, or the statement sent no marker: not possible while the
    /// copy is what dbflow wrote, so it is not trusted and the history is read in full.
    Copy,
}

/// How the probe knew the live token: the horizon recorded with the state, the project's
/// memo (see [`horizon_memo`]), or a read of the catalog (`read`; `none` when the record
/// has no token to compare with, so none is read).
const FROM_RECORD: &str = "recorded";
const FROM_MEMO: &str = "memo";

/// The history rows, the recorded schema state (without its listing) and the live catalog
/// token in one round trip when the token is known (PostgreSQL): a fresh backend pays for
/// every statement it plans, so `status` asks once. [`Missing`] when it cannot answer;
/// the caller then asks again without the recorded horizon, or reads step by step.
///
/// The token is read from the catalog (a second statement) only when no transaction is
/// known to have left the catalog as it was: the statement's commit horizon equal to the
/// one recorded with the token (nothing completed since the deploy recorded it), or to
/// one the memo remembers for this server (a previous status read the token at that
/// horizon).
///
/// The history rows come from the project's copy (see [`history_copy`]) when `use_copy`
/// and the history statement's own snapshot has the horizon the copy was read at: the
/// statement then sends only the rows with logs, which the copy leaves out.
async fn probe(
    conn: &mut Conn,
    table: &str,
    with_horizon: bool,
    catalog_wait: Duration,
    use_copy: bool,
) -> Result<Result<Probe, Missing>, DbError> {
    // Two statements in one message, their rows told apart by width (8, 9); the token is
    // known by the statement that reads the state row, so a state table without its row
    // returns neither (and the careful path says "not recorded"). The state row is
    // asked for first: on a state table without the `horizon` column that statement fails
    // and the server skips the rest, so the history is not sent twice.
    let memo = conn
        .horizon_memo()
        .map(horizon_memo::load)
        .unwrap_or_default();
    let memo_rows = match memo.is_empty() {
        true => "SELECT NULL::text, NULL::text, NULL::text WHERE false".to_string(),
        false => {
            let rows: Vec<String> = memo
                .iter()
                .map(|m| {
                    format!(
                        "({}, {}, {})",
                        quote_literal(&m.server),
                        quote_literal(&m.horizon),
                        quote_literal(&m.token)
                    )
                })
                .collect();
            format!("VALUES {}", rows.join(", "))
        }
    };
    let copy_path = conn
        .horizon_memo()
        .map(|memo| memo.with_file_name(history_copy::FILE));
    let copy = copy_path
        .as_deref()
        .filter(|_| use_copy)
        .and_then(history_copy::open);
    // Whether the statement's snapshot is the copy's: computed once, in the statement.
    let hit = match &copy {
        Some(c) => format!(
            "h.live = {} AND h.server = {} AND h.relation = {}",
            quote_literal(&c.key.horizon),
            quote_literal(&c.key.server),
            quote_literal(&c.key.relation)
        ),
        None => "false".into(),
    };
    // Its rows are decoded while the server answers; used only if the snapshot matches.
    let mut copy = copy.map(|c| (c.with_logs, c.decode_meanwhile()));
    let sql = format!(
        "SELECT 'state', fingerprint, recorded_at, token,
  CASE kind WHEN '{FROM_RECORD}' THEN token WHEN '{FROM_MEMO}' THEN memo_token END, kind, live, server
FROM (
  SELECT s.fingerprint, s.recorded_at, s.token, l.live, l.server, m.token AS memo_token,
    CASE WHEN s.token IS NULL THEN 'none' WHEN {recorded_horizon} = l.live THEN '{FROM_RECORD}' WHEN m.token IS NOT NULL THEN '{FROM_MEMO}' ELSE 'read' END AS kind
  FROM {state} s
  CROSS JOIN (SELECT {live} AS live, {server} AS server) l
  LEFT JOIN ({memo_rows}) m(server, horizon, token) ON m.server = l.server AND m.horizon = l.live
) q;
WITH h AS MATERIALIZED (SELECT {snapshot} AS live, {server} AS server, {relation} AS relation),
  c AS MATERIALIZED (SELECT coalesce({hit}, false) AS hit FROM h)
SELECT 'copy', h.live, h.server, h.relation, c.hit::text, NULL, NULL, NULL, NULL FROM h, c
UNION ALL
SELECT NULL, checksum::text, migration_name::text, started_at::text, finished_at::text, rolled_back_at::text, logs, applied_steps_count::text, NULL
FROM {t} WHERE logs IS NOT NULL OR NOT (SELECT hit FROM c)",
        t = quote_ident(table),
        relation = history_copy::relation_sql(&quote_literal(&quote_ident(table))),
        snapshot = history_copy::SNAPSHOT_SQL,
        state = schema::state_table(conn),
        live = schema::live_horizon_sql(),
        server = horizon_memo::server_sql(),
        recorded_horizon = if with_horizon { "s.horizon" } else { "NULL::text" },
    );
    // Each history row is made as it arrives (the probe selects no id: it reads as empty).
    let (mut history_rows, mut state_row, mut marker) = (Vec::new(), None, None);
    let read = conn
        .each_text_row(&sql, |values| match values.len() {
            9 if values[0].is_some() => {
                // Another snapshot: the copy's rows go before the table's arrive (they are
                // freed as soon as their thread ends), so the two are not held at once.
                if values[4] != Some("true") {
                    copy = None;
                }
                marker = Some(
                    values[1..5]
                        .iter()
                        .map(|v| v.unwrap_or_default().to_string())
                        .collect::<Vec<_>>(),
                )
            }
            9 => {
                let mut with_id = [None; 8];
                with_id[1..].copy_from_slice(&values[1..8]);
                history_rows.push(history::from_text(&with_id));
            }
            8 => {
                state_row = Some(
                    values
                        .iter()
                        .map(|v| v.map(str::to_string))
                        .collect::<Vec<_>>(),
                )
            }
            _ => {}
        })
        .await;
    match read {
        Ok(()) => {}
        // Undefined table, schema or column (a state table from before tokens): not
        // deployed by this dbflow yet; the careful path reads step by step.
        Err(e) if with_horizon && e.code.as_deref() == Some("42703") => {
            return Ok(Err(Missing::Horizon))
        }
        Err(e) if matches!(e.code.as_deref(), Some("42P01" | "3F000" | "42703")) => {
            return Ok(Err(Missing::Table))
        }
        Err(e) => return Err(e),
    };
    // The statement always returns its marker; without one, nothing is trusted to it.
    let Some(marker) = marker else {
        return Ok(Err(Missing::Copy));
    };
    let key = history_copy::Key {
        server: marker[1].clone(),
        relation: marker[2].clone(),
        horizon: marker[0].clone(),
    };
    match (copy, marker[3] == "true") {
        // The same snapshot as the copy's: its rows, and the rows with logs just read.
        (Some((with_logs, decoding)), true) => {
            if history_rows.len() != with_logs as usize {
                return Ok(Err(Missing::Copy));
            }
            let Some(mut rows) = decoding.rows() else {
                return Ok(Err(Missing::Copy));
            };
            // The few rows with logs join the copy's (not the copy's thousands moved again).
            rows.append(&mut history_rows);
            history_rows = rows;
        }
        (_, false) => {
            if let Some(path) = &copy_path {
                history_copy::save(path, &key, &history_rows);
            }
        }
        (None, true) => return Ok(Err(Missing::Copy)),
    }
    history::sort(&mut history_rows);
    let (mut recorded, mut token) = (None, None);
    let mut catalog_read = true;
    if let Some(mut row) = state_row {
        let kind = row[5].take().unwrap_or_default();
        catalog_read = kind == "read";
        token = match catalog_read {
            // Read in a statement of its own: a fresh backend pays for planning the
            // catalog scan even where the `CASE` would not run it, which is most of
            // the time. Read after the horizon, the token still belongs to it in the
            // memo: had anything completed in between, that horizon never comes back.
            // A catalog locked for longer than `catalog_wait` leaves it unknown: the
            // listing is then compared, and says so.
            true => schema::token_within(conn, catalog_wait).await?,
            false => row[4].take(),
        };
        catalog_read &= token.is_some();
        if let (true, Some(path), Some(token), Some(live), Some(server)) = (
            catalog_read,
            conn.horizon_memo(),
            &token,
            row[6].take(),
            row[7].take(),
        ) {
            horizon_memo::remember(
                path,
                horizon_memo::Seen {
                    server,
                    horizon: live,
                    token: token.clone(),
                },
            );
        }
        recorded = Some(schema::Recorded {
            fingerprint: row[1].take().unwrap_or_default(),
            lines: Vec::new(),
            recorded_at: row[2].take().unwrap_or_default(),
            token: row[3].take(),
        });
    }
    // A state table without its row reads as "not recorded": the careful path says so.
    let Some(recorded) = recorded else {
        return Ok(Err(Missing::Table));
    };
    Ok(Ok(Probe {
        rows: history_rows,
        recorded,
        token,
        catalog_read,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, finished: Option<&str>, rolled_back: Option<&str>) -> HistoryRow {
        HistoryRow {
            id: format!("id-{name}"),
            checksum: "c".into(),
            migration_name: name.into(),
            started_at: "2024-01-01T00:00:00.000Z".into(),
            finished_at: finished.map(str::to_string),
            rolled_back_at: rolled_back.map(str::to_string),
            logs: None,
            applied_steps_count: 1,
        }
    }

    // PostgreSQL's form, as the state table returns it; rows are already RFC 3339 UTC.
    const RECORDED: &str = "2024-01-01 13:00:00.5+01";

    #[test]
    fn a_record_newer_than_every_finished_migration_is_not_stale() {
        let rows = [
            row("1_a", Some("2024-01-01T11:00:00.000Z"), None),
            row("2_b", Some("2024-01-01T12:00:00.500Z"), None),
        ];
        assert_eq!(stale_reason(&rows, RECORDED), None);
    }

    #[test]
    fn one_later_migration_is_named() {
        let rows = [
            row("1_a", Some("2024-01-01T11:00:00.000Z"), None),
            row("2_b", Some("2024-01-01T12:00:00.501Z"), None),
        ];
        assert_eq!(
            stale_reason(&rows, RECORDED).as_deref(),
            Some("1 migration(s) (`2_b`) were applied after dbflow recorded the schema at 2024-01-01T12:00:00.500Z, by another tool")
        );
    }

    #[test]
    fn several_later_migrations_are_named_by_first_and_last() {
        let rows = [
            row("2_b", Some("2024-01-02T00:00:00.000Z"), None),
            row("3_c", Some("2024-01-02T00:00:01.000Z"), None),
            row("4_d", Some("2024-01-02T00:00:02.000Z"), None),
        ];
        assert_eq!(
            stale_reason(&rows, RECORDED).as_deref(),
            Some("3 migration(s) (`2_b` … `4_d`) were applied after dbflow recorded the schema at 2024-01-01T12:00:00.500Z, by another tool")
        );
    }

    #[test]
    fn rolled_back_and_unfinished_rows_do_not_make_it_stale() {
        let rows = [
            row(
                "2_b",
                Some("2024-01-02T00:00:00.000Z"),
                Some("2024-01-02T00:00:01.000Z"),
            ),
            row("3_c", None, None),
        ];
        assert_eq!(stale_reason(&rows, RECORDED), None);
    }
}
