//! The lint rules, one per file, each with a stable id (what annotations and reports
//! name) and its own tests. A rule looks at one statement with the facts of its
//! migration and reports what is risky, why, and the safe expand–contract way instead.

mod add_check_constraint;
mod add_column_not_null;
mod add_column_volatile_default;
mod add_foreign_key;
mod add_unique_constraint;
mod change_column_type;
mod concurrently_in_transaction;
mod create_index_non_concurrently;
mod delete_without_where;
mod drop_column;
mod drop_default_after_add;
mod drop_index_non_concurrently;
mod drop_table;
mod missing_lock_timeout;
mod mixed_schema_and_data;
mod rename_column;
mod rename_table;
mod set_not_null;
mod truncate;
mod update_without_where;

use super::lock::Lock;
use super::migration::{Migration, Statement};

/// What a rule found in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// One line: what the statement does that is risky.
    pub message: String,
    /// Why it is risky.
    pub why: String,
    /// The safe way to get the same result.
    pub instead: String,
    /// The lock that makes it risky (or the statement's strongest lock).
    pub lock: Option<Lock>,
}

/// A lint rule.
pub trait Rule: Sync {
    /// Stable id (`drop-column`), used in annotations and reports.
    fn id(&self) -> &'static str;
    /// One line for `dbflow lint --rules`.
    fn summary(&self) -> &'static str;
    /// Looks at statement `s` of migration `m`.
    fn check(&self, m: &Migration<'_>, s: &Statement, out: &mut Vec<Hit>);
    /// Whether the risk is how long a lock is held, which grows with the table: such
    /// findings disappear on a table the live database shows empty and are warnings
    /// below `lint.small_table_rows`. Data loss and breaking the previous release do not
    /// shrink with the table.
    fn lock_risk(&self) -> bool {
        false
    }
    /// Whether the rule only ever warns (a real but small risk).
    fn warning_only(&self) -> bool {
        false
    }
}

/// Reported when PostgreSQL's parser rejects a statement.
pub const SYNTAX_ERROR: &str = "syntax-error";
/// Reported for a `dbflow:allow` annotation that cannot be used.
pub const INVALID_ANNOTATION: &str = "invalid-annotation";

/// Every rule, in report order.
pub static ALL: &[&dyn Rule] = &[
    &drop_table::DropTable,
    &drop_column::DropColumn,
    &rename_column::RenameColumn,
    &rename_table::RenameTable,
    &change_column_type::ChangeColumnType,
    &set_not_null::SetNotNull,
    &add_column_not_null::AddColumnNotNull,
    &add_column_volatile_default::AddColumnVolatileDefault,
    &drop_default_after_add::DropDefaultAfterAdd,
    &create_index_non_concurrently::CreateIndexNonConcurrently,
    &drop_index_non_concurrently::DropIndexNonConcurrently,
    &add_foreign_key::AddForeignKey,
    &add_check_constraint::AddCheckConstraint,
    &add_unique_constraint::AddUniqueConstraint,
    &truncate::Truncate,
    &delete_without_where::DeleteWithoutWhere,
    &update_without_where::UpdateWithoutWhere,
    &concurrently_in_transaction::ConcurrentlyInTransaction,
    &mixed_schema_and_data::MixedSchemaAndData,
    &missing_lock_timeout::MissingLockTimeout,
];

/// Every id a finding can carry (rules plus the two built-in ones).
pub fn all_ids() -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .map(|r| r.id())
        .chain([SYNTAX_ERROR, INVALID_ANNOTATION])
}

/// Whether `column` was added to `table` earlier in the same migration (so nothing can
/// be using it yet).
pub(crate) fn column_added_earlier(
    m: &Migration<'_>,
    s: &Statement,
    table: &super::ast::TableRef,
    column: &str,
) -> bool {
    use pg_query::protobuf::node::Node as NodeEnum;
    use pg_query::protobuf::AlterTableType;
    m.statements[..s.index].iter().any(|earlier| {
        let NodeEnum::AlterTableStmt(alter) = &earlier.node else {
            return false;
        };
        alter
            .relation
            .as_ref()
            .map(super::ast::TableRef::from)
            .as_ref()
            == Some(table)
            && super::ast::alter_cmds(alter).any(|cmd| {
                super::ast::subtype(cmd) == AlterTableType::AtAddColumn
                    && super::ast::column_def(cmd).is_some_and(|c| c.colname == column)
            })
    })
}

/// For `VALIDATE CONSTRAINT name` at statement `s`: the earlier statement of the same
/// migration that added `name` to `table` with NOT VALID, and that constraint. Both then
/// run in one transaction, so the ADD's lock is still held while VALIDATE scans.
pub(crate) fn added_not_valid_earlier<'m>(
    m: &'m Migration<'_>,
    s: &Statement,
    table: &super::ast::TableRef,
    name: &str,
) -> Option<(&'m Statement, &'m pg_query::protobuf::Constraint)> {
    use pg_query::protobuf::node::Node as NodeEnum;
    use pg_query::protobuf::AlterTableType;
    if m.statements
        .iter()
        .any(|st| crate::sql::non_transactional_reason(&st.node).is_some())
    {
        // Then each statement commits on its own: the locks do not add up.
        return None;
    }
    m.statements[..s.index].iter().find_map(|earlier| {
        let NodeEnum::AlterTableStmt(alter) = &earlier.node else {
            return None;
        };
        if alter
            .relation
            .as_ref()
            .map(super::ast::TableRef::from)
            .as_ref()
            != Some(table)
        {
            return None;
        }
        super::ast::alter_cmds(alter).find_map(|cmd| {
            let c = super::ast::constraint_of(cmd)?;
            (super::ast::subtype(cmd) == AlterTableType::AtAddConstraint
                && c.skip_validation
                && c.conname == name)
                .then_some((earlier, c))
        })
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Runs one rule over every statement of `sql` (applied without a lock_timeout).
    pub fn hits(rule: &dyn Rule, sql: &str) -> Vec<Hit> {
        let m = Migration::parse(sql, false);
        assert!(m.syntax_errors.is_empty(), "{:?}", m.syntax_errors);
        let mut out = Vec::new();
        for s in &m.statements {
            rule.check(&m, s, &mut out);
        }
        out
    }

    /// The messages `rule` reports for `sql`.
    pub fn messages(rule: &dyn Rule, sql: &str) -> Vec<String> {
        hits(rule, sql).into_iter().map(|h| h.message).collect()
    }

    /// Asserts that `rule` fires on each of `bad` and on none of `good`.
    #[track_caller]
    pub fn check(rule: &dyn Rule, bad: &[&str], good: &[&str]) {
        for sql in bad {
            assert!(
                !hits(rule, sql).is_empty(),
                "{} should fire on:\n{sql}",
                rule.id()
            );
        }
        for sql in good {
            let found = hits(rule, sql);
            assert!(
                found.is_empty(),
                "{} should not fire on:\n{sql}\n{found:#?}",
                rule.id()
            );
        }
    }

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let ids: Vec<&str> = all_ids().collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        for id in ids {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id}"
            );
        }
    }
}
