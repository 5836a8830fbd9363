//! `mixed-schema-and-data`: a migration that changes the schema of an existing table and
//! also changes data in bulk, so the schema change's lock is held while the data changes.

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::lock::LockMode;
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;

/// The rule.
pub struct MixedSchemaAndData;

impl Rule for MixedSchemaAndData {
    fn id(&self) -> &'static str {
        "mixed-schema-and-data"
    }

    fn summary(&self) -> &'static str {
        "schema change and bulk data change in one migration: the lock is held while the data changes"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some(table) = data_change_target(&s.node) else {
            return;
        };
        if m.is_new(&table, s.index) {
            return;
        }
        let Some((ddl, lock)) = m.statements.iter().find_map(|other| {
            other
                .locks
                .iter()
                .find(|l| !l.new_table && l.mode >= LockMode::Share)
                .map(|l| (other, l))
        }) else {
            return;
        };
        if ddl.index == s.index {
            return;
        }
        let name = table.display();
        out.push(Hit {
            message: format!(
                "data change on {name} in the same migration as the schema change at line {} ({} on {})",
                ddl.line, lock.mode, lock.table
            ),
            why: format!(
                "the migration runs as one transaction, so the {} lock taken at line {} is held until this data change (which may touch many rows) commits: everything waiting on {} waits that long too",
                lock.mode, ddl.line, lock.table
            ),
            instead: "keep migrations to schema changes; run the data change (backfill, cleanup) separately, in batches, after the schema change is deployed and before the next one relies on it".into(),
            lock: m.lock_on(s, &table).cloned(),
        });
    }
}

/// The table a bulk data change writes to: UPDATE, DELETE, MERGE, or INSERT … SELECT
/// reading from a table (INSERT … VALUES of a few reference rows does not count).
fn data_change_target(node: &NodeEnum) -> Option<TableRef> {
    match node {
        NodeEnum::UpdateStmt(u) => u.relation.as_ref().map(TableRef::from),
        NodeEnum::DeleteStmt(d) => d.relation.as_ref().map(TableRef::from),
        NodeEnum::MergeStmt(mg) => mg.relation.as_ref().map(TableRef::from),
        NodeEnum::InsertStmt(i) => {
            let reads_a_table = matches!(
                i.select_stmt.as_deref().and_then(ast::inner),
                Some(NodeEnum::SelectStmt(sel)) if !sel.from_clause.is_empty()
            );
            reads_a_table
                .then(|| i.relation.as_ref().map(TableRef::from))
                .flatten()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, messages};
    use super::*;

    #[test]
    fn fires_when_ddl_on_an_existing_table_shares_the_file() {
        check(
            &MixedSchemaAndData,
            &[
                "ALTER TABLE \"User\" ADD COLUMN \"nick\" TEXT;\nUPDATE \"User\" SET \"nick\" = \"name\" WHERE \"nick\" IS NULL;",
                "INSERT INTO archive SELECT * FROM orders WHERE created < '2020-01-01';\nCREATE INDEX i ON orders (created);",
            ],
            &[
                "UPDATE \"User\" SET \"nick\" = \"name\" WHERE \"nick\" IS NULL;",
                "CREATE TABLE \"Role\" (id int, name text);\nINSERT INTO \"Role\" (id, name) VALUES (1, 'admin');\nALTER TABLE \"Role\" ADD COLUMN x int;",
                "ALTER TABLE t ADD COLUMN c int;\nINSERT INTO settings (k, v) VALUES ('a', 'b');",
                "CREATE INDEX CONCURRENTLY i ON t (c);",
            ],
        );
        assert_eq!(
            messages(&MixedSchemaAndData, "ALTER TABLE t ADD c int;\nUPDATE t SET c = 1 WHERE id < 10;"),
            ["data change on t in the same migration as the schema change at line 1 (ACCESS EXCLUSIVE on t)"]
        );
    }
}
