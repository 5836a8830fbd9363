//! All integration tests, one test binary (see `autotests = false` in Cargo.toml).

mod support;

mod adopt;
mod backup;
mod check;
mod cli;
mod crash;
mod docs;
mod fleet;
mod guard;
mod harness;
mod hook;
mod hostile;
mod init;
mod interrupt;
mod layers;
mod lint;
mod lint_history;
mod lua;
mod migrate;
mod ops_page;
mod promotion;
mod properties;
mod quiet;
mod redaction;
mod remote;
mod run;
mod runbooks;
mod safety;
mod scale;
mod scripts;
mod session;
mod site;
mod site_browser;
mod validate;
mod verify;
