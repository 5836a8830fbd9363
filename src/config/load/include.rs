//! Which included files may be read at all.

use std::path::Path;

/// Why an include must not be read: it resolves outside the project folder `root`, or is
/// not a regular file. Checked before the file is opened, so that nothing of it (not even
/// an error snippet) can reach the output: `include: [/proc/self/environ]` would otherwise
/// print the process environment.
pub(super) fn include_refusal(included: &Path, root: &Path) -> Option<String> {
    let real = match included.canonicalize() {
        Ok(real) => real,
        Err(e) => return Some(format!("cannot be resolved ({e})")),
    };
    if !real.starts_with(root) {
        return Some(format!(
            "resolves outside the project folder {}",
            root.display()
        ));
    }
    match std::fs::metadata(&real) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some("is not a regular file".into()),
        Err(e) => Some(format!("cannot be read ({e})")),
    }
}
