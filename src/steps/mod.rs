//! Built-in step kinds, one file each. Adding a kind = one file + one line in [`builtin`].

pub mod confirm;
pub mod deploy;
pub mod guard;
pub mod shell;
pub mod status;
pub mod task;
pub mod workflow;

use crate::engine::Registry;
use std::sync::Arc;

/// The registry of built-in step kinds.
pub fn builtin() -> Registry {
    let mut registry = Registry::default();
    registry.register(Arc::new(task::TaskKind));
    registry.register(Arc::new(shell::ShellKind));
    registry.register(Arc::new(confirm::ConfirmKind));
    registry.register(Arc::new(workflow::WorkflowKind));
    registry.register(Arc::new(status::StatusKind));
    registry.register(Arc::new(deploy::DeployKind));
    registry.register(Arc::new(guard::GuardKind));
    registry
}
