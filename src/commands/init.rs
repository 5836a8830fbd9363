//! `dbflow init`: scaffold a project. Refuses to overwrite anything: every target is
//! checked before the first file is written.

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
    let workflowfile = WORKFLOWFILE_TEMPLATE.replace("{{project}}", &project);
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
    if has_prisma {
        ui.out("found prisma/: migrations are read from prisma/migrations");
    }
    ui.out("next: `dbflow validate`, then `dbflow list`");
    Ok(ExitCode::Ok)
}
