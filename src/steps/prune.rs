//! `prune`: apply the environment's GFS retention to its backups. Never removes the
//! newest verified backup or one a run in progress refers to; `dry_run` only says what
//! would go, and why each kept backup stays.

use crate::config::Diagnostic;
use crate::db::backup::retention::{self, Candidate, Decision};
use crate::db::backup::{catalog, human_age, human_size, Catalog};
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `prune` step kind.
pub struct PruneKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    dry_run: bool,
}

/// A configured `prune` step.
#[derive(Debug)]
pub struct PruneStep {
    dry_run: bool,
}

impl StepKind for PruneKind {
    fn name(&self) -> &str {
        "prune"
    }

    fn summary(&self) -> &str {
        "remove backups outside the GFS retention (keeps the newest verified and in-use ones)"
    }

    fn parse(&self, params: &serde_json::Value) -> Result<Box<dyn Step>, String> {
        let params: Params = if params.is_null() {
            Params::default()
        } else {
            parse_params(params)?
        };
        Ok(Box::new(PruneStep {
            dry_run: params.dry_run,
        }))
    }
}

impl Step for PruneStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let r = cx.project.backup_settings(&cx.env.name).retention;
        let catalog = Catalog::new(cx.project, &cx.env.name);
        Ok(StepDoc {
            summary: format!(
                "{} backups of `{}` outside the retention ({} daily, {} weekly, {} monthly)",
                if self.dry_run { "List" } else { "Remove" },
                cx.env.name,
                r.daily,
                r.weekly,
                r.monthly
            ),
            details: format!(
                "Keeps the newest verified backup of each of the last {} days, {} ISO weeks and {} months (UTC) in {}, the newest verified backup, and any backup a run in progress uses; removes backups that failed verification.",
                r.daily,
                r.weekly,
                r.monthly,
                catalog.dir.display()
            ),
            commands: vec![format!(
                "dbflow backup prune --env {}{}",
                cx.env.name,
                if self.dry_run { " --dry-run" } else { "" }
            )],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let catalog = Catalog::new(cx.project, &cx.env.name);
        let policy = cx.project.backup_settings(&cx.env.name).retention;
        if !self.dry_run {
            for removed in catalog.sweep_partials() {
                cx.ui.out(&format!(
                    "  removed {} (left by an interrupted backup)",
                    removed.display()
                ));
            }
        }
        let listing = catalog.scan();
        for (path, why) in &listing.unreadable {
            cx.ui.warn(&format!(
                "{} is not a backup ({why}); left alone",
                path.display()
            ));
        }
        let pinned = catalog::pinned_by_runs(&cx.project.root, &cx.env.name);
        let candidates: Vec<Candidate> = listing
            .entries
            .iter()
            .map(|e| Candidate {
                id: e.id().to_string(),
                created_at: e.manifest.created_at,
                verified: e.verified(),
            })
            .collect();
        let decisions = retention::plan(&candidates, policy, &pinned);
        let now = chrono::Utc::now();
        let mut kept = Vec::new();
        let mut deleted = Vec::new();
        let mut freed = 0u64;
        for (candidate, decision) in &decisions {
            let entry = listing
                .entries
                .iter()
                .find(|e| e.id() == candidate.id)
                .expect("decisions come from the listing");
            let age = human_age(entry.age(now));
            match decision {
                Decision::Keep(reasons) => {
                    cx.ui.out(&format!(
                        "  {:<12} {}  {age:>7}  {}",
                        "keep",
                        candidate.id,
                        reasons.join(", ")
                    ));
                    kept.push(candidate.id.clone());
                }
                Decision::Delete(why) => {
                    let verb = if self.dry_run {
                        "would delete"
                    } else {
                        "delete"
                    };
                    cx.ui
                        .out(&format!("  {verb:<12} {}  {age:>7}  {why}", candidate.id));
                    if !self.dry_run {
                        std::fs::remove_dir_all(&entry.dir).map_err(|e| {
                            StepError::failed(format!(
                                "removing {}: {e} (already removed: {})",
                                entry.dir.display(),
                                if deleted.is_empty() {
                                    "none".to_string()
                                } else {
                                    deleted.join(", ")
                                }
                            ))
                        })?;
                    }
                    freed += entry.manifest.size;
                    deleted.push(candidate.id.clone());
                }
            }
        }
        cx.ui.out(&format!(
            "  {} kept, {} {} ({})",
            kept.len(),
            deleted.len(),
            if self.dry_run {
                "would be deleted"
            } else {
                "deleted"
            },
            human_size(freed)
        ));
        cx.journal.record(
            "prune",
            serde_json::json!({ "dry_run": self.dry_run, "kept": kept, "deleted": deleted }),
        );
        Ok(Outcome::done()
            .with("kept", kept)
            .with("deleted", deleted)
            .with("dry_run", self.dry_run))
    }
}
