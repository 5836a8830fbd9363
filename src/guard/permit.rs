//! Permits: the one door to destruction.
//!
//! Every function that drops, overwrites or replaces a database takes a [`Permit`], and
//! only this module makes one: [`authorize`] after the environment rails allowed the
//! operation (the very decision `dbflow check` prints), or [`own_copy`] for a database
//! dbflow itself made beside the environment's (a restored copy, a drill or rehearsal
//! database, the old database an in-place restore kept aside). A call site cannot forget
//! the guard: without a permit it does not compile.

use super::operation::Operation;
use super::rails::{Decision, GuardTarget};
use crate::config::{Project, ResolvedEnv};
use crate::db::backup::copies::{is_own_copy_name, OWN_COPY_KINDS};
use crate::journal::Journal;
use crate::ui::Ui;

/// Proof that the guard allowed `operation` on one database.
#[derive(Debug)]
pub struct Permit {
    operation: Operation,
    env: String,
    database: String,
}

impl Permit {
    /// The operation allowed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The environment it was given for.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// The one database it covers.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `Ok` when the permit covers `database`, else why not (a programming error that
    /// must still fail closed at run time).
    pub fn covers(&self, database: &str) -> Result<(), String> {
        if self.database == database {
            return Ok(());
        }
        Err(format!(
            "refusing to touch database `{database}`: the guard's permit is for `{}` ({} on `{}`)",
            self.database, self.operation, self.env
        ))
    }
}

/// Asks the rails about `operation` on `env`'s database; prints the overrides it used
/// and journals the decision (when a journal is given). The permit, or the blocking
/// decision.
pub fn authorize(
    project: &Project,
    env: &ResolvedEnv,
    operation: Operation,
    ui: &Ui,
    journal: Option<&mut Journal>,
) -> Result<Permit, Box<Decision>> {
    let decision = super::check(project, env, operation);
    super::announce(ui, &decision);
    if let Some(journal) = journal {
        for (event, data) in super::journal_events(&decision) {
            journal.record(event, data);
        }
    }
    permit_for(decision)
}

/// The permit a decision grants, if it allows the operation and names a database.
pub fn permit_for(decision: Decision) -> Result<Permit, Box<Decision>> {
    match (&decision.target.database, decision.allowed) {
        (Some(database), true) => Ok(Permit {
            operation: decision.operation,
            env: decision.target.env.clone(),
            database: database.clone(),
        }),
        _ => Err(Box::new(decision)),
    }
}

/// A permit to drop `database`, a copy dbflow made beside `target`'s database (a
/// half-restored copy, a drill or rehearsal database, a restored or kept-aside copy
/// named by `dbflow restore drop`). Refused for the environment's own database and for
/// any name dbflow does not give its copies, so no path reaches a live database here.
pub fn own_copy(target: &GuardTarget, database: &str) -> Result<Permit, String> {
    if target.database.as_deref() == Some(database) {
        return Err(format!(
            "`{database}` is the database of environment `{}`, not a copy dbflow made",
            target.env
        ));
    }
    if !is_own_copy_name(database) {
        return Err(format!(
            "`{database}` is not a database dbflow made (its copies are named <db>_{{{}}}_<YYYYMMDD_HHMMSS>)",
            OWN_COPY_KINDS.join(",")
        ));
    }
    Ok(Permit {
        operation: Operation::DropDatabase,
        env: target.env.clone(),
        database: database.to_string(),
    })
}

/// A permit to drop `database`, which the caller created moments ago in this process and
/// failed to fill (a half-restored copy): leaving it would only mislead. Never for a
/// database the process did not just create.
pub fn half_restored(database: &str) -> crate::error::Result<Permit> {
    Ok(Permit {
        operation: Operation::DropDatabase,
        env: String::new(),
        database: database.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protection;

    fn target(db: &str) -> GuardTarget {
        GuardTarget {
            env: "staging".into(),
            protection: Protection::Shared,
            database: Some(db.into()),
            database_unknown: None,
        }
    }

    #[test]
    fn own_copy_never_covers_the_live_database() {
        let t = target("shop_restore_20240704_020000");
        assert!(own_copy(&t, "shop_restore_20240704_020000").is_err());
        let t = target("shop");
        assert!(own_copy(&t, "shop").is_err());
        assert!(own_copy(&t, "other").is_err());
        let p = own_copy(&t, "shop_restore_20240704_020000").unwrap();
        assert!(p.covers("shop_restore_20240704_020000").is_ok());
        assert!(p.covers("shop").is_err());
    }
}
