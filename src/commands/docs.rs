//! `dbflow docs [--env E|--all] [--out DIR] [--site DIR] [--check]`.

use crate::app::App;
use crate::error::{Error, ExitCode, Result};
use std::path::{Path, PathBuf};

/// Where generated docs go unless `--out` says otherwise.
pub const DEFAULT_OUT: &str = "docs/generated";

/// Where the committed HTML site lives: `dbflow docs` refreshes it and `--check` checks
/// it when the folder exists.
pub const DEFAULT_SITE: &str = "docs/site";

/// What `dbflow docs` was asked to do.
pub struct Request {
    /// Only this environment (`--env`); `None`: all of them.
    pub env: Option<String>,
    /// `--out DIR`.
    pub out: Option<PathBuf>,
    /// `--site DIR`.
    pub site: Option<PathBuf>,
    /// `--check`.
    pub check: bool,
}

pub fn run(app: &App, request: Request) -> Result<ExitCode> {
    let env = request.env.as_deref();
    let site_dir = match &request.site {
        Some(dir) => Some(dir.clone()),
        // The committed site stays in step with the Markdown it is made from.
        None if env.is_none() && request.out.is_none() => {
            Some(app.project.root.join(DEFAULT_SITE)).filter(|d| d.is_dir())
        }
        None => None,
    };
    // `--site DIR` alone writes (or checks) the site only.
    let markdown = !(request.site.is_some() && request.out.is_none());
    let mut code = ExitCode::Ok;
    if markdown {
        let rendered =
            crate::docs::render_all(&app.project, &app.registry, env).map_err(Error::Config)?;
        let out = request
            .out
            .clone()
            .unwrap_or_else(|| app.project.root.join(DEFAULT_OUT));
        if request.check {
            code = check_files(
                app,
                &out,
                &rendered,
                env.is_none(),
                &|_| true,
                "dbflow docs",
            )?;
        } else {
            write_files(app, &out, &rendered)?;
        }
    }
    if let Some(dir) = site_dir {
        let pages =
            crate::docs::site::render_site(&app.project, &app.registry).map_err(Error::Config)?;
        if request.check {
            let fix = format!("dbflow docs --site {}", dir.display());
            let site_code = check_files(
                app,
                &dir,
                &pages,
                true,
                &crate::docs::site::is_site_page,
                &fix,
            )?;
            if site_code != ExitCode::Ok {
                code = site_code;
            }
        } else {
            write_files(app, &dir, &pages)?;
            // The operations page is built from what dbflow recorded here; it changes
            // with history, so only an explicit `--site` writes it (never `--check`, and
            // not the refresh of the committed example site by plain `dbflow docs`).
            if request.site.is_some() {
                let operations = crate::docs::Rendered {
                    path: crate::docs::site::OPERATIONS_PAGE.to_string(),
                    content: crate::docs::ops::render_operations(&app.project),
                };
                write_files(app, &dir, &[operations])?;
            }
        }
    }
    Ok(code)
}

fn write_files(app: &App, out: &Path, rendered: &[crate::docs::Rendered]) -> Result<()> {
    for file in rendered {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == file.content);
        if !unchanged {
            std::fs::write(&path, &file.content)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        app.ui.out(&format!(
            "{} {}",
            if unchanged { "unchanged" } else { "wrote    " },
            path.display()
        ));
    }
    Ok(())
}

/// Compares `rendered` with the files in `out`. With `complete`, a file there that `ours`
/// claims and nothing generates any more is stale too (files `ours` does not claim, like
/// the site's operations page, are left alone).
fn check_files(
    app: &App,
    out: &Path,
    rendered: &[crate::docs::Rendered],
    complete: bool,
    ours: &dyn Fn(&str) -> bool,
    fix: &str,
) -> Result<ExitCode> {
    let mut problems = 0;
    for file in rendered {
        let path = out.join(&file.path);
        match std::fs::read_to_string(&path) {
            Ok(old) if old == file.content => {}
            Ok(old) => {
                problems += 1;
                app.ui.out(&format!("stale: {}", path.display()));
                let diff = similar::TextDiff::from_lines(&old, &file.content);
                let shown = path.display().to_string();
                app.ui.diff(
                    &diff
                        .unified_diff()
                        .context_radius(2)
                        .header(
                            &format!("{shown} (on disk)"),
                            &format!("{shown} (from the Workflowfile)"),
                        )
                        .to_string(),
                );
            }
            Err(_) => {
                problems += 1;
                app.ui.out(&format!("missing: {}", path.display()));
            }
        }
    }
    // With every environment rendered, a file nobody generates any more is stale too.
    if complete {
        if let Ok(entries) = std::fs::read_dir(out) {
            let mut extra: Vec<String> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
                .filter(|name| ours(name) && !rendered.iter().any(|r| &r.path == name))
                .collect();
            extra.sort();
            for name in extra {
                problems += 1;
                app.ui.out(&format!(
                    "no longer generated: {}",
                    out.join(name).display()
                ));
            }
        }
    }
    if problems == 0 {
        app.ui.out(&format!(
            "✔ {} generated file(s) in {} are up to date",
            rendered.len(),
            out.display()
        ));
        return Ok(ExitCode::Ok);
    }
    app.ui.error(&format!(
        "{problems} generated file(s) are stale or missing: run `{fix}` and commit the result"
    ));
    Ok(ExitCode::Failed)
}
