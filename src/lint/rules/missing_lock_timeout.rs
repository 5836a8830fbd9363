//! `missing-lock-timeout`: an ACCESS EXCLUSIVE lock on an existing table requested with
//! no `lock_timeout`, so it can queue behind a long transaction and block everything.
//! Reported once per file, at the first such statement.

use super::{Hit, Rule};
use crate::lint::lock::LockMode;
use crate::lint::migration::{Migration, Statement};

/// The rule.
pub struct MissingLockTimeout;

impl Rule for MissingLockTimeout {
    fn id(&self) -> &'static str {
        "missing-lock-timeout"
    }

    fn summary(&self) -> &'static str {
        "ACCESS EXCLUSIVE lock on an existing table with no lock_timeout set"
    }

    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>) {
        let needs = |st: &Statement| {
            !m.lock_timeout_at(st.index)
                && st
                    .locks
                    .iter()
                    .any(|l| !l.new_table && l.mode == LockMode::AccessExclusive)
        };
        if !needs(s) || m.statements[..s.index].iter().any(needs) {
            return;
        }
        let lock = s
            .locks
            .iter()
            .find(|l| !l.new_table && l.mode == LockMode::AccessExclusive)
            .cloned();
        let table = lock.as_ref().map(|l| l.table.clone()).unwrap_or_default();
        let more = m.statements[s.index + 1..]
            .iter()
            .filter(|st| needs(st))
            .count();
        let more = if more > 0 {
            format!(" (and {more} more statement(s) below)")
        } else {
            String::new()
        };
        out.push(Hit {
            message: format!("ACCESS EXCLUSIVE lock on {table} without a lock_timeout{more}"),
            why: format!(
                "if a long transaction holds any lock on {table}, this statement waits for it, and every query on {table} queues behind this one: a one-millisecond change becomes an outage for as long as that transaction runs"
            ),
            instead: "start the migration with `SET lock_timeout = '5s';` and retry when it times out, or deploy with dbflow, which sets `migrations.lock_timeout` (5s by default on shared and protected environments) and retries".into(),
            lock,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, messages};
    use super::*;

    #[test]
    fn fires_once_per_file_without_a_timeout() {
        check(
            &MissingLockTimeout,
            &[
                "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;",
                "SET lock_timeout = 0; ALTER TABLE t ADD c int;",
                "BEGIN; SET LOCAL lock_timeout = '1s'; COMMIT; ALTER TABLE t ADD c int;",
            ],
            &[
                "SET lock_timeout = '5s';\nALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;",
                "CREATE TABLE t (a int); ALTER TABLE t ADD b int;",
                "CREATE INDEX CONCURRENTLY i ON t (c);",
                "UPDATE t SET a = 1 WHERE b = 2;",
            ],
        );
        assert_eq!(
            messages(
                &MissingLockTimeout,
                "ALTER TABLE a ADD x int;\nALTER TABLE b ADD y int;\nALTER TABLE c ADD z int;"
            ),
            ["ACCESS EXCLUSIVE lock on a without a lock_timeout (and 2 more statement(s) below)"]
        );
    }

    #[test]
    fn a_deployer_timeout_satisfies_it() {
        let m = Migration::parse("ALTER TABLE t ADD c int;", true);
        let mut out = Vec::new();
        MissingLockTimeout.check(&m, &m.statements[0], &mut out);
        assert!(out.is_empty());
    }
}
