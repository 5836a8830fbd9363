//! `dbflow docs [--env E|--all] [--out DIR] [--check]`.

use crate::app::App;
use crate::error::{Error, ExitCode, Result};
use std::path::PathBuf;

/// Where generated docs go unless `--out` says otherwise.
pub const DEFAULT_OUT: &str = "docs/generated";

pub fn run(app: &App, env: Option<&str>, out: Option<PathBuf>, check: bool) -> Result<ExitCode> {
    let rendered =
        crate::docs::render_all(&app.project, &app.registry, env).map_err(Error::Config)?;
    let out = out.unwrap_or_else(|| app.project.root.join(DEFAULT_OUT));
    if check {
        return check_files(app, &out, &rendered, env.is_none());
    }
    for file in &rendered {
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
    Ok(ExitCode::Ok)
}

fn check_files(
    app: &App,
    out: &std::path::Path,
    rendered: &[crate::docs::Rendered],
    complete: bool,
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
                .filter(|name| !rendered.iter().any(|r| &r.path == name))
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
    app.ui.error(&format!("{problems} generated file(s) are stale or missing: run `dbflow docs` and commit the result"));
    Ok(ExitCode::Failed)
}
