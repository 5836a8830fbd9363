//! Finding the Workflowfile: the explicit path, else the nearest one upward.

use crate::config::diagnostic::Diagnostic;
use std::path::{Path, PathBuf};

/// The file name dbflow looks for.
pub const WORKFLOWFILE: &str = "Workflowfile.yaml";

/// Finds the Workflowfile: the explicit path, else the nearest one upward from `start`.
pub fn find(explicit: Option<&Path>, start: &Path) -> Result<Option<PathBuf>, Diagnostic> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(Some(path.to_path_buf()));
        }
        return Err(Diagnostic::bare(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(WORKFLOWFILE);
        if candidate.is_file() {
            return Ok(Some(relative_to_cwd(&candidate, start)));
        }
        dir = d.parent();
    }
    Ok(None)
}

fn relative_to_cwd(path: &Path, cwd: &Path) -> PathBuf {
    path.strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
