//! `add-check-constraint`: a CHECK constraint added to an existing table without
//! `NOT VALID`.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::{AlterTableType, ConstrType};

/// The rule.
pub struct AddCheckConstraint;

impl Rule for AddCheckConstraint {
    fn id(&self) -> &'static str {
        "add-check-constraint"
    }

    fn summary(&self) -> &'static str {
        "CHECK constraint on an existing table without NOT VALID: scans every row under ACCESS EXCLUSIVE"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) == AlterTableType::AtValidateConstraint {
                out.extend(super::validated_in_same_migration(
                    m,
                    s,
                    &table,
                    cmd,
                    ConstrType::ConstrCheck,
                    "CHECK constraint",
                ));
                continue;
            }
            if ast::subtype(cmd) != AlterTableType::AtAddConstraint {
                continue;
            }
            let Some(check) = ast::constraint_of(cmd)
                .filter(|c| ast::contype(c) == ConstrType::ConstrCheck && !c.skip_validation)
            else {
                continue;
            };
            let name = table.display();
            let constraint = if check.conname.is_empty() {
                String::new()
            } else {
                format!(" {}", ast::quote(&check.conname))
            };
            out.push(Hit {
                message: format!("CHECK constraint{constraint} on {name} is validated while it is added"),
                why: format!(
                    "adding it reads every row of {name} while holding ACCESS EXCLUSIVE: no reads or writes until the scan ends"
                ),
                instead: format!(
                    "add it with `NOT VALID` (the lock is brief and only new rows are checked), then `ALTER TABLE {name} VALIDATE CONSTRAINT …` in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on)"
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
    fn fires_without_not_valid_on_existing_tables() {
        check(
            &AddCheckConstraint,
            &[
                "ALTER TABLE \"Product\" ADD CONSTRAINT \"price_positive\" CHECK (\"priceCents\" >= 0);",
                "ALTER TABLE p ADD CONSTRAINT k CHECK (c > 0) NOT VALID;\nALTER TABLE p VALIDATE CONSTRAINT k;",
            ],
            &[
                "ALTER TABLE \"Product\" ADD CONSTRAINT \"price_positive\" CHECK (\"priceCents\" >= 0) NOT VALID;",
                "CREATE TABLE p (c int); ALTER TABLE p ADD CONSTRAINT k CHECK (c > 0);",
                "ALTER TABLE p VALIDATE CONSTRAINT k;",
            ],
        );
    }
}
