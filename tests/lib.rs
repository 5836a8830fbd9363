//! All integration tests, one test binary (see `autotests = false` in Cargo.toml).

mod support;

mod backup;
mod check;
mod crash;
mod docs;
mod guard;
mod harness;
mod hook;
mod init;
mod interrupt;
mod lint;
mod lua;
mod migrate;
mod redaction;
mod run;
mod runbooks;
mod validate;
mod verify;
