//! `concurrently-in-transaction`: a statement that cannot run inside a transaction block
//! (`CREATE INDEX CONCURRENTLY`, …) inside one, or sharing its file with other statements.

use super::{Hit, Rule};
use crate::lint::migration::{Migration, Statement};
use crate::sql::non_transactional_reason;

/// The rule.
pub struct ConcurrentlyInTransaction;

impl Rule for ConcurrentlyInTransaction {
    fn id(&self) -> &'static str {
        "concurrently-in-transaction"
    }

    fn summary(&self) -> &'static str {
        "CREATE INDEX CONCURRENTLY (or another no-transaction statement) in a transaction block or a multi-statement file"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let Some(what) = non_transactional_reason(&s.node) else {
            return;
        };
        let lock = s.locks.iter().max_by_key(|l| l.mode).cloned();
        let instead = format!(
            "put the {what} statement alone in a migration file of its own, without BEGIN/COMMIT; if it fails, drop the INVALID index it leaves and deploy again"
        );
        if m.in_transaction_block(s.index) {
            out.push(Hit {
                message: format!("{what} inside BEGIN … COMMIT fails"),
                why: format!(
                    "PostgreSQL refuses to run {what} inside a transaction block (\"cannot run inside a transaction block\"): the migration fails on every database"
                ),
                instead,
                lock,
            });
        } else if m.statements.len() > 1 {
            out.push(Hit {
                message: format!("{what} shares its migration file with {} other statement(s)", m.statements.len() - 1),
                why: format!(
                    "`prisma migrate deploy` sends migration.sql as one multi-statement query, which PostgreSQL runs as a single transaction block, so {what} fails there; dbflow runs such a file statement by statement outside a transaction, so a failure half-way leaves it half-applied"
                ),
                instead,
                lock,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::check;
    use super::*;

    #[test]
    fn fires_in_blocks_and_shared_files_only() {
        check(
            &ConcurrentlyInTransaction,
            &[
                "BEGIN; CREATE INDEX CONCURRENTLY i ON t (c); COMMIT;",
                "SET lock_timeout = '5s'; CREATE INDEX CONCURRENTLY i ON t (c);",
                "CREATE INDEX CONCURRENTLY i ON t (a); CREATE INDEX CONCURRENTLY j ON t (b);",
                "DROP INDEX CONCURRENTLY i; ALTER TABLE t DROP COLUMN c;",
            ],
            &[
                "CREATE INDEX CONCURRENTLY \"User_email_idx\" ON \"User\"(\"email\");",
                "-- only a comment before\nCREATE UNIQUE INDEX CONCURRENTLY i ON t (c);\n",
                "CREATE INDEX i ON t (c); ANALYZE t;",
            ],
        );
    }
}
