//! `rename-table`: `ALTER TABLE … RENAME TO` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::ObjectType;

/// The rule.
pub struct RenameTable;

impl Rule for RenameTable {
    fn id(&self) -> &'static str {
        "rename-table"
    }

    fn summary(&self) -> &'static str {
        "RENAME on an existing table: every query using the old name fails"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::RenameStmt(rename) = &s.node else {
            return;
        };
        if ObjectType::try_from(rename.rename_type) != Ok(ObjectType::ObjectTable) {
            return;
        }
        let Some(table) = rename.relation.as_ref().map(TableRef::from) else {
            return;
        };
        if m.is_new(&table, s.index) {
            return;
        }
        let (name, new) = (table.display(), ast::quote(&rename.newname));
        out.push(Hit {
            message: format!("renaming table {name} to {new} breaks every query that uses {name}"),
            why: "the previous release keeps using the old name until it is replaced, so its queries fail from this migration until the rollout ends".into(),
            instead: format!(
                "keep the physical name and rename only in the code (Prisma: `@@map(\"{}\")`), or rename and create a view under the old name (`CREATE VIEW {name} AS SELECT * FROM {new}`) until the previous release is gone",
                table.name
            ),
            lock: m.lock_on(s, &table).cloned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::check;
    use super::*;

    #[test]
    fn fires_on_existing_tables_only() {
        check(
            &RenameTable,
            &["ALTER TABLE \"Post\" RENAME TO \"Article\";"],
            &[
                "CREATE TABLE \"Role_new\" (id int); ALTER TABLE \"Role_new\" RENAME TO \"Role2\";",
                "ALTER INDEX a RENAME TO b;",
                "ALTER TYPE \"Role\" RENAME TO \"Role_old\";",
                "ALTER TABLE t RENAME COLUMN a TO b;",
            ],
        );
    }
}
