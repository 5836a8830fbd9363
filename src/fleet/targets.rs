//! The targets of a fleet: listed from the Workflowfile, a catalog query or a command;
//! narrowed by `--target` globs; turned into environment instances (`ENV/TARGET`).

use crate::config::fleet::{target_name_problem, Fleet, Source};
use crate::config::interpolate::interpolate_text;
use crate::config::model::Text;
use crate::config::{DbUrl, Project, ResolvedEnv, Vars};
use crate::error::{Error, Result};

/// One database of a fleet.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name (unique in the fleet; safe in file names).
    pub name: String,
    /// Its URL (shown redacted).
    pub url: DbUrl,
}

/// The fleet of `env`'s environment, if it declares one.
pub fn fleet_of<'a>(project: &'a Project, env: &ResolvedEnv) -> Option<&'a Fleet> {
    project
        .environments
        .get(crate::config::fleet::base_env(&env.name))
        .and_then(|e| e.fleet.as_ref())
}

/// Lists the targets of `env`'s fleet, in the order their source gives them. Fails
/// closed: a name that cannot be used, a duplicate, a target without a URL, a query or
/// command that fails — the whole listing is refused, never silently shortened.
pub fn list(project: &Project, env: &ResolvedEnv, vars: &Vars) -> Result<Vec<Target>> {
    let Some(fleet) = fleet_of(project, env) else {
        return Err(Error::Usage(format!(
            "environment `{}` declares no fleet (add `fleet:` to it; see docs/fleet.md)",
            env.name
        )));
    };
    let raw: Vec<(String, Option<String>)> = match &fleet.source {
        Source::List(listed) => {
            let mut out = Vec::new();
            for l in listed {
                let url = match &l.url {
                    Some(t) => Some(interp(t, vars, &format!("the url of target `{}`", l.name))?),
                    None => None,
                };
                out.push((l.name.clone(), url));
            }
            out
        }
        Source::Query { sql, catalog_url } => {
            let url = match catalog_url {
                Some(t) => DbUrl::new(&interp(t, vars, "the fleet's catalog_url")?),
                None => env.url.clone(),
            };
            query(&url, &sql.value)?
        }
        Source::Command(cmd) => command(project, vars, &cmd.value)?,
    };
    let mut targets: Vec<Target> = Vec::with_capacity(raw.len());
    for (name, url) in raw {
        if let Some(problem) = target_name_problem(&name) {
            return Err(Error::Usage(format!("fleet of `{}`: {problem}", env.name)));
        }
        if targets.iter().any(|t| t.name == name) {
            return Err(Error::Usage(format!(
                "fleet of `{}`: target `{name}` is listed twice",
                env.name
            )));
        }
        let url = match (url, &fleet.url) {
            (Some(url), _) => url,
            (None, Some(template)) => {
                interp(template, vars, "the fleet's url")?.replace("{name}", &name)
            }
            (None, None) => {
                return Err(Error::Usage(format!(
                    "fleet of `{}`: target `{name}` has no url and the fleet no `url` template",
                    env.name
                )))
            }
        };
        targets.push(Target {
            name,
            url: DbUrl::new(&url),
        });
    }
    Ok(targets)
}

fn interp(text: &Text, vars: &Vars, what: &str) -> Result<String> {
    interpolate_text(text, vars, what).map_err(|d| Error::Config(vec![d]))
}

/// Runs the catalog query: first column the name, optional second the URL.
fn query(url: &DbUrl, sql: &str) -> Result<Vec<(String, Option<String>)>> {
    let failed = |e: crate::db::conn::DbError| Error::Failed {
        message: format!("listing the fleet's targets on {}: {e}", url.redacted()),
        code: crate::error::ExitCode::Failed,
    };
    let rows = crate::engine::context::runtime().block_on(async {
        let mut conn = crate::db::conn::Conn::connect(url).await?;
        let rows = conn.text_rows(sql).await;
        conn.close().await;
        rows
    });
    let rows = rows.map_err(failed)?;
    rows.into_iter()
        .map(|row| {
            let mut values = row.into_iter();
            let name = values.next().flatten().ok_or_else(|| {
                Error::Usage(
                    "the fleet's query returned a row without a name (first column)".into(),
                )
            })?;
            Ok((name, values.next().flatten()))
        })
        .collect()
}

/// Runs the listing command (`sh -c`, in the project root): a JSON array of names or
/// `{name, url}` objects, else one target per line (`name` or `name url`).
fn command(project: &Project, vars: &Vars, cmd: &str) -> Result<Vec<(String, Option<String>)>> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(&project.root)
        .envs(vars.dotenv())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::io(format!("running the fleet's command `{cmd}`"), e))?;
    if !output.status.success() {
        return Err(Error::Failed {
            message: format!(
                "the fleet's command `{cmd}` failed ({}): no target was listed",
                output.status
            ),
            code: crate::error::ExitCode::Failed,
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_listing(&text).map_err(|why| Error::Usage(format!("the fleet's command `{cmd}`: {why}")))
}

/// Parses a command's listing (see [`command`]).
pub fn parse_listing(text: &str) -> std::result::Result<Vec<(String, Option<String>)>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| format!("invalid JSON: {e}"))?;
        return values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(name) => Ok((name, None)),
                serde_json::Value::Object(map) => {
                    let name = map
                        .get("name")
                        .and_then(|n| n.as_str())
                        .ok_or("a JSON target needs a string `name`")?;
                    Ok((
                        name.to_string(),
                        map.get("url").and_then(|u| u.as_str()).map(str::to_string),
                    ))
                }
                _ => Err("a JSON target is a name or {\"name\", \"url\"}".to_string()),
            })
            .collect();
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, url)) => (name.to_string(), Some(url.trim().to_string())),
            None => (l.to_string(), None),
        })
        .collect())
}

/// The targets whose names match one of `globs` (all of them when `globs` is empty).
/// A glob matching nothing is an error: a typo must not shrink a deploy silently.
pub fn select(targets: Vec<Target>, globs: &[String]) -> Result<Vec<Target>> {
    if globs.is_empty() {
        return Ok(targets);
    }
    let mut patterns = Vec::new();
    for g in globs {
        let p = glob::Pattern::new(g)
            .map_err(|e| Error::Usage(format!("--target `{g}` is not a glob: {e}")))?;
        if !targets.iter().any(|t| p.matches(&t.name)) {
            let names = targets.iter().map(|t| t.name.as_str());
            return Err(Error::Usage(format!(
                "--target `{g}` matches no target{}",
                crate::config::diagnostic::did_you_mean(g, names)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            )));
        }
        patterns.push(p);
    }
    Ok(targets
        .into_iter()
        .filter(|t| patterns.iter().any(|p| p.matches(&t.name)))
        .collect())
}

/// The environment instance of `target`: `base` with the target's name appended
/// (`production/acme`) and its URL; everything else (protection, provider, vars) is
/// the environment's.
pub fn instance(base: &ResolvedEnv, target: &Target) -> ResolvedEnv {
    ResolvedEnv {
        name: format!(
            "{}/{}",
            crate::config::fleet::base_env(&base.name),
            target.name
        ),
        url: target.url.clone(),
        direct_url: None,
        ..base.clone()
    }
}

/// Resolves `ENV/TARGET` (from `--env` or the variables that pick the environment) into
/// its instance; `Ok(None)` when the name has no `/`.
pub fn resolve_instance(
    project: &Project,
    flag: Option<&str>,
    vars: &Vars,
) -> Result<Option<ResolvedEnv>> {
    let (requested, decided_by) = crate::config::environment::detect(project, flag, vars)
        .map_err(|d| Error::Config(vec![d]))?;
    let Some((env, target)) = requested.split_once('/') else {
        return Ok(None);
    };
    // Only a fleet environment has instances: any other name with a `/` is left to the
    // ordinary resolver, which refuses it as a whole (`../x` must never read as `..`).
    if project
        .environments
        .get(env)
        .is_none_or(|e| e.fleet.is_none())
    {
        return Ok(None);
    }
    let mut base = crate::config::environment::resolve(project, Some(env), vars)
        .map_err(|d| Error::Config(vec![d]))?;
    base.decided_by = decided_by;
    let targets = list(project, &base, vars)?;
    let Some(found) = targets.iter().find(|t| t.name == target) else {
        let names = targets.iter().map(|t| t.name.as_str());
        return Err(Error::Usage(format!(
            "`{requested}`: environment `{}` has no target `{target}`{}",
            base.name,
            crate::config::diagnostic::did_you_mean(target, names)
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        )));
    };
    Ok(Some(instance(&base, found)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings() {
        assert_eq!(
            parse_listing("a\n\n# c\nb postgres://x/b\n").unwrap(),
            vec![
                ("a".into(), None),
                ("b".into(), Some("postgres://x/b".into()))
            ]
        );
        assert_eq!(
            parse_listing(r#"["a", {"name": "b", "url": "u"}]"#).unwrap(),
            vec![("a".into(), None), ("b".into(), Some("u".into()))]
        );
        assert!(parse_listing("[1]").is_err());
    }
}
