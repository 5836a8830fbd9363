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

/// The `ALTER TABLE` statement `s` and its table, when the table existed before this
/// migration (the preamble of every rule about altering a table in use: a table the
/// migration itself created has no rows and no readers yet).
pub(crate) fn alter_existing<'s>(
    m: &Migration<'_>,
    s: &'s Statement,
) -> Option<(&'s pg_query::protobuf::AlterTableStmt, super::ast::TableRef)> {
    use pg_query::protobuf::node::Node as NodeEnum;
    let NodeEnum::AlterTableStmt(alter) = &s.node else {
        return None;
    };
    let table = alter.relation.as_ref().map(super::ast::TableRef::from)?;
    (!m.is_new(&table, s.index)).then_some((alter, table))
}

/// For a `VALIDATE CONSTRAINT` command (`cmd`) of statement `s` on `table`: the finding
/// when the same migration added that constraint NOT VALID and it is of type `contype`
/// (`what` names it in the message: `CHECK constraint`, `foreign key`). The rules that
/// ask for NOT VALID share it: validating in the same transaction undoes the point.
pub(crate) fn validated_in_same_migration(
    m: &Migration<'_>,
    s: &Statement,
    table: &super::ast::TableRef,
    cmd: &pg_query::protobuf::AlterTableCmd,
    contype: pg_query::protobuf::ConstrType,
    what: &str,
) -> Option<Hit> {
    let (added, c) = added_not_valid_earlier(m, s, table, &cmd.name)?;
    if super::ast::contype(c) != contype {
        return None;
    }
    let name = table.display();
    Some(Hit {
        message: format!(
            "{what} {} is validated in the same migration that added it NOT VALID (line {})",
            super::ast::quote(&cmd.name),
            added.line
        ),
        why: format!(
            "the migration runs as one transaction, so the lock taken by the ADD at line {} is still held while VALIDATE reads every row of {name}: NOT VALID buys nothing",
            added.line
        ),
        instead: "move the VALIDATE CONSTRAINT statement to the next migration, deployed separately".into(),
        lock: m.lock_on(added, table).cloned(),
    })
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
    fn alter_existing_skips_tables_the_migration_created_and_other_statements() {
        let m = Migration::parse(
            "CREATE TABLE n (id int);\nALTER TABLE n ADD COLUMN a int;\nALTER TABLE old ADD COLUMN a int;\nSELECT 1;",
            false,
        );
        let found: Vec<Option<String>> = m
            .statements
            .iter()
            .map(|s| alter_existing(&m, s).map(|(_, t)| t.display()))
            .collect();
        assert_eq!(found, [None, None, Some("old".to_string()), None]);
    }

    #[test]
    fn validating_in_the_same_migration_reads_the_same_for_both_rules() {
        let sql = |add: &str| {
            format!("ALTER TABLE p ADD CONSTRAINT k {add} NOT VALID;\nALTER TABLE p VALIDATE CONSTRAINT k;")
        };
        let check = hits(
            &add_check_constraint::AddCheckConstraint,
            &sql("CHECK (c > 0)"),
        );
        let fk = hits(
            &add_foreign_key::AddForeignKey,
            &sql("FOREIGN KEY (a) REFERENCES u (id)"),
        );
        assert_eq!(
            check.iter().map(|h| h.message.as_str()).collect::<Vec<_>>(),
            ["CHECK constraint k is validated in the same migration that added it NOT VALID (line 1)"]
        );
        assert_eq!(
            fk.iter().map(|h| h.message.as_str()).collect::<Vec<_>>(),
            ["foreign key k is validated in the same migration that added it NOT VALID (line 1)"]
        );
        assert_eq!(check[0].why, fk[0].why);
        assert_eq!(check[0].instead, fk[0].instead);
        assert!(check[0].lock.is_some());
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
