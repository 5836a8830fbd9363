//! `add-column-not-null`: `ADD COLUMN … NOT NULL` without a default on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::{AlterTableType, ConstrType};

/// The rule.
pub struct AddColumnNotNull;

impl Rule for AddColumnNotNull {
    fn id(&self) -> &'static str {
        "add-column-not-null"
    }

    fn summary(&self) -> &'static str {
        "ADD COLUMN NOT NULL without a default: fails as soon as the table has a row"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) != AlterTableType::AtAddColumn {
                continue;
            }
            let Some(col) = ast::column_def(cmd) else {
                continue;
            };
            let filled = ast::column_default(col).is_some()
                || ast::add_column_rewrites(col).is_some()
                || ast::column_constraints(col).any(|c| {
                    matches!(
                        ast::contype(c),
                        ConstrType::ConstrIdentity | ConstrType::ConstrGenerated
                    )
                });
            if !ast::column_not_null(col) || filled {
                continue;
            }
            let (column, name) = (ast::quote(&col.colname), table.display());
            out.push(Hit {
                message: format!("adding NOT NULL column {column} without a default to {name}"),
                why: format!(
                    "existing rows would get NULL, so the migration fails as soon as {name} has a row (it passes on an empty development database and fails in production), and the previous release does not write {column}"
                ),
                instead: format!(
                    "add {column} as nullable (or with a constant DEFAULT, which PostgreSQL 11+ adds without a rewrite), backfill in batches, release code that writes it, then make it NOT NULL through a validated CHECK constraint"
                ),
                lock: m.lock_on(s, &table).cloned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::check;
    use super::*;

    #[test]
    fn fires_on_not_null_without_default_only() {
        check(
            &AddColumnNotNull,
            &[
                "ALTER TABLE \"User\" ADD COLUMN \"tenantId\" TEXT NOT NULL;",
                "ALTER TABLE users ADD COLUMN a int, ADD COLUMN b int NOT NULL;",
            ],
            &[
                "ALTER TABLE users ADD COLUMN a int;",
                "ALTER TABLE users ADD COLUMN a int NOT NULL DEFAULT 0;",
                "ALTER TABLE \"User\" ADD COLUMN \"createdAt\" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;",
                "ALTER TABLE users ADD COLUMN id bigserial NOT NULL;",
                "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;",
                "CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int NOT NULL;",
            ],
        );
    }
}
