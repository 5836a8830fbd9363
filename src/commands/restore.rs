//! `dbflow restore [ID] [--into NAME] [--in-place [--confirm RESTORE]]`.

use super::oneshot;
use crate::app::App;
use crate::cli::RestoreAction;
use crate::db::backup::{human_age, human_size, Catalog};
use crate::error::{Error, ExitCode, Result};
use serde_json::json;

pub fn run(
    app: &App,
    env_flag: Option<&str>,
    id: Option<String>,
    into: Option<String>,
    in_place: bool,
    confirm: Option<String>,
) -> Result<ExitCode> {
    let env = app.env(env_flag)?;
    let id = match id {
        Some(id) => id,
        None => choose(app, &Catalog::new(&app.project, &env.name))?,
    };
    let name = if in_place {
        format!("Restore {id} in place over `{}`", env.name)
    } else {
        format!("Restore {id} into a new database")
    };
    oneshot::execute(
        app,
        &env,
        "restore",
        vec![(
            "restore",
            name,
            json!({ "backup": id, "into": into, "in_place": in_place, "confirm": confirm }),
        )],
    )
}

/// Offers the verified backups in a terminal; elsewhere says which there are.
fn choose(app: &App, catalog: &Catalog) -> Result<String> {
    let now = chrono::Utc::now();
    let verified: Vec<_> = catalog
        .scan()
        .entries
        .into_iter()
        .filter(|e| e.verified())
        .collect();
    if verified.is_empty() {
        return Err(Error::failed(format!(
            "no verified backup of `{}` in {}",
            catalog.env,
            catalog.dir.display()
        )));
    }
    let items: Vec<String> = verified
        .iter()
        .map(|e| {
            format!(
                "{}  {} old  {}  head {}",
                e.id(),
                human_age(e.age(now)),
                human_size(e.manifest.size),
                e.manifest.migration_head.as_deref().unwrap_or("-")
            )
        })
        .collect();
    match crate::ui::prompt::select("Restore which backup?", &items) {
        Some(index) => Ok(verified[index].id().to_string()),
        None => {
            let shown: Vec<String> = items.iter().take(5).map(|i| format!("  {i}")).collect();
            let _ = &app.ui;
            Err(Error::Usage(format!(
                "name the backup to restore (`dbflow restore ID`, or `latest`); the newest verified:\n{}",
                shown.join("\n")
            )))
        }
    }
}

/// `dbflow restore list|drop`.
pub fn copies(app: &App, env_flag: Option<&str>, action: RestoreAction) -> Result<ExitCode> {
    use crate::db::backup::copies;
    let env = app.env(env_flag)?;
    let runtime = crate::engine::context::runtime();
    let found = copies::list(&env.url, runtime)?;
    let now = chrono::Utc::now();
    match action {
        RestoreAction::List => {
            if app.ui.json {
                app.ui
                    .json_doc(&json!({ "env": env.name, "databases": found }));
            } else if found.is_empty() {
                app.ui.out(&format!(
                    "no restored or kept-aside databases beside `{}` ({})",
                    env.name,
                    env.url.redacted()
                ));
            } else {
                for c in &found {
                    app.ui.out(&format!(
                        "{:<63}  {:<13}  {:>9} old  {}",
                        c.name,
                        c.kind,
                        human_age(now - c.created_at),
                        c.size.map(human_size).unwrap_or_else(|| "-".into())
                    ));
                }
                app.ui
                    .out("drop one with `dbflow restore drop NAME`, or `--older-than 7d`");
            }
            Ok(ExitCode::Ok)
        }
        RestoreAction::Drop {
            name,
            older_than,
            yes,
        } => {
            let chosen: Vec<&copies::Copy> = match (&name, &older_than) {
                (Some(name), _) => {
                    let Some(c) = found.iter().find(|c| &c.name == name) else {
                        return Err(Error::blocked(format!(
                            "`{name}` is not a database dbflow restored or kept aside beside `{}` (see `dbflow restore list`); nothing dropped",
                            env.name
                        )));
                    };
                    vec![c]
                }
                (None, Some(age)) => {
                    let age = humantime::parse_duration(age)
                        .map_err(|e| Error::Usage(format!("--older-than {age}: {e}")))?;
                    let limit = chrono::Duration::from_std(age)
                        .map_err(|e| Error::Usage(format!("--older-than: {e}")))?;
                    found
                        .iter()
                        .filter(|c| now - c.created_at > limit)
                        .collect()
                }
                (None, None) => {
                    return Err(Error::Usage("name a database or give --older-than".into()))
                }
            };
            if chosen.is_empty() {
                app.ui.out("nothing to drop");
                return Ok(ExitCode::Ok);
            }
            let target = crate::guard::GuardTarget::of(&env);
            let names: Vec<&str> = names_of(&chosen);
            let question = format!(
                "Drop {} database(s) beside `{}`: {}?",
                chosen.len(),
                env.name,
                names.join(", ")
            );
            match crate::ui::prompt::confirm(&question, yes, false) {
                crate::ui::prompt::Answer::Yes | crate::ui::prompt::Answer::AssumedYes => {}
                crate::ui::prompt::Answer::No => {
                    return Err(Error::blocked("not confirmed; nothing dropped"))
                }
                crate::ui::prompt::Answer::CannotAsk(reason) => {
                    return Err(Error::blocked(format!(
                        "dropping needs a confirmation and nobody can be asked ({reason}); pass --yes"
                    )))
                }
            }
            let mut events = Vec::new();
            let mut failed = None;
            for c in chosen {
                let dropped = crate::guard::own_copy(&target, &c.name)
                    .map_err(Error::blocked)
                    .and_then(|permit| crate::db::backup::restore::drop_database(&c.url, &permit));
                match dropped {
                    Ok(()) => {
                        app.ui.out(&format!("✔ dropped `{}`", c.name));
                        events.push((
                            "database_dropped",
                            json!({ "database": c.name, "kind": c.kind }),
                        ));
                    }
                    Err(e) => {
                        app.ui.error(&format!("could not drop `{}`: {e}", c.name));
                        failed = Some(e);
                    }
                }
            }
            crate::guard::journal_command(
                &app.root(),
                "restore drop",
                &target,
                &events,
                if failed.is_none() {
                    "succeeded"
                } else {
                    "failed"
                },
            );
            match failed {
                Some(e) => Err(e),
                None => Ok(ExitCode::Ok),
            }
        }
    }
}

fn names_of<'a>(copies: &[&'a crate::db::backup::copies::Copy]) -> Vec<&'a str> {
    copies.iter().map(|c| c.name.as_str()).collect()
}
