//! `create-index-non-concurrently`: `CREATE INDEX` without `CONCURRENTLY` on an existing
//! table.

use super::{Hit, Rule};
use crate::lint::ast::{self, TableRef};
use crate::lint::migration::{Migration, Statement};
use pg_query::protobuf::node::Node as NodeEnum;

/// The rule.
pub struct CreateIndexNonConcurrently;

impl Rule for CreateIndexNonConcurrently {
    fn id(&self) -> &'static str {
        "create-index-non-concurrently"
    }

    fn summary(&self) -> &'static str {
        "CREATE INDEX without CONCURRENTLY on an existing table: blocks writes for the whole build"
    }

    fn lock_risk(&self) -> bool {
        true
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let NodeEnum::IndexStmt(index) = &s.node else {
            return;
        };
        if index.concurrent {
            return;
        }
        let Some(table) = index.relation.as_ref().map(TableRef::from) else {
            return;
        };
        if m.is_new(&table, s.index) {
            return;
        }
        let name = table.display();
        let idx = if index.idxname.is_empty() {
            String::new()
        } else {
            format!(" {}", ast::quote(&index.idxname))
        };
        let unique = if index.unique { "UNIQUE " } else { "" };
        out.push(Hit {
            message: format!("CREATE {unique}INDEX{idx} on {name} without CONCURRENTLY"),
            why: format!(
                "building the index holds a SHARE lock on {name} for the whole build: every INSERT, UPDATE and DELETE waits, which on a large table means minutes of failed writes"
            ),
            instead: format!(
                "`CREATE {unique}INDEX CONCURRENTLY{idx} ON {name} (…)` in a migration file of its own (it cannot run in a transaction, and `prisma migrate deploy` runs a multi-statement file as one); if it fails, drop the INVALID index and retry"
            ),
            lock: m.lock_on(s, &table).cloned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, hits};
    use super::*;

    #[test]
    fn fires_on_existing_tables_without_concurrently() {
        check(
            &CreateIndexNonConcurrently,
            &[
                "CREATE INDEX \"Order_userId_idx\" ON \"Order\"(\"userId\");",
                "CREATE UNIQUE INDEX users_email ON users (lower(email));",
            ],
            &[
                "CREATE INDEX CONCURRENTLY \"Order_userId_idx\" ON \"Order\"(\"userId\");",
                "CREATE TABLE \"Order\" (id int, \"userId\" int); CREATE INDEX \"Order_userId_idx\" ON \"Order\"(\"userId\");",
            ],
        );
        let lock = hits(&CreateIndexNonConcurrently, "CREATE INDEX i ON t (c);")[0]
            .lock
            .clone()
            .unwrap();
        assert_eq!(lock.mode.name(), "SHARE");
    }
}
