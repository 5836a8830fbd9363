//! The guard for Lua scripts: every `dbflow.exec{…}` command and every `dbflow.sql`
//! statement is read by the same classifier as `dbflow check` and task commands, and
//! ruled on for the run's environment before it runs.

use super::command_line::{self, PackageScripts};
use super::rails::Rules;
use super::{announce, journal_events, migrations, GuardTarget, Operation, Overrides};
use crate::config::{Project, ResolvedEnv};
use crate::lua::api::{Gate, GateEvent};
use crate::ui::Ui;

/// A [`Gate`] for one run's environment.
pub struct ScriptGate {
    rules: Rules,
    target: GuardTarget,
    scripts: PackageScripts,
    overrides: Overrides,
    yes: bool,
    ui: Ui,
}

impl ScriptGate {
    /// The gate for scripts running against `env`; `yes` is the run's `--yes`.
    pub fn new(project: &Project, env: &ResolvedEnv, yes: bool, ui: &Ui) -> Self {
        ScriptGate {
            rules: Rules::of(project, &env.name, env.protection),
            target: GuardTarget::of(env),
            scripts: command_line::package_scripts(&project.root),
            overrides: Overrides::from_process(),
            yes,
            ui: ui.clone(),
        }
    }

    /// Rules on each operation found (each once), at `base` or the database the
    /// command names; asks on a protected environment.
    fn rule(
        &self,
        found: &[(Operation, Option<String>)],
        base: &GuardTarget,
        what: &str,
    ) -> (Vec<GateEvent>, Result<(), String>) {
        let mut events: Vec<GateEvent> = Vec::new();
        let mut seen = Vec::new();
        let mut to_confirm = Vec::new();
        for (operation, database) in found {
            if seen.contains(operation) {
                continue;
            }
            seen.push(*operation);
            let decision = self.rules.decide(
                &base.with_database(database.clone()),
                *operation,
                &self.overrides,
            );
            announce(&self.ui, &decision);
            events.extend(
                journal_events(&decision)
                    .into_iter()
                    .map(|(name, fields)| (name.to_string(), fields)),
            );
            if !decision.allowed {
                for line in decision.render().lines() {
                    self.ui.out(&format!("  {line}"));
                }
                return (
                    events,
                    Err(format!("{} (in `{what}`)", decision.blocked_message())),
                );
            }
            if decision.needs_confirmation {
                to_confirm.push(operation.name());
            }
        }
        if to_confirm.is_empty() {
            return (events, Ok(()));
        }
        let question = format!(
            "`{what}` runs {} on protected `{}`. Run it?",
            to_confirm.join(", "),
            self.target.env
        );
        let answer = migrations::confirm(&question, self.yes);
        events.push((
            "protected_confirmation".to_string(),
            serde_json::json!({
                "operations": to_confirm,
                "command": what,
                "confirmed_by": answer.as_ref().ok(),
                "refused": answer.as_ref().err(),
            }),
        ));
        (events, answer.map(|_| ()))
    }
}

impl Gate for ScriptGate {
    fn command(
        &self,
        line: &str,
        env: &[(String, String)],
    ) -> (Vec<GateEvent>, Result<(), String>) {
        let database = env
            .iter()
            .rev()
            .find(|(k, _)| k == "DATABASE_URL")
            .and_then(|(_, v)| crate::config::DbUrl::new(v).database_name());
        let base = self.target.with_database(database);
        let found: Vec<(Operation, Option<String>)> = command_line::detect(line, &self.scripts)
            .into_iter()
            .map(|d| (d.operation, d.database))
            .collect();
        self.rule(&found, &base, &crate::lint::ast::summary(line))
    }

    fn sql(&self, sql: &str) -> (Vec<GateEvent>, Result<(), String>) {
        let found = command_line::sql_operations(sql);
        self.rule(&found, &self.target, &crate::lint::ast::summary(sql))
    }
}
