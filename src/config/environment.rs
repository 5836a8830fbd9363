//! Which environment a run targets and its interpolated values.
//! Precedence: `--env` > `DBFLOW_ENV` > `DATABASE_ENV` > `NODE_ENV` > `default_env`.

use super::diagnostic::{did_you_mean, Diagnostic};
use super::interpolate::{interpolate_text, Vars};
use super::model::{Environment, Project, Text};
use super::raw::Protection;
use indexmap::IndexMap;
use std::fmt;
use std::sync::Arc;

/// The variables consulted, in order, after `--env`.
pub const DETECTION_VARS: &[&str] = &["DBFLOW_ENV", "DATABASE_ENV", "NODE_ENV"];

/// What decided the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// The `--env` flag.
    Flag,
    /// One of [`DETECTION_VARS`].
    Variable(String),
    /// `default_env` in the Workflowfile.
    DefaultEnv,
    /// Nothing did: the first declared environment (or `development` zero-config).
    Fallback,
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::Flag => f.write_str("--env flag"),
            DecidedBy::Variable(name) => write!(f, "{name}"),
            DecidedBy::DefaultEnv => f.write_str("default_env in the Workflowfile"),
            DecidedBy::Fallback => f.write_str("no setting (first environment)"),
        }
    }
}

/// A secret-bearing URL: `Display` and `Debug` show it redacted; the raw value needs an
/// explicit call.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(Arc<str>);

impl DbUrl {
    /// Wraps a URL and registers its password with the redaction layer.
    pub fn new(raw: &str) -> Self {
        crate::redact::register_url(raw);
        DbUrl(Arc::from(raw))
    }

    /// The URL with its password: only for connecting and for child processes.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown.
    pub fn redacted(&self) -> String {
        crate::redact::redact(&self.0)
    }

    /// `postgres`, `sqlite`, or the scheme as written.
    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }

    /// True for `postgres://` / `postgresql://`.
    pub fn is_postgres(&self) -> bool {
        matches!(self.scheme(), "postgres" | "postgresql")
    }

    /// True for `sqlite:` / `file:`.
    pub fn is_sqlite(&self) -> bool {
        matches!(self.scheme(), "sqlite" | "file")
    }

    /// The database name (PostgreSQL path segment, SQLite file stem).
    pub fn database_name(&self) -> Option<String> {
        if self.is_sqlite() {
            let path = self.0.split_once(':')?.1.trim_start_matches("//");
            let path = path.split('?').next()?;
            return std::path::Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string());
        }
        let parsed = url::Url::parse(&self.0).ok()?;
        let name = parsed.path().trim_start_matches('/');
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .ok()?;
        (!name.is_empty()).then(|| name.to_string())
    }

    /// Prisma's `?schema=NAME` (PostgreSQL): the schema Prisma keeps its history table and
    /// the app's objects in. `None` when absent or empty (Prisma then uses `public`
    /// through the server's default `search_path`).
    pub fn prisma_schema(&self) -> Option<String> {
        if !self.is_postgres() {
            return None;
        }
        let parsed = url::Url::parse(&self.0).ok()?;
        let schema = parsed
            .query_pairs()
            .find(|(k, _)| k == "schema")
            .map(|(_, v)| v.to_string())?;
        (!schema.is_empty()).then_some(schema)
    }

    /// The same server and credentials, another database: for PostgreSQL the path
    /// segment is replaced, for SQLite the file (`name` is a path, used as given).
    pub fn with_database(&self, name: &str) -> DbUrl {
        if self.is_sqlite() {
            let scheme = self.scheme();
            return DbUrl::new(&format!("{scheme}:{name}"));
        }
        match url::Url::parse(&self.0) {
            Ok(mut parsed) => {
                const PATH_SEGMENT: &percent_encoding::AsciiSet =
                    &percent_encoding::NON_ALPHANUMERIC
                        .remove(b'_')
                        .remove(b'-')
                        .remove(b'.');
                let encoded = percent_encoding::utf8_percent_encode(name, PATH_SEGMENT).to_string();
                parsed.set_path(&format!("/{encoded}"));
                DbUrl::new(parsed.as_str())
            }
            Err(_) => self.clone(),
        }
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

/// The environment a run targets, with its values interpolated.
#[derive(Debug, Clone)]
pub struct ResolvedEnv {
    /// Environment name (after aliases).
    pub name: String,
    /// The name as requested, when it was an alias.
    pub alias: Option<String>,
    /// What decided it.
    pub decided_by: DecidedBy,
    /// Database URL.
    pub url: DbUrl,
    /// Direct (non-pooled) URL, when declared.
    pub direct_url: Option<DbUrl>,
    /// Protection level.
    pub protection: Protection,
    /// Lua provider name.
    pub provider: Option<String>,
    /// Free template values, interpolated.
    pub vars: IndexMap<String, String>,
}

/// Picks the environment name by the precedence chain.
pub fn detect(
    project: &Project,
    flag: Option<&str>,
    vars: &Vars,
) -> Result<(String, DecidedBy), Diagnostic> {
    if let Some(name) = flag {
        return Ok((name.to_string(), DecidedBy::Flag));
    }
    for var in DETECTION_VARS {
        if let Some(value) = vars.non_empty(var) {
            return Ok((value.to_string(), DecidedBy::Variable(var.to_string())));
        }
    }
    if let Some(default) = &project.default_env {
        let value = interpolate_text(default, vars, "default_env")?;
        return Ok((value, DecidedBy::DefaultEnv));
    }
    let fallback = project
        .environments
        .keys()
        .next()
        .cloned()
        .unwrap_or_else(|| "development".into());
    Ok((fallback, DecidedBy::Fallback))
}

/// Resolves the environment for this run: detection, aliases, interpolation.
pub fn resolve(
    project: &Project,
    flag: Option<&str>,
    vars: &Vars,
) -> Result<ResolvedEnv, Diagnostic> {
    let (requested, decided_by) = detect(project, flag, vars)?;
    // The name becomes part of folder and file names: `--env ../x` must never get there.
    if let Some(problem) = super::names::env_name_problem(&requested) {
        return Err(Diagnostic::bare(format!("{problem} (from {decided_by})")));
    }
    let name = project
        .aliases
        .get(&requested)
        .cloned()
        .unwrap_or_else(|| requested.clone());
    let alias = (name != requested).then_some(requested.clone());
    let env = match project.environments.get(&name) {
        Some(env) => env.clone(),
        None if project.implicit_environments => implicit_environment(&name, vars),
        None => {
            let names: Vec<&str> = project
                .environments
                .keys()
                .chain(project.aliases.keys())
                .map(String::as_str)
                .collect();
            return Err(Diagnostic::bare(format!(
                "environment `{requested}` (from {decided_by}) is not declared"
            ))
            .with_help_opt(did_you_mean(&requested, names.iter().copied()).or_else(|| {
                Some(format!(
                    "declared environments: {}",
                    project
                        .environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })));
        }
    };
    let what = format!("the url of environment `{name}`");
    let url = DbUrl::new(&interpolate_text(&env.url, vars, &what)?);
    let direct_url = match &env.direct_url {
        Some(text) => Some(DbUrl::new(&interpolate_text(
            text,
            vars,
            &format!("the direct_url of environment `{name}`"),
        )?)),
        None => None,
    };
    let mut resolved_vars = IndexMap::new();
    for (key, text) in &env.vars {
        let value = interpolate_text(text, vars, &format!("vars.{key} of environment `{name}`"))?;
        if crate::redact::is_secret_name(key) {
            crate::redact::register_secret(&value);
        }
        resolved_vars.insert(key.clone(), value);
    }
    Ok(ResolvedEnv {
        name,
        alias,
        decided_by,
        url,
        direct_url,
        protection: env.protection,
        provider: env.provider.clone(),
        vars: resolved_vars,
    })
}

/// Zero-config: the environment is whatever the chain named, its URL `DATABASE_URL`
/// (and `DIRECT_URL`), its protection guessed from the name.
fn implicit_environment(name: &str, vars: &Vars) -> Environment {
    let loc = super::diagnostic::Loc {
        file: Arc::new("<environment>".into()),
        line: 1,
        col: 1,
    };
    Environment {
        name: name.to_string(),
        loc: None,
        url: Text {
            value: "${DATABASE_URL}".into(),
            loc: loc.clone(),
        },
        // From the process or a `.env` file, as Prisma reads its `directUrl`.
        direct_url: vars.get("DIRECT_URL").map(|_| Text {
            value: "${DIRECT_URL}".into(),
            loc,
        }),
        protection: Protection::from_env_name(name),
        provider: None,
        description: None,
        vars: IndexMap::new(),
        pooling: None,
        backups: Default::default(),
        promotion: Default::default(),
        drill_server_url: None,
        fleet: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisma_schema_parameter() {
        let url = |s: &str| DbUrl::new(s).prisma_schema();
        assert_eq!(
            url("postgres://a@h/db?schema=tenant%20a&sslmode=require").as_deref(),
            Some("tenant a")
        );
        assert_eq!(url("postgres://a@h/db?schema="), None);
        assert_eq!(url("postgres://a@h/db"), None);
        assert_eq!(url("sqlite:dev.db?schema=x"), None);
    }

    #[test]
    fn database_names() {
        assert_eq!(
            DbUrl::new("postgres://u:p@h:5432/shop_dev?sslmode=x")
                .database_name()
                .as_deref(),
            Some("shop_dev")
        );
        assert_eq!(
            DbUrl::new("sqlite:.dbflow/local.db")
                .database_name()
                .as_deref(),
            Some("local")
        );
        assert_eq!(
            DbUrl::new("sqlite://./tmp/app_test.sqlite")
                .database_name()
                .as_deref(),
            Some("app_test")
        );
    }
}
