//! All integration tests, one test binary (see `autotests = false` in Cargo.toml).

mod support;

mod backup;
mod docs;
mod harness;
mod init;
mod lua;
mod migrate;
mod redaction;
mod run;
mod validate;
mod verify;
