//! `dbflow restore [ID] [--into NAME] [--in-place [--confirm RESTORE]]`.

use super::oneshot;
use crate::app::App;
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
