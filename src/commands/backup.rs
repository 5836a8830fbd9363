//! `dbflow backup create|list|verify|prune|pin|unpin`.

use super::oneshot;
use crate::app::App;
use crate::cli::{BackupAction, FormatArg};
use crate::db::backup::catalog::Listing;
use crate::db::backup::{age_text, human_age, human_size, repository, verify, Catalog, Entry};
use crate::error::{Error, ExitCode, Result};
use serde_json::json;

pub fn run(app: &App, env_flag: Option<&str>, action: BackupAction) -> Result<ExitCode> {
    let env = app.env(env_flag)?;
    match action {
        BackupAction::Create {
            label,
            format,
            jobs,
        } => {
            let mut params = serde_json::Map::new();
            if let Some(label) = label {
                params.insert("label".into(), label.into());
            }
            if let Some(format) = format {
                let name = match format {
                    FormatArg::Custom => "custom",
                    FormatArg::Directory => "directory",
                };
                params.insert("format".into(), name.into());
            }
            if let Some(jobs) = jobs {
                params.insert("jobs".into(), jobs.into());
            }
            oneshot::execute(
                app,
                &env,
                "backup create",
                vec![(
                    "backup",
                    format!("Back up `{}`", env.name),
                    serde_json::Value::Object(params),
                )],
            )
        }
        BackupAction::Prune { dry_run } => oneshot::execute(
            app,
            &env,
            "backup prune",
            vec![(
                "prune",
                format!("Prune the backups of `{}`", env.name),
                json!({ "dry_run": dry_run }),
            )],
        ),
        BackupAction::List => match remote(app, &env.name)? {
            Some(remote) => {
                let runtime = repository::object::runtime()?;
                let (entries, unreadable) =
                    runtime.block_on(repository::object::list(&remote, &env.name))?;
                let listing = Listing {
                    entries,
                    unreadable: unreadable
                        .into_iter()
                        .map(|(key, why)| (key.into(), why))
                        .collect(),
                    partial: Vec::new(),
                };
                list(app, &env.name, &remote.shown, listing)
            }
            None => {
                let catalog = Catalog::new(&app.project, &env.name);
                list(
                    app,
                    &env.name,
                    &catalog.dir.display().to_string(),
                    catalog.scan(),
                )
            }
        },
        BackupAction::Pin { id, reason } => {
            let entry = match remote(app, &env.name)? {
                Some(remote) => {
                    let pin = crate::db::backup::manifest::Pin {
                        reason,
                        by: crate::db::backup::catalog::user_name(),
                        at: chrono::Utc::now(),
                    };
                    repository::object::runtime()?
                        .block_on(repository::object::set_pin(
                            &remote,
                            &env.name,
                            &id,
                            Some(pin),
                        ))?
                        .0
                }
                None => Catalog::new(&app.project, &env.name).pin(&id, reason)?,
            };
            if app.ui.json {
                app.ui.json_doc(
                    &json!({ "env": env.name, "id": entry.id(), "pinned": entry.manifest.pinned }),
                );
            } else {
                app.ui.out(&format!(
                    "✔ backup {} pinned: `backup prune` keeps it until `dbflow backup unpin {}`",
                    entry.id(),
                    entry.id()
                ));
            }
            if !entry.verified() {
                app.ui.warn(&format!(
                    "backup {} failed verification ({}): it is kept, but cannot be restored",
                    entry.id(),
                    entry.manifest.verification.detail
                ));
            }
            Ok(ExitCode::Ok)
        }
        BackupAction::Unpin { id } => {
            let (entry, had) = match remote(app, &env.name)? {
                Some(remote) => repository::object::runtime()?
                    .block_on(repository::object::set_pin(&remote, &env.name, &id, None))?,
                None => Catalog::new(&app.project, &env.name).unpin(&id)?,
            };
            if app.ui.json {
                app.ui.json_doc(
                    &json!({ "env": env.name, "id": entry.id(), "was_pinned": had.is_some() }),
                );
            } else if had.is_some() {
                app.ui.out(&format!(
                    "✔ backup {} unpinned: the retention decides about it again",
                    entry.id()
                ));
            } else {
                app.ui.out(&format!(
                    "backup {} was not pinned: nothing changed",
                    entry.id()
                ));
            }
            Ok(ExitCode::Ok)
        }
        BackupAction::Keygen { out } => keygen(&out, app.ui.json),
        BackupAction::Copy { id, to } => copy(app, &env.name, &id, &to),
        BackupAction::Verify { id } => {
            let checked = match remote(app, &env.name)? {
                Some(remote) => {
                    let runtime = repository::object::runtime()?;
                    let entry =
                        runtime.block_on(repository::object::get(&remote, &env.name, &id))?;
                    let identities = repository::object::identities_for(&entry, &app.vars)?;
                    repository::object::verify(&remote, &entry, &runtime, identities.as_deref())?
                }
                None => {
                    let catalog = Catalog::new(&app.project, &env.name);
                    let entry = catalog.get(&id)?;
                    verify::verify(&entry, runtime()?)?
                }
            };
            let v = &checked.manifest.verification;
            if app.ui.json {
                app.ui.json_doc(&json!({
                    "env": env.name,
                    "id": checked.id(),
                    "state": v.state,
                    "detail": v.detail,
                    "checked_at": v.checked_at,
                }));
            } else if checked.verified() {
                app.ui
                    .out(&format!("✔ backup {} verified: {}", checked.id(), v.detail));
            }
            if checked.verified() {
                Ok(ExitCode::Ok)
            } else {
                Err(Error::failed(format!(
                    "backup {} FAILED verification: {}; it is marked and will not be restored",
                    checked.id(),
                    v.detail
                )))
            }
        }
    }
}

/// `backup copy ID --to REPO`: from the environment's repository (a folder or a bucket)
/// to another.
fn copy(app: &App, env: &str, id: &str, to: &str) -> Result<ExitCode> {
    let text = crate::config::interpolate::interpolate(to, &app.vars)
        .map_err(|_| Error::Usage(format!("--to `{to}`: a ${{VAR}} in it is not set")))?;
    let destination =
        repository::Location::parse(&text, &app.project.root).map_err(Error::Usage)?;
    let source = match repository::configured(&app.project, env, &app.vars).map_err(Error::Usage)? {
        Some(location) => location,
        None => repository::Location::Folder(Catalog::new(&app.project, env).root),
    };
    if source == destination {
        return Err(Error::Usage(format!(
            "--to {} is the repository backup {id} is already in",
            destination.display()
        )));
    }
    let from = repository::open_any(&source, &app.vars).map_err(Error::Usage)?;
    let into = repository::open_any(&destination, &app.vars).map_err(Error::Usage)?;
    let runtime = repository::object::runtime()?;
    let entry = runtime.block_on(repository::object::get(&from, env, id))?;
    let copied = runtime.block_on(repository::object::copy(&from, &into, &entry))?;
    if app.ui.json {
        app.ui.json_doc(&json!({
            "env": env,
            "id": copied.id(),
            "from": from.shown,
            "to": into.shown,
            "size": copied.manifest.size,
            "sha256": copied.manifest.sha256,
        }));
    } else {
        app.ui.out(&format!(
            "✔ backup {} copied from {} to {} ({}, sha256 {}… checked on the way)",
            copied.id(),
            from.shown,
            into.shown,
            human_size(copied.manifest.size),
            &copied.manifest.sha256[..12]
        ));
    }
    Ok(ExitCode::Ok)
}

/// The environment's object-storage repository, opened, when it has one.
fn remote(app: &App, env: &str) -> Result<Option<repository::Remote>> {
    repository::remote_for(&app.project, env, &app.vars).map_err(Error::Usage)
}

/// The process's one async runtime (the engine's).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    Ok(crate::engine::context::runtime())
}

fn state(entry: &Entry, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut state = if entry.verified() {
        "verified"
    } else {
        "FAILED"
    }
    .to_string();
    if entry.manifest.pinned.is_some() {
        state.push_str(" pinned");
    }
    if entry.future_dated(now) {
        state.push_str(" FUTURE");
    }
    state
}

fn list(app: &App, env: &str, location: &str, listing: Listing) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    if app.ui.json {
        let backups: Vec<serde_json::Value> = listing
            .entries
            .iter()
            .map(|e| {
                let m = &e.manifest;
                json!({
                    "id": m.id,
                    "created_at": m.created_at,
                    "age_seconds": e.age(now).num_seconds(),
                    "size": m.size,
                    "label": m.label,
                    "migration_head": m.migration_head,
                    "state": m.verification.state,
                    "verification": m.verification,
                    "format": m.format,
                    "database": m.database,
                    "path": e.dir.display().to_string(),
                    "run_id": m.run_id,
                    "server_time": m.server_time,
                    "host": m.host,
                    "future_dated": e.future_dated(now),
                    "pinned": m.pinned,
                    "encryption": m.encryption,
                })
            })
            .collect();
        app.ui.json_doc(&json!({
            "env": env,
            "clock": "host",
            "now": now,
            "dir": location,
            "backups": backups,
            "interrupted": listing.partial.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "unreadable": listing.unreadable.iter().map(|(p, why)| json!({"path": p.display().to_string(), "error": why})).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::Ok);
    }
    if listing.entries.is_empty() {
        app.ui.out(&format!(
            "no backups of `{}` in {} yet (`dbflow backup create`)",
            env, location
        ));
    } else {
        app.ui.out(&format!(
            "backups of `{}` in {}, newest first (ids and ages by this machine's clock, UTC):",
            env, location
        ));
        let rows: Vec<[String; 6]> = listing
            .entries
            .iter()
            .map(|e| {
                let m = &e.manifest;
                [
                    m.id.clone(),
                    age_text(e.age(now)),
                    human_size(m.size),
                    m.label.clone().unwrap_or_else(|| "-".into()),
                    m.migration_head.clone().unwrap_or_else(|| "-".into()),
                    state(e, now),
                ]
            })
            .collect();
        let header = ["ID", "AGE", "SIZE", "LABEL", "MIGRATION HEAD", "STATE"];
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 6]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i == 1 || i == 2 {
                    out.push_str(&format!("{cell:>w$}  ", w = widths[i]));
                } else {
                    out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            out.trim_end().to_string()
        };
        app.ui.out(&line(header));
        for row in &rows {
            app.ui.out(&line([
                &row[0], &row[1], &row[2], &row[3], &row[4], &row[5],
            ]));
        }
        for e in listing.entries.iter().filter(|e| !e.verified()) {
            app.ui.out(&format!(
                "{} failed verification: {}",
                e.id(),
                e.manifest.verification.detail
            ));
        }
        for e in &listing.entries {
            if let Some(pin) = &e.manifest.pinned {
                app.ui.out(&format!(
                    "{} pinned by {} on {}{}: `backup prune` keeps it",
                    e.id(),
                    pin.by,
                    pin.at.format("%Y-%m-%d %H:%M UTC"),
                    pin.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
        }
        for e in listing.entries.iter().filter(|e| e.future_dated(now)) {
            app.ui.warn(&format!(
                "{} is dated {} in the future{}: its clock was ahead, so its age means nothing; it is never taken as the latest backup nor reused until then (restore it by id if you know it is good)",
                e.id(),
                human_age(-e.age(now)),
                e.manifest
                    .host
                    .as_deref()
                    .map(|h| format!(" (taken on `{h}`)"))
                    .unwrap_or_default()
            ));
        }
    }
    for path in &listing.partial {
        app.ui.warn(&format!(
            "{} is an unfinished backup (in progress, or interrupted: then the next `backup create` or `backup prune` removes it)",
            path.display()
        ));
    }
    for (path, why) in &listing.unreadable {
        app.ui
            .warn(&format!("{} is not a backup: {why}", path.display()));
    }
    Ok(ExitCode::Ok)
}

/// `dbflow backup keygen --out FILE`: the public key on stdout (JSON with --json), the
/// secret only in FILE.
pub fn keygen(out: &std::path::Path, json: bool) -> Result<ExitCode> {
    let public = repository::crypt::keygen(out)?;
    if json {
        println!(
            "{}",
            json!({ "identity_file": out.display().to_string(), "recipient": public })
        );
    } else {
        println!("{public}");
        eprintln!(
            "wrote the identity to {} (0600); add the line above to backups.encryption.recipients, and set DBFLOW_BACKUP_IDENTITY_FILE={} where backups are restored",
            out.display(),
            out.display()
        );
    }
    Ok(ExitCode::Ok)
}
