//! Why a deploy (or resolve, or down) stopped.

use crate::db::conn::DbError;
use crate::db::interruption::Interruption;

/// Why a deploy stopped. No variant has a `source()`: each message already holds the
/// database's error (for `Db` it is the whole message), and a source would make it
/// print twice.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeployError {
    /// It would not start: failed or modified migrations, or bad arguments.
    #[error("{0}")]
    Refused(String),
    /// The deploy lock could not be had in time.
    #[error("{0}")]
    LockTimeout(String),
    /// A migration failed; `applied` lists what this deploy applied before it.
    #[error("{}", migration_failed(.name, .message, .applied, *.partial))]
    MigrationFailed {
        /// The failing migration.
        name: String,
        /// Error with statement and line.
        message: String,
        /// Applied before the failure.
        applied: Vec<String>,
        /// True when part of it stayed applied (non-transactional).
        partial: bool,
    },
    /// The database itself failed (connection lost, …).
    #[error("{0}")]
    Db(DbError),
    /// SIGINT or SIGTERM stopped it; says where every migration of the deploy was left.
    #[error("{0}")]
    Interrupted(Interruption),
}

impl DeployError {
    /// The signal that stopped the deploy, when one did.
    pub fn interrupted_by(&self) -> Option<i32> {
        match self {
            DeployError::Interrupted(i) => Some(i.signal),
            _ => None,
        }
    }
}

/// A failed migration's message: what failed, what was left, what was applied before.
fn migration_failed(name: &str, message: &str, applied: &[String], partial: bool) -> String {
    let left = if partial {
        format!("it ran outside a transaction and is now marked failed; fix the database, then `dbflow migrate resolve --rolled-back {name}` (to retry) or `--applied {name}` (if finished by hand)")
    } else {
        "PostgreSQL rolled it back: nothing of it was applied and it is still pending".into()
    };
    let before = if applied.is_empty() {
        "no migration was applied by this deploy".into()
    } else {
        format!("applied before the failure: {}", applied.join(", "))
    };
    format!("migration `{name}` failed: {message}\n{left}\n{before}")
}

impl From<DbError> for DeployError {
    fn from(e: DbError) -> Self {
        DeployError::Db(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(partial: bool, applied: &[&str]) -> String {
        DeployError::MigrationFailed {
            name: "2_b".into(),
            message: "boom".into(),
            applied: applied.iter().map(|s| s.to_string()).collect(),
            partial,
        }
        .to_string()
    }

    #[test]
    fn messages_say_what_was_left_and_how_to_proceed() {
        assert_eq!(
            failed(false, &[]),
            "migration `2_b` failed: boom\nPostgreSQL rolled it back: nothing of it was applied and it is still pending\nno migration was applied by this deploy"
        );
        assert_eq!(
            failed(true, &["1_a", "1_b"]),
            "migration `2_b` failed: boom\nit ran outside a transaction and is now marked failed; fix the database, then `dbflow migrate resolve --rolled-back 2_b` (to retry) or `--applied 2_b` (if finished by hand)\napplied before the failure: 1_a, 1_b"
        );
        assert_eq!(DeployError::Refused("no".into()).to_string(), "no");
        assert_eq!(DeployError::LockTimeout("held".into()).to_string(), "held");
        let db = DbError {
            message: "gone".into(),
            code: Some("57P01".into()),
            position: None,
            detail: Some("DETAIL: x".into()),
        };
        assert_eq!(db.to_string(), "gone (SQLSTATE 57P01)\nDETAIL: x");
        assert_eq!(DbError::message("plain").to_string(), "plain");
        let e = DeployError::from(db);
        assert_eq!(e.to_string(), "gone (SQLSTATE 57P01)\nDETAIL: x");
        // No source: the message already holds the database's error (printed once).
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.interrupted_by(), None);
    }
}
