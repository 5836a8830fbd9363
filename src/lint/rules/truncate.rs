//! `truncate`: `TRUNCATE` of a table that existed before the migration.

use super::{Hit, Rule};
use crate::lint::ast::TableRef;
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;

/// The rule.
pub struct Truncate;

impl Rule for Truncate {
    fn id(&self) -> &'static str {
        "truncate"
    }

    fn summary(&self) -> &'static str {
        "TRUNCATE of an existing table: every row is gone, under ACCESS EXCLUSIVE"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::TruncateStmt(truncate) = &s.node else {
            return;
        };
        for relation in &truncate.relations {
            let Some(NodeEnum::RangeVar(rv)) = relation.node.as_ref() else {
                continue;
            };
            let table = TableRef::from(rv);
            if m.is_new(&table, s.index) {
                continue;
            }
            let name = table.display();
            let cascade = if truncate.behavior == 2 {
                " (CASCADE also empties every table with a foreign key to it)"
            } else {
                ""
            };
            out.push(Hit {
                message: format!("TRUNCATE {name} deletes every row{cascade}"),
                why: format!(
                    "the rows are gone unless restored from a backup (TRUNCATE is not even logged row by row), and it holds ACCESS EXCLUSIVE on {name}"
                ),
                instead: format!(
                    "if the data must go, take a backup first and delete in batches (`DELETE FROM {name} WHERE id IN (SELECT id FROM {name} LIMIT 10000)`) outside the migration; if it really is meant, annotate it with `-- dbflow:allow truncate reason: …`"
                ),
                lock: m.lock_on(s, &table).cloned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, messages};
    use super::*;

    #[test]
    fn fires_on_existing_tables_only() {
        check(
            &Truncate,
            &[
                "TRUNCATE TABLE \"Session\";",
                "TRUNCATE a, b RESTART IDENTITY;",
            ],
            &[
                "CREATE TABLE staging_import (id int); TRUNCATE staging_import;",
                "DELETE FROM sessions WHERE expires_at < now();",
            ],
        );
        assert_eq!(
            messages(&Truncate, "TRUNCATE orders CASCADE;"),
            ["TRUNCATE orders deletes every row (CASCADE also empties every table with a foreign key to it)"]
        );
    }
}
