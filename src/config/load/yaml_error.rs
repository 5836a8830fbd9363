//! YAML parsing with errors people can act on: serde-saphyr's message with the
//! file:line:col, the key a wrongly shaped value belongs to, and "did you mean" for
//! unknown keys and values.

use crate::config::diagnostic::{did_you_mean, Diagnostic, Loc};
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Arc<PathBuf>,
    text: &str,
) -> Result<T, Diagnostic> {
    serde_saphyr::from_str::<T>(text).map_err(|err| yaml_error(path, text, &err))
}

/// Converts a serde-saphyr error into a diagnostic, adding a suggestion for unknown
/// keys and values.
fn yaml_error(path: &Arc<PathBuf>, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let mut message = err.without_snippet().to_string();
    if let Some(index) = message.rfind(" at line ") {
        message.truncate(index);
    }
    let loc = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| Loc::new(path, &l));
    let mut help = unknown_name_help(&message);
    if let Some((shape_message, shape_help)) =
        loc.as_ref().and_then(|l| wrong_shape(&message, text, l))
    {
        message = shape_message;
        help = Some(shape_help);
    }
    let diagnostic = Diagnostic {
        message,
        loc,
        help,
        notes: Vec::new(),
    };
    if diagnostic.loc.is_none() {
        return diagnostic.with_note(format!("in {}", path.display()));
    }
    diagnostic
}

/// serde-saphyr reports a value of the wrong shape as "expected sequence start" or
/// "invalid boolean", naming neither the key nor what to write. The key is taken from the
/// source line when the value sits right after it (`dependencies: generate`).
fn wrong_shape(message: &str, text: &str, loc: &Loc) -> Option<(String, String)> {
    let (wanted, example) = if message.starts_with("expected sequence start") {
        (
            "a list",
            "write `[a, b]`, or one `- item` per line below the key",
        )
    } else if message.starts_with("expected mapping start") {
        (
            "a mapping",
            "write `key: value` lines, indented below the key",
        )
    } else if message.starts_with("invalid boolean") {
        ("`true` or `false`", "write `true` or `false`")
    } else {
        return None;
    };
    let line = text
        .lines()
        .nth(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
    let before: String = line
        .chars()
        .take(usize::try_from(loc.col).ok()?.saturating_sub(1))
        .collect();
    let key = before
        .trim()
        .trim_start_matches("- ")
        .strip_suffix(':')
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
    Some(match key {
        Some(key) => (format!("`{key}` must be {wanted}"), example.to_string()),
        None => (format!("expected {wanted} here"), example.to_string()),
    })
}

/// serde says "unknown field `comand`, expected one of command, args"; turn the list
/// into a "did you mean".
pub(super) fn unknown_name_help(message: &str) -> Option<String> {
    let re = regex::Regex::new(r"unknown (?:field|variant) `([^`]+)`, expected (?:one of )?(.+)$")
        .ok()?;
    let caps = re.captures(message)?;
    let name = caps.get(1)?.as_str();
    let expected: Vec<String> = caps
        .get(2)?
        .as_str()
        .split(", ")
        .map(|s| s.trim_matches(|c| c == '`' || c == ' ').to_string())
        .collect();
    did_you_mean(name, expected.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_gets_a_suggestion() {
        assert_eq!(
            unknown_name_help("unknown field `comand`, expected one of command, args, script"),
            Some("did you mean `command`?".into())
        );
        assert_eq!(
            unknown_name_help(
                "unknown variant `protectd`, expected one of `sandbox`, `shared`, `protected`"
            ),
            Some("did you mean `protected`?".into())
        );
    }
}
