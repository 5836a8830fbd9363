//! Applying one migration: in one transaction with its history row (PostgreSQL), statement
//! by statement between a "started" and a "finished" row when it cannot run in a
//! transaction, or under `BEGIN IMMEDIATE` (SQLite); and the message a failure shows.

use super::deploy::Event;
use crate::db::conn::{quote_ident, quote_literal, Conn, DbError};
use crate::db::history::{self, RowKind};
use crate::db::store::Migration;
use crate::sql::{self as statements, line_of};
use std::time::Duration;

/// Limits for applying migrations, with environment defaults already applied.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `lock_timeout` per migration.
    pub lock_timeout: Option<Duration>,
    /// `statement_timeout` per migration.
    pub statement_timeout: Option<Duration>,
    /// Retries after a `lock_timeout` failure.
    pub lock_retries: u32,
    /// How long to wait for another deployer's lock.
    pub lock_wait: Duration,
}

/// Why one migration did not apply.
pub(super) struct ApplyFailure {
    /// What failed, with file, line and statement when known.
    pub(super) message: String,
    /// Part of it stayed applied (it ran outside a transaction).
    pub(super) partial: bool,
    /// The signal that stopped it (its statement was cancelled or never started).
    pub(super) interrupted: Option<i32>,
}

const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Applies one migration; returns whether it ran in a transaction.
pub(super) async fn apply(
    conn: &mut Conn,
    migration: &Migration,
    table: &str,
    limits: &Limits,
    wait_for_flush: bool,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<bool, ApplyFailure> {
    // The script's text is in memory once; the statements are split out (a copy) only
    // when they run one by one, so a 50 MB script of INSERTs is not held twice.
    let sql = migration.text().map_err(|e| ApplyFailure {
        message: e.to_string(),
        partial: false,
        interrupted: None,
    })?;
    if !conn.is_postgres() {
        apply_sqlite(conn, migration, &sql, table).await?;
        return Ok(true);
    }
    let statements = statements::runs_outside_transaction(&sql)
        .unwrap_or(false)
        .then(|| statements::split(&sql).ok())
        .flatten();
    let outside = statements.is_some();
    let mut attempt = 0;
    loop {
        let result = if outside {
            apply_outside_transaction(
                conn,
                migration,
                statements.as_deref().unwrap_or_default(),
                table,
                limits,
            )
            .await
        } else {
            apply_in_transaction(conn, migration, &sql, table, limits, wait_for_flush).await
        };
        match result {
            Err((err, partial))
                if err.code.as_deref() == Some(LOCK_NOT_AVAILABLE)
                    && !partial
                    && attempt < limits.lock_retries
                    && crate::interrupt::received().is_none() =>
            {
                attempt += 1;
                let pause =
                    Duration::from_millis(500 * 2u64.pow(attempt - 1)).min(Duration::from_secs(10));
                on_event(Event::Retrying(&migration.name, attempt, pause));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = crate::interrupt::wait() => {}
                }
            }
            Err((err, partial)) => {
                let split;
                let described = match &statements {
                    Some(s) => Some(s.as_slice()),
                    None if sql.len() <= statements::SPLIT_FOR_ERRORS_LIMIT => {
                        split = statements::split(&sql).ok();
                        split.as_deref()
                    }
                    None => None,
                };
                let message = describe_failure(&err, &sql, migration, described, partial);
                // Stopped on purpose: no attempt row (nothing of it was applied, and the
                // session should do no more than it must after a Ctrl-C).
                let interrupted = crate::interrupt::received();
                if !partial && interrupted.is_none() {
                    // Keep the error in `logs` the way Prisma users look for it, on a row
                    // marked rolled back so that it does not count as applied or failed.
                    let row = migration_row(
                        conn,
                        table,
                        migration,
                        RowKind::RolledBackAttempt,
                        Some(&message),
                    );
                    let _ = conn.batch(&row).await;
                }
                return Err(ApplyFailure {
                    message,
                    partial,
                    interrupted,
                });
            }
            Ok(()) => return Ok(!outside),
        }
    }
}

fn set_limits(limits: &Limits, local: bool) -> String {
    let scope = if local { "SET LOCAL" } else { "SET" };
    let mut out = String::new();
    if let Some(t) = limits.lock_timeout {
        out.push_str(&format!("{scope} lock_timeout = '{}ms';\n", t.as_millis()));
    }
    if let Some(t) = limits.statement_timeout {
        out.push_str(&format!(
            "{scope} statement_timeout = '{}ms';\n",
            t.as_millis()
        ));
    }
    out
}

/// One round trip: BEGIN, limits, the script, the history row, COMMIT.
async fn apply_in_transaction(
    conn: &mut Conn,
    migration: &Migration,
    sql: &str,
    table: &str,
    limits: &Limits,
    wait_for_flush: bool,
) -> Result<(), (DbError, bool)> {
    let deferred = match wait_for_flush {
        true => "",
        false => "SET LOCAL synchronous_commit = off;\n",
    };
    let prefix = format!("BEGIN;\n{deferred}{}", set_limits(limits, true));
    let row = migration_row(conn, table, migration, RowKind::Finished, None);
    let script = format!("{prefix}{sql}\n;\n{row};\nCOMMIT;");
    match conn.batch_owned(script).await {
        Ok(()) => Ok(()),
        Err(mut err) => {
            let _ = conn.batch("ROLLBACK").await;
            // Map the position from the combined script back into migration.sql.
            err.position = err.position.and_then(|p| {
                let prefix_chars = prefix.chars().count();
                (p > prefix_chars && p <= prefix_chars + sql.chars().count())
                    .then(|| p - prefix_chars)
            });
            Err((err, false))
        }
    }
}

/// Prisma's way for scripts that cannot run in a transaction: a "started" row, each
/// statement on its own, then "finished". A failure leaves the row failed, with the
/// statement it stopped at in `logs`.
async fn apply_outside_transaction(
    conn: &mut Conn,
    migration: &Migration,
    statements: &[statements::Statement],
    table: &str,
    limits: &Limits,
) -> Result<(), (DbError, bool)> {
    let id = history::new_id();
    let t = quote_ident(table);
    let row = history::insert_sql(
        conn,
        table,
        &id,
        &migration.name,
        &migration.checksum,
        RowKind::Started,
        None,
    );
    conn.batch(&row).await.map_err(|e| (e, false))?;
    let limits_sql = set_limits(limits, false);
    if !limits_sql.is_empty() {
        conn.batch(&limits_sql).await.map_err(|e| (e, true))?;
    }
    for (index, statement) in statements.iter().enumerate() {
        if let Some(signal) = crate::interrupt::received() {
            let _ = conn
                .batch("RESET lock_timeout; RESET statement_timeout")
                .await;
            let why = format!(
                "interrupted by {} before statement {} of {} (line {} of {})",
                crate::interrupt::name(signal),
                index + 1,
                statements.len(),
                statement.line,
                migration.path.display()
            );
            if index == 0 {
                // Nothing of it ran: the attempt is rolled back, the migration pending.
                let now = history::now_sql(conn);
                let _ = conn
                    .batch(&format!(
                        "UPDATE {t} SET rolled_back_at = {now}, logs = {} WHERE id = {}",
                        quote_literal(&why),
                        quote_literal(&id)
                    ))
                    .await;
                return Err((DbError::message(why), false));
            }
            let update = format!(
                "UPDATE {t} SET logs = {}, applied_steps_count = {index} WHERE id = {}",
                quote_literal(&why),
                quote_literal(&id)
            );
            let _ = conn.batch(&update).await;
            return Err((DbError::message(why), true));
        }
        if let Err(mut err) = conn.batch(&statement.sql).await {
            let _ = conn.batch("ROLLBACK").await;
            let _ = conn
                .batch("RESET lock_timeout; RESET statement_timeout")
                .await;
            err.position = err.position.map(|p| {
                statement
                    .sql
                    .chars()
                    .take(p.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum::<usize>()
                    + statement.offset
                    + 1
            });
            let log = format!(
                "{err}\nstopped at statement {} of {} (line {} of {}):\n{}",
                index + 1,
                statements.len(),
                statement.line,
                migration.path.display(),
                statement.sql
            );
            let update = format!(
                "UPDATE {t} SET logs = {}, applied_steps_count = {index} WHERE id = {}",
                quote_literal(&log),
                quote_literal(&id)
            );
            let _ = conn.batch(&update).await;
            // Partial only when something of it stayed applied.
            return Err((err, true));
        }
    }
    let _ = conn
        .batch("RESET lock_timeout; RESET statement_timeout")
        .await;
    let finish = format!(
        "UPDATE {t} SET finished_at = clock_timestamp(), applied_steps_count = {} WHERE id = {}",
        statements.len(),
        quote_literal(&id)
    );
    conn.batch(&finish).await.map_err(|e| (e, true))
}

/// The INSERT of a new history row for `migration`.
fn migration_row(
    conn: &Conn,
    table: &str,
    migration: &Migration,
    kind: RowKind,
    logs: Option<&str>,
) -> String {
    history::insert_sql(
        conn,
        table,
        &history::new_id(),
        &migration.name,
        &migration.checksum,
        kind,
        logs,
    )
}

/// SQLite: `BEGIN IMMEDIATE` takes the write lock, then the history is re-checked so two
/// deployers never apply the same migration.
async fn apply_sqlite(
    conn: &mut Conn,
    migration: &Migration,
    sql: &str,
    table: &str,
) -> Result<(), ApplyFailure> {
    let fail = |err: DbError| ApplyFailure {
        message: format!("{err}\nin {}", migration.path.display()),
        partial: false,
        interrupted: None,
    };
    conn.batch("BEGIN IMMEDIATE").await.map_err(fail)?;
    let already = conn
        .string(&format!(
            "SELECT CAST(count(*) AS TEXT) FROM {} WHERE migration_name = {} AND rolled_back_at IS NULL",
            quote_ident(table),
            quote_literal(&migration.name)
        ))
        .await;
    match already {
        Ok(Some(n)) if n != "0" => {
            let _ = conn.batch("ROLLBACK").await;
            return Ok(());
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK").await;
            return Err(fail(e));
        }
        _ => {}
    }
    let row = migration_row(conn, table, migration, RowKind::Finished, None);
    if let Err(err) = conn.batch_owned(format!("{sql}\n;\n{row};\nCOMMIT;")).await {
        let _ = conn.batch("ROLLBACK").await;
        let failure = fail(err);
        let attempt = migration_row(
            conn,
            table,
            migration,
            RowKind::RolledBackAttempt,
            Some(&failure.message),
        );
        let _ = conn.batch(&attempt).await;
        return Err(failure);
    }
    Ok(())
}

/// The database error with the file, line and statement when they are known.
fn describe_failure(
    err: &DbError,
    sql: &str,
    migration: &Migration,
    statements: Option<&[statements::Statement]>,
    partial: bool,
) -> String {
    if partial {
        return format!("{err}");
    }
    let Some(position) = err.position else {
        return format!("{err}\nin {}", migration.path.display());
    };
    let offset: usize = sql
        .chars()
        .take(position.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let line = line_of(sql, offset);
    let statement = statements
        .and_then(|s| s.iter().rev().find(|st| st.offset <= offset))
        .map(|st| format!(":\n{}", st.sql))
        .unwrap_or_default();
    format!(
        "{err}\nat line {line} of {}{statement}",
        migration.path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn limits(lock: Option<u64>, statement: Option<u64>) -> Limits {
        Limits {
            lock_timeout: lock.map(Duration::from_millis),
            statement_timeout: statement.map(Duration::from_millis),
            lock_retries: 0,
            lock_wait: Duration::from_secs(1),
        }
    }

    #[test]
    fn limits_are_set_in_milliseconds_locally_or_for_the_session() {
        let both = limits(Some(1500), Some(60_000));
        assert_eq!(
            set_limits(&both, true),
            "SET LOCAL lock_timeout = '1500ms';\nSET LOCAL statement_timeout = '60000ms';\n"
        );
        assert_eq!(
            set_limits(&both, false),
            "SET lock_timeout = '1500ms';\nSET statement_timeout = '60000ms';\n"
        );
        assert_eq!(
            set_limits(&limits(None, Some(5)), true),
            "SET LOCAL statement_timeout = '5ms';\n"
        );
        assert_eq!(set_limits(&limits(None, None), false), "");
    }

    fn migration() -> Migration {
        Migration {
            name: "1_init".into(),
            path: PathBuf::from("prisma/migrations/1_init/migration.sql"),
            len: 0,
            checksum: String::new(),
        }
    }

    fn error_at(position: Option<usize>) -> DbError {
        DbError {
            message: "relation \"missing\" does not exist".into(),
            code: Some("42P01".into()),
            position,
            detail: None,
        }
    }

    #[test]
    fn a_failure_names_the_line_and_statement_it_stopped_at() {
        let sql = "-- é comment\nCREATE TABLE a (id int);\nINSERT INTO missing VALUES (1);\n";
        let statements = statements::split(sql).unwrap();
        // Position counts characters (1-based): `é` is one character, two bytes.
        let position = sql[..sql.find("missing").unwrap()].chars().count() + 1;
        let message = describe_failure(
            &error_at(Some(position)),
            sql,
            &migration(),
            Some(&statements),
            false,
        );
        assert_eq!(
            message,
            "relation \"missing\" does not exist (SQLSTATE 42P01)\nat line 3 of prisma/migrations/1_init/migration.sql:\nINSERT INTO missing VALUES (1)"
        );
        // Without statements (a script too big to split again), the line still shows.
        let message = describe_failure(&error_at(Some(position)), sql, &migration(), None, false);
        assert_eq!(
            message,
            "relation \"missing\" does not exist (SQLSTATE 42P01)\nat line 3 of prisma/migrations/1_init/migration.sql"
        );
    }

    #[test]
    fn a_failure_without_a_position_names_the_file_and_a_partial_one_only_the_error() {
        let sql = "SELECT 1;";
        assert_eq!(
            describe_failure(&error_at(None), sql, &migration(), None, false),
            "relation \"missing\" does not exist (SQLSTATE 42P01)\nin prisma/migrations/1_init/migration.sql"
        );
        assert_eq!(
            describe_failure(&error_at(Some(1)), sql, &migration(), None, true),
            "relation \"missing\" does not exist (SQLSTATE 42P01)"
        );
    }
}
