//! `change-column-type`: `ALTER COLUMN … TYPE` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::AlterTableType;

/// The rule.
pub struct ChangeColumnType;

impl Rule for ChangeColumnType {
    fn id(&self) -> &'static str {
        "change-column-type"
    }

    fn summary(&self) -> &'static str {
        "ALTER COLUMN TYPE on an existing table: rewrites it under ACCESS EXCLUSIVE"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) != AlterTableType::AtAlterColumnType {
                continue;
            }
            let column = ast::quote(&cmd.name);
            let new_type = ast::column_def(cmd)
                .map(|c| ast::quote(&ast::type_name(c)))
                .unwrap_or_default();
            let name = table.display();
            out.push(Hit {
                message: format!(
                    "changing the type of {name}.{column} to {new_type} rewrites the table"
                ),
                why: format!(
                    "PostgreSQL rewrites {name} and rebuilds its indexes while holding ACCESS EXCLUSIVE: no reads or writes until it finishes (only binary-compatible changes such as varchar(n) → text skip the rewrite), and the previous release may not handle the new type"
                ),
                instead: format!(
                    "expand–contract: add a new column with the new type, write to both, backfill in batches, switch reads, then drop {column} in a later release"
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
            &ChangeColumnType,
            &[
                "ALTER TABLE \"Order\" ALTER COLUMN \"total\" SET DATA TYPE DECIMAL(65,30);",
                "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
            ],
            &[
                "CREATE TABLE t (a int); ALTER TABLE t ALTER COLUMN a TYPE bigint;",
                "ALTER TABLE users ALTER COLUMN id SET DEFAULT 1;",
            ],
        );
        assert!(
            hits(
                &ChangeColumnType,
                "ALTER TABLE u ALTER COLUMN id TYPE bigint;"
            )[0]
            .lock
            .as_ref()
            .unwrap()
            .rewrite
        );
    }
}
