//! The named operations the guard knows, what each does to a database, and the
//! built-in rules for where they are forbidden.

use crate::config::Protection;
use serde::Serialize;
use std::fmt;

/// An operation on a database that the guard rules on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `prisma migrate dev`: development migrations; may offer to reset the database.
    MigrateDev,
    /// `prisma db push`: schema changes without a migration.
    DbPush,
    /// `prisma db push --accept-data-loss`.
    DbPushAcceptDataLoss,
    /// `prisma db push --force-reset`.
    DbPushForceReset,
    /// `prisma migrate reset`: drop everything, re-apply, seed.
    MigrateReset,
    /// `prisma db seed` (also run by `migrate reset` and `migrate dev`).
    Seed,
    /// `dropdb`, `DROP DATABASE`.
    DropDatabase,
    /// Restoring a backup over the database itself.
    RestoreInPlace,
    /// Applying pending migrations (`migrate deploy`).
    Deploy,
    /// Running a migration's `down.sql`.
    MigrateDown,
    /// Rewriting the migration history (`migrate resolve`).
    MigrateResolve,
    /// Arbitrary SQL (`prisma db execute`).
    DbExecute,
}

impl Operation {
    /// Every operation, in the order they are documented.
    pub const ALL: &'static [Operation] = &[
        Operation::MigrateDev,
        Operation::DbPush,
        Operation::DbPushAcceptDataLoss,
        Operation::DbPushForceReset,
        Operation::MigrateReset,
        Operation::Seed,
        Operation::DropDatabase,
        Operation::RestoreInPlace,
        Operation::Deploy,
        Operation::MigrateDown,
        Operation::MigrateResolve,
        Operation::DbExecute,
    ];

    /// The operation's name (`migrate-dev`).
    pub fn name(self) -> &'static str {
        match self {
            Operation::MigrateDev => "migrate-dev",
            Operation::DbPush => "db-push",
            Operation::DbPushAcceptDataLoss => "db-push-accept-data-loss",
            Operation::DbPushForceReset => "db-push-force-reset",
            Operation::MigrateReset => "migrate-reset",
            Operation::Seed => "seed",
            Operation::DropDatabase => "drop-database",
            Operation::RestoreInPlace => "restore-in-place",
            Operation::Deploy => "deploy",
            Operation::MigrateDown => "migrate-down",
            Operation::MigrateResolve => "migrate-resolve",
            Operation::DbExecute => "db-execute",
        }
    }

    /// Looks an operation up by name.
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// Every name, for suggestions and help.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Operation::ALL.iter().map(|op| op.name())
    }

    /// What it does to the database, in one sentence.
    pub fn effect(self) -> &'static str {
        match self {
            Operation::MigrateDev => "`prisma migrate dev` is a development command: it applies unapplied migrations and, when it finds drift or an edited migration, resets the database (every table dropped)",
            Operation::DbPush => "`prisma db push` changes the schema without a migration, so the database drifts from the migration history every other environment follows",
            Operation::DbPushAcceptDataLoss => "`prisma db push --accept-data-loss` drops the columns and tables that are not in schema.prisma, with their data",
            Operation::DbPushForceReset => "`prisma db push --force-reset` drops the whole schema and recreates it: every row is lost",
            Operation::MigrateReset => "`prisma migrate reset` drops every table, re-applies all migrations and seeds: every row is lost",
            Operation::Seed => "seeding writes fixture data into the database",
            Operation::DropDatabase => "dropping the database deletes it and every row in it",
            Operation::RestoreInPlace => "restoring in place overwrites the database with a backup: everything written since the backup is lost",
            Operation::Deploy => "deploying applies the pending migrations",
            Operation::MigrateDown => "running down.sql reverts a migration's schema change and the data it held",
            Operation::MigrateResolve => "resolving rewrites rows of the migration history table",
            Operation::DbExecute => "`prisma db execute` runs arbitrary SQL",
        }
    }

    /// The safe way to get what the operation is usually run for.
    pub fn instead(self) -> &'static str {
        match self {
            Operation::MigrateDev => "create migrations with `prisma migrate dev` against a local database, and apply them here with `dbflow migrate deploy` (or `prisma migrate deploy`)",
            Operation::DbPush | Operation::DbPushAcceptDataLoss => "create a migration locally (`prisma migrate dev --create-only`), review it, and deploy it with `dbflow migrate deploy`",
            Operation::DbPushForceReset | Operation::MigrateReset | Operation::DropDatabase => "reset only a disposable database (its name must match sandbox_pattern); to go back in time, restore a backup into a new database (`dbflow restore`)",
            Operation::Seed => "load reference data through a migration, or seed a non-protected copy",
            Operation::RestoreInPlace => "restore into a new database, check it, then switch the application over",
            Operation::Deploy | Operation::MigrateDown | Operation::MigrateResolve | Operation::DbExecute => "run it where the Workflowfile allows it",
        }
    }

    /// Whether it can delete data: then it also needs a database whose name matches the
    /// sandbox pattern, on every environment.
    pub fn destructive(self) -> bool {
        matches!(
            self,
            Operation::MigrateDev
                | Operation::DbPushAcceptDataLoss
                | Operation::DbPushForceReset
                | Operation::MigrateReset
                | Operation::DropDatabase
                | Operation::RestoreInPlace
        )
    }

    /// Forbidden at this protection level unless the Workflowfile says otherwise: on
    /// shared and protected databases nothing that bypasses migrations or loses data;
    /// on protected ones no seeding either.
    pub fn forbidden_by_default(self, level: Protection) -> bool {
        match level {
            Protection::Sandbox => false,
            Protection::Shared => matches!(
                self,
                Operation::MigrateDev
                    | Operation::DbPush
                    | Operation::DbPushAcceptDataLoss
                    | Operation::DbPushForceReset
                    | Operation::MigrateReset
                    | Operation::DropDatabase
                    | Operation::RestoreInPlace
            ),
            Protection::Protected => {
                self.forbidden_by_default(Protection::Shared) || self == Operation::Seed
            }
        }
    }

    /// The override variable for the `forbidden` rule: `DBFLOW_ALLOW_MIGRATE_DEV`.
    pub fn override_var(self) -> String {
        format!(
            "DBFLOW_ALLOW_{}",
            self.name().to_ascii_uppercase().replace('-', "_")
        )
    }

    /// The override variable for the `sandbox-name` rule: `DBFLOW_ALLOW_MIGRATE_DEV_ANY_DB`.
    pub fn any_db_override_var(self) -> String {
        format!("{}_ANY_DB", self.override_var())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_override_names_are_stable() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.name()), Some(*op));
        }
        assert_eq!(
            Operation::MigrateDev.any_db_override_var(),
            "DBFLOW_ALLOW_MIGRATE_DEV_ANY_DB"
        );
        assert_eq!(
            Operation::DbPushAcceptDataLoss.override_var(),
            "DBFLOW_ALLOW_DB_PUSH_ACCEPT_DATA_LOSS"
        );
    }

    #[test]
    fn defaults_tighten_with_protection() {
        for op in Operation::ALL {
            assert!(!op.forbidden_by_default(Protection::Sandbox));
            if op.forbidden_by_default(Protection::Shared) {
                assert!(op.forbidden_by_default(Protection::Protected), "{op}");
            }
        }
        assert!(Operation::Seed.forbidden_by_default(Protection::Protected));
        assert!(!Operation::Seed.forbidden_by_default(Protection::Shared));
        assert!(!Operation::Deploy.forbidden_by_default(Protection::Protected));
    }
}
