//! Helpers shared by the integration tests: [`cli`] drives the real binary in a temp
//! dir, [`pg`] hands out throw-away PostgreSQL databases.

pub mod cli;
pub mod pg;
pub mod s3;
