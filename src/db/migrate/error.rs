//! Why a deploy (or resolve, or down) stopped.

use crate::db::conn::DbError;
use crate::db::interruption::Interruption;

/// Why a deploy stopped.
#[derive(Debug, Clone)]
pub enum DeployError {
    /// It would not start: failed or modified migrations, or bad arguments.
    Refused(String),
    /// The deploy lock could not be had in time.
    LockTimeout(String),
    /// A migration failed; `applied` lists what this deploy applied before it.
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
    Db(DbError),
    /// SIGINT or SIGTERM stopped it; says where every migration of the deploy was left.
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

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployError::Refused(m) | DeployError::LockTimeout(m) => f.write_str(m),
            DeployError::MigrationFailed {
                name,
                message,
                applied,
                partial,
            } => {
                write!(f, "migration `{name}` failed: {message}")?;
                if *partial {
                    write!(f, "\nit ran outside a transaction and is now marked failed; fix the database, then `dbflow migrate resolve --rolled-back {name}` (to retry) or `--applied {name}` (if finished by hand)")?;
                } else {
                    write!(f, "\nPostgreSQL rolled it back: nothing of it was applied and it is still pending")?;
                }
                if applied.is_empty() {
                    write!(f, "\nno migration was applied by this deploy")
                } else {
                    write!(f, "\napplied before the failure: {}", applied.join(", "))
                }
            }
            DeployError::Db(e) => write!(f, "{e}"),
            DeployError::Interrupted(i) => write!(f, "{i}"),
        }
    }
}

// No `source()`: Display already prints the database's error (for `Db` it is the
// whole message), and a source would make it print twice.
impl std::error::Error for DeployError {}

impl From<DbError> for DeployError {
    fn from(e: DbError) -> Self {
        DeployError::Db(e)
    }
}
