//! `dbflow init`: scaffold a project that fits the one it finds. Refuses to overwrite
//! anything: every target is checked before the first file is written; `.gitignore` is
//! only ever appended to.

use crate::config::load::BUILTIN_WORKFLOWS;
use crate::error::{Error, ExitCode, Result};
use crate::ui::Ui;
use std::path::{Path, PathBuf};

const WORKFLOWFILE_TEMPLATE: &str = include_str!("init_workflowfile.yaml");
const TEMPLATES_README: &str = include_str!("../../templates/README.md");
const LUA_README: &str = include_str!("../../scripts-lua/README.md");

pub fn run(dir: &Path, ui: &Ui) -> Result<ExitCode> {
    let prisma = dir.join("prisma");
    let has_prisma = prisma.join("schema.prisma").is_file() || prisma.join("migrations").is_dir();
    let project = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "app".into());
    let provider = prisma_provider(&prisma);
    let postgres = provider.as_deref() == Some("postgresql");
    let workflowfile = WORKFLOWFILE_TEMPLATE
        .replace("{{project}}", &project)
        .replace("{{local}}", local_entry(postgres));
    let mut files: Vec<(PathBuf, String)> = vec![(dir.join("Workflowfile.yaml"), workflowfile)];
    for (name, text) in BUILTIN_WORKFLOWS {
        files.push((dir.join(name), text.to_string()));
    }
    files.push((
        dir.join("templates/README.md"),
        TEMPLATES_README.to_string(),
    ));
    files.push((dir.join("scripts-lua/README.md"), LUA_README.to_string()));
    if !has_prisma {
        files.push((dir.join("prisma/migrations/.gitkeep"), String::new()));
    }

    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "refusing to overwrite existing files (nothing was written):\n  {}",
            existing.join("\n  ")
        )));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        ui.out(&format!("created {}", path.display()));
    }
    for line in ignore_entries(&dir.join(".gitignore"))? {
        ui.out(&line);
    }
    if has_prisma {
        ui.out("found prisma/: migrations are read from prisma/migrations");
    }
    match provider.as_deref() {
        Some("postgresql") => ui.out("found a PostgreSQL project (migration_lock.toml): `local` is DATABASE_URL (from the environment, .env or prisma/.env), sandbox-protected"),
        Some("sqlite") | None => {}
        Some(other) => ui.out(&format!("found provider `{other}`: dbflow migrates PostgreSQL and SQLite only, so `local` is a SQLite file")),
    }
    ui.out("next:");
    ui.out("  dbflow validate");
    ui.out("  dbflow migrate status --env local");
    ui.out("  dbflow run deploy --env local --dry-run");
    Ok(ExitCode::Ok)
}

/// The `local` environment's URL lines: Prisma's own `DATABASE_URL` for a PostgreSQL
/// project (the first deploy must reach the database the app uses), else a SQLite file
/// that needs no server.
fn local_entry(postgres: bool) -> &'static str {
    if postgres {
        "    # Prisma's DATABASE_URL (environment, .env or prisma/.env); LOCAL_DATABASE_URL wins.\n    # Sandbox: destructive commands (migrate reset, db push --force-reset) still need a\n    # database whose name matches sandbox_pattern, so a shared one stays safe.\n    url: ${LOCAL_DATABASE_URL:-${DATABASE_URL}}"
    } else {
        "    # A SQLite file: no server needed. Set LOCAL_DATABASE_URL to use another database.\n    url: ${LOCAL_DATABASE_URL:-sqlite:.dbflow/local.db}"
    }
}

/// The provider of a Prisma project: `migration_lock.toml` (what Prisma checks before
/// applying migrations), else the `datasource` block of `schema.prisma`.
fn prisma_provider(prisma: &Path) -> Option<String> {
    let quoted = |line: &str| -> Option<String> {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "provider").then(|| value.trim().trim_matches('"').to_string())
    };
    if let Ok(lock) = std::fs::read_to_string(prisma.join("migrations/migration_lock.toml")) {
        if let Some(p) = lock.lines().find_map(quoted) {
            return Some(p);
        }
    }
    let schema = std::fs::read_to_string(prisma.join("schema.prisma")).ok()?;
    let datasource = schema
        .split("datasource")
        .nth(1)?
        .split('}')
        .next()?
        .to_string();
    datasource.lines().find_map(quoted)
}

/// Paths that must never be committed: backups hold customer data, `.dbflow/` run
/// journals and local databases.
const IGNORED: &[&str] = &["backups/", ".dbflow/"];

/// Appends to `.gitignore` the entries of [`IGNORED`] it lacks (created when missing,
/// never rewritten); returns what to tell the user.
fn ignore_entries(path: &Path) -> Result<Vec<String>> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let normal = |l: &str| l.trim().trim_matches('/').to_string();
    let present: Vec<String> = existing.lines().map(normal).collect();
    let missing: Vec<&str> = IGNORED
        .iter()
        .copied()
        .filter(|entry| !present.contains(&normal(entry)))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut addition = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        addition.push('\n');
    }
    addition.push_str("# dbflow: backups hold customer data; .dbflow/ holds run journals\n");
    for entry in &missing {
        addition.push_str(entry);
        addition.push('\n');
    }
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(addition.as_bytes()))
        .map_err(|e| Error::io(format!("appending to {}", path.display()), e))?;
    let verb = if existing.is_empty() {
        "created"
    } else {
        "appended to"
    };
    Ok(vec![format!(
        "{verb} {}: {}",
        path.display(),
        missing.join(" ")
    )])
}
