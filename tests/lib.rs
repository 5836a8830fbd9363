//! All integration tests, one test binary (see `autotests = false` in Cargo.toml).

mod support;

mod check;
mod guard;
mod harness;
mod hook;
mod init;
mod lint;
mod migrate;
mod redaction;
mod run;
mod validate;
