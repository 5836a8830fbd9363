//! `dbflow migrate status|deploy|resolve|down|new`. All but `new` run their step as a
//! one-step plan through the engine (bare: the step prints what these commands always
//! printed), so a command and a workflow share one gate, one journal, one printer.

use super::oneshot;
use crate::app::App;
use crate::cli::MigrateAction;
use crate::error::{Error, ExitCode, Result};
use crate::steps::deploy::DeployStep;
use crate::steps::history::{DownStep, ResolveStep};
use crate::steps::status::StatusStep;
use serde_json::json;
use std::sync::Arc;

/// Runs `dbflow migrate ACTION`.
pub fn run(app: &App, env_flag: Option<&str>, action: MigrateAction) -> Result<ExitCode> {
    let (command, kind, step, yes): (&str, &str, Arc<dyn crate::engine::Step>, bool) = match action
    {
        MigrateAction::New { name, down } => return new_migration(app, &name, down),
        MigrateAction::Status { shadow } => (
            "migrate status",
            "status",
            Arc::new(StatusStep::for_command(shadow)),
            false,
        ),
        MigrateAction::Deploy { dry_run, to, yes } => (
            "migrate deploy",
            "deploy",
            Arc::new(DeployStep::for_command(to, dry_run)),
            yes,
        ),
        MigrateAction::Resolve {
            applied,
            rolled_back,
            yes,
        } => {
            let (name, as_applied) = match (applied, rolled_back) {
                (Some(n), None) => (n, true),
                (None, Some(n)) => (n, false),
                _ => {
                    return Err(Error::Usage(
                        "give exactly one of --applied NAME or --rolled-back NAME".into(),
                    ))
                }
            };
            (
                "migrate resolve",
                "resolve",
                Arc::new(ResolveStep::new(name, as_applied)),
                yes,
            )
        }
        MigrateAction::Down { name, yes } => {
            ("migrate down", "down", Arc::new(DownStep::new(name)), yes)
        }
    };
    let env = app.env(env_flag)?;
    oneshot::execute_bare(app, &env, command, kind, step, yes)
}

/// `dbflow migrate new NAME [--down]`: a timestamped folder in Prisma's layout.
fn new_migration(app: &App, name: &str, down: bool) -> Result<ExitCode> {
    let slug: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .split('_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if slug.is_empty() {
        return Err(Error::Usage(format!(
            "`{name}` has no letters or digits to name a migration with"
        )));
    }
    let dir = app.project.root.join(&app.project.migrations_dir);
    let folder = dir.join(format!(
        "{}_{slug}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    ));
    if folder.exists() {
        return Err(Error::Usage(format!("{} already exists", folder.display())));
    }
    std::fs::create_dir_all(&folder)
        .map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
    let script = folder.join("migration.sql");
    std::fs::write(&script, format!("-- {name}\n-- Expand–contract: add, backfill, switch, then drop in a later release.\n\n"))
        .map_err(|e| Error::io(format!("writing {}", script.display()), e))?;
    app.ui.out(&format!("created {}", script.display()));
    if down {
        let down_path = folder.join("down.sql");
        std::fs::write(
            &down_path,
            format!("-- Undo {name} (run by `dbflow migrate down`)\n\n"),
        )
        .map_err(|e| Error::io(format!("writing {}", down_path.display()), e))?;
        app.ui.out(&format!("created {}", down_path.display()));
    }
    if app.ui.json {
        app.ui.json_doc(&json!({ "migration": folder.file_name().map(|n| n.to_string_lossy().to_string()), "path": script.display().to_string() }));
    }
    Ok(ExitCode::Ok)
}

// Rendering lives in `ui` (steps print it too); re-exported for callers of the old path.
pub use crate::ui::migrate::{progress_printer, render_status};
