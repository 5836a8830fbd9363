//! `${VAR}` and `${VAR:-default}` from the process environment and the `.env` files
//! (the project's `.env`, then `prisma/.env`, where Prisma's CLI reads them).
//! `$${` writes a literal `${`. A plain `$VAR` is left for the shell.

use super::diagnostic::{find_after, Diagnostic};
use super::model::Text;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The variables of one dotenv file, in file order.
fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, Diagnostic> {
    let iter = dotenvy::from_path_iter(path)
        .map_err(|e| Diagnostic::bare(format!("cannot read {}: {e}", path.display())))?;
    iter.map(|item| {
        // dotenvy's parse error quotes the line, which holds a secret as often as not:
        // name the position only.
        item.map_err(|e| {
            let why = match e {
                dotenvy::Error::LineParse(_, at) => format!("cannot parse the line at byte {at}"),
                other => other.to_string(),
            };
            Diagnostic::bare(format!("{}: {why}", path.display()))
        })
    })
    .collect()
}

/// The process environment's variables whose name and value are UTF-8. Another (a `PWD`
/// inside a folder named in Latin-1, a stray byte in an unrelated variable) cannot be
/// interpolated into text: it reads as unset, where `std::env::vars` would panic and stop
/// every command.
pub fn utf8_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

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
    /// The current process environment plus the dotenv files, in order. Secret-looking
    /// values are registered with the redaction layer as they are read.
    ///
    /// Like Prisma's CLI, a variable set in two files with different values is an error
    /// (which one wins would be a guess); the process environment wins over every file.
    pub fn load(dotenv: &[PathBuf]) -> Result<Self, Diagnostic> {
        let process: HashMap<String, String> = utf8_env().collect();
        let mut file_vars: IndexMap<String, String> = IndexMap::new();
        let mut origin: HashMap<String, &Path> = HashMap::new();
        let mut conflicts: Vec<String> = Vec::new();
        for path in dotenv {
            for (k, v) in read_dotenv(path)? {
                match file_vars.get(&k) {
                    Some(earlier) if *earlier != v => {
                        conflicts.push(format!(
                            "{k} (in {} and {})",
                            origin[&k].display(),
                            path.display()
                        ));
                        // Both values are secrets as often as not: registered, never shown.
                        crate::redact::register_env([(k.as_str(), v.as_str())]);
                    }
                    Some(_) => {}
                    None => {
                        origin.insert(k.clone(), path);
                        file_vars.insert(k, v);
                    }
                }
            }
        }
        let vars = Vars {
            process,
            dotenv: file_vars,
            references_only: false,
        };
        crate::redact::register_env(vars.iter());
        if !conflicts.is_empty() {
            return Err(Diagnostic::bare(format!(
                "conflicting values between .env files, as Prisma's CLI would refuse them too: {}\n  keep each variable in one file (Prisma suggests moving prisma/.env into .env)",
                conflicts.join(", ")
            )));
        }
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

/// Why a text could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// A variable that was needed but not set (and has no default).
    Missing {
        /// The variable's name.
        name: String,
    },
    /// A `${` without its closing `}`, at this byte offset of the text: an error, not a
    /// literal, so that `${DATABASE_URL:-postgres://…` missing its brace is not used as a
    /// URL.
    Unterminated {
        /// Byte offset of the `${`.
        offset: usize,
    },
}

/// Byte offset of the first `${` in `text` that is never closed (checked at load time, for
/// every value that will be interpolated).
pub fn unterminated(text: &str) -> Option<usize> {
    let mut at = 0;
    while let Some(pos) = text[at..].find('$') {
        let start = at + pos;
        let after = &text[start..];
        if after.starts_with("$${") {
            at = start + 3;
        } else if let Some(body) = after.strip_prefix("${") {
            match matching_brace(body) {
                Some(end) => at = start + 2 + end + 1,
                None => return Some(start),
            }
        } else {
            at = start + 1;
        }
    }
    None
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `text`.
pub fn interpolate(text: &str, vars: &Vars) -> Result<String, Unresolved> {
    // A syntax error wins over a missing variable, wherever each is.
    if let Some(offset) = unterminated(text) {
        return Err(Unresolved::Unterminated { offset });
    }
    interpolate_at(text, vars, 0)
}

fn interpolate_at(text: &str, vars: &Vars, base: usize) -> Result<String, Unresolved> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let offset = base + (text.len() - after.len());
            let Some(end) = matching_brace(body) else {
                return Err(Unresolved::Unterminated { offset });
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
                (None, Some(default)) => {
                    out.push_str(&interpolate_at(default, vars, offset + 2 + name.len() + 2)?)
                }
                (None, None) => {
                    return Err(Unresolved::Missing {
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
    interpolate(&text.value, vars)
        .map_err(|why| unresolved_diagnostic(&why, &text.value, &text.loc, what))
}

/// The diagnostic for a `${` that is never closed in `value` (written at `loc`), if any.
pub fn check_text(value: &str, loc: &super::diagnostic::Loc, what: &str) -> Option<Diagnostic> {
    let offset = unterminated(value)?;
    Some(unresolved_diagnostic(
        &Unresolved::Unterminated { offset },
        value,
        loc,
        what,
    ))
}

/// The diagnostic for an interpolation error in `value`, written at `loc`.
pub fn unresolved_diagnostic(
    why: &Unresolved,
    value: &str,
    loc: &super::diagnostic::Loc,
    what: &str,
) -> Diagnostic {
    match why {
        Unresolved::Missing { name } => missing_diagnostic(name, loc, what),
        Unresolved::Unterminated { offset } => {
            // The located value starts at `loc`; the `${` is found in the file by its
            // text (a quoted or folded YAML scalar is not byte-for-byte the value).
            let fragment: String = value[*offset..]
                .lines()
                .next()
                .unwrap_or("${")
                .chars()
                .take(24)
                .collect();
            let at = find_after(loc, &fragment)
                .or_else(|| find_after(loc, "${"))
                .unwrap_or_else(|| loc.clone());
            Diagnostic::at(
                at,
                format!("unterminated `${{` in {what}: `{fragment}` has no closing `}}`"),
            )
            .with_help(
                "close it (`${NAME}`, `${NAME:-default}`), or write `$${` for a literal `${`",
            )
        }
    }
}

fn missing_diagnostic(name: &str, loc: &super::diagnostic::Loc, what: &str) -> Diagnostic {
    let at = find_after(loc, &format!("${{{name}")).unwrap_or_else(|| loc.clone());
    Diagnostic::at(
        at,
        format!("environment variable `{name}` is not set (used in {what})"),
    )
    .with_help(format!(
        "set {name} in the environment or the .env file, or give a default: ${{{name}:-value}}"
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
        Value::String(s) => Value::String(
            interpolate(s, vars).map_err(|m| unresolved_diagnostic(&m, s, loc, what))?,
        ),
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
            ("${A", Err("unterminated at 0")),
            ("postgres://${A:-localhost", Err("unterminated at 11")),
            ("${NOPE:-${HOST}", Err("unterminated at 0")),
            ("${NOPE:-x ${B}", Err("unterminated at 0")),
            ("ok ${HOST} then ${", Err("unterminated at 16")),
            ("$${ is literal", Ok("${ is literal")),
        ];
        for (input, expected) in cases {
            let got = interpolate(input, &vars).map_err(|m| match m {
                Unresolved::Missing { name } => name,
                Unresolved::Unterminated { offset } => format!("unterminated at {offset}"),
            });
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                *expected,
                "input {input}"
            );
        }
    }

    #[test]
    fn unterminated_is_found_without_variables() {
        assert_eq!(unterminated("${A} ${B:-${C}}"), None);
        assert_eq!(unterminated("$${A"), None);
        assert_eq!(unterminated("a ${A:-"), Some(2));
        assert_eq!(unterminated("${A} ${B:-${C}"), Some(5));
    }
}
