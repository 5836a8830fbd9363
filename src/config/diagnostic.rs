//! Source locations and the errors that point at them (`file:line:col`, a snippet with
//! a caret, and a "did you mean" help line).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A position in a loaded file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// The file as the user should see it (relative to the working directory when possible).
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub col: u64,
}

impl Loc {
    /// A location in `file` from a serde-saphyr location.
    pub fn new(file: &Arc<PathBuf>, at: &serde_saphyr::Location) -> Self {
        Loc {
            file: Arc::clone(file),
            line: at.line().max(1),
            col: at.column().max(1),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem found while loading or validating, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in one line.
    pub message: String,
    /// Where, when known.
    pub loc: Option<Loc>,
    /// How to fix it ("did you mean `backup`?").
    pub help: Option<String>,
    /// Further context lines (the cycle, the other definition, …).
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic at `loc`.
    pub fn at(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            loc: Some(loc),
            help: None,
            notes: Vec::new(),
        }
    }

    /// A diagnostic without a location (e.g. a missing file).
    pub fn bare(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            loc: None,
            help: None,
            notes: Vec::new(),
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Adds a note line.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders the diagnostic the way it is shown to people: a headline, the location,
    /// the source line with a caret, then help and notes.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        if let Some(loc) = &self.loc {
            out.push_str(&format!("  --> {loc}\n"));
            if let Some(line) = source_line(&loc.file, loc.line) {
                let number = loc.line.to_string();
                let pad = " ".repeat(number.len());
                // Keep tabs so the caret lines up under tab-indented YAML; the line is
                // shown redacted, so the caret is placed in the redacted text.
                let prefix: String = line
                    .chars()
                    .take(loc.col.saturating_sub(1) as usize)
                    .collect();
                let caret_pad: String = crate::redact::redact(&prefix)
                    .chars()
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let line = crate::redact::redact(&line);
                out.push_str(&format!(
                    "{pad} |\n{number} | {line}\n{pad} | {caret_pad}^\n"
                ));
            }
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("  = note: {note}\n"));
        }
        crate::redact::redact(&out)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render().trim_end())
    }
}

/// The project's folder (canonical), once a Workflowfile is loaded: snippets are shown
/// only from files inside it.
static PROJECT_ROOT: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Records the project's folder; diagnostics then quote source lines only from files
/// inside it (an error in a file elsewhere names the file and line, never its text).
pub fn set_project_root(root: &Path) {
    *PROJECT_ROOT.write().unwrap_or_else(|e| e.into_inner()) = Some(root.to_path_buf());
}

/// True when a snippet of `file` may be printed: a regular file of reasonable size,
/// inside the project when one is loaded.
fn may_quote(file: &Path) -> bool {
    let Ok(real) = file.canonicalize() else {
        return false;
    };
    let inside = PROJECT_ROOT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_none_or(|root| real.starts_with(root));
    inside
        && std::fs::metadata(&real)
            .is_ok_and(|m| m.is_file() && m.len() <= super::load::MAX_CONFIG_BYTES)
}

fn source_line(file: &Path, line: u64) -> Option<String> {
    if !may_quote(file) {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .nth(line.checked_sub(1)? as usize)
        .map(|l| l.trim_end().to_string())
}

/// Finds `needle` in `file` at or after `from` (used to point at a key inside a node whose
/// own location is known, e.g. an unknown parameter inside a step).
pub fn find_after(from: &Loc, needle: &str) -> Option<Loc> {
    if !may_quote(&from.file) {
        return None;
    }
    let text = std::fs::read_to_string(from.file.as_ref()).ok()?;
    for (index, line) in text
        .lines()
        .enumerate()
        .skip(from.line.saturating_sub(1) as usize)
    {
        let start = if index + 1 == from.line as usize {
            line.char_indices()
                .nth(from.col.saturating_sub(1) as usize)
                .map(|(i, _)| i)
                .unwrap_or(line.len())
        } else {
            0
        };
        if let Some(pos) = line[start..].find(needle) {
            let col = line[..start + pos].chars().count() as u64 + 1;
            return Some(Loc {
                file: Arc::clone(&from.file),
                line: index as u64 + 1,
                col,
            });
        }
    }
    None
}

/// The closest candidate to `name` by edit distance, when it is close enough to be a typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| {
            *distance <= 2.max(name.len().min(c.len()) / 3) && *distance < name.len().max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.to_string())
}

/// "did you mean `x`?" or nothing.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(name, candidates).map(|s| format!("did you mean `{s}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let kinds = ["task", "shell", "confirm", "workflow", "backup"];
        assert_eq!(suggest("bakup", kinds), Some("backup".into()));
        assert_eq!(suggest("sehll", kinds), Some("shell".into()));
        assert_eq!(suggest("kubernetes", kinds), None);
        assert_eq!(suggest("wrokflow", kinds), Some("workflow".into()));
    }
}
