//! `add-foreign-key`: a foreign key added to an existing table without `NOT VALID`.

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::{AlterTableType, ConstrType};

/// The rule.
pub struct AddForeignKey;

impl Rule for AddForeignKey {
    fn id(&self) -> &'static str {
        "add-foreign-key"
    }

    fn summary(&self) -> &'static str {
        "foreign key on an existing table without NOT VALID: blocks writes on both tables while every row is checked"
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
                    ConstrType::ConstrForeign,
                    "foreign key",
                ));
                continue;
            }
            let constraint = match ast::subtype(cmd) {
                AlterTableType::AtAddConstraint => ast::constraint_of(cmd),
                AlterTableType::AtAddColumn => ast::column_def(cmd).and_then(|col| {
                    ast::column_constraints(col)
                        .find(|c| ast::contype(c) == ConstrType::ConstrForeign)
                }),
                _ => None,
            };
            let Some(fk) = constraint.filter(|c| ast::contype(c) == ConstrType::ConstrForeign)
            else {
                continue;
            };
            if fk.skip_validation {
                continue;
            }
            let name = table.display();
            let referenced = fk
                .pktable
                .as_ref()
                .map(|t| TableRef::from(t).display())
                .unwrap_or_else(|| "the referenced table".into());
            let constraint = if fk.conname.is_empty() {
                String::new()
            } else {
                format!(" {}", ast::quote(&fk.conname))
            };
            out.push(Hit {
                message: format!(
                    "foreign key{constraint} on {name} → {referenced} is validated while it is added"
                ),
                why: format!(
                    "adding it checks every existing row of {name} while holding SHARE ROW EXCLUSIVE on {name} and {referenced}: writes to both tables wait until the check ends"
                ),
                instead: format!(
                    "add it with `NOT VALID` (only new rows are checked; the lock is brief), then `ALTER TABLE {name} VALIDATE CONSTRAINT …` in a later migration, which takes SHARE UPDATE EXCLUSIVE and lets reads and writes go on"
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
            &AddForeignKey,
            &[
                "ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY (\"authorId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;",
                "ALTER TABLE posts ADD COLUMN author_id int REFERENCES users (id);",
                "ALTER TABLE posts ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES users (id) NOT VALID;\nALTER TABLE posts VALIDATE CONSTRAINT f;",
            ],
            &[
                "ALTER TABLE posts ADD CONSTRAINT f FOREIGN KEY (author_id) REFERENCES users (id) NOT VALID;",
                "ALTER TABLE posts VALIDATE CONSTRAINT f;",
                "CREATE TABLE \"Post\" (id int, \"authorId\" int); ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY (\"authorId\") REFERENCES \"User\"(\"id\");",
                "ALTER TABLE posts ADD CONSTRAINT c CHECK (id > 0);",
                "ALTER TABLE posts ADD CONSTRAINT c CHECK (id > 0) NOT VALID; ALTER TABLE posts VALIDATE CONSTRAINT c;",
            ],
        );
    }
}
