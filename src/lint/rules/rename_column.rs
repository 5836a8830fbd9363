//! `rename-column`: `ALTER TABLE … RENAME COLUMN` on an existing table.

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::ObjectType;

/// The rule.
pub struct RenameColumn;

impl Rule for RenameColumn {
    fn id(&self) -> &'static str {
        "rename-column"
    }

    fn summary(&self) -> &'static str {
        "RENAME COLUMN on an existing table: every query using the old name fails"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::RenameStmt(rename) = &s.node else {
            return;
        };
        if ObjectType::try_from(rename.rename_type) != Ok(ObjectType::ObjectColumn) {
            return;
        }
        let Some(table) = rename.relation.as_ref().map(TableRef::from) else {
            return;
        };
        if m.is_new(&table, s.index) || super::column_added_earlier(m, s, &table, &rename.subname) {
            return;
        }
        let (old, new, name) = (
            ast::quote(&rename.subname),
            ast::quote(&rename.newname),
            table.display(),
        );
        out.push(Hit {
            message: format!("renaming column {name}.{old} to {new} breaks every query that uses {old}"),
            why: "the previous release keeps using the old name until it is replaced, so between this migration and the end of the rollout its queries fail".into(),
            instead: format!(
                "keep the physical name and rename only in the code (Prisma: `@map(\"{}\")`), or expand–contract: add {new}, write to both, backfill in batches, switch reads, then drop {old} in a later release",
                rename.subname
            ),
            lock: m.lock_on(s, &table).cloned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, messages};
    use super::*;

    #[test]
    fn fires_on_existing_tables_only() {
        check(
            &RenameColumn,
            &["ALTER TABLE \"User\" RENAME COLUMN \"name\" TO \"fullName\";"],
            &[
                "CREATE TABLE t (a int); ALTER TABLE t RENAME COLUMN a TO b;",
                "ALTER TABLE t RENAME TO u;",
                "ALTER TABLE t RENAME CONSTRAINT a TO b;",
                "ALTER TABLE t ADD COLUMN a int; ALTER TABLE t RENAME COLUMN a TO b;",
            ],
        );
        assert_eq!(
            messages(
                &RenameColumn,
                "ALTER TABLE \"User\" RENAME COLUMN \"name\" TO \"fullName\";"
            ),
            ["renaming column \"User\".name to \"fullName\" breaks every query that uses name"]
        );
    }
}
