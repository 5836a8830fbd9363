//! One module per CLI command; each returns the exit code or an [`Error`].

mod backup;
mod check;
mod completions;
mod docs;
mod drill;
mod env;
mod fleet;
mod hook;
mod init;
mod lint;
mod list;
pub mod migrate;
mod oneshot;
mod restore;
mod rollback;
mod run;
mod runs;
mod scan;
mod targets;
mod validate;

use crate::app::App;
use crate::cli::{Cli, Command, FleetAction, HookAction};
use crate::error::{ExitCode, Result};
use crate::ui::Ui;

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let mut ui = Ui::new(cli.json);
    ui.verbose = cli.verbose;
    match &cli.command {
        Command::Init { dir } => return init::run(dir, &ui),
        Command::Completions { shell } => return completions::completions(*shell, cli.json),
        Command::Man { out } => return completions::man(out.as_deref(), cli.json),
        // Needs no Workflowfile: the key is made before the project is configured.
        Command::Backup {
            action: crate::cli::BackupAction::Keygen { out },
        } => return backup::keygen(out, cli.json),
        // Completing a word must never print an error into the user's prompt.
        Command::Names { kind } => {
            let app = App::load(cli.file.as_deref(), ui).ok();
            return completions::names(app.as_ref(), *kind);
        }
        _ => {}
    }
    let app = App::load(cli.file.as_deref(), ui)?;
    // On a fleet environment, a single-database command needs its one target.
    let env_flag = fleet::env_flag(&app, cli.env.as_deref(), &cli.target, &cli.command)?;
    let cli = Cli {
        env: env_flag,
        ..cli
    };
    match cli.command {
        Command::List { all } => list::run(&app, all),
        Command::Run {
            name,
            dry_run,
            yes,
            confirm,
            cut_over,
            fleet,
        } => match fleet::run(
            &app,
            fleet::RunArgs {
                env_flag: cli.env.as_deref(),
                globs: &cli.target,
                name: &name,
                dry_run,
                yes,
                confirm: confirm.clone(),
                cut_over,
                fleet: &fleet,
            },
        )? {
            Some(code) => Ok(code),
            None => run::run(
                &app,
                cli.env.as_deref(),
                &name,
                dry_run,
                yes,
                confirm,
                cut_over,
            ),
        },
        Command::Targets { shard } => {
            targets::run(&app, cli.env.as_deref(), &cli.target, shard.as_deref())
        }
        Command::Fleet {
            action: FleetAction::Summary { run_id, from },
        } => fleet::summary(&app, cli.env.as_deref(), &run_id, &from),
        Command::Env => env::run(&app, cli.env.as_deref()),
        Command::Validate => validate::run(&app, cli.env.as_deref()),
        Command::Runs { last, id } => runs::run(&app, last, id.as_deref()),
        Command::Docs {
            out,
            site,
            check,
            all,
        } => docs::run(
            &app,
            docs::Request {
                env: if all || site.is_some() {
                    None
                } else {
                    cli.env.clone()
                },
                out,
                site,
                check,
            },
        ),
        Command::Migrate {
            action: crate::cli::MigrateAction::Status { .. },
        } if fleet::is_fleet(&app, cli.env.as_deref())? => {
            fleet::status(&app, cli.env.as_deref(), &cli.target)
        }
        Command::Migrate { action } => migrate::run(&app, cli.env.as_deref(), action),
        Command::Backup { action } => backup::run(&app, cli.env.as_deref(), action),
        Command::Restore {
            action: Some(action),
            ..
        } => restore::copies(&app, cli.env.as_deref(), action),
        Command::Restore {
            action: None,
            id,
            into,
            in_place,
            confirm,
        } => restore::run(&app, cli.env.as_deref(), id, into, in_place, confirm),
        Command::Rollback {
            run,
            backup,
            to,
            into,
            in_place,
            confirm,
            yes,
            cut_over,
        } => rollback::run(
            &app,
            cli.env.as_deref(),
            rollback::Args {
                run,
                backup,
                to,
                into,
                in_place,
                confirm,
                yes,
                cut_over,
            },
        ),
        Command::Drill { keep, backup } => drill::run(&app, cli.env.as_deref(), keep, backup),
        Command::Check { what } => check::run(&app, cli.env.as_deref(), &what),
        Command::Lint {
            paths,
            format,
            rules,
            since,
            pending,
            static_only,
        } => lint::run(
            &app,
            cli.env.as_deref(),
            &lint::Args {
                paths: &paths,
                format,
                list_rules: rules,
                since: since.as_deref(),
                pending,
                static_only,
            },
        ),
        Command::Scan { staged, paths } => scan::run(&app, staged, &paths),
        Command::Hook {
            action: HookAction::Install,
        } => hook::install(&app),
        Command::Init { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Names { .. } => unreachable!("handled above"),
    }
}
