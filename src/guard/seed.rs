//! The sanctioned production seed. Seeding a protected environment is forbidden (see
//! [`super::Operation::Seed`]); the one way through is a workflow that declares why
//! (`allow_seed: "<reason>"`), whose task or shell step seeds only after a verified
//! backup taken earlier in the same run and the word [`SEED_WORD`] typed (`--yes` never
//! answers it).

use super::rails::Decision;
use super::Operation;
use crate::config::Protection;

/// The word typed to confirm a sanctioned seed.
pub const SEED_WORD: &str = "SEED";

/// Whether `allow_seed` may lift this refusal: a seed on a protected environment,
/// refused only because seeding is forbidden there.
pub fn liftable(decision: &Decision) -> bool {
    decision.operation == Operation::Seed
        && decision.target.protection == Protection::Protected
        && !decision.allowed
        && decision
            .violations
            .iter()
            .filter(|v| v.blocks())
            .all(|v| v.rule == "forbidden")
}

/// A backup an earlier step of the run produced, as the seed rule sees it.
#[derive(Debug, Clone)]
pub struct RunBackup {
    /// Its id.
    pub id: String,
    /// Whether it passed verification.
    pub verified: bool,
    /// Whether this run took it (not a recent one reused).
    pub taken_by_this_run: bool,
}

/// Refuses unless a verified backup was taken earlier in this run.
pub fn require_backup(env: &str, workflow: &str, backup: Option<&RunBackup>) -> Result<(), String> {
    let why = match backup {
        None => "no backup was taken earlier in this run".to_string(),
        Some(b) if !b.taken_by_this_run => format!(
            "backup {} was reused from an earlier run (reuse_if_younger_than), not taken by this one",
            b.id
        ),
        Some(b) if !b.verified => format!("backup {} is not verified", b.id),
        Some(_) => return Ok(()),
    };
    Err(format!(
        "blocked by the guard: workflow `{workflow}` may seed protected `{env}` (allow_seed) only after a verified backup taken earlier in the same run, and {why}: add a `backup` step before the seed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_verified_backup_of_this_run_counts() {
        let b = |verified, this_run| RunBackup {
            id: "20240101_000000".into(),
            verified,
            taken_by_this_run: this_run,
        };
        assert!(require_backup("production", "seed", None).is_err());
        assert!(require_backup("production", "seed", Some(&b(true, false)))
            .unwrap_err()
            .contains("reused from an earlier run"));
        assert!(require_backup("production", "seed", Some(&b(false, true))).is_err());
        assert!(require_backup("production", "seed", Some(&b(true, true))).is_ok());
    }
}
