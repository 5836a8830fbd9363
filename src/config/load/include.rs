//! `include:`: the files the patterns match, each checked before it is opened.

use super::build::Builder;
use super::file::read;
use super::yaml_error::parse_yaml;
use crate::config::diagnostic::{Diagnostic, Loc};
use crate::config::raw::{RawInclude, SStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Reads the files the `include:` patterns (relative to `root`) match into `builder`,
/// adding each file read to `files`; a pattern matching nothing, and a file outside the
/// project (`real_root`) or not a regular file, is an error at the pattern.
pub(super) fn add_includes(
    file: &Arc<PathBuf>,
    root: &Path,
    real_root: &Path,
    patterns: &[SStr],
    builder: &mut Builder,
    files: &mut Vec<Arc<PathBuf>>,
    errors: &mut Vec<Diagnostic>,
) {
    for pattern in patterns {
        let at = Loc::new(file, &pattern.referenced);
        let full = root.join(&pattern.value);
        let full_text = full.to_string_lossy().to_string();
        let matches: Vec<PathBuf> = match glob::glob(&full_text) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                errors.push(Diagnostic::at(
                    at,
                    format!("bad include pattern `{}`: {e}", pattern.value),
                ));
                continue;
            }
        };
        if matches.is_empty() {
            errors.push(
                Diagnostic::at(at, format!("include `{}` matches no file", pattern.value))
                    .with_note(format!("looked for {full_text}")),
            );
            continue;
        }
        for included in matches {
            if let Some(why) = include_refusal(&included, real_root) {
                errors.push(
                    Diagnostic::at(
                        at.clone(),
                        format!(
                            "include `{}`: {} {why}; dbflow does not read it",
                            pattern.value,
                            included.display()
                        ),
                    )
                    .with_help(
                        "include YAML files that live in the project, e.g. `workflows/*.yaml`",
                    ),
                );
                continue;
            }
            let inc_file = Arc::new(included.clone());
            files.push(Arc::clone(&inc_file));
            match read(&included).and_then(|t| parse_yaml::<RawInclude>(&inc_file, &t)) {
                Ok(inc) => {
                    builder.add_tasks(&inc_file, inc.tasks, errors);
                    builder.add_workflows(&inc_file, inc.workflows, errors);
                }
                Err(d) => errors.push(d),
            }
        }
    }
}
