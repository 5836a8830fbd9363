//! Workflows: plan (fully resolved ordered steps) → run, the step registry, the run
//! context and the journal.

pub mod context;
/// The journal format is a leaf ([`crate::journal`]); re-exported for `engine::journal` paths.
pub use crate::journal;
pub mod metrics;
pub mod params;
pub mod plan;
pub mod registry;
pub mod run;
pub mod session;
pub mod validate;

pub use context::{RunContext, RunOptions};
pub use plan::{Plan, PlanContext};
pub use registry::{
    Confirmation, Outcome, Reference, Registry, Step, StepDoc, StepError, StepKind,
};
pub use run::{Executor, RunReport};
