//! `migrate down`: runs the newest applied migration's `down.sql`.

use super::error::DeployError;
use super::observe::status_within;
use super::status::State;
use crate::db::conn::{quote_ident, quote_literal, Conn};
use crate::db::history;
use crate::db::schema;
use crate::db::store::Store;

/// Runs `down.sql` of the newest applied migration and marks it rolled back, in one
/// transaction.
pub async fn down(
    conn: &mut Conn,
    store: &Store,
    table: &str,
    name: &str,
) -> Result<String, DeployError> {
    let status = status_within(conn, store, table, schema::CATALOG_LOCK_TIMEOUT).await?;
    let newest = status
        .entries
        .iter()
        .rev()
        .find(|e| e.state == State::Applied);
    if newest.map(|e| e.name.as_str()) != Some(name) {
        return Err(DeployError::Refused(format!(
            "`{name}` is not the newest applied migration{}; roll back newer ones first",
            newest
                .map(|e| format!(" (that is `{}`)", e.name))
                .unwrap_or_default()
        )));
    }
    let migration = store
        .get(name)
        .expect("applied entries come from the store");
    let down_path = migration.down().ok_or_else(|| {
        DeployError::Refused(format!("`{name}` has no down.sql beside its migration.sql"))
    })?;
    let down_sql = std::fs::read_to_string(&down_path)
        .map_err(|e| DeployError::Refused(format!("cannot read {}: {e}", down_path.display())))?;
    let t = quote_ident(table);
    let now = history::now_sql(conn);
    let mark = format!(
        "UPDATE {t} SET rolled_back_at = {now} WHERE migration_name = {} AND rolled_back_at IS NULL",
        quote_literal(name)
    );
    let before = status.live_schema.clone();
    let begin = if conn.is_postgres() {
        "BEGIN"
    } else {
        "BEGIN IMMEDIATE"
    };
    if let Err(err) = conn
        .batch(&format!("{begin};\n{down_sql}\n;\n{mark};\nCOMMIT;"))
        .await
    {
        let _ = conn.batch("ROLLBACK").await;
        return Err(DeployError::MigrationFailed {
            name: format!("{name} (down.sql)"),
            message: format!("{err}"),
            applied: Vec::new(),
            partial: false,
        });
    }
    schema::record_change(conn, table, before.as_deref()).await?;
    Ok(format!("rolled back `{name}` with its down.sql"))
}
