//! Databases: connections (sqlx), the Prisma-layout migrations store, the history table,
//! schema fingerprints, and the migrator built on them.

pub mod backup;
pub mod checksum;
pub mod conn;
mod exit_codes;
pub mod folder;
pub mod hash_cache;
pub mod history;
pub mod history_copy;
pub mod horizon_memo;
pub mod interruption;
pub mod listing_cache;
pub mod migrate;
pub mod pgtools;
pub mod schema;
pub mod shadow;
/// The SQL splitter is a leaf ([`crate::sql`]); re-exported for `db::statements` paths.
pub use crate::sql as statements;
pub mod store;
pub mod target;

pub use conn::{Conn, DbError};
