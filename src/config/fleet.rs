//! `environments.<name>.fleet`: one environment made of many databases (a database per
//! tenant, region or shard). The raw keys as written, and the validated model the fleet
//! runner reads. Where the targets come from is checked here; listing them (running a
//! query or a command) happens at run time in `crate::fleet`.
//!
//! ```yaml
//! fleet:
//!   targets: [acme, globex, { name: initech, url: "postgres://…/initech" }]
//!   url: "postgres://app:${PW}@db/tenant_{name}"   # for targets without their own url
//!   # or: query: "select name from tenants"  (on catalog_url, default the env's url)
//!   # or: command: "./scripts/tenants.sh"    (names one per line, or JSON)
//!   concurrency: 4
//!   waves: [{ targets: [canary-*] }, { percent: 10 }, { rest: true }]
//!   max_failures: 2          # or "10%"
//! ```

use super::diagnostic::{Diagnostic, Loc};
use super::model::Text;
use super::raw::SStr;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::PathBuf;
use std::sync::Arc;

/// `fleet:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// Named targets: a name, or `{ name, url }`.
    pub targets: Option<Vec<Spanned<serde_json::Value>>>,
    /// URL template for targets without their own url: `{name}` is the target's name.
    pub url: Option<SStr>,
    /// A query on the catalog database returning the names (first column) and optionally
    /// the URLs (second column).
    pub query: Option<SStr>,
    /// The database `query` runs on (default: the environment's `url`).
    pub catalog_url: Option<SStr>,
    /// A command printing the targets: names one per line (`name url` also works), or a
    /// JSON array of names or `{ "name": …, "url": … }` objects.
    pub command: Option<SStr>,
    /// Targets run at the same time (default 4; `--concurrency` overrides).
    pub concurrency: Option<Spanned<usize>>,
    /// Waves, in order: `{ targets: [globs] }`, `{ percent: N }`, `{ count: N }`,
    /// `{ rest: true }`.
    #[serde(default)]
    pub waves: Vec<Spanned<RawWave>>,
    /// Stop starting targets once more than this many failed: a count, or `"N%"` of
    /// the selected targets.
    pub max_failures: Option<Spanned<serde_json::Value>>,
}

/// One wave as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWave {
    /// Globs of target names.
    pub targets: Option<Vec<SStr>>,
    /// A share of all selected targets (rounded up).
    pub percent: Option<u32>,
    /// A number of targets.
    pub count: Option<usize>,
    /// Everything not yet run.
    pub rest: Option<bool>,
}

/// Targets run at once when neither `--concurrency` nor `fleet.concurrency` says.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// A validated fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Where `fleet:` was written.
    pub loc: Loc,
    /// Where the targets come from.
    pub source: Source,
    /// URL template (`{name}` replaced), for targets without their own.
    pub url: Option<Text>,
    /// Default concurrency.
    pub concurrency: Option<usize>,
    /// Waves, in order (empty: one wave of everything).
    pub waves: Vec<Wave>,
    /// The failure budget.
    pub max_failures: Option<MaxFailures>,
}

/// Where a fleet's targets come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Declared in the Workflowfile.
    List(Vec<Listed>),
    /// A query on a catalog database.
    Query {
        /// The SQL.
        sql: Text,
        /// The catalog database (default: the environment's url).
        catalog_url: Option<Text>,
    },
    /// A command's output.
    Command(Text),
}

/// A target declared in the Workflowfile.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its own URL, when given.
    pub url: Option<Text>,
}

/// One wave.
#[derive(Debug, Clone, PartialEq)]
pub enum Wave {
    /// Targets whose names match one of these globs.
    Targets(Vec<String>),
    /// A share of the selected targets (rounded up, at least one).
    Percent(u32),
    /// A number of targets.
    Count(usize),
    /// Every target not in an earlier wave.
    Rest,
}

/// `max_failures`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFailures {
    /// More than this many failed targets stop the run.
    Count(usize),
    /// More than this share of the selected targets.
    Percent(u32),
}

impl MaxFailures {
    /// The number of failures tolerated among `total` targets.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            MaxFailures::Count(n) => n,
            MaxFailures::Percent(p) => total * p as usize / 100,
        }
    }
}

/// Why a target name cannot be used (it becomes part of folder and file names, and of
/// the `ENV/TARGET` instance name), or `None`.
pub fn target_name_problem(name: &str) -> Option<String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || !ok_start || !ok_chars || name.len() > 63 || name.contains("..") {
        return Some(format!(
            "target name `{name}` is not usable: letters, digits, `_`, `-`, `.`, starting with a letter or digit, at most 63 characters"
        ));
    }
    None
}

fn text(file: &Arc<PathBuf>, s: &SStr) -> Text {
    Text {
        value: s.value.clone(),
        loc: Loc::new(file, &s.referenced),
    }
}

/// Validates `fleet:` of environment `env`; problems go to `errors` with their place.
pub fn build(
    file: &Arc<PathBuf>,
    env: &str,
    raw: &Spanned<RawFleet>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Fleet> {
    let loc = Loc::new(file, &raw.referenced);
    let r = &raw.value;
    let given: Vec<&str> = [
        r.targets.as_ref().map(|_| "targets"),
        r.query.as_ref().map(|_| "query"),
        r.command.as_ref().map(|_| "command"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() != 1 {
        errors.push(
            Diagnostic::at(
                loc.clone(),
                format!(
                    "the fleet of `{env}` needs exactly one of `targets`, `query`, `command` (found {})",
                    if given.is_empty() { "none".to_string() } else { given.join(", ") }
                ),
            )
            .with_help("targets: [a, b] with url: \"postgres://…/tenant_{name}\"; or query: \"select name from tenants\"; or command: ./list-tenants"),
        );
        return None;
    }
    let before = errors.len();
    if let Some(url) = &r.url {
        if !url.value.contains("{name}") {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &url.referenced),
                    format!("the fleet url of `{env}` has no `{{name}}`: every target would get the same database"),
                )
                .with_help("postgres://user:${PASSWORD}@host/tenant_{name}"),
            );
        }
    }
    if let (Some(catalog), None) = (&r.catalog_url, &r.query) {
        errors.push(Diagnostic::at(
            Loc::new(file, &catalog.referenced),
            "`catalog_url` is only read with `query`",
        ));
    }
    let source = if let Some(list) = &r.targets {
        let mut listed: Vec<Listed> = Vec::new();
        for entry in list {
            let at = Loc::new(file, &entry.referenced);
            let (name, url) = match &entry.value {
                serde_json::Value::String(name) => (name.clone(), None),
                serde_json::Value::Object(map) => {
                    if let Some(key) = map.keys().find(|k| *k != "name" && *k != "url") {
                        errors.push(
                            Diagnostic::at(
                                at.clone(),
                                format!("unknown key `{key}` in a fleet target"),
                            )
                            .with_help_opt(super::diagnostic::did_you_mean(key, ["name", "url"])),
                        );
                    }
                    let Some(name) = map.get("name").and_then(|n| n.as_str()) else {
                        errors.push(Diagnostic::at(at, "a fleet target needs a `name`"));
                        continue;
                    };
                    let url = match map.get("url") {
                        None => None,
                        Some(serde_json::Value::String(u)) => Some(Text {
                            value: u.clone(),
                            loc: at.clone(),
                        }),
                        Some(_) => {
                            errors.push(Diagnostic::at(
                                at,
                                "a fleet target's `url` must be a string",
                            ));
                            continue;
                        }
                    };
                    (name.to_string(), url)
                }
                _ => {
                    errors.push(
                        Diagnostic::at(at, "a fleet target is a name or `{ name, url }`")
                            .with_help("targets: [acme, { name: globex, url: \"postgres://…\" }]"),
                    );
                    continue;
                }
            };
            if let Some(problem) = target_name_problem(&name) {
                errors.push(Diagnostic::at(at, problem));
                continue;
            }
            if listed.iter().any(|l| l.name == name) {
                errors.push(Diagnostic::at(
                    at,
                    format!("target `{name}` is listed twice"),
                ));
                continue;
            }
            if url.is_none() && r.url.is_none() {
                errors.push(
                    Diagnostic::at(at, format!("target `{name}` has no url and the fleet no `url` template"))
                        .with_help("add `url: \"postgres://…/tenant_{name}\"` to the fleet, or `{ name, url }` to the target"),
                );
                continue;
            }
            listed.push(Listed { name, url });
        }
        if list.is_empty() {
            errors.push(Diagnostic::at(
                loc.clone(),
                format!("the fleet of `{env}` lists no targets"),
            ));
        }
        Source::List(listed)
    } else if let Some(sql) = &r.query {
        Source::Query {
            sql: text(file, sql),
            catalog_url: r.catalog_url.as_ref().map(|u| text(file, u)),
        }
    } else {
        Source::Command(text(file, r.command.as_ref().expect("one source is given")))
    };
    let concurrency = match &r.concurrency {
        Some(c) if c.value == 0 => {
            errors.push(Diagnostic::at(
                Loc::new(file, &c.referenced),
                "`concurrency` must be at least 1",
            ));
            None
        }
        Some(c) => Some(c.value),
        None => None,
    };
    let mut waves = Vec::new();
    for (i, wave) in r.waves.iter().enumerate() {
        let at = Loc::new(file, &wave.referenced);
        let w = &wave.value;
        let keys = [
            w.targets.is_some(),
            w.percent.is_some(),
            w.count.is_some(),
            w.rest.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if keys != 1 {
            errors.push(
                Diagnostic::at(
                    at,
                    "a wave has exactly one of `targets`, `percent`, `count`, `rest`",
                )
                .with_help("waves: [{ targets: [canary-*] }, { percent: 10 }, { rest: true }]"),
            );
            continue;
        }
        let parsed = if let Some(globs) = &w.targets {
            for g in globs {
                if let Err(e) = glob::Pattern::new(&g.value) {
                    errors.push(Diagnostic::at(
                        Loc::new(file, &g.referenced),
                        format!("`{}` is not a glob: {e}", g.value),
                    ));
                }
            }
            Wave::Targets(globs.iter().map(|g| g.value.clone()).collect())
        } else if let Some(p) = w.percent {
            if p == 0 || p > 100 {
                errors.push(Diagnostic::at(
                    at,
                    "a wave's `percent` is between 1 and 100",
                ));
                continue;
            }
            Wave::Percent(p)
        } else if let Some(n) = w.count {
            if n == 0 {
                errors.push(Diagnostic::at(at, "a wave's `count` is at least 1"));
                continue;
            }
            Wave::Count(n)
        } else {
            if w.rest != Some(true) {
                errors.push(Diagnostic::at(at, "`rest` can only be `true`"));
                continue;
            }
            if i + 1 != r.waves.len() {
                errors.push(Diagnostic::at(at, "`{ rest: true }` must be the last wave"));
                continue;
            }
            Wave::Rest
        };
        waves.push(parsed);
    }
    let max_failures = match &r.max_failures {
        None => None,
        Some(v) => {
            let at = Loc::new(file, &v.referenced);
            match &v.value {
                serde_json::Value::Number(n) if n.as_u64().is_some() => {
                    Some(MaxFailures::Count(n.as_u64().unwrap_or(0) as usize))
                }
                serde_json::Value::String(s)
                    if s.trim()
                        .strip_suffix('%')
                        .and_then(|p| p.trim().parse::<u32>().ok())
                        .is_some_and(|p| p <= 100) =>
                {
                    let p = s.trim().trim_end_matches('%').trim().parse().unwrap_or(0);
                    Some(MaxFailures::Percent(p))
                }
                _ => {
                    errors.push(
                        Diagnostic::at(
                            at,
                            "`max_failures` is a count (`2`) or a share (`\"10%\"`)",
                        )
                        .with_help("max_failures: 2"),
                    );
                    None
                }
            }
        }
    };
    (errors.len() == before).then(|| Fleet {
        loc,
        source,
        url: r.url.as_ref().map(|u| text(file, u)),
        concurrency,
        waves,
        max_failures,
    })
}

/// The environment an instance name (`production/acme`) belongs to (`production`); a
/// plain name is its own.
pub fn base_env(name: &str) -> &str {
    name.split_once('/').map_or(name, |(env, _)| env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        for ok in ["acme", "tenant_1", "eu-west.2", "0a"] {
            assert_eq!(target_name_problem(ok), None, "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "a..b", &"x".repeat(64)] {
            assert!(target_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn budgets() {
        assert_eq!(MaxFailures::Count(2).allowed(50), 2);
        assert_eq!(MaxFailures::Percent(10).allowed(50), 5);
        assert_eq!(MaxFailures::Percent(10).allowed(5), 0);
        assert_eq!(base_env("production/acme"), "production");
        assert_eq!(base_env("staging"), "staging");
    }
}
