//! Reading the Workflowfile and its includes into a [`Project`].
//!
//! One file per concept: finding the file, YAML errors people can act on, loading a
//! file and its includes, the settings sections, the zero-config project, and the
//! builder that collects tasks, workflows and steps.

mod build;
mod file;
mod find;
mod include;
mod settings;
mod yaml_error;
mod zero_config;

use crate::config::diagnostic::Diagnostic;
use crate::config::model::Project;
use std::path::Path;

pub use build::STEP_COMMON_KEYS;
pub use file::{read_limited, MAX_CONFIG_BYTES};
pub use find::{find, WORKFLOWFILE};
pub use zero_config::BUILTIN_WORKFLOWS;

/// Default regex for sandbox-like database names.
pub const DEFAULT_SANDBOX_PATTERN: &str = "sandbox|scratch|seed|e2e|test|tmp";

/// Loads the project from `file`, or the zero-config project when `file` is `None`.
/// Returns every problem found, not just the first.
pub fn load(file: Option<&Path>, cwd: &Path) -> Result<Project, Vec<Diagnostic>> {
    match file {
        Some(path) => file::load_file(path, cwd),
        None => zero_config::zero_config(cwd),
    }
}
