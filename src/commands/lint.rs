//! `dbflow lint [PATHS]`: the migration linter over files, for people, JSON or GitHub.

use crate::app::App;
use crate::cli::LintFormat;
use crate::db::store::Store;
use crate::error::{Error, ExitCode, Result};
use crate::guard::{migrations, GuardTarget};
use crate::lint::{self, report, rules};
use std::path::{Path, PathBuf};

pub fn run(
    app: &App,
    env_flag: Option<&str>,
    paths: &[PathBuf],
    format: LintFormat,
    list_rules: bool,
) -> Result<ExitCode> {
    if list_rules {
        let width = rules::all_ids().map(str::len).max().unwrap_or(0);
        for rule in rules::ALL {
            app.ui
                .out(&format!("{:width$}  {}", rule.id(), rule.summary()));
        }
        app.ui.out(&format!(
            "{:width$}  PostgreSQL's parser rejects the statement (always an error)",
            rules::SYNTAX_ERROR
        ));
        app.ui.out(&format!(
            "{:width$}  a dbflow:allow annotation without a known rule or a reason",
            rules::INVALID_ANNOTATION
        ));
        return Ok(ExitCode::Ok);
    }
    let target = GuardTarget::resolve(&app.project, env_flag, &app.vars)?;
    let options = migrations::lint_options(&app.project, target.protection);
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    if paths.is_empty() {
        let dir = app.project.root.join(&app.project.migrations_dir);
        let store = Store::read(&dir)?;
        if matches!(store.provider.as_deref(), Some(p) if p != "postgresql" && p != "postgres") {
            app.ui.out(&format!(
                "nothing to lint: {} holds {} migrations (migration_lock.toml) and the linter reads PostgreSQL",
                migrations::shown_path(&dir),
                store.provider.unwrap_or_default()
            ));
            return Ok(ExitCode::Ok);
        }
        for m in &store.migrations {
            files.push((migrations::shown_path(&m.path), m.path.clone()));
        }
        if files.is_empty() {
            app.ui.out(&format!(
                "no migrations found in {}",
                migrations::shown_path(&dir)
            ));
            return Ok(ExitCode::Ok);
        }
    } else {
        for path in paths {
            if path.is_dir() {
                let before = files.len();
                walk(path, &mut files, &mut skipped);
                refuse_outside(path, &files[before..])?;
            } else if path.is_file() {
                // A link given by name (a shell glob expands planted ones too) must stay
                // inside the working folder.
                let is_link =
                    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                if is_link {
                    let entry = [(migrations::shown_path(path), path.clone())];
                    refuse_outside(Path::new("."), &entry)?;
                }
                files.push((migrations::shown_path(path), path.clone()));
            } else {
                return Err(Error::Usage(format!(
                    "{}: no such file or folder",
                    path.display()
                )));
            }
        }
    }
    let (reports, unreadable) = lint::lint_files(&files, &options);
    let summary = report::Summary::of(&reports);
    let describe = format!(
        "environment `{}` ({})",
        target.env,
        target.protection.as_str()
    );
    if app.ui.json || format == LintFormat::Json {
        let mut doc = report::json(
            &reports,
            &unreadable,
            &target.env,
            target.protection.as_str(),
        );
        doc["skipped"] = serde_json::json!(skipped);
        app.ui.json_doc(&doc);
    } else if format == LintFormat::Github {
        app.ui.out(report::github(&reports, &unreadable).trim_end());
    } else {
        if !skipped.is_empty() {
            app.ui.out(&format!(
                "skipped {} down.sql file{} (rollback scripts are linted only when named): {}\n",
                skipped.len(),
                if skipped.len() == 1 { "" } else { "s" },
                skipped.join(", ")
            ));
        }
        app.ui
            .out(report::human(&reports, &unreadable, &describe).trim_end());
    }
    Ok(if unreadable.iter().any(|u| u.refused) {
        ExitCode::BadInput
    } else if summary.errors > 0 || !unreadable.is_empty() {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

/// A file found under `dir` through a symbolic link that leads outside `dir` is refused,
/// never read: a pull request could otherwise plant `x.sql -> /etc/shadow` and read the
/// CI machine's files through lint output.
fn refuse_outside(dir: &Path, files: &[(String, PathBuf)]) -> Result<()> {
    let root = dir
        .canonicalize()
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for (shown, path) in files {
        if let Ok(real) = path.canonicalize() {
            if !real.starts_with(&root) || real.is_dir() {
                let folder = if dir == Path::new(".") {
                    "the working folder".to_string()
                } else {
                    dir.display().to_string()
                };
                return Err(Error::Usage(format!(
                    "{shown}: a symbolic link that resolves outside {folder} or to a folder; dbflow does not follow it (replace the link with the file itself)"
                )));
            }
        }
    }
    Ok(())
}

/// Every `.sql` file under `dir`, sorted; `down.sql` files go to `skipped`.
fn walk(dir: &Path, files: &mut Vec<(String, PathBuf)>, skipped: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if path.is_dir() {
            if is_link {
                // Not followed: `refuse_outside` names it when it leads elsewhere.
                files.push((migrations::shown_path(&path), path));
            } else if !name.starts_with('.') && name != "node_modules" {
                walk(&path, files, skipped);
            }
        } else if name.ends_with(".sql") {
            let shown = migrations::shown_path(&path);
            if name == "down.sql" {
                skipped.push(shown);
            } else {
                files.push((shown, path));
            }
        }
    }
}
