//! The table locks PostgreSQL takes for a statement, on which table, and whether the
//! statement rewrites the table. Modes and the subcommands that take them follow the
//! PostgreSQL 18 documentation of `ALTER TABLE`, `CREATE INDEX` and "Explicit Locking".

use super::ast::{self, TableRef};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType};
use serde::Serialize;
use std::fmt;

/// PostgreSQL's table-level lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// `SELECT`.
    AccessShare,
    /// `SELECT … FOR UPDATE`.
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`.
    RowExclusive,
    /// `VACUUM`, `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`.
    ShareUpdateExclusive,
    /// `CREATE INDEX`.
    Share,
    /// `CREATE TRIGGER`, `ADD FOREIGN KEY`.
    ShareRowExclusive,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`.
    Exclusive,
    /// Most `ALTER TABLE` forms, `DROP`, `TRUNCATE`, `VACUUM FULL`.
    AccessExclusive,
}

impl LockMode {
    /// The name PostgreSQL uses (`ACCESS EXCLUSIVE`).
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// What the lock stops other sessions from doing while it is held.
    pub fn blocks(self) -> &'static str {
        match self {
            LockMode::AccessShare | LockMode::RowShare => "blocks only schema changes",
            LockMode::RowExclusive => "blocks schema changes and index builds",
            LockMode::ShareUpdateExclusive => {
                "blocks schema changes and VACUUM, not reads or writes"
            }
            LockMode::Share | LockMode::ShareRowExclusive | LockMode::Exclusive => "blocks writes",
            LockMode::AccessExclusive => "blocks reads and writes",
        }
    }

    /// The mode of `LOCK TABLE … IN <mode> MODE` (PostgreSQL's numbering, 1–8).
    fn from_lock_stmt(mode: i32) -> LockMode {
        match mode {
            1 => LockMode::AccessShare,
            2 => LockMode::RowShare,
            3 => LockMode::RowExclusive,
            4 => LockMode::ShareUpdateExclusive,
            5 => LockMode::Share,
            6 => LockMode::ShareRowExclusive,
            7 => LockMode::Exclusive,
            _ => LockMode::AccessExclusive,
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for LockMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A lock a statement takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    /// The lock mode.
    pub mode: LockMode,
    /// The table (or, for index statements whose table is not named, the index).
    pub table: String,
    /// Whether the statement rewrites the whole table (a new copy of every row).
    pub rewrite: bool,
    /// Whether the table is new: created earlier in the same migration or by an earlier
    /// migration of the same deploy, or absent from the live database (nobody uses it yet).
    pub new_table: bool,
    /// The table's size, when the live database was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<super::catalog::TableSize>,
}

impl Lock {
    /// `ACCESS EXCLUSIVE on "User" (blocks reads and writes), rewrites the table: no`;
    /// with the live database read, `ACCESS EXCLUSIVE on "User" (~2.1 M rows, 480 MB;
    /// blocks reads and writes), rewrites the table: yes`.
    pub fn describe(&self) -> String {
        format!(
            "{} on {}{} ({}{}), rewrites the table: {}",
            self.mode,
            self.table,
            if self.new_table {
                ", new in this deploy"
            } else {
                ""
            },
            self.size.map(|s| format!("{s}; ")).unwrap_or_default(),
            self.mode.blocks(),
            if self.rewrite { "yes" } else { "no" }
        )
    }
}

/// What a lock is taken on, before the migration decides whether the table is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A table.
    Table(TableRef),
    /// An index whose table the statement does not name.
    Index(TableRef),
}

/// A lock as the statement alone tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLock {
    /// The mode.
    pub mode: LockMode,
    /// On what.
    pub target: Target,
    /// Whether the table is rewritten.
    pub rewrite: bool,
}

fn table(mode: LockMode, table: TableRef, rewrite: bool) -> RawLock {
    RawLock {
        mode,
        target: Target::Table(table),
        rewrite,
    }
}

/// The locks `node` takes, strongest per table, in the order the tables are named.
pub fn locks_of(node: &NodeEnum) -> Vec<RawLock> {
    let mut out: Vec<RawLock> = Vec::new();
    let mut add = |lock: RawLock| {
        if let Some(existing) = out.iter_mut().find(|l| l.target == lock.target) {
            existing.mode = existing.mode.max(lock.mode);
            existing.rewrite |= lock.rewrite;
        } else {
            out.push(lock);
        }
    };
    match node {
        NodeEnum::AlterTableStmt(stmt) => {
            let Some(relation) = stmt.relation.as_ref().map(TableRef::from) else {
                return Vec::new();
            };
            let objtype = ObjectType::try_from(stmt.objtype).unwrap_or(ObjectType::Undefined);
            if objtype == ObjectType::ObjectIndex {
                // ALTER INDEX … SET (…) / SET TABLESPACE / ATTACH PARTITION.
                add(RawLock {
                    mode: LockMode::ShareUpdateExclusive,
                    target: Target::Index(relation.clone()),
                    rewrite: false,
                });
                return out;
            }
            for cmd in ast::alter_cmds(stmt) {
                let (mode, rewrite) = alter_cmd_lock(cmd);
                add(table(mode, relation.clone(), rewrite));
                if let Some(referenced) = ast::added_foreign_key_target(cmd) {
                    add(table(LockMode::ShareRowExclusive, referenced, false));
                }
            }
        }
        NodeEnum::IndexStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                let mode = if stmt.concurrent {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::Share
                };
                add(table(mode, TableRef::from(relation), false));
            }
        }
        NodeEnum::CreateStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::AccessExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
            for referenced in ast::create_table_references(stmt) {
                add(table(LockMode::ShareRowExclusive, referenced, false));
            }
        }
        NodeEnum::DropStmt(stmt) => {
            let kind = ObjectType::try_from(stmt.remove_type).unwrap_or(ObjectType::Undefined);
            match kind {
                ObjectType::ObjectTable => {
                    for name in ast::object_names(&stmt.objects) {
                        add(table(LockMode::AccessExclusive, name, false));
                    }
                }
                ObjectType::ObjectIndex => {
                    let mode = if stmt.concurrent {
                        LockMode::ShareUpdateExclusive
                    } else {
                        LockMode::AccessExclusive
                    };
                    for name in ast::object_names(&stmt.objects) {
                        add(RawLock {
                            mode,
                            target: Target::Index(name),
                            rewrite: false,
                        });
                    }
                }
                _ => {}
            }
        }
        NodeEnum::TruncateStmt(stmt) => {
            for relation in &stmt.relations {
                if let Some(NodeEnum::RangeVar(rv)) = relation.node.as_ref() {
                    add(table(LockMode::AccessExclusive, TableRef::from(rv), false));
                }
            }
        }
        NodeEnum::RenameStmt(stmt) => {
            let kind = ObjectType::try_from(stmt.rename_type).unwrap_or(ObjectType::Undefined);
            if let Some(relation) = stmt.relation.as_ref() {
                let relation = TableRef::from(relation);
                match kind {
                    ObjectType::ObjectIndex => add(RawLock {
                        mode: LockMode::ShareUpdateExclusive,
                        target: Target::Index(relation.clone()),
                        rewrite: false,
                    }),
                    ObjectType::ObjectTable
                    | ObjectType::ObjectColumn
                    | ObjectType::ObjectTabconstraint
                    | ObjectType::ObjectTrigger
                    | ObjectType::ObjectPolicy
                    | ObjectType::ObjectRule => {
                        add(table(LockMode::AccessExclusive, relation, false))
                    }
                    _ => {}
                }
            }
        }
        NodeEnum::DeleteStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::RowExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
        }
        NodeEnum::UpdateStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::RowExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
        }
        NodeEnum::InsertStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::RowExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
        }
        NodeEnum::MergeStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::RowExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
        }
        NodeEnum::CreateTrigStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::ShareRowExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
        }
        NodeEnum::CreatePolicyStmt(stmt) => {
            if let Some(relation) = stmt.table.as_ref() {
                add(table(
                    LockMode::AccessExclusive,
                    TableRef::from(relation),
                    false,
                ));
            }
        }
        NodeEnum::VacuumStmt(stmt) => {
            let full = ast::has_option(&stmt.options, "full");
            let mode = if full {
                LockMode::AccessExclusive
            } else {
                LockMode::ShareUpdateExclusive
            };
            for rel in &stmt.rels {
                if let Some(NodeEnum::VacuumRelation(vr)) = rel.node.as_ref() {
                    if let Some(relation) = vr.relation.as_ref() {
                        add(table(mode, TableRef::from(relation), full));
                    }
                }
            }
        }
        NodeEnum::ClusterStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                add(table(
                    LockMode::AccessExclusive,
                    TableRef::from(relation),
                    true,
                ));
            }
        }
        NodeEnum::ReindexStmt(stmt) => {
            let concurrent = ast::has_option(&stmt.params, "concurrently");
            if let Some(relation) = stmt.relation.as_ref() {
                let mode = if concurrent {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::Share
                };
                add(table(mode, TableRef::from(relation), false));
            }
        }
        NodeEnum::RefreshMatViewStmt(stmt) => {
            if let Some(relation) = stmt.relation.as_ref() {
                let mode = if stmt.concurrent {
                    LockMode::Exclusive
                } else {
                    LockMode::AccessExclusive
                };
                add(table(mode, TableRef::from(relation), !stmt.concurrent));
            }
        }
        NodeEnum::LockStmt(stmt) => {
            for relation in &stmt.relations {
                if let Some(NodeEnum::RangeVar(rv)) = relation.node.as_ref() {
                    add(table(
                        LockMode::from_lock_stmt(stmt.mode),
                        TableRef::from(rv),
                        false,
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// The lock one `ALTER TABLE` subcommand takes, and whether it rewrites the table.
fn alter_cmd_lock(cmd: &pg_query::protobuf::AlterTableCmd) -> (LockMode, bool) {
    use AlterTableType as T;
    let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(T::Undefined);
    match subtype {
        T::AtSetStatistics
        | T::AtSetOptions
        | T::AtResetOptions
        | T::AtClusterOn
        | T::AtDropCluster
        | T::AtValidateConstraint
        | T::AtSetRelOptions
        | T::AtResetRelOptions
        | T::AtAttachPartition => (LockMode::ShareUpdateExclusive, false),
        T::AtEnableTrig
        | T::AtEnableAlwaysTrig
        | T::AtEnableReplicaTrig
        | T::AtDisableTrig
        | T::AtEnableTrigAll
        | T::AtDisableTrigAll
        | T::AtEnableTrigUser
        | T::AtDisableTrigUser => (LockMode::ShareRowExclusive, false),
        T::AtAddConstraint => match ast::constraint_of(cmd) {
            Some(c) if c.contype == ConstrType::ConstrForeign as i32 => {
                (LockMode::ShareRowExclusive, false)
            }
            _ => (LockMode::AccessExclusive, false),
        },
        T::AtDetachPartition => match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::PartitionCmd(p)) if p.concurrent => {
                (LockMode::ShareUpdateExclusive, false)
            }
            _ => (LockMode::AccessExclusive, false),
        },
        T::AtAlterColumnType
        | T::AtSetLogged
        | T::AtSetUnLogged
        | T::AtSetAccessMethod
        | T::AtSetTableSpace
        | T::AtSetExpression => (LockMode::AccessExclusive, true),
        T::AtAddColumn => (
            LockMode::AccessExclusive,
            ast::column_def(cmd).is_some_and(|c| ast::add_column_rewrites(c).is_some()),
        ),
        _ => (LockMode::AccessExclusive, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locks(sql: &str) -> Vec<(LockMode, String, bool)> {
        let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).unwrap();
        let node = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .unwrap()
            .node
            .clone()
            .unwrap();
        locks_of(&node)
            .into_iter()
            .map(|l| {
                let target = match l.target {
                    Target::Table(t) => t.display(),
                    Target::Index(i) => format!("index {}", i.display()),
                };
                (l.mode, target, l.rewrite)
            })
            .collect()
    }

    #[test]
    fn lock_modes_follow_the_documentation() {
        use LockMode::*;
        let cases: &[(&str, LockMode, &str, bool)] = &[
            (
                "ALTER TABLE t ADD COLUMN c int",
                AccessExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE t ADD COLUMN c int DEFAULT 0",
                AccessExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()",
                AccessExclusive,
                "t",
                true,
            ),
            (
                "ALTER TABLE t ADD COLUMN id bigserial",
                AccessExclusive,
                "t",
                true,
            ),
            (
                "ALTER TABLE t ALTER COLUMN c TYPE bigint",
                AccessExclusive,
                "t",
                true,
            ),
            (
                "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
                AccessExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE t VALIDATE CONSTRAINT c",
                ShareUpdateExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID",
                ShareRowExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE t SET (fillfactor = 70)",
                ShareUpdateExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE t DISABLE TRIGGER x",
                ShareRowExclusive,
                "t",
                false,
            ),
            (
                "ALTER TABLE \"Order\" SET TABLESPACE fast",
                AccessExclusive,
                "\"Order\"",
                true,
            ),
            ("CREATE INDEX i ON t (c)", Share, "t", false),
            (
                "CREATE INDEX CONCURRENTLY i ON t (c)",
                ShareUpdateExclusive,
                "t",
                false,
            ),
            ("DROP TABLE app.t", AccessExclusive, "app.t", false),
            (
                "DROP INDEX CONCURRENTLY i",
                ShareUpdateExclusive,
                "index i",
                false,
            ),
            ("TRUNCATE t", AccessExclusive, "t", false),
            ("DELETE FROM t", RowExclusive, "t", false),
            ("UPDATE t SET c = 1", RowExclusive, "t", false),
            ("VACUUM FULL t", AccessExclusive, "t", true),
            ("VACUUM t", ShareUpdateExclusive, "t", false),
            ("CLUSTER t USING i", AccessExclusive, "t", true),
            (
                "REFRESH MATERIALIZED VIEW CONCURRENTLY m",
                Exclusive,
                "m",
                false,
            ),
            ("LOCK TABLE t IN SHARE MODE", Share, "t", false),
            (
                "ALTER TABLE t RENAME COLUMN a TO b",
                AccessExclusive,
                "t",
                false,
            ),
            (
                "ALTER INDEX i RENAME TO j",
                ShareUpdateExclusive,
                "index i",
                false,
            ),
            (
                "CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
                ShareRowExclusive,
                "t",
                false,
            ),
        ];
        for (sql, mode, target, rewrite) in cases {
            let got = locks(sql);
            assert_eq!(got[0], (*mode, target.to_string(), *rewrite), "{sql}");
        }
    }

    #[test]
    fn a_foreign_key_also_locks_the_referenced_table() {
        let got = locks("ALTER TABLE \"Post\" ADD CONSTRAINT f FOREIGN KEY (\"authorId\") REFERENCES \"User\" (id)");
        assert_eq!(
            got,
            vec![
                (LockMode::ShareRowExclusive, "\"Post\"".into(), false),
                (LockMode::ShareRowExclusive, "\"User\"".into(), false)
            ]
        );
        let got = locks("ALTER TABLE t ADD COLUMN a int, ALTER COLUMN b TYPE text");
        assert_eq!(got, vec![(LockMode::AccessExclusive, "t".into(), true)]);
    }
}
