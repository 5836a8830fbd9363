//! Validating a restored copy against the backup it came from: the same tables, the key
//! tables' exact row counts, a clean migration status at the expected head, and the
//! project's own SQL checks. Used by restore, rollback and drills alike.

use super::manifest::Manifest;
use super::source;
use crate::db::migrate;
use crate::db::store::Store;
use crate::db::{Conn, DbError};
use serde::Serialize;

/// One check's result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The evidence.
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// What the restored copy must match.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// The backup's manifest.
    pub manifest: &'a Manifest,
    /// `drill.key_tables`.
    pub key_tables: &'a [String],
    /// `drill.verify`: SQL that must return true.
    pub verify_sql: &'a [String],
    /// The project's migrations (empty when it has none).
    pub store: &'a Store,
    /// Migration history table.
    pub history_table: &'a str,
    /// The head the copy must be at (the backup's, unless migrations were applied).
    pub expected_head: Option<&'a str>,
}

/// Runs every check on the restored copy behind `conn` (read-only).
pub async fn validate(conn: &mut Conn, exp: &Expectations<'_>) -> Result<Vec<Check>, DbError> {
    let mut checks = Vec::new();

    let tables = source::tables(conn).await?;
    let missing: Vec<&String> = exp
        .manifest
        .tables
        .iter()
        .filter(|t| !tables.contains(t))
        .collect();
    let extra: Vec<&String> = tables
        .iter()
        .filter(|t| !exp.manifest.tables.contains(t))
        .collect();
    checks.push(if missing.is_empty() && extra.is_empty() {
        Check::new(
            "same tables",
            true,
            format!(
                "{} tables, as the primary had when the backup was taken",
                tables.len()
            ),
        )
    } else {
        let mut detail = Vec::new();
        if !missing.is_empty() {
            detail.push(format!("missing: {}", join(&missing)));
        }
        if !extra.is_empty() {
            detail.push(format!("not in the backup: {}", join(&extra)));
        }
        Check::new("same tables", false, detail.join("; "))
    });

    for table in exp.key_tables {
        let name = format!("row count of {table}");
        let Some(expected) = exp.manifest.row_counts.get(table) else {
            checks.push(Check::new(
                name,
                false,
                "the backup recorded no count (the table did not exist on the primary, or was added to drill.key_tables after the backup)",
            ));
            continue;
        };
        if !source::table_exists(conn, table).await? {
            checks.push(Check::new(name, false, "missing from the restored copy"));
            continue;
        }
        let actual = source::row_counts(conn, std::slice::from_ref(table))
            .await?
            .get(table)
            .copied()
            .unwrap_or(0);
        checks.push(if actual == *expected {
            Check::new(name, true, format!("{actual} rows, as in the backup"))
        } else {
            Check::new(
                name,
                false,
                format!("{actual} rows, the backup recorded {expected}"),
            )
        });
    }

    checks.push(migration_check(conn, exp).await?);

    for sql in exp.verify_sql {
        let name = format!("verify: {}", one_line(sql));
        // A scalar subquery turns any single-value result (boolean, integer) into text
        // on both backends.
        let wrapped = format!(
            "SELECT CAST(({}) AS TEXT)",
            sql.trim().trim_end_matches(';')
        );
        checks.push(match conn.string(&wrapped).await {
            Ok(Some(value)) if is_true(&value) => Check::new(name, true, "returned true"),
            Ok(Some(value)) => Check::new(name, false, format!("returned `{value}`")),
            Ok(None) => Check::new(name, false, "returned no row"),
            Err(e) => Check::new(name, false, format!("failed: {e}")),
        });
    }
    Ok(checks)
}

async fn migration_check(conn: &mut Conn, exp: &Expectations<'_>) -> Result<Check, DbError> {
    let name = "migration status";
    let has_history = conn.table_exists(exp.history_table).await?;
    if !has_history && exp.store.migrations.is_empty() {
        return Ok(Check::new(
            name,
            true,
            "not checked: no migrations folder and no history table",
        ));
    }
    let status = migrate::status(conn, exp.store, exp.history_table).await?;
    let fail_on: Vec<String> = ["failed", "modified", "missing", "drift"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut problems = status.problems(&fail_on);
    let head = source::migration_head(conn, exp.history_table).await?;
    if head.as_deref() != exp.expected_head {
        problems.insert(
            0,
            format!(
                "head is {}, expected {}",
                head.as_deref().unwrap_or("(none)"),
                exp.expected_head.unwrap_or("(none)")
            ),
        );
    }
    Ok(if problems.is_empty() {
        let drift = if status.drift_checked {
            "no schema drift"
        } else {
            "schema drift not checked (no recorded state)"
        };
        Check::new(
            name,
            true,
            format!(
                "head {}, no failed, modified or missing migrations, {drift}",
                head.as_deref().unwrap_or("(none)")
            ),
        )
    } else {
        Check::new(name, false, problems.join("; "))
    })
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "t" | "true" | "1" | "yes" | "on"
    )
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_line(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 70 {
        format!("{}…", flat.chars().take(69).collect::<String>())
    } else {
        flat
    }
}
