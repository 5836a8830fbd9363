//! `add-column-volatile-default`: `ADD COLUMN` whose value must be computed per row
//! (volatile default, serial, identity, stored generated) on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::AlterTableType;

/// The rule.
pub struct AddColumnVolatileDefault;

impl Rule for AddColumnVolatileDefault {
    fn id(&self) -> &'static str {
        "add-column-volatile-default"
    }

    fn summary(&self) -> &'static str {
        "ADD COLUMN computed per row (volatile default, serial, identity): rewrites the table"
    }

    fn lock_risk(&self) -> bool {
        true
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
            let Some(reason) = ast::add_column_rewrites(col) else {
                continue;
            };
            let (column, name) = (ast::quote(&col.colname), table.display());
            out.push(Hit {
                message: format!("adding column {column} to {name} rewrites the table"),
                why: format!(
                    "{reason}: PostgreSQL rewrites {name} while holding ACCESS EXCLUSIVE, so no reads or writes until it finishes"
                ),
                instead: format!(
                    "add {column} without a default (or with a constant one), `ALTER COLUMN {column} SET DEFAULT …` afterwards (it applies to new rows only), and backfill existing rows in batches"
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
    fn fires_on_per_row_values_only() {
        check(
            &AddColumnVolatileDefault,
            &[
                "ALTER TABLE \"User\" ADD COLUMN \"publicId\" UUID NOT NULL DEFAULT gen_random_uuid();",
                "ALTER TABLE orders ADD COLUMN seq bigserial;",
                "ALTER TABLE orders ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;",
                "ALTER TABLE orders ADD COLUMN t timestamptz DEFAULT clock_timestamp();",
            ],
            &[
                "ALTER TABLE orders ADD COLUMN t timestamptz DEFAULT now();",
                "ALTER TABLE orders ADD COLUMN t timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;",
                "ALTER TABLE orders ADD COLUMN s text NOT NULL DEFAULT 'new';",
                "ALTER TABLE orders ADD COLUMN j jsonb DEFAULT '{}'::jsonb;",
                "CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN id uuid DEFAULT gen_random_uuid();",
            ],
        );
    }
}
