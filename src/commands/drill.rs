//! `dbflow drill [--keep] [--backup ID]`.

use super::oneshot;
use crate::app::App;
use crate::error::{ExitCode, Result};
use serde_json::json;

pub fn run(
    app: &App,
    env_flag: Option<&str>,
    keep: bool,
    backup: Option<String>,
) -> Result<ExitCode> {
    let env = app.env(env_flag)?;
    oneshot::execute(
        app,
        &env,
        "drill",
        vec![(
            "drill",
            format!("Restore drill of `{}`", env.name),
            json!({ "keep": keep, "backup": backup }),
        )],
    )
}
