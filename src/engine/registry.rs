//! The step contract: every step kind is a plugin behind [`StepKind`], producing a
//! configured [`Step`] from its typed parameters at load time.

use super::context::RunContext;
use super::plan::PlanContext;
use crate::error::ExitCode;
use indexmap::IndexMap;
use serde::Serialize;
use std::sync::Arc;

/// What a step is and how to do it by hand: shown by `--dry-run`, rendered in runbooks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StepDoc {
    /// One line: what the step does.
    pub summary: String,
    /// Longer explanation (may be empty).
    pub details: String,
    /// The equivalent manual commands, redacted.
    pub commands: Vec<String>,
}

/// A question a step asks a person before it goes on, exactly as the engine asks it in
/// the planned environment: runbooks list these instead of describing them in prose.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Confirmation {
    /// The question as printed (`N` stands for a count only known at run time).
    pub question: String,
    /// What the person answers: `[y/N]`, `[Y/n]`, or `type RESTORE`.
    pub answer: String,
    /// What answers it when nobody can be asked (`--yes`, `--confirm RESTORE`, …);
    /// "" when only a person can.
    pub unattended: String,
}

/// A step's successful result.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Values later steps can read (`cx.output(step_id)`), journaled.
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Set when the step decided there was nothing to do, with the reason.
    pub skipped: Option<String>,
}

impl Outcome {
    /// Success with no outputs.
    pub fn done() -> Self {
        Outcome::default()
    }

    /// Adds an output value.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.outputs.insert(key.to_string(), value.into());
        self
    }
}

/// A step's failure.
#[derive(Debug, Clone)]
pub struct StepError {
    /// What went wrong, for people.
    pub message: String,
    /// Exit code the run ends with if nothing handles the failure.
    pub code: ExitCode,
}

impl StepError {
    /// A failure (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            code: ExitCode::Failed,
        }
    }

    /// Blocked by a guard (exit code 3).
    pub fn blocked(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            code: ExitCode::Blocked,
        }
    }
}

/// Something a step refers to, checked at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A task by name.
    Task(String),
    /// A workflow by name; the engine runs it as a nested plan.
    Workflow(String),
}

/// A configured step (kind + parameters).
pub trait Step: Send + Sync + std::fmt::Debug {
    /// Explanation and manual equivalent, for dry runs and docs.
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, crate::config::Diagnostic>;
    /// Does the work.
    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError>;
    /// Tasks and workflows this step names.
    fn references(&self) -> Vec<Reference> {
        Vec::new()
    }
    /// What the step is for the engine's rules (see [`Role`]).
    fn role(&self) -> Option<Role> {
        None
    }
    /// Whether the step works through the run's database session
    /// ([`crate::engine::session::DbSession`]). The engine closes the session before
    /// every step that does not, so those never meet dbflow's own connection.
    fn uses_db_session(&self) -> bool {
        false
    }
    /// The confirmations this step asks in `cx`'s environment (none by default), for
    /// runbooks and diagrams: the same decision the step makes when it runs.
    fn confirmations(&self, _cx: &PlanContext<'_>) -> Vec<Confirmation> {
        Vec::new()
    }
    /// The guarded operations this step asks the guard about before it changes anything,
    /// so runbooks list a workflow only where the guard allows all of them.
    fn operations(&self) -> Vec<crate::guard::Operation> {
        Vec::new()
    }
}

/// What a step is to the engine's rules, declared by the step kind instead of the engine
/// testing kind names: a protected deploy needs a backup before and a verify after, a
/// workflow's `max_backup_age` goes to its deploys, and a failure handler that restores
/// only runs after something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes a backup (the `backup` kind).
    Backup,
    /// Applies migrations to the environment's database (the `deploy` kind).
    Deploy,
    /// Checks the database after a change (the `verify` kind).
    Verify,
    /// Puts a backup back (`restore`, `rollback`).
    Restore,
}

/// A step kind: a name and a parameter parser.
pub trait StepKind: Send + Sync {
    /// The key used in the Workflowfile (`task`, `shell`, …).
    fn name(&self) -> &str;
    /// One line for `dbflow list --kinds` and errors.
    fn summary(&self) -> &str;
    /// What steps of this kind are for the engine's rules, before they are built
    /// (validation and planning see kinds, not configured steps).
    fn role(&self) -> Option<Role> {
        None
    }
    /// Parses and validates parameters; the error says what is wrong with them.
    fn parse(&self, params: &serde_json::Value) -> Result<Box<dyn Step>, ParamError>;
}

/// All known step kinds, built-in and scripted.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: IndexMap<String, Arc<dyn StepKind>>,
}

impl Registry {
    /// Adds a kind (a later registration with the same name replaces the earlier one).
    pub fn register(&mut self, kind: Arc<dyn StepKind>) {
        self.kinds.insert(kind.name().to_string(), kind);
    }

    /// Looks a kind up.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn StepKind>> {
        self.kinds.get(name)
    }

    /// Every kind's name, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// Every kind.
    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn StepKind>> {
        self.kinds.values()
    }
}

pub use super::params::{parse_params, ParamError};
