//! `delete-without-where`: `DELETE` without `WHERE` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::TableRef;
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;

/// The rule.
pub struct DeleteWithoutWhere;

impl Rule for DeleteWithoutWhere {
    fn id(&self) -> &'static str {
        "delete-without-where"
    }

    fn summary(&self) -> &'static str {
        "DELETE without WHERE: every row is deleted in one transaction"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::DeleteStmt(delete) = &s.node else {
            return;
        };
        if delete.where_clause.is_some() {
            return;
        }
        let Some(table) = delete.relation.as_ref().map(TableRef::from) else {
            return;
        };
        if m.is_new(&table, s.index) {
            return;
        }
        let name = table.display();
        out.push(Hit {
            message: format!("DELETE FROM {name} without WHERE deletes every row"),
            why: format!(
                "every row of {name} is deleted and row-locked in one transaction: concurrent updates to those rows wait, and the data is gone unless restored from a backup"
            ),
            instead: format!(
                "say which rows with a WHERE clause, and delete large sets in batches outside the migration (`DELETE FROM {name} WHERE id IN (SELECT id FROM {name} WHERE … LIMIT 10000)`)"
            ),
            lock: m.lock_on(s, &table).cloned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::check;
    use super::*;

    #[test]
    fn fires_without_where_only() {
        check(
            &DeleteWithoutWhere,
            &[
                "DELETE FROM \"Session\";",
                "DELETE FROM audit.events USING x;",
            ],
            &[
                "DELETE FROM \"Session\" WHERE \"expiresAt\" < now();",
                "CREATE TABLE tmp (id int); DELETE FROM tmp;",
                "DO $$ BEGIN DELETE FROM sessions; END $$;",
            ],
        );
    }
}
