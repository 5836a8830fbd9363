//! `set-not-null`: `ALTER COLUMN … SET NOT NULL` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

/// The rule.
pub struct SetNotNull;

impl Rule for SetNotNull {
    fn id(&self) -> &'static str {
        "set-not-null"
    }

    fn summary(&self) -> &'static str {
        "SET NOT NULL on an existing table: scans every row under ACCESS EXCLUSIVE"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) != AlterTableType::AtSetNotNull
                || checked_earlier(m, s, &table, &cmd.name)
            {
                continue;
            }
            let column = ast::quote(&cmd.name);
            let name = table.display();
            let constraint = format!("{}_{}_not_null", table.name, cmd.name);
            out.push(Hit {
                message: format!("SET NOT NULL on {name}.{column} scans the whole table"),
                why: format!(
                    "PostgreSQL reads every row of {name} to check for NULLs while holding ACCESS EXCLUSIVE: no reads or writes until the scan ends (and the migration fails if a NULL is left)"
                ),
                instead: format!(
                    "add `CONSTRAINT {c} CHECK ({column} IS NOT NULL) NOT VALID`, run `VALIDATE CONSTRAINT {c}` in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on), then SET NOT NULL skips the scan (PostgreSQL 12+) and the check can be dropped",
                    c = ast::quote(&constraint)
                ),
                lock: m.lock_on(s, &table).cloned(),
            });
        }
    }
}

/// Whether this migration already added a `column IS NOT NULL` check on the table
/// (then PostgreSQL uses the validated check instead of scanning).
fn checked_earlier(m: &Migration<'_>, s: &Statement, table: &TableRef, column: &str) -> bool {
    m.statements[..s.index].iter().any(|earlier| {
        let NodeEnum::AlterTableStmt(alter) = &earlier.node else {
            return false;
        };
        if alter.relation.as_ref().map(TableRef::from).as_ref() != Some(table) {
            return false;
        }
        ast::alter_cmds(alter).any(|cmd| {
            ast::subtype(cmd) == AlterTableType::AtAddConstraint
                && ast::constraint_of(cmd).is_some_and(|c| {
                    ast::contype(c) == ConstrType::ConstrCheck
                        && c.raw_expr
                            .as_deref()
                            .and_then(ast::is_not_null_check)
                            .is_some_and(|col| col == column)
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::check;
    use super::*;

    #[test]
    fn fires_unless_the_table_is_new_or_a_check_covers_it() {
        check(
            &SetNotNull,
            &[
                "ALTER TABLE \"User\" ALTER COLUMN \"name\" SET NOT NULL;",
                "ALTER TABLE t ADD COLUMN c int; UPDATE t SET c = 0 WHERE c IS NULL; ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
                "ALTER TABLE t ADD CONSTRAINT k CHECK (other IS NOT NULL) NOT VALID; ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
            ],
            &[
                "CREATE TABLE t (c int); ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
                "ALTER TABLE t ADD CONSTRAINT k CHECK (c IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT k; ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
                "ALTER TABLE t ALTER COLUMN c DROP NOT NULL;",
            ],
        );
    }
}
