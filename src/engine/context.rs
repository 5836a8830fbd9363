//! What a running step can see and use.

use super::session::DbSession;
use crate::config::{Project, ResolvedEnv, Vars};
use crate::journal::Journal;
use crate::ui::Ui;
use indexmap::IndexMap;
use std::sync::OnceLock;

/// Options that hold for the whole run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--yes`: confirmations are answered yes (and journaled as such).
    pub yes: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--confirm WORD`: what typed confirmations of this run are answered with (a
    /// sanctioned seed asks for SEED); `--yes` never answers them.
    pub confirm: Option<String>,
    /// `--cut-over`: with `--yes`, a rollback may point the application at the restored
    /// database without a person typing the confirmation.
    pub cut_over: bool,
    /// A CLI command runs its one step (`migrate deploy`, `migrate status`, …): the
    /// engine prints no step lines and the step prints what the command always printed
    /// (unindented); the command reports the outcome.
    pub bare: bool,
}

/// What this run changed in the environment's database, as far as dbflow can tell: the
/// deploy step records each migration it committed, and one it left half applied or
/// whose fate it cannot know (the connection died while it ran). A rollback after a
/// failure only makes sense when something is here. The type is the journal's
/// (`run_end.changes`), which records it.
pub use crate::journal::Changes;

/// The run context handed to each step.
pub struct RunContext<'a> {
    /// The project.
    pub project: &'a Project,
    /// The target environment.
    pub env: &'a ResolvedEnv,
    /// Interpolation / process variables.
    pub vars: &'a Vars,
    /// This run's id.
    pub run_id: &'a str,
    /// Run-wide options.
    pub options: &'a RunOptions,
    /// The workflow the step belongs to (a nested or handler workflow's own name);
    /// `None` when a task runs on its own.
    pub workflow: Option<&'a str>,
    /// The journal.
    pub journal: &'a mut Journal,
    /// The run's database session (one connection, the migrations read once).
    pub session: &'a mut DbSession,
    /// The only way to talk to the person running dbflow.
    pub ui: &'a Ui,
    /// Outputs of earlier steps, by step id.
    pub outputs: &'a mut IndexMap<String, serde_json::Value>,
    /// Tasks already run in this run (dependencies run once each).
    pub tasks_done: &'a mut std::collections::HashSet<String>,
    /// What the run changed so far.
    pub changes: &'a mut Changes,
}

impl RunContext<'_> {
    /// The guard every Lua `dbflow.exec` and `dbflow.sql` of this run goes through.
    pub fn script_gate(&self) -> std::sync::Arc<dyn crate::guard::gate::Gate> {
        std::sync::Arc::new(crate::guard::script_gate::ScriptGate::new(
            self.project,
            self.env,
            self.options.yes,
            self.ui,
        ))
    }

    /// An earlier step's outputs.
    /// Looks for `step_id` as written, else the most recent step of a nested or handler
    /// workflow with that id (keys `workflow/step`).
    pub fn output(&self, step_id: &str) -> Option<&serde_json::Value> {
        self.outputs.get(step_id).or_else(|| {
            let suffix = format!("/{step_id}");
            self.outputs
                .iter()
                .rev()
                .find(|(k, _)| k.ends_with(&suffix))
                .map(|(_, v)| v)
        })
    }

    /// The most recent output named `key` of any earlier step (e.g. the `backup_id` a
    /// backup step produced), with the id of the step that produced it.
    pub fn latest_output(&self, key: &str) -> Option<(&str, &serde_json::Value)> {
        self.outputs
            .iter()
            .rev()
            .find_map(|(step, v)| v.get(key).map(|value| (step.as_str(), value)))
    }

    /// A shared async runtime for database work (created on first use).
    pub fn runtime(&self) -> &'static tokio::runtime::Runtime {
        runtime()
    }

    /// The environment's migration target (URL, folder, history table, limits).
    pub fn target(&self) -> crate::db::target::Target {
        crate::db::target::Target::for_env(self.project, self.env)
    }

    /// The migrations folder, read once per run (what it skipped is said then, once).
    pub fn store(&mut self) -> Result<std::sync::Arc<crate::db::store::Store>, super::StepError> {
        let target = self.target();
        let (store, first) = self.session.store(&target)?;
        if first {
            for (name, why) in &store.ignored {
                self.ui
                    .warn(&format!("{}/{name} ignored: {why}", target.dir.display()));
            }
        }
        Ok(store)
    }

    /// The prefix of a step's lines: indented under the step's line in a run, none
    /// when a command runs the step bare.
    pub fn indent(&self) -> &'static str {
        if self.options.bare {
            ""
        } else {
            "  "
        }
    }

    /// The migrations folder and the run's connection, read and opened side by side the
    /// first time (see [`DbSession::prepare`]); give the connection back when done.
    pub fn store_and_db(
        &mut self,
    ) -> Result<(std::sync::Arc<crate::db::store::Store>, crate::db::Conn), super::StepError> {
        let target = self.target();
        self.session.prepare(&target, runtime());
        let store = self.store()?;
        Ok((store, self.take_db()?))
    }

    /// The run's connection to the environment's database (opened on first use); give
    /// it back with `cx.session.give_back(conn)` when done.
    pub fn take_db(&mut self) -> Result<crate::db::Conn, super::StepError> {
        let target = self.target();
        self.session.take(&target, runtime())
    }
}

/// The one async runtime of the process (created on first use): steps block on it at
/// their edge, and the run's session connection lives on it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}
