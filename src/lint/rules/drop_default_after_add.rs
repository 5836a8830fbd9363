//! `drop-default-after-add`: `ADD COLUMN … NOT NULL DEFAULT x` followed by `ALTER COLUMN
//! … DROP DEFAULT` in the same release (the same migration, or a later migration of the
//! same deploy). Prisma generates this pair when a required field gets a value for the
//! existing rows only.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::AlterTableType;

/// The rule.
pub struct DropDefaultAfterAdd;

impl Rule for DropDefaultAfterAdd {
    fn id(&self) -> &'static str {
        "drop-default-after-add"
    }

    fn summary(&self) -> &'static str {
        "DROP DEFAULT on a column added NOT NULL DEFAULT in the same release: the previous release's INSERTs fail"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) != AlterTableType::AtColumnDefault || cmd.def.is_some() {
                continue;
            }
            let Some(added_at) = m.not_null_default_added(&table, &cmd.name, s.index) else {
                continue;
            };
            let (column, name) = (ast::quote(&cmd.name), table.display());
            let where_added = if added_at > 0 {
                format!("at line {added_at}")
            } else {
                "by an earlier migration of this deploy".into()
            };
            out.push(Hit {
                message: format!(
                    "DROP DEFAULT on {name}.{column}, added NOT NULL with a default {where_added}"
                ),
                why: format!(
                    "the previous release keeps serving until the rollout ends and knows nothing of {column}: its INSERTs into {name} relied on the default, and without it they fail with a NOT NULL violation"
                ),
                instead: format!(
                    "keep the default for this release (in schema.prisma, keep `@default(…)` on the field) and drop it in a later release, once every running instance writes {column}"
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
    fn fires_on_drop_default_after_add_not_null_default() {
        check(
            &DropDefaultAfterAdd,
            &[
                "ALTER TABLE \"User\" ADD COLUMN \"tenantId\" TEXT NOT NULL DEFAULT 'acme';\nALTER TABLE \"User\" ALTER COLUMN \"tenantId\" DROP DEFAULT;",
            ],
            &[
                "ALTER TABLE \"User\" ALTER COLUMN \"tenantId\" DROP DEFAULT;",
                "ALTER TABLE \"User\" ADD COLUMN \"nick\" TEXT DEFAULT 'x';\nALTER TABLE \"User\" ALTER COLUMN \"nick\" DROP DEFAULT;",
                "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;\nALTER TABLE t ALTER COLUMN c DROP DEFAULT;",
                "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;\nALTER TABLE t ALTER COLUMN c SET DEFAULT 1;",
            ],
        );
        assert_eq!(
            messages(
                &DropDefaultAfterAdd,
                "ALTER TABLE t ADD c int NOT NULL DEFAULT 0;\nALTER TABLE t ALTER c DROP DEFAULT;"
            ),
            ["DROP DEFAULT on t.c, added NOT NULL with a default at line 1"]
        );
    }
}
