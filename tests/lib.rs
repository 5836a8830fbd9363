//! All integration tests, one test binary (see `autotests = false` in Cargo.toml).

mod support;

mod backup;
mod check;
mod crash;
mod docs;
mod guard;
mod harness;
mod hook;
mod hostile;
mod init;
mod interrupt;
mod lint;
mod lua;
mod migrate;
mod promotion;
mod properties;
mod redaction;
mod remote;
mod run;
mod runbooks;
mod safety;
mod scripts;
mod validate;
mod verify;
