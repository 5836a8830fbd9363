//! `migrate resolve`: marks a migration applied or rolled back, as Prisma does.

use super::error::DeployError;
use super::observe::status;
use super::status::State;
use crate::db::conn::{quote_ident, quote_literal, Conn};
use crate::db::history::{self, RowKind};
use crate::db::schema;
use crate::db::store::Store;

/// Marks a migration applied or rolled back, with Prisma's `migrate resolve` semantics.
pub async fn resolve(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    name: &str,
    applied: bool,
) -> Result<String, DeployError> {
    history::ensure(conn, table).await?;
    let status = status(conn, store, table).await?;
    let entry = status
        .entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            DeployError::Refused(format!(
                "no migration `{name}` in the migrations folder or the history table"
            ))
        })?;
    let t = quote_ident(table);
    let now = history::now_sql(conn);
    let mark_failed_rolled_back = format!(
        "UPDATE {t} SET rolled_back_at = {now} WHERE migration_name = {} AND finished_at IS NULL AND rolled_back_at IS NULL",
        quote_literal(name)
    );
    if applied {
        let migration = store.get(name).ok_or_else(|| {
            DeployError::Refused(format!("`{name}` is not in the migrations folder"))
        })?;
        if matches!(entry.state, State::Applied | State::Modified) {
            return Err(DeployError::Refused(format!(
                "migration `{name}` is already applied"
            )));
        }
        let insert = history::insert_sql(
            conn,
            table,
            &history::new_id(),
            name,
            &migration.checksum,
            RowKind::Finished,
            None,
        );
        conn.batch(&format!(
            "BEGIN;\n{mark_failed_rolled_back};\n{insert};\nCOMMIT;"
        ))
        .await?;
        schema::record(conn, table).await?;
        return Ok(format!("migration `{name}` marked as applied"));
    }
    if entry.state != State::Failed {
        return Err(DeployError::Refused(format!(
            "migration `{name}` is {}, not failed: only a failed migration can be marked rolled back",
            entry.state.as_str().replace('_', " ")
        )));
    }
    conn.batch(&mark_failed_rolled_back).await?;
    Ok(format!(
        "migration `{name}` marked as rolled back; the next deploy applies it again"
    ))
}
