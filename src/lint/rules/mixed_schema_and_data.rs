//! `mixed-schema-and-data`: a migration that changes the schema of an existing table and
//! then changes data in bulk, so the schema change's lock is held while the data changes.
//! Data changes before the first lock-taking schema change do not count (no lock is held
//! yet); the rule reports once per migration, listing the data changes.

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

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        // Only the data changes after the first lock-taking schema change count: before
        // it, the lock is not held yet. One finding per migration, at the first of them.
        let Some(table) = data_change_target(&s.node) else {
            return;
        };
        if m.is_new(&table, s.index) {
            return;
        }
        let Some((ddl, lock)) = m.statements[..s.index].iter().find_map(|other| {
            other
                .locks
                .iter()
                .find(|l| !l.new_table && l.mode >= LockMode::Share)
                .map(|l| (other, l))
        }) else {
            return;
        };
        let counts =
            |st: &&Statement| data_change_target(&st.node).is_some_and(|t| !m.is_new(&t, st.index));
        if m.statements[ddl.index + 1..s.index]
            .iter()
            .any(|st| counts(&st))
        {
            return;
        }
        let data: Vec<(&Statement, TableRef)> = std::iter::once((s, table))
            .chain(m.statements[s.index + 1..].iter().filter_map(|st| {
                let t = data_change_target(&st.node)?;
                (!m.is_new(&t, st.index)).then_some((st, t))
            }))
            .collect();
        let listed = data
            .iter()
            .map(|(st, table)| format!("line {} ({})", st.line, table.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let (first, table) = &data[0];
        let message = if data.len() == 1 {
            format!(
                "data change on {} at line {} while the schema change at line {} holds {} on {}",
                table.display(),
                first.line,
                ddl.line,
                lock.mode,
                lock.table
            )
        } else {
            format!(
                "{} data changes ({listed}) while the schema change at line {} holds {} on {}",
                data.len(),
                ddl.line,
                lock.mode,
                lock.table
            )
        };
        out.push(Hit {
            message,
            why: format!(
                "the migration runs as one transaction, so the {} lock taken at line {} is held until the data changes after it (which may touch many rows) commit: everything waiting on {} waits that long too",
                lock.mode, ddl.line, lock.table
            ),
            instead: "keep migrations to schema changes; run the data change (backfill, cleanup) separately, in batches, after the schema change is deployed and before the next one relies on it (or put it before the first schema change, where no lock is held yet)".into(),
            lock: Some(lock.clone()),
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
                "CREATE INDEX i ON orders (created);\nINSERT INTO archive SELECT * FROM orders WHERE created < '2020-01-01';",
            ],
            &[
                "UPDATE \"User\" SET \"nick\" = \"name\" WHERE \"nick\" IS NULL;",
                "CREATE TABLE \"Role\" (id int, name text);\nINSERT INTO \"Role\" (id, name) VALUES (1, 'admin');\nALTER TABLE \"Role\" ADD COLUMN x int;",
                "ALTER TABLE t ADD COLUMN c int;\nINSERT INTO settings (k, v) VALUES ('a', 'b');",
                "CREATE INDEX CONCURRENTLY i ON t (c);",
                "UPDATE t SET c = 1 WHERE c IS NULL;\nDELETE FROM t WHERE c = 2;\nALTER TABLE t ALTER COLUMN c SET NOT NULL;",
            ],
        );
        assert_eq!(
            messages(&MixedSchemaAndData, "UPDATE t SET c = 0 WHERE id < 5;\nALTER TABLE t ADD c int;\nUPDATE t SET c = 1 WHERE id < 10;\nDELETE FROM u WHERE id = 3;"),
            ["2 data changes (line 3 (t), line 4 (u)) while the schema change at line 2 holds ACCESS EXCLUSIVE on t"]
        );
        assert_eq!(
            messages(&MixedSchemaAndData, "ALTER TABLE t ADD c int;\nUPDATE t SET c = 1 WHERE id < 10;"),
            ["data change on t at line 2 while the schema change at line 1 holds ACCESS EXCLUSIVE on t"]
        );
    }
}
