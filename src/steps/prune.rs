//! `prune`: apply the environment's GFS retention to its backups. Never removes the
//! newest verified backup, one a run in progress refers to, the rollback point of a
//! recent deploy, a pinned one or one dated in the future; `dry_run` only says what
//! would go, and why each kept backup stays.

use crate::config::Diagnostic;
use crate::db::backup::retention::{self, Candidate, Decision};
use crate::db::backup::{age_text, catalog, human_size, Catalog};
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// Deletes one backup the plan let go; given the ids deleted so far (for the error).
type DeleteBackup<'a> =
    dyn FnMut(&crate::db::backup::Entry, &[String]) -> Result<(), StepError> + 'a;

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
        "remove backups outside the GFS retention (keeps the newest verified, in-use, pinned ones and recent deploys' rollback points)"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
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
                "Keeps the newest verified backup of each of the last {} days, {} ISO weeks and {} months (UTC) in {}, the newest verified backup, any backup a run in progress uses, the pre-deploy backup (rollback point) of each of the last {} deploys and of every deploy within the daily window, pinned backups (`dbflow backup pin`) and backups dated in the future; removes backups that failed verification.",
                r.daily,
                r.weekly,
                r.monthly,
                catalog.dir.display(),
                r.keep_deploys
            ),
            commands: vec![format!(
                "dbflow backup prune --env {}{}",
                cx.env.name,
                if self.dry_run { " --dry-run" } else { "" }
            )],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let remote = crate::db::backup::repository::remote_for(cx.project, &cx.env.name, cx.vars)
            .map_err(|message| StepError {
            message,
            code: crate::error::ExitCode::BadInput,
        })?;
        if let Some(remote) = remote {
            return self.prune_repository(cx, &remote);
        }
        let catalog = Catalog::new(cx.project, &cx.env.name);
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
        let points = catalog.rollback_points(&cx.project.root, &listing.entries);
        self.apply(
            cx,
            &listing.entries,
            &pinned,
            &points,
            None,
            &mut |entry, deleted| {
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
                })
            },
        )
    }
}

impl PruneStep {
    /// Prunes an object-storage repository, holding its prune lease: of two runners
    /// pruning at once, the second waits and plans on what the first left, so neither
    /// deletes a backup the other's plan keeps.
    fn prune_repository(
        &self,
        cx: &mut RunContext<'_>,
        remote: &crate::db::backup::repository::Remote,
    ) -> Result<Outcome, StepError> {
        use crate::db::backup::repository::object;
        let env = cx.env.name.clone();
        let rt = object::runtime().map_err(crate::steps::restoring::step_error)?;
        let lease = if self.dry_run {
            None
        } else {
            Some(
                rt.block_on(object::take_lease(
                    remote,
                    &env,
                    std::time::Duration::from_secs(120),
                ))
                .map_err(crate::steps::restoring::step_error)?,
            )
        };
        let result = self.prune_under_lease(cx, remote, &rt);
        if let Some(lease) = lease {
            rt.block_on(lease.release(remote));
        }
        result
    }

    fn prune_under_lease(
        &self,
        cx: &mut RunContext<'_>,
        remote: &crate::db::backup::repository::Remote,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Outcome, StepError> {
        use crate::db::backup::repository::object;
        let step_error = crate::steps::restoring::step_error;
        let env = cx.env.name.clone();
        if !self.dry_run {
            for id in rt
                .block_on(object::sweep_orphans(remote, &env))
                .map_err(step_error)?
            {
                cx.ui.out(&format!(
                    "  removed the dump of {id} (left without a manifest by an interrupted backup)"
                ));
            }
        }
        let (entries, unreadable) = rt
            .block_on(object::list(remote, &env))
            .map_err(step_error)?;
        for (key, why) in &unreadable {
            cx.ui
                .warn(&format!("{key} is not a backup ({why}); left alone"));
        }
        let pinned = catalog::pinned_by_runs(&cx.project.root, &env);
        let points = Catalog::new(cx.project, &env).rollback_points(&cx.project.root, &entries);
        let shown = remote.shown.clone();
        self.apply(
            cx,
            &entries,
            &pinned,
            &points,
            Some(&shown),
            &mut |entry, _| {
                rt.block_on(object::delete(remote, entry))
                    .map_err(step_error)
            },
        )
    }

    /// Applies the retention plan to `entries` (a folder's or a bucket's): prints each
    /// decision, deletes with `delete` (given what was deleted so far), journals and
    /// reports. `repository` names an object-storage repository in the summary.
    fn apply(
        &self,
        cx: &mut RunContext<'_>,
        entries: &[crate::db::backup::Entry],
        pinned: &std::collections::BTreeMap<String, String>,
        points: &std::collections::BTreeMap<String, Vec<catalog::DeployRef>>,
        repository: Option<&str>,
        delete: &mut DeleteBackup<'_>,
    ) -> Result<Outcome, StepError> {
        let policy = cx.project.backup_settings(&cx.env.name).retention;
        let now = chrono::Utc::now();
        let candidates: Vec<Candidate> = entries
            .iter()
            .map(|e| Candidate {
                id: e.id().to_string(),
                created_at: e.manifest.created_at,
                verified: e.verified(),
                future: e.future_dated(now),
                pinned: e
                    .manifest
                    .pinned
                    .as_ref()
                    .map(|p| p.reason.clone().unwrap_or_else(|| format!("by {}", p.by))),
                deploys: points
                    .get(e.id())
                    .map(|runs| runs.iter().map(|d| (d.run_id.clone(), d.rank)).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let decisions = retention::plan(&candidates, policy, pinned);
        let (mut kept, mut deleted, mut freed) = (Vec::new(), Vec::new(), 0u64);
        for (candidate, decision) in &decisions {
            let entry = entries
                .iter()
                .find(|e| e.id() == candidate.id)
                .expect("decisions come from the listing");
            let age = age_text(entry.age(now));
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
                        delete(entry, &deleted)?;
                    }
                    freed += entry.manifest.size;
                    deleted.push(candidate.id.clone());
                }
            }
        }
        cx.ui.out(&format!(
            "  {} kept, {} {} ({}){}",
            kept.len(),
            deleted.len(),
            if self.dry_run {
                "would be deleted"
            } else {
                "deleted"
            },
            human_size(freed),
            repository.map(|r| format!(" in {r}")).unwrap_or_default()
        ));
        cx.journal.log(crate::journal::Event::Prune {
            dry_run: self.dry_run,
            kept: kept.clone(),
            deleted: deleted.clone(),
            repository: repository.map(|r| r.to_string()),
        });
        Ok(Outcome::done()
            .with("kept", kept)
            .with("deleted", deleted)
            .with("dry_run", self.dry_run))
    }
}
