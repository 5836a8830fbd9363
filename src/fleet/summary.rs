//! The fleet summary: one row per target (outcome, migrations applied, duration, backup
//! id), printed at the end of a fleet run and by `dbflow fleet summary RUN_ID`.

use super::record::{Outcome, TargetResult};
use crate::ui::human_ms;

/// Counts per outcome.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    /// Succeeded.
    pub succeeded: usize,
    /// Failed.
    pub failed: usize,
    /// Interrupted.
    pub interrupted: usize,
    /// Not started.
    pub not_started: usize,
    /// Started with no recorded end.
    pub unknown: usize,
}

/// Counts the outcomes of `results`.
pub fn count<'a>(results: impl IntoIterator<Item = &'a TargetResult>) -> Counts {
    let mut c = Counts::default();
    for r in results {
        match r.outcome {
            Outcome::Succeeded => c.succeeded += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::Interrupted => c.interrupted += 1,
            Outcome::NotStarted => c.not_started += 1,
            Outcome::Unknown => c.unknown += 1,
        }
    }
    c
}

/// The summary table, failures first then by name.
pub fn render(results: &[TargetResult]) -> String {
    let mut rows: Vec<&TargetResult> = results.iter().collect();
    rows.sort_by_key(|r| (r.outcome == Outcome::Succeeded, r.target.clone()));
    let width = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<width$}  {:<17}  {:>7}  {:>8}  {}\n",
        "TARGET", "OUTCOME", "APPLIED", "DURATION", "BACKUP"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<width$}  {:<17}  {:>7}  {:>8}  {}\n",
            r.target,
            r.outcome.as_str(),
            r.applied.len(),
            if r.duration_ms > 0 {
                human_ms(r.duration_ms)
            } else {
                "-".into()
            },
            r.backup_id.as_deref().unwrap_or("-"),
        ));
        if let Some(error) = &r.error {
            out.push_str(&format!("{:<width$}    └ {error}\n", ""));
        }
    }
    let c = count(results);
    out.push_str(&format!(
        "{} targets: {} succeeded, {} failed, {} interrupted, {} not started{}",
        results.len(),
        c.succeeded,
        c.failed,
        c.interrupted,
        c.not_started,
        if c.unknown > 0 {
            format!(
                ", {} unknown (the process was killed: `--resume` re-checks them)",
                c.unknown
            )
        } else {
            String::new()
        }
    ));
    out
}

/// The exit code of a fleet whose targets ended so: 0 when all succeeded; 130/143 when
/// a signal stopped it; else 1.
pub fn exit_code(results: &[TargetResult], signal: Option<i32>) -> crate::error::ExitCode {
    use crate::error::ExitCode;
    if let Some(signal) = signal {
        return ExitCode::Interrupted(signal);
    }
    if results.iter().all(|r| r.outcome == Outcome::Succeeded) {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}
