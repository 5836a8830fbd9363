//! `dbflow rollback [--run RUN_ID | --backup ID] [--to MIGRATION]`.

use super::oneshot;
use crate::app::App;
use crate::error::{ExitCode, Result};
use serde_json::json;

/// The command line of `dbflow rollback`.
pub struct Args {
    pub run: Option<String>,
    pub backup: Option<String>,
    pub to: Option<String>,
    pub into: Option<String>,
    pub in_place: bool,
    pub confirm: Option<String>,
    pub yes: bool,
    pub cut_over: bool,
}

pub fn run(app: &App, env_flag: Option<&str>, args: Args) -> Result<ExitCode> {
    let env = app.env(env_flag)?;
    let what = match (&args.run, &args.backup) {
        (Some(run), _) => format!("the backup of run {run}"),
        (_, Some(id)) => format!("backup {id}"),
        _ => "the newest verified backup".to_string(),
    };
    let options = crate::engine::RunOptions {
        yes: args.yes,
        cut_over: args.cut_over,
        ..Default::default()
    };
    oneshot::execute_with(
        app,
        &env,
        "rollback",
        vec![(
            "rollback",
            format!("Roll `{}` back to {what}", env.name),
            json!({
                "run": args.run,
                "backup": args.backup,
                "before": args.to,
                "into": args.into,
                "in_place": args.in_place,
                "confirm": args.confirm,
            }),
        )],
        &options,
    )
}
