//! `drop-index-non-concurrently`: `DROP INDEX` without `CONCURRENTLY` on an existing
//! table (a warning: the lock is short, but it queues).

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::ObjectType;

/// The rule.
pub struct DropIndexNonConcurrently;

impl Rule for DropIndexNonConcurrently {
    fn id(&self) -> &'static str {
        "drop-index-non-concurrently"
    }

    fn summary(&self) -> &'static str {
        "DROP INDEX without CONCURRENTLY on an existing table: a short ACCESS EXCLUSIVE lock that queues (warning)"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn warning_only(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::DropStmt(drop) = &s.node else {
            return;
        };
        if drop.concurrent || ObjectType::try_from(drop.remove_type) != Ok(ObjectType::ObjectIndex)
        {
            return;
        }
        for (i, index) in ast::object_names(&drop.objects).into_iter().enumerate() {
            let table: Option<TableRef> = m.index_table(&index, s.index);
            if table.as_ref().is_some_and(|t| m.is_new(t, s.index)) {
                continue;
            }
            let on = table
                .as_ref()
                .map(|t| t.display())
                .unwrap_or_else(|| "its table".into());
            let name = index.display();
            out.push(Hit {
                message: format!("DROP INDEX {name} without CONCURRENTLY locks {on}"),
                why: format!(
                    "dropping the index takes ACCESS EXCLUSIVE on {on}: short once granted, but it waits behind any running transaction on {on} and every query on {on} queues behind it meanwhile"
                ),
                instead: format!(
                    "`DROP INDEX CONCURRENTLY {name}` in a migration file of its own (it cannot run in a transaction); the low risk is why this is only a warning"
                ),
                lock: s.locks.get(i).cloned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, hits};
    use super::*;

    #[test]
    fn fires_unless_concurrent_or_on_a_new_table() {
        check(
            &DropIndexNonConcurrently,
            &[
                "DROP INDEX \"User_email_key\";",
                "DROP INDEX IF EXISTS app.users_email_idx;",
                "CREATE INDEX i ON t (c);\nDROP INDEX i;",
            ],
            &[
                "DROP INDEX CONCURRENTLY \"User_email_key\";",
                "CREATE TABLE t (c int);\nCREATE INDEX i ON t (c);\nDROP INDEX i;",
                "DROP TABLE t;",
            ],
        );
        let hit = &hits(
            &DropIndexNonConcurrently,
            "CREATE INDEX i ON t (c);\nDROP INDEX i;",
        )[0];
        assert_eq!(hit.message, "DROP INDEX i without CONCURRENTLY locks t");
        assert_eq!(hit.lock.as_ref().unwrap().table, "t");
    }
}
