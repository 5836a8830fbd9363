//! `drop-table`: `DROP TABLE` on a table that existed before the migration.

use super::{Hit, Rule};
use crate::lint::ast;
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::ObjectType;

/// The rule.
pub struct DropTable;

impl Rule for DropTable {
    fn id(&self) -> &'static str {
        "drop-table"
    }

    fn summary(&self) -> &'static str {
        "DROP TABLE on an existing table: its rows are gone and running code still uses it"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::DropStmt(drop) = &s.node else {
            return;
        };
        if ObjectType::try_from(drop.remove_type) != Ok(ObjectType::ObjectTable) {
            return;
        }
        for table in ast::object_names(&drop.objects) {
            if m.is_new(&table, s.index) {
                continue;
            }
            let name = table.display();
            out.push(Hit {
                message: format!("DROP TABLE {name} deletes the table and every row in it"),
                why: format!(
                    "the data is gone unless restored from a backup, and application instances still running the previous release fail on their next query to {name}"
                ),
                instead: format!(
                    "expand–contract: first release code that no longer reads or writes {name}, keep the table for at least one release, take a backup, then drop it in a later migration annotated with `-- dbflow:allow drop-table reason: …`"
                ),
                lock: m.lock_on(s, &table).cloned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, hits};
    use super::*;

    #[test]
    fn fires_on_existing_tables_only() {
        check(
            &DropTable,
            &[
                "DROP TABLE \"Session\";",
                "DROP TABLE IF EXISTS audit.log CASCADE;",
            ],
            &[
                "CREATE TABLE tmp_import (id int); DROP TABLE tmp_import;",
                "DROP VIEW active_users;",
                "DROP INDEX \"User_email_key\";",
                "SELECT 'DROP TABLE users';",
            ],
        );
    }

    #[test]
    fn names_the_lock_and_each_table() {
        let found = hits(&DropTable, "DROP TABLE a, b;");
        assert_eq!(found.len(), 2);
        let lock = found[0].lock.as_ref().unwrap();
        assert_eq!(lock.mode.name(), "ACCESS EXCLUSIVE");
        assert_eq!(lock.table, "a");
    }
}
