//! `dbflow hook install`: a git pre-commit hook that runs `dbflow scan --staged`.
//!
//! The hook calls dbflow by the absolute path of the binary that installed it (falling
//! back to `dbflow` on PATH if that file is gone), so it works from GUIs and shells that
//! do not share the installer's PATH. An existing pre-commit hook is kept: it is moved
//! beside ours and run first. `git commit --no-verify` skips both, as git users expect.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A line only our hook has, to recognise it when installing again.
pub const MARKER: &str = "# dbflow pre-commit hook (installed by `dbflow hook install`)";

/// Where an existing hook is kept and chained from.
pub const CHAINED: &str = "pre-commit.dbflow-chained";

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The hook file.
    pub path: PathBuf,
    /// The previous hook, moved aside and chained, when there was one.
    pub chained: Option<PathBuf>,
    /// Whether our hook was already there (and was refreshed).
    pub updated: bool,
}

/// The hooks folder of the repository `dir` is in (honours `core.hooksPath`).
pub fn hooks_dir(dir: &Path) -> Result<PathBuf> {
    let output = Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .current_dir(dir)
        .output()
        .map_err(|e| Error::io("running git", e))?;
    if !output.status.success() {
        return Err(Error::Usage(format!(
            "not in a git repository: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Ok(if path.is_absolute() {
        path
    } else {
        dir.join(path)
    })
}

/// The hook script calling `dbflow` at `binary`.
pub fn script(binary: &Path) -> String {
    let binary = shell_words::quote(&binary.to_string_lossy()).into_owned();
    format!(
        r#"#!/bin/sh
{MARKER}
# Scans the staged changes for dangerous database operations (DROP TABLE, TRUNCATE,
# prisma migrate reset, db push --accept-data-loss, …). Bypass once: git commit --no-verify
hooks_dir=$(dirname "$0")
if [ -x "$hooks_dir/{CHAINED}" ]; then
  "$hooks_dir/{CHAINED}" "$@" || exit $?
fi
dbflow={binary}
if [ ! -x "$dbflow" ]; then
  dbflow=$(command -v dbflow) || {{
    echo "dbflow pre-commit hook: dbflow not found at {binary} nor on PATH; reinstall it (dbflow hook install) or commit with --no-verify" >&2
    exit 1
  }}
fi
exec "$dbflow" scan --staged
"#
    )
}

/// Installs the hook for the repository `dir` is in, calling `binary`.
pub fn install(dir: &Path, binary: &Path) -> Result<Installed> {
    let hooks = hooks_dir(dir)?;
    std::fs::create_dir_all(&hooks)
        .map_err(|e| Error::io(format!("creating {}", hooks.display()), e))?;
    let path = hooks.join("pre-commit");
    let mut chained = None;
    let mut updated = false;
    if path.exists() {
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        if existing.contains(MARKER) {
            updated = true;
        } else {
            let aside = hooks.join(CHAINED);
            if aside.exists() {
                return Err(Error::Usage(format!(
                    "{} exists and is not dbflow's, and {} is taken too: merge them by hand",
                    path.display(),
                    aside.display()
                )));
            }
            std::fs::rename(&path, &aside)
                .map_err(|e| Error::io(format!("moving {} aside", path.display()), e))?;
            chained = Some(aside);
        }
    }
    std::fs::write(&path, script(binary))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    make_executable(&path)?;
    if let Some(aside) = &chained {
        make_executable(aside)?;
    }
    if updated && hooks.join(CHAINED).exists() {
        chained = Some(hooks.join(CHAINED));
    }
    Ok(Installed {
        path,
        chained,
        updated,
    })
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .permissions();
    perms.set_mode(perms.mode() | 0o755);
    std::fs::set_permissions(path, perms)
        .map_err(|e| Error::io(format!("making {} executable", path.display()), e))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}
