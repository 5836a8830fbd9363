//! Fleets: one workflow over many databases (a database per tenant, region or shard).
//!
//! An environment's `fleet:` (see [`crate::config::fleet`]) names its targets; each
//! target is an instance of the environment named `ENV/TARGET` — same protection, guard
//! rails, promotion rules, backups (under `<backups>/<env>/<target>/`) and journal — so
//! every single-database command works on one with `--env ENV/TARGET` (or `--target`).
//! [`runner`] runs a workflow over many of them in waves, in worker threads of this
//! process, with a failure budget, a fleet journal ([`record`]) that makes the run
//! resumable, and [`shard`]s that let a CI matrix or an Indexed Job split the fleet.

pub mod record;
pub mod runner;
pub mod shard;
pub mod shared;
pub mod status;
pub mod summary;
pub mod targets;
pub mod waves;

pub use targets::{instance, list, select, Target};
