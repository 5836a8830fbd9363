//! The environment rails: may this operation run against this environment's database?
//!
//! Two rules decide:
//! - `forbidden`: the operation is forbidden for the environment (its own list under
//!   `guard.environments`, else its level's under `guard.forbidden`, else the built-in
//!   list for the level, see [`Operation::forbidden_by_default`]);
//! - `sandbox-name`: a destructive operation needs a database whose name matches
//!   `sandbox_pattern`, on every environment.
//!
//! Each rule can be overridden for one run by a named variable
//! (`DBFLOW_ALLOW_<OP>`, `DBFLOW_ALLOW_<OP>_ANY_DB`), which is printed loudly and
//! journaled; no override ever unlocks a `protected` environment.

use super::operation::Operation;
use crate::config::diagnostic::did_you_mean;
use crate::config::{Diagnostic, Project, Protection, ResolvedEnv, Vars};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where an operation would run: enough to rule on it without connecting.
#[derive(Debug, Clone, Serialize)]
pub struct GuardTarget {
    /// Environment name.
    pub env: String,
    /// Its protection level.
    pub protection: Protection,
    /// The database name, when the URL is known.
    pub database: Option<String>,
    /// Why the database name is unknown, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_unknown: Option<String>,
}

impl GuardTarget {
    /// The target of a resolved environment.
    pub fn of(env: &ResolvedEnv) -> Self {
        GuardTarget {
            env: env.name.clone(),
            protection: env.protection,
            database: env.url.database_name(),
            database_unknown: None,
        }
    }

    /// The target for this run. Unlike [`crate::config::environment::resolve`], a URL
    /// that cannot be interpolated (zero-config without `DATABASE_URL`) is not an error:
    /// the protection level is still known, the database name is not.
    pub fn resolve(project: &Project, flag: Option<&str>, vars: &Vars) -> Result<Self, Diagnostic> {
        match crate::config::environment::resolve(project, flag, vars) {
            Ok(env) => Ok(GuardTarget::of(&env)),
            Err(error) => {
                let (requested, _) = crate::config::environment::detect(project, flag, vars)?;
                let name = project
                    .aliases
                    .get(&requested)
                    .cloned()
                    .unwrap_or(requested);
                let protection = match project.environments.get(&name) {
                    Some(env) => env.protection,
                    None if project.implicit_environments => Protection::from_env_name(&name),
                    None => return Err(error),
                };
                Ok(GuardTarget {
                    env: name,
                    protection,
                    database: None,
                    database_unknown: Some(error.message),
                })
            }
        }
    }

    /// The same environment with another database (a command's own `DATABASE_URL`).
    pub fn with_database(&self, database: Option<String>) -> Self {
        match database {
            Some(name) => GuardTarget {
                database: Some(name),
                database_unknown: None,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// `` `production` (protected, database `shop`) ``.
    pub fn describe(&self) -> String {
        let db = match &self.database {
            Some(name) => format!("database `{name}`"),
            None => "database unknown".to_string(),
        };
        format!("`{}` ({}, {db})", self.env, self.protection.as_str())
    }
}

/// The `DBFLOW_ALLOW_*` variables set for this run.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    set: BTreeMap<String, String>,
}

/// Prefix of every override variable.
pub const OVERRIDE_PREFIX: &str = "DBFLOW_ALLOW_";

impl Overrides {
    /// The overrides in the process environment (never from `.env`: an override must be
    /// given on purpose, for one run).
    pub fn from_process() -> Self {
        // One that is not UTF-8 grants nothing (and does not panic).
        Overrides::from_pairs(crate::config::interpolate::utf8_env())
    }

    /// Overrides from explicit pairs; variables not starting with `DBFLOW_ALLOW_` are ignored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Overrides {
            set: pairs
                .into_iter()
                .filter(|(k, _)| k.starts_with(OVERRIDE_PREFIX))
                .collect(),
        }
    }

    /// Whether `var` is set to a yes value (`1`, `true`, `yes`).
    pub fn is_set(&self, var: &str) -> bool {
        self.set
            .get(var)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    }

    /// `DBFLOW_ALLOW_*` variables that name no override, with a suggestion.
    pub fn unknown(&self) -> Vec<String> {
        let known: Vec<String> = Operation::ALL
            .iter()
            .flat_map(|op| [op.override_var(), op.any_db_override_var()])
            .chain([super::promotion::OUTSIDE_CI_OVERRIDE.to_string()])
            .collect();
        self.set
            .keys()
            .filter(|k| !known.contains(k))
            .map(|k| {
                let help = did_you_mean(k, known.iter().map(String::as_str))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!("{k} is not a dbflow override and is ignored{help}")
            })
            .collect()
    }
}

/// What happened to a rule's override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideState {
    /// The variable is not set: the rule blocks.
    NotSet,
    /// The variable is set and unlocked the rule.
    Used,
    /// The variable is set but the environment is protected: the rule still blocks.
    Refused,
}

/// One rule that applies to the operation.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// `forbidden` or `sandbox-name`.
    pub rule: &'static str,
    /// Why the rule applies here.
    pub reason: String,
    /// Where the rule comes from (built-in default, or the Workflowfile line).
    pub source: String,
    /// The variable that overrides it.
    pub override_var: String,
    /// Whether it was overridden.
    pub override_state: OverrideState,
}

impl Violation {
    /// Whether this rule still blocks.
    pub fn blocks(&self) -> bool {
        self.override_state != OverrideState::Used
    }
}

/// The guard's answer for one operation.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The operation.
    pub operation: Operation,
    /// Where.
    #[serde(flatten)]
    pub target: GuardTarget,
    /// Whether it may run.
    pub allowed: bool,
    /// The rules that apply (blocking, overridden or refused).
    pub violations: Vec<Violation>,
    /// Allowed on a protected environment: a person must confirm (or `--yes`).
    pub needs_confirmation: bool,
}

impl Decision {
    /// Overrides that unlocked a rule.
    pub fn overrides_used(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.override_state == OverrideState::Used)
    }

    /// Overrides that were set but refused (protected environment).
    pub fn overrides_refused(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.override_state == OverrideState::Refused)
    }

    /// `ALLOWED`, `ALLOWED (override)` or `BLOCKED`.
    pub fn verdict(&self) -> &'static str {
        match (self.allowed, self.overrides_used().next().is_some()) {
            (false, _) => "BLOCKED",
            (true, true) => "ALLOWED (override)",
            (true, false) => "ALLOWED",
        }
    }

    /// The decision for people, several lines.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}: `{}` on {}\n",
            self.verdict(),
            self.operation,
            self.target.describe()
        );
        for v in &self.violations {
            let mark = if v.blocks() { "✘" } else { "⚠" };
            out.push_str(&format!("  {mark} rule {}: {}\n", v.rule, v.reason));
            out.push_str(&format!("      source: {}\n", v.source));
            let state = match v.override_state {
                OverrideState::NotSet if self.target.protection == Protection::Protected => {
                    "none: no override unlocks a protected environment".to_string()
                }
                OverrideState::NotSet => format!(
                    "set {}=1 for one run (printed and journaled)",
                    v.override_var
                ),
                OverrideState::Used => {
                    format!("{}=1 is set: unlocked for this run", v.override_var)
                }
                OverrideState::Refused => format!(
                    "{}=1 is set but ignored: no override unlocks a protected environment",
                    v.override_var
                ),
            };
            out.push_str(&format!("      override: {state}\n"));
        }
        if !self.allowed {
            out.push_str(&format!("  what it does: {}\n", self.operation.effect()));
            out.push_str(&format!("  instead: {}\n", self.operation.instead()));
        } else if self.needs_confirmation {
            out.push_str("  changes a protected database: dbflow asks for confirmation first (non-interactive runs need --yes)\n");
        }
        out
    }

    /// One line for a blocked step or command.
    pub fn blocked_message(&self) -> String {
        let reasons: Vec<String> = self
            .violations
            .iter()
            .filter(|v| v.blocks())
            .map(|v| format!("{}: {}", v.rule, v.reason))
            .collect();
        format!(
            "blocked by the guard: `{}` on {}: {}",
            self.operation,
            self.target.describe(),
            reasons.join("; ")
        )
    }
}

/// The forbidden operations for an environment and where that list comes from.
pub fn forbidden_for(
    project: &Project,
    env: &str,
    protection: Protection,
) -> (Vec<Operation>, String) {
    let parse = |list: &crate::config::model::ForbiddenList| -> Vec<Operation> {
        list.operations
            .iter()
            .filter_map(|t| Operation::parse(&t.value))
            .collect()
    };
    // A fleet target (`production/acme`) has its environment's rails.
    if let Some(list) = project
        .guard
        .environments
        .get(crate::config::fleet::base_env(env))
    {
        return (
            parse(list),
            format!("guard.environments.{env} at {}", list.loc),
        );
    }
    if let Some((_, list)) = project
        .guard
        .levels
        .iter()
        .find(|(level, _)| *level == protection)
    {
        return (
            parse(list),
            format!("guard.forbidden.{} at {}", protection.as_str(), list.loc),
        );
    }
    (
        Operation::ALL
            .iter()
            .copied()
            .filter(|op| op.forbidden_by_default(protection))
            .collect(),
        format!("dbflow's default for {} environments", protection.as_str()),
    )
}

/// The rules for one environment, read out of the project: what [`decide`] needs,
/// owned, for callers that outlive a borrow of the project (a Lua call's guard).
#[derive(Debug, Clone)]
pub struct Rules {
    forbidden: Vec<Operation>,
    source: String,
    sandbox_pattern: String,
    pattern_source: String,
}

impl Rules {
    /// The rules for environment `env` at `protection`.
    pub fn of(project: &Project, env: &str, protection: Protection) -> Self {
        let (forbidden, source) = forbidden_for(project, env, protection);
        Rules {
            forbidden,
            source,
            sandbox_pattern: project.sandbox_pattern.clone(),
            pattern_source: if project.sandbox_pattern
                == crate::config::load::DEFAULT_SANDBOX_PATTERN
            {
                "dbflow's default sandbox_pattern".to_string()
            } else {
                "sandbox_pattern in the Workflowfile".to_string()
            },
        }
    }

    /// Rules on `operation` against `target` (whose environment these rules are for).
    pub fn decide(
        &self,
        target: &GuardTarget,
        operation: Operation,
        overrides: &Overrides,
    ) -> Decision {
        let protected = target.protection == Protection::Protected;
        let state = |var: &str| match (overrides.is_set(var), protected) {
            (false, _) => OverrideState::NotSet,
            (true, false) => OverrideState::Used,
            (true, true) => OverrideState::Refused,
        };
        let mut violations = Vec::new();
        if self.forbidden.contains(&operation) {
            violations.push(Violation {
                rule: "forbidden",
                reason: format!(
                    "`{operation}` is forbidden on `{}` ({})",
                    target.env,
                    target.protection.as_str()
                ),
                source: self.source.clone(),
                override_var: operation.override_var(),
                override_state: state(&operation.override_var()),
            });
        }
        if operation.destructive() {
            let pattern = &self.sandbox_pattern;
            let reason = match &target.database {
                Some(name) => {
                    let matches = regex::Regex::new(pattern)
                        .map(|re| re.is_match(name))
                        .unwrap_or(false);
                    (!matches).then(|| format!(
                        "`{operation}` can delete data, so it needs a database whose name matches the sandbox pattern `{pattern}`; `{name}` does not"
                    ))
                }
                None => Some(format!(
                    "`{operation}` can delete data, so it needs a database whose name matches the sandbox pattern `{pattern}`, and the database name is unknown ({})",
                    target
                        .database_unknown
                        .as_deref()
                        .unwrap_or("no database in the URL")
                )),
            };
            if let Some(reason) = reason {
                violations.push(Violation {
                    rule: "sandbox-name",
                    reason,
                    source: self.pattern_source.clone(),
                    override_var: operation.any_db_override_var(),
                    override_state: state(&operation.any_db_override_var()),
                });
            }
        }
        let allowed = violations.iter().all(|v| !v.blocks());
        Decision {
            operation,
            target: target.clone(),
            allowed,
            violations,
            needs_confirmation: allowed && protected,
        }
    }
}

/// Rules on `operation` against `target`.
pub fn decide(
    project: &Project,
    target: &GuardTarget,
    operation: Operation,
    overrides: &Overrides,
) -> Decision {
    Rules::of(project, &target.env, target.protection).decide(target, operation, overrides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn project() -> Project {
        load::load(None, std::path::Path::new(".")).expect("zero-config project")
    }

    fn target(protection: Protection, db: &str) -> GuardTarget {
        GuardTarget {
            env: "x".into(),
            protection,
            database: Some(db.into()),
            database_unknown: None,
        }
    }

    fn overrides(vars: &[&str]) -> Overrides {
        Overrides::from_pairs(vars.iter().map(|v| (v.to_string(), "1".to_string())))
    }

    #[test]
    fn defaults_per_level() {
        let p = project();
        let none = Overrides::default();
        let d = decide(
            &p,
            &target(Protection::Sandbox, "app_test"),
            Operation::MigrateReset,
            &none,
        );
        assert!(d.allowed && d.violations.is_empty());
        let d = decide(
            &p,
            &target(Protection::Sandbox, "app_dev"),
            Operation::MigrateReset,
            &none,
        );
        assert!(!d.allowed);
        assert_eq!(d.violations[0].rule, "sandbox-name");
        let d = decide(
            &p,
            &target(Protection::Shared, "shop_test"),
            Operation::DbPush,
            &none,
        );
        assert_eq!(d.violations.len(), 1);
        assert_eq!(d.violations[0].rule, "forbidden");
        let d = decide(
            &p,
            &target(Protection::Protected, "shop"),
            Operation::Deploy,
            &none,
        );
        assert!(d.allowed && d.needs_confirmation);
    }

    #[test]
    fn overrides_unlock_shared_but_never_protected() {
        let p = project();
        let vars = overrides(&[
            "DBFLOW_ALLOW_MIGRATE_RESET",
            "DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB",
        ]);
        let d = decide(
            &p,
            &target(Protection::Shared, "shop_staging"),
            Operation::MigrateReset,
            &vars,
        );
        assert!(d.allowed);
        assert_eq!(d.overrides_used().count(), 2);
        assert_eq!(d.verdict(), "ALLOWED (override)");
        let d = decide(
            &p,
            &target(Protection::Protected, "shop"),
            Operation::MigrateReset,
            &vars,
        );
        assert!(!d.allowed);
        assert_eq!(d.overrides_refused().count(), 2);
        let only_one = overrides(&["DBFLOW_ALLOW_MIGRATE_RESET"]);
        let d = decide(
            &p,
            &target(Protection::Shared, "shop_staging"),
            Operation::MigrateReset,
            &only_one,
        );
        assert!(!d.allowed, "the sandbox-name rule still blocks");
    }

    #[test]
    fn override_values_and_unknown_names() {
        let o = Overrides::from_pairs([
            ("DBFLOW_ALLOW_SEED".to_string(), "0".to_string()),
            ("DBFLOW_ALLOW_DEPLOY".to_string(), "true".to_string()),
            ("DBFLOW_ALLOW_MIGRATE_DEVV".to_string(), "1".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        assert!(!o.is_set("DBFLOW_ALLOW_SEED"));
        assert!(o.is_set("DBFLOW_ALLOW_DEPLOY"));
        assert_eq!(
            o.unknown(),
            ["DBFLOW_ALLOW_MIGRATE_DEVV is not a dbflow override and is ignored (did you mean `DBFLOW_ALLOW_MIGRATE_DEV`?)"]
        );
    }
}
