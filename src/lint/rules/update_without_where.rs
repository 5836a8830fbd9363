//! `update-without-where`: `UPDATE` without `WHERE` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::TableRef;
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;

/// The rule.
pub struct UpdateWithoutWhere;

impl Rule for UpdateWithoutWhere {
    fn id(&self) -> &'static str {
        "update-without-where"
    }

    fn summary(&self) -> &'static str {
        "UPDATE without WHERE: every row is rewritten and locked in one transaction"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::UpdateStmt(update) = &s.node else {
            return;
        };
        if update.where_clause.is_some() {
            return;
        }
        let Some(table) = update.relation.as_ref().map(TableRef::from) else {
            return;
        };
        if m.is_new(&table, s.index) {
            return;
        }
        let name = table.display();
        out.push(Hit {
            message: format!("UPDATE {name} without WHERE rewrites every row"),
            why: format!(
                "every row of {name} gets a new version and a row lock in one transaction: concurrent writes to them wait until the migration commits, and the table and its indexes bloat"
            ),
            instead: format!(
                "backfill in batches outside the migration (`UPDATE {name} SET … WHERE id IN (SELECT id FROM {name} WHERE … LIMIT 10000)`, repeated until no row changes), or add a WHERE clause that limits it to the rows that need it"
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
            &UpdateWithoutWhere,
            &["UPDATE \"User\" SET \"nickname\" = '';"],
            &[
                "UPDATE \"User\" SET \"nickname\" = '' WHERE \"nickname\" IS NULL;",
                "CREATE TABLE t (a int); UPDATE t SET a = 1;",
            ],
        );
    }
}
