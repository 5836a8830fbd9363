//! Promotion and origin rules for deploys, in one place for `dbflow migrate deploy` and
//! the `deploy` step (both call [`check_deploy`] once they know what is pending), and
//! `dbflow check deploy` ([`check_for_check`]):
//!
//! - `deploy_from: ci`: outside CI (`CI=true`, or the environment's `ci_variable` set)
//!   a deploy is refused unless `DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1`, which is printed
//!   loudly and journaled, and which never unlocks a protected environment unless the
//!   environment gives a reason with `allow_deploy_outside_ci`;
//! - `require_applied_on: <env>`: every pending migration must already be applied, with
//!   the same checksum, on that environment, read from its own history table. When that
//!   database cannot be read the deploy is refused: nobody can tell it was tested there.

use super::rails::{GuardTarget, Overrides};
use crate::config::model::PromotionRules;
use crate::config::{Project, Protection, ResolvedEnv, Vars};
use crate::db::history;
use crate::db::migrate::{State, Status};
use crate::db::store::Store;
use crate::db::target::Target;
use serde_json::{json, Value};
use std::time::Duration;

/// The override for `deploy_from: ci`.
pub const OUTSIDE_CI_OVERRIDE: &str = "DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI";

/// How long reading the other environment's history may take before the deploy is
/// refused (an unreachable host must not hang a deploy).
const OTHER_ENV_TIMEOUT: Duration = Duration::from_secs(15);

/// What the rules decided for one deploy. The caller prints `warnings` loudly and
/// `notes` plainly, journals `events`, and refuses (exit 3) when `blocked` is set.
#[derive(Debug, Default)]
pub struct PromotionGate {
    /// Overrides used or ignored.
    pub warnings: Vec<String>,
    /// Rules that held.
    pub notes: Vec<String>,
    /// Journal events.
    pub events: Vec<(&'static str, Value)>,
    /// Why the deploy is refused, if it is.
    pub blocked: Option<String>,
}

impl PromotionGate {
    /// Prints the warnings (loudly) and notes, hands each event to `record` for the
    /// journal, and returns the refusal, if any.
    pub fn report(
        self,
        ui: &crate::ui::Ui,
        mut record: impl FnMut(&'static str, Value),
    ) -> Result<(), String> {
        for warning in &self.warnings {
            ui.warn(warning);
        }
        for note in &self.notes {
            ui.out(&format!("  {note}"));
        }
        for (event, fields) in self.events {
            record(event, fields);
        }
        self.blocked.map_or(Ok(()), Err)
    }
}

/// The migrations a deploy would apply, in order: pending (or rolled back) ones, up to
/// and including `to` when given.
pub fn pending(status: &Status, to: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = status
        .entries
        .iter()
        .filter(|e| matches!(e.state, State::Pending | State::RolledBack))
        .map(|e| e.name.clone())
        .collect();
    if let Some(end) = to.and_then(|to| names.iter().position(|n| n == to)) {
        names.truncate(end + 1);
    }
    names
}

/// Where the process's variables come from (the process environment; a test passes
/// its own).
pub trait Lookup {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment. CI and overrides are read from it, never from `.env`: they
/// describe this run, not the project.
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Which variable says this process runs in CI (`CI=true` or `1`, or `ci_variable`
/// set to anything but empty, `0` or `false`), if one does.
pub fn ci_detected(lookup: &dyn Lookup, ci_variable: Option<&str>) -> Option<String> {
    let yes = |v: &str| {
        let v = v.trim().to_ascii_lowercase();
        !v.is_empty() && v != "0" && v != "false"
    };
    if lookup
        .var("CI")
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
    {
        return Some("CI".into());
    }
    let name = ci_variable?;
    lookup
        .var(name)
        .filter(|v| yes(v))
        .map(|_| name.to_string())
}

/// What `dbflow check deploy` can tell without connecting: the origin rule, and a note
/// naming the environment `require_applied_on` reads when a deploy runs.
pub fn check_for_check(project: &Project, target: &GuardTarget) -> (PromotionGate, Option<String>) {
    let Some(declared) = project.environments.get(&target.env) else {
        return (PromotionGate::default(), None);
    };
    let gate = check_origin(target, &declared.promotion, &ProcessEnv);
    let note = declared.promotion.require_applied_on.as_ref().map(|other| {
        format!(
            "a deploy to `{}` also needs every pending migration applied on `{}` first, with the same checksum (require_applied_on at {}); `dbflow migrate deploy` reads its history to check",
            target.env, other.value, other.loc
        )
    });
    (gate, note)
}

/// The origin rule alone (`deploy_from: ci`); it needs no database.
pub fn check_origin(
    env: &GuardTarget,
    rules: &PromotionRules,
    lookup: &dyn Lookup,
) -> PromotionGate {
    let mut gate = PromotionGate::default();
    let Some(at) = &rules.ci_only else {
        return gate;
    };
    let ci_variable = rules.ci_variable.as_deref();
    if let Some(var) = ci_detected(lookup, ci_variable) {
        gate.notes
            .push(format!("✔ deploy_from: ci: running in CI ({var} is set)"));
        return gate;
    }
    let looked_at = match ci_variable {
        Some(name) => format!("CI is not `true` and {name} is not set"),
        None => "CI is not `true`".to_string(),
    };
    let override_set = Overrides::from_pairs(
        lookup
            .var(OUTSIDE_CI_OVERRIDE)
            .map(|v| (OUTSIDE_CI_OVERRIDE.to_string(), v)),
    )
    .is_set(OUTSIDE_CI_OVERRIDE);
    let protected = env.protection == Protection::Protected;
    let event = |reason: Option<&str>| {
        json!({
            "operation": "deploy",
            "env": env.env,
            "protection": env.protection.as_str(),
            "rule": "deploy-from-ci",
            "variable": OUTSIDE_CI_OVERRIDE,
            "reason": reason.unwrap_or("outside CI"),
        })
    };
    if override_set {
        match (&rules.allow_deploy_outside_ci, protected) {
            (_, false) | (Some(_), true) => {
                let reason = rules
                    .allow_deploy_outside_ci
                    .as_ref()
                    .map(|r| r.value.as_str());
                gate.warnings.push(format!(
                    "!!! OVERRIDE {OUTSIDE_CI_OVERRIDE}=1 lifts rule `deploy-from-ci` for `deploy` on `{}` ({}): {looked_at}{}; this is recorded in the journal",
                    env.env,
                    env.protection.as_str(),
                    reason.map(|r| format!("; the environment allows it: {r}")).unwrap_or_default()
                ));
                gate.events.push(("guard_override", event(reason)));
                return gate;
            }
            (None, true) => {
                gate.warnings.push(format!(
                    "!!! IGNORED {OUTSIDE_CI_OVERRIDE}=1: `{}` is protected and does not allow deploys outside CI (no `allow_deploy_outside_ci`)",
                    env.env
                ));
                gate.events.push(("guard_override_refused", event(None)));
            }
        }
    }
    let how = if protected && rules.allow_deploy_outside_ci.is_none() {
        format!(
            "run it from the pipeline; `{}` is protected, so {OUTSIDE_CI_OVERRIDE}=1 unlocks it only if the environment says why with `allow_deploy_outside_ci: \"<reason>\"`",
            env.env
        )
    } else {
        format!("run it from the pipeline, or set {OUTSIDE_CI_OVERRIDE}=1 for one run (printed and journaled)")
    };
    gate.events.push((
        "guard_blocked",
        json!({
            "operation": "deploy",
            "env": env.env,
            "protection": env.protection.as_str(),
            "rules": ["deploy-from-ci"],
        }),
    ));
    gate.blocked = Some(format!(
        "blocked by the guard: deploys to `{}` run from CI only (deploy_from: ci at {at}) and {looked_at}: {how}",
        env.env
    ));
    gate
}

/// The promotion and origin rules for deploying `pending` (in order) from `store` to
/// `env`: the origin rule first (it needs no database), then `require_applied_on`,
/// which reads the other environment's history only when something is pending.
pub async fn check_deploy(
    project: &Project,
    env: &ResolvedEnv,
    vars: &Vars,
    store: &Store,
    pending: &[String],
) -> PromotionGate {
    // A fleet target (`production/acme`) has its environment's promotion rules.
    let Some(declared) = project
        .environments
        .get(crate::config::fleet::base_env(&env.name))
    else {
        return PromotionGate::default();
    };
    let rules = &declared.promotion;
    let mut gate = check_origin(&GuardTarget::of(env), rules, &ProcessEnv);
    if gate.blocked.is_some() {
        return gate;
    }
    let Some(other) = &rules.require_applied_on else {
        return gate;
    };
    if pending.is_empty() {
        return gate;
    }
    let other_name = project
        .aliases
        .get(&other.value)
        .cloned()
        .unwrap_or_else(|| other.value.clone());
    let at = other.loc.to_string();
    let refuse = |gate: &mut PromotionGate, why: String| {
        gate.events.push((
            "guard_blocked",
            json!({
                "operation": "deploy",
                "env": env.name,
                "protection": env.protection.as_str(),
                "rules": ["require-applied-on"],
                "required_on": other_name,
            }),
        ));
        gate.blocked = Some(format!(
            "blocked by the guard: deploys to `{}` need every pending migration applied on `{other_name}` first (require_applied_on at {at}): {why}",
            env.name
        ));
    };
    let applied = match applied_on(project, &other_name, vars).await {
        Ok(rows) => rows,
        Err(why) => {
            refuse(
                &mut gate,
                format!("cannot read the migration history of `{other_name}` ({why}), so nobody can tell they were; fix the connection and deploy again"),
            );
            return gate;
        }
    };
    let mut missing = Vec::new();
    for name in pending {
        let row = applied.iter().rev().find(|r| &r.migration_name == name);
        let migration = store.get(name);
        match (row, migration) {
            (None, _) => missing.push(format!("{name} (not applied there)")),
            (Some(row), Some(m)) if !m.matches_checksum(&row.checksum) => missing.push(format!(
                "{name} (applied there with another checksum: the file changed since)"
            )),
            _ => {}
        }
    }
    gate.events.push((
        "promotion_check",
        json!({
            "env": env.name,
            "required_on": other_name,
            "pending": pending,
            "missing": missing,
        }),
    ));
    if missing.is_empty() {
        gate.notes.push(format!(
            "✔ require_applied_on: {other_name}: all {} pending migration(s) are applied there with the same checksum",
            pending.len()
        ));
    } else {
        refuse(
            &mut gate,
            format!(
                "{}; deploy them to `{other_name}` first (`dbflow migrate deploy --env {other_name}`)",
                missing.join(", ")
            ),
        );
    }
    gate
}

/// The history rows of `env_name` that are applied (finished, not rolled back).
async fn applied_on(
    project: &Project,
    env_name: &str,
    vars: &Vars,
) -> Result<Vec<history::HistoryRow>, String> {
    let other = crate::config::environment::resolve(project, Some(env_name), vars)
        .map_err(|d| d.message)?;
    let target = Target::for_env(project, &other);
    let read = async {
        let mut conn = target.connect().await.map_err(|e| e.to_string())?;
        let rows = history::read(&mut conn, &target.table).await;
        conn.close().await;
        rows.map_err(|e| format!("reading {}: {e}", target.table))
    };
    let rows = tokio::time::timeout(OTHER_ENV_TIMEOUT, read)
        .await
        .map_err(|_| {
            format!(
                "no answer from {} within {}s",
                target.url.redacted(),
                OTHER_ENV_TIMEOUT.as_secs()
            )
        })??;
    Ok(rows
        .into_iter()
        .filter(|r| r.finished_at.is_some() && r.rolled_back_at.is_none())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loc;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn env(protection: Protection) -> GuardTarget {
        GuardTarget {
            env: "production".into(),
            protection,
            database: Some("shop".into()),
            database_unknown: None,
        }
    }

    fn rules(allow: Option<&str>) -> PromotionRules {
        let loc = Loc {
            file: Arc::new("Workflowfile.yaml".into()),
            line: 3,
            col: 18,
        };
        PromotionRules {
            require_applied_on: None,
            ci_only: Some(loc.clone()),
            ci_variable: Some("GITHUB_ACTIONS".into()),
            allow_deploy_outside_ci: allow.map(|r| crate::config::Text {
                value: r.into(),
                loc,
            }),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn ci_is_ci_true_or_the_configured_variable() {
        assert_eq!(
            ci_detected(&vars(&[("CI", "true")]), None).as_deref(),
            Some("CI")
        );
        assert_eq!(ci_detected(&vars(&[("CI", "false")]), None), None);
        assert_eq!(
            ci_detected(&vars(&[("GITHUB_ACTIONS", "true")]), Some("GITHUB_ACTIONS")).as_deref(),
            Some("GITHUB_ACTIONS")
        );
        assert_eq!(
            ci_detected(&vars(&[("GITHUB_ACTIONS", "0")]), Some("GITHUB_ACTIONS")),
            None
        );
        assert_eq!(
            ci_detected(&vars(&[("GITHUB_ACTIONS", "true")]), None),
            None
        );
    }

    #[test]
    fn outside_ci_the_override_unlocks_shared_and_only_an_allowing_protected() {
        let over = vars(&[(OUTSIDE_CI_OVERRIDE, "1")]);
        let none = vars(&[]);
        let shared = env(Protection::Shared);
        let protected = env(Protection::Protected);
        assert!(check_origin(&shared, &rules(None), &none).blocked.is_some());
        let g = check_origin(&shared, &rules(None), &over);
        assert!(g.blocked.is_none() && g.events[0].0 == "guard_override");
        let g = check_origin(&protected, &rules(None), &over);
        assert!(g.blocked.is_some());
        assert_eq!(g.events[0].0, "guard_override_refused");
        assert!(g.warnings[0].starts_with("!!! IGNORED"), "{:?}", g.warnings);
        let g = check_origin(&protected, &rules(Some("break-glass")), &over);
        assert!(g.blocked.is_none(), "{:?}", g.blocked);
        assert!(g.warnings[0].contains("the environment allows it: break-glass"));
        let g = check_origin(&protected, &rules(None), &vars(&[("CI", "true")]));
        assert!(g.blocked.is_none() && g.events.is_empty());
    }
}
