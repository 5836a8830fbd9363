//! `add-unique-constraint`: a UNIQUE (or PRIMARY KEY, or EXCLUDE) constraint added to an
//! existing table without an index built concurrently beforehand.

use super::{Hit, Rule};
use crate::lint::ast::{self};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::{AlterTableType, ConstrType};

/// The rule.
pub struct AddUniqueConstraint;

impl Rule for AddUniqueConstraint {
    fn id(&self) -> &'static str {
        "add-unique-constraint"
    }

    fn summary(&self) -> &'static str {
        "UNIQUE / PRIMARY KEY constraint built under ACCESS EXCLUSIVE instead of USING INDEX"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some((alter, table)) = super::alter_existing(m, s) else {
            return;
        };
        for cmd in ast::alter_cmds(alter) {
            if ast::subtype(cmd) != AlterTableType::AtAddConstraint {
                continue;
            }
            let Some(c) = ast::constraint_of(cmd) else {
                continue;
            };
            let kind = match ast::contype(c) {
                ConstrType::ConstrUnique => "UNIQUE",
                ConstrType::ConstrPrimary => "PRIMARY KEY",
                ConstrType::ConstrExclusion => "EXCLUDE",
                _ => continue,
            };
            if !c.indexname.is_empty() {
                continue;
            }
            let name = table.display();
            let constraint = if c.conname.is_empty() {
                format!("{}_key", table.name)
            } else {
                c.conname.clone()
            };
            let using = if kind == "EXCLUDE" {
                "an exclusion constraint cannot be added from an existing index: add it on a new table, or accept the lock in a maintenance window".to_string()
            } else {
                format!(
                    "build the index first with `CREATE UNIQUE INDEX CONCURRENTLY {c} ON {name} (…)` in its own migration, then `ALTER TABLE {name} ADD CONSTRAINT {c} {kind} USING INDEX {c}` (a brief lock, no build)",
                    c = ast::quote(&constraint)
                )
            };
            out.push(Hit {
                message: format!("{kind} constraint on {name} builds its index while the table is locked"),
                why: format!(
                    "adding the constraint builds a unique index on {name} while holding ACCESS EXCLUSIVE: no reads or writes for the whole build"
                ),
                instead: using,
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
    fn fires_unless_using_an_index() {
        check(
            &AddUniqueConstraint,
            &[
                "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
                "ALTER TABLE events ADD PRIMARY KEY (id);",
            ],
            &[
                "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;",
                "CREATE TABLE t (a int); ALTER TABLE t ADD CONSTRAINT t_a_key UNIQUE (a);",
                "ALTER TABLE users ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
            ],
        );
    }
}
