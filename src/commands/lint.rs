//! `dbflow lint [PATHS]`: the migration linter over files, for people, JSON or GitHub.
//! `--since REF` lints what changed since a git ref, `--pending` what the environment
//! has not applied yet; with `--env` and a reachable database the live catalog is read
//! once (table sizes, which tables exist).

use crate::app::App;
use crate::cli::LintFormat;
use crate::db::migrate;
use crate::db::store::Store;
use crate::db::target::Target;
use crate::error::{Error, ExitCode, Result};
use crate::guard::{migrations, GuardTarget};
use crate::lint::{self, report, rules, Catalog};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long `dbflow lint --env E` waits for E's database before linting statically.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The command's arguments.
pub struct Args<'a> {
    /// Files or folders (empty: the migrations folder).
    pub paths: &'a [PathBuf],
    /// Output format.
    pub format: LintFormat,
    /// `--rules`.
    pub list_rules: bool,
    /// `--since GIT_REF`.
    pub since: Option<&'a str>,
    /// `--pending`.
    pub pending: bool,
    /// `--static`.
    pub static_only: bool,
}

pub fn run(app: &App, env_flag: Option<&str>, args: &Args<'_>) -> Result<ExitCode> {
    if args.list_rules {
        list_rules(app);
        return Ok(ExitCode::Ok);
    }
    let target = GuardTarget::resolve(&app.project, env_flag, &app.vars)?;
    let options = migrations::lint_options(&app.project, target.protection);
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut store = None;
    if args.paths.is_empty() {
        let dir = app.project.root.join(&app.project.migrations_dir);
        let changed = match args.since {
            Some(git_ref) => Some(changed_since(&app.project.root, &dir, git_ref)?),
            None => None,
        };
        // `--since` alone hashes only the folders a changed path can name (and every
        // link, which may lead to one); `--pending` needs the whole history's status.
        let read = match (&changed, args.pending) {
            (Some(changed), false) => {
                let names = changed_folders(&dir, changed);
                Store::read_where(&dir, None, &|name, is_link| is_link || names.contains(name))?
            }
            // The pending ones come from the whole history's status: the files that did
            // not change since `status` or `deploy` hashed them are taken from their
            // hash cache (a changed file is always re-hashed).
            _ if args.pending => Store::read_cached(
                &dir,
                Some(&app.project.root.join(crate::db::target::HASH_CACHE)),
            )?,
            _ => Store::read(&dir)?,
        };
        if matches!(read.provider.as_deref(), Some(p) if p != "postgresql" && p != "postgres") {
            app.ui.out(&format!(
                "nothing to lint: {} holds {} migrations (migration_lock.toml) and the linter reads PostgreSQL",
                migrations::shown_path(&dir),
                read.provider.unwrap_or_default()
            ));
            return Ok(ExitCode::Ok);
        }
        for m in &read.migrations {
            if let Some(changed) = &changed {
                let path = m.path.canonicalize().unwrap_or_else(|_| m.path.clone());
                if !changed.contains(&path) {
                    continue;
                }
            }
            files.push((migrations::shown_path(&m.path), m.path.clone()));
        }
        let partial = changed.is_some() && !args.pending;
        if read.migrations.is_empty() && (!partial || !has_migrations(&dir)) {
            app.ui.out(&format!(
                "no migrations found in {}",
                migrations::shown_path(&dir)
            ));
            return Ok(ExitCode::Ok);
        }
        if let (Some(git_ref), true) = (args.since, files.is_empty()) {
            app.ui.out(&format!(
                "✔ no migration added or changed since {git_ref} in {}: nothing to lint",
                migrations::shown_path(&dir)
            ));
            return Ok(ExitCode::Ok);
        }
        store = Some(read);
    } else {
        for path in args.paths {
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
    let mut database = String::new();
    let mut catalog = None;
    if args.pending || (env_flag.is_some() && !args.static_only) {
        let pending_of = store.as_ref().filter(|_| args.pending);
        let live = read_database(app, env_flag, pending_of, &mut files);
        match live {
            Ok(read) => {
                database = format!(
                    " against its database ({} table{})",
                    read.table_count(),
                    if read.table_count() == 1 { "" } else { "s" }
                );
                catalog = Some(read);
                if args.pending && files.is_empty() {
                    app.ui.out(&format!(
                        "✔ no pending migrations on `{}`: nothing to lint",
                        target.env
                    ));
                    return Ok(ExitCode::Ok);
                }
            }
            Err(why) if args.pending => {
                return Err(Error::failed(format!(
                    "cannot tell which migrations are pending on `{}`: {why}",
                    target.env
                )));
            }
            Err(why) => {
                app.ui.warn(&format!(
                    "could not read the database of `{}` ({why}): linting the SQL alone (--static says so quietly)",
                    target.env
                ));
            }
        }
    }
    let (reports, unreadable) = lint::lint_files(&files, &options, catalog);
    let summary = report::Summary::of(&reports);
    let describe = format!(
        "environment `{}` ({}){database}",
        target.env,
        target.protection.as_str()
    );
    if app.ui.json || args.format == LintFormat::Json {
        let mut doc = report::json(
            &reports,
            &unreadable,
            &target.env,
            target.protection.as_str(),
        );
        doc["skipped"] = serde_json::json!(skipped);
        doc["database_read"] = serde_json::json!(!database.is_empty());
        app.ui.json_doc(&doc);
    } else if args.format == LintFormat::Github {
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

fn list_rules(app: &App) {
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
}

/// The environment's live catalog, read for the relations `files` name only (see
/// `lint::names`); with a store, `files` is first narrowed to the migrations the
/// environment has not applied. `Err` says why the database could not be read.
fn read_database(
    app: &App,
    env_flag: Option<&str>,
    store: Option<&Store>,
    files: &mut Vec<(String, PathBuf)>,
) -> std::result::Result<Arc<Catalog>, String> {
    let env = app.env(env_flag).map_err(|e| e.to_string())?;
    let target = Target::for_env(&app.project, &env);
    if !target.url.is_postgres() {
        return Err("it is not PostgreSQL".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut conn = tokio::time::timeout(CONNECT_WAIT, target.connect())
            .await
            .map_err(|_| format!("no answer within {}s", CONNECT_WAIT.as_secs()))?
            .map_err(|e| e.to_string())?;
        if let Some(store) = store {
            let status = migrate::history_status(&mut conn, store, &target.table)
                .await
                .map_err(|e| e.to_string())?;
            let pending: HashSet<String> = status
                .entries
                .iter()
                .filter(|e| {
                    matches!(
                        e.state,
                        migrate::State::Pending | migrate::State::RolledBack
                    )
                })
                .map(|e| e.name.clone())
                .collect();
            files.retain(|(_, path)| {
                lint::migration_name(path).is_some_and(|n| pending.contains(&n))
            });
        }
        let names = lint::names::of_files(files);
        let catalog = migrations::catalog_for_lint_of(&mut conn, names.as_ref()).await;
        conn.close().await;
        catalog
    })
}

/// The migration files under `dir` added or changed since `git_ref` (each resolved, and
/// as git names it): from the merge base
/// of `git_ref` and HEAD to the working tree, untracked files included.
fn changed_since(root: &Path, dir: &Path, git_ref: &str) -> Result<HashSet<PathBuf>> {
    let git = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .map_err(|e| Error::io("running git (needed by --since)", e))?;
        if !out.status.success() {
            return Err(Error::Usage(format!(
                "--since {git_ref}: git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    let verified = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{git_ref}^{{commit}}"),
    ])?;
    let base = git(&["merge-base", verified.trim(), "HEAD"])
        .map(|b| b.trim().to_string())
        .unwrap_or_else(|_| verified.trim().to_string());
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let rel = if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.to_string_lossy().to_string()
    };
    let changed = git(&[
        "diff",
        "--name-only",
        "--no-renames",
        "--relative",
        "--diff-filter=ACMRT",
        &base,
        "--",
        &rel,
    ])?;
    let untracked = git(&["ls-files", "--others", "--exclude-standard", "--", &rel])?;
    // Resolved (a migration is linted when its resolved path changed) and as git names
    // them (to find which folders to read, see `changed_folders`).
    Ok(changed
        .lines()
        .chain(untracked.lines())
        .filter(|l| !l.is_empty())
        .flat_map(|l| {
            let path = root.join(l);
            [path.canonicalize().unwrap_or_else(|_| path.clone()), path]
        })
        .collect())
}

/// The migration folders of `dir` a changed path (as git names it, or resolved) can be the `migration.sql` of. Folders reached through a link are asked
/// for separately (see `Store::read_where`); the caller still keeps only the files
/// whose resolved path changed, as before.
fn changed_folders(dir: &Path, changed: &HashSet<PathBuf>) -> HashSet<String> {
    let real_dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut names = HashSet::new();
    for path in changed {
        for base in [dir, real_dir.as_path()] {
            let Ok(rel) = path.strip_prefix(base) else {
                continue;
            };
            let mut parts = rel.components();
            if let (Some(folder), Some(file), None) = (parts.next(), parts.next(), parts.next()) {
                if file.as_os_str() == "migration.sql" {
                    names.insert(folder.as_os_str().to_string_lossy().to_string());
                }
            }
        }
    }
    names
}

/// Whether `dir` holds at least one migration folder (stops at the first).
fn has_migrations(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.path().join("migration.sql").is_file())
    })
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
