//! The native migrator: status, deploy, resolve and down, on Prisma's files and history
//! table. Orchestration is written once; [`Conn`](crate::db::Conn) hides the backend.
//!
//! Deploy semantics beyond Prisma's: on PostgreSQL each migration and its history row
//! commit in one transaction (so a failed migration leaves nothing behind and stays
//! pending), except migrations with statements that cannot run in a transaction, which
//! are run statement by statement between a "started" and a "finished" row, as Prisma
//! does. An advisory lock on Prisma's key serialises deployers, dbflow and Prisma alike.
//!
//! One file per concept: the status model (pure), observing the database, deploy, the
//! deploy lock, applying one migration, resolve, down, and the error they share.

mod apply;
mod deploy;
mod down;
mod error;
mod lock;
mod observe;
mod resolve;
mod status;

pub use apply::Limits;
pub use deploy::{deploy, DeployOptions, DeployReport, Event};
pub use down::down;
pub use error::DeployError;
pub use lock::{lock_holder, try_lock_once, ADVISORY_LOCK_KEY};
pub use observe::{history_status, observe, status, status_within, Observed};
pub use resolve::resolve;
pub use status::{Category, Entry, State, Status, ALL_CATEGORIES};
