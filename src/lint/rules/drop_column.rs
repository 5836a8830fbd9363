//! `drop-column`: `ALTER TABLE … DROP COLUMN` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::AlterTableType;

/// The rule.
pub struct DropColumn;

impl Rule for DropColumn {
    fn id(&self) -> &'static str {
        "drop-column"
    }

    fn summary(&self) -> &'static str {
        "DROP COLUMN on an existing table: data loss, and the previous release still selects it"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) != AlterTableType::AtDropColumn
                || super::column_added_earlier(m, s, &table, &cmd.name)
            {
                continue;
            }
            let column = ast::quote(&cmd.name);
            let name = table.display();
            out.push(Hit {
                message: format!("dropping column {column} from {name} deletes its data"),
                why: format!(
                    "the values are gone unless restored from a backup, and the previous release (still serving while the deploy runs; Prisma Client selects every column by name) fails on queries that use {name}.{column}"
                ),
                instead: format!(
                    "expand–contract: release code that no longer uses {column} first (remove it from schema.prisma, or mark it `@ignore` while it still exists), then drop the column in a later migration annotated with `-- dbflow:allow drop-column reason: …`"
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
            &DropColumn,
            &[
                "ALTER TABLE \"User\" DROP COLUMN \"legacyId\";",
                "ALTER TABLE users ADD COLUMN x int, DROP COLUMN y;",
            ],
            &[
                "CREATE TABLE t (a int, b int); ALTER TABLE t DROP COLUMN b;",
                "ALTER TABLE users DROP CONSTRAINT users_email_key;",
                "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
                "ALTER TABLE users ADD COLUMN tmp int; ALTER TABLE users DROP COLUMN tmp;",
            ],
        );
    }

    #[test]
    fn lock_is_access_exclusive_without_rewrite() {
        let hit = &hits(&DropColumn, "ALTER TABLE users DROP COLUMN bio;")[0];
        let lock = hit.lock.as_ref().unwrap();
        assert_eq!(lock.mode.name(), "ACCESS EXCLUSIVE");
        assert!(!lock.rewrite);
        assert_eq!(
            hit.message,
            "dropping column bio from users deletes its data"
        );
    }
}
