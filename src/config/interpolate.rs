//! `${VAR}` and `${VAR:-default}` from the process environment and the `.env` file.
//! `$${` writes a literal `${`. A plain `$VAR` is left for the shell.

use super::diagnostic::{find_after, Diagnostic};
use super::model::Text;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::Path;

/// The variables interpolation can see: the process environment first, then `.env`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    process: HashMap<String, String>,
    dotenv: IndexMap<String, String>,
    /// Documentation mode: every variable reads as its own reference (`${NAME}`), so
    /// rendered docs show where values come from and never contain them.
    references_only: bool,
}

impl Vars {
    /// The current process environment plus the dotenv file, if any. Secret-looking
    /// values are registered with the redaction layer as they are read.
    pub fn load(dotenv: Option<&Path>) -> Result<Self, Diagnostic> {
        let process: HashMap<String, String> = std::env::vars().collect();
        let mut file_vars = IndexMap::new();
        if let Some(path) = dotenv {
            let iter = dotenvy::from_path_iter(path)
                .map_err(|e| Diagnostic::bare(format!("cannot read {}: {e}", path.display())))?;
            for item in iter {
                let (k, v) =
                    item.map_err(|e| Diagnostic::bare(format!("{}: {e}", path.display())))?;
                file_vars.insert(k, v);
            }
        }
        let vars = Vars {
            process,
            dotenv: file_vars,
            references_only: false,
        };
        crate::redact::register_env(vars.iter());
        Ok(vars)
    }

    /// Variables from explicit pairs (tests, zero-config).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Vars {
            process: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dotenv: IndexMap::new(),
            references_only: false,
        }
    }

    /// Variables for rendering documentation: nothing is read, every `${NAME}` stays a
    /// reference (defaults too: docs describe every machine, not this one).
    pub fn references_only() -> Self {
        Vars {
            references_only: true,
            ..Vars::default()
        }
    }

    /// Looks a variable up (process environment wins over `.env`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.process
            .get(name)
            .or_else(|| self.dotenv.get(name))
            .map(String::as_str)
    }

    /// A non-empty value, or `None`.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every variable (process environment wins).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.dotenv
            .iter()
            .filter(|(k, _)| !self.process.contains_key(*k))
            .chain(self.process.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The `.env` variables only (exported to tasks, as Prisma's CLI would load them).
    pub fn dotenv(&self) -> impl Iterator<Item = (&str, &str)> {
        self.dotenv.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The names of every `${NAME}` / `${NAME:-…}` referenced in `text`, in order, once each.
pub fn referenced_vars(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)").expect("static regex");
    let mut out: Vec<String> = Vec::new();
    for caps in re.captures_iter(text) {
        let name = caps[1].to_string();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A variable that was needed but not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The variable's name.
    pub name: String,
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `text`.
pub fn interpolate(text: &str, vars: &Vars) -> Result<String, Missing> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let Some(end) = matching_brace(body) else {
                out.push_str(after);
                rest = "";
                break;
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if vars.references_only {
                out.push_str(&after[..end + 3]);
                rest = &body[end + 1..];
                continue;
            }
            match (vars.non_empty(name), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(&interpolate(default, vars)?),
                (None, None) => {
                    return Err(Missing {
                        name: name.to_string(),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${`, skipping nested `${…}` in defaults.
fn matching_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Interpolates a located text; a missing variable becomes a diagnostic pointing at it.
pub fn interpolate_text(text: &Text, vars: &Vars, what: &str) -> Result<String, Diagnostic> {
    interpolate(&text.value, vars).map_err(|missing| missing_diagnostic(&missing, &text.loc, what))
}

fn missing_diagnostic(missing: &Missing, loc: &super::diagnostic::Loc, what: &str) -> Diagnostic {
    let at = find_after(loc, &format!("${{{}", missing.name)).unwrap_or_else(|| loc.clone());
    Diagnostic::at(
        at,
        format!(
            "environment variable `{}` is not set (used in {what})",
            missing.name
        ),
    )
    .with_help(format!(
        "set {name} in the environment or the .env file, or give a default: ${{{name}:-value}}",
        name = missing.name
    ))
}

/// Interpolates every string inside a JSON value (step parameters).
pub fn interpolate_json(
    value: &serde_json::Value,
    vars: &Vars,
    loc: &super::diagnostic::Loc,
    what: &str,
) -> Result<serde_json::Value, Diagnostic> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => {
            Value::String(interpolate(s, vars).map_err(|m| missing_diagnostic(&m, loc, what))?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| interpolate_json(v, vars, loc, what))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), interpolate_json(v, vars, loc, what)?)))
                .collect::<Result<_, Diagnostic>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_table() {
        let vars = Vars::from_pairs([("HOST", "db"), ("EMPTY", ""), ("PORT", "5432")]);
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${HOST}:${PORT}", Ok("db:5432")),
            ("${NOPE:-fallback}", Ok("fallback")),
            ("${EMPTY:-used-when-empty}", Ok("used-when-empty")),
            ("${NOPE:-${HOST}}", Ok("db")),
            ("$$HOME and $${HOST}", Ok("$$HOME and ${HOST}")),
            ("cost $5", Ok("cost $5")),
            ("${MISSING}", Err("MISSING")),
            ("x ${EMPTY}", Err("EMPTY")),
        ];
        for (input, expected) in cases {
            let got = interpolate(input, &vars).map_err(|m| m.name);
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                *expected,
                "input {input}"
            );
        }
    }
}
