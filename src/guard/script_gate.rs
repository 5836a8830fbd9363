//! The guard for Lua scripts: every `dbflow.exec{…}` command and every `dbflow.sql`
//! statement is read by the same classifier as `dbflow check` and task commands, and
//! ruled on for the run's environment before it runs.

use super::command_line::{self, PackageScripts};
use super::gate::{Gate, GateEvent};
use super::rails::Rules;
use super::{announce, journal_events, migrations, GuardTarget, Operation, Overrides};
use crate::config::{Project, ResolvedEnv};
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

impl ScriptGate {
    /// The operations `line` performs, each with the database it names, and the target
    /// its `DATABASE_URL` (in `env`) points at.
    fn detect(
        &self,
        line: &str,
        env: &[(String, String)],
    ) -> (GuardTarget, Vec<(Operation, Option<String>)>) {
        let database = env
            .iter()
            .rev()
            .find(|(k, _)| k == "DATABASE_URL")
            .and_then(|(_, v)| crate::config::DbUrl::new(v).database_name());
        let base = self.target.with_database(database);
        let found = command_line::detect(line, &self.scripts)
            .into_iter()
            .map(|d| (d.operation, d.database))
            .collect();
        (base, found)
    }

    /// The rails' decision on the seed `line` performs, if it seeds.
    pub fn seed_decision(&self, line: &str, env: &[(String, String)]) -> Option<super::Decision> {
        let (base, found) = self.detect(line, env);
        found
            .into_iter()
            .find(|(op, _)| *op == Operation::Seed)
            .map(|(op, db)| {
                self.rules
                    .decide(&base.with_database(db), op, &self.overrides)
            })
    }

    /// Like [`Gate::command`], with `sanctioned` operations already decided by the
    /// caller (a workflow's `allow_seed`, after its own backup and typed word).
    pub fn command_sanctioned(
        &self,
        line: &str,
        env: &[(String, String)],
        sanctioned: &[Operation],
    ) -> (Vec<GateEvent>, Result<(), String>) {
        let (base, mut found) = self.detect(line, env);
        found.retain(|(op, _)| !sanctioned.contains(op));
        self.rule(&found, &base, &crate::lint::ast::summary(line))
    }
}

impl Gate for ScriptGate {
    fn command(
        &self,
        line: &str,
        env: &[(String, String)],
    ) -> (Vec<GateEvent>, Result<(), String>) {
        self.command_sanctioned(line, env, &[])
    }

    fn sql(&self, sql: &str) -> (Vec<GateEvent>, Result<(), String>) {
        let found = command_line::sql_operations(sql);
        self.rule(&found, &self.target, &crate::lint::ast::summary(sql))
    }
}

impl ScriptGate {
    /// The gate for documenting `env`: no override read from this shell, nobody asked,
    /// nothing printed.
    pub fn for_docs(project: &Project, env: &ResolvedEnv) -> Self {
        ScriptGate {
            rules: Rules::of(project, &env.name, env.protection),
            target: GuardTarget::of(env),
            scripts: command_line::package_scripts(&project.root),
            overrides: Overrides::default(),
            yes: false,
            ui: Ui {
                quiet: true,
                ..Ui::new(false)
            },
        }
    }

    /// The refusals of `line`: the operations it performs ruled on exactly as
    /// [`Self::command_sanctioned`] rules on them before a task or shell step runs.
    /// `allow_seed` is the workflow's `allow_seed` being set: a liftable seed is then
    /// sanctioned (after its backup and typed word), as at run time.
    pub fn refusals(
        &self,
        line: &str,
        command_env: &[(String, String)],
        allow_seed: bool,
    ) -> Vec<super::Decision> {
        let sanctioned = self
            .seed_decision(line, command_env)
            .filter(|d| allow_seed && super::seed::liftable(d))
            .map(|_| Operation::Seed);
        let (base, found) = self.detect(line, command_env);
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (operation, database) in found {
            if Some(operation) == sanctioned || seen.contains(&operation) {
                continue;
            }
            seen.push(operation);
            let decision =
                self.rules
                    .decide(&base.with_database(database), operation, &self.overrides);
            if !decision.allowed {
                out.push(decision);
            }
        }
        out
    }
}
