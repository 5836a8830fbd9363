//! The Workflowfile: raw YAML structs, the validated model, includes, interpolation,
//! environment resolution and validation.

pub mod diagnostic;
pub mod environment;
pub mod fleet;
pub mod interpolate;
pub mod load;
pub mod model;
pub mod names;
pub mod raw;
pub mod repository;
pub mod validate;

pub use diagnostic::{Diagnostic, Loc};
pub use environment::{DbUrl, DecidedBy, ResolvedEnv};
pub use interpolate::Vars;
pub use load::{find, load, WORKFLOWFILE};
pub use model::{FailurePolicy, Project, StepDef, Task, Text, Workflow};
pub use raw::Protection;
