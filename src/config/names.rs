//! Load-time checks of what later becomes a file name or an interpolated value:
//! environment and alias names (they name backup folders and generated runbooks, so
//! `../x` must never reach a path) and every `${` that is never closed.

use super::diagnostic::{Diagnostic, Loc};
use super::interpolate::check_text;
use super::model::{Project, Text};
use super::raw::{RawTask, RawTaskOverride, SStr};
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Why `name` cannot name an environment (or an alias), if it cannot: only
/// `[A-Za-z0-9_.-]`, not starting with `-` or `.`, at most 63 characters.
pub fn env_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an environment name cannot be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "environment name `{}…` is longer than 63 characters",
            name.chars().take(20).collect::<String>()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!(
            "environment name `{}` contains {:?}; use letters, digits, `_`, `.` and `-` only",
            name.escape_debug(),
            bad
        ));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Some(format!(
            "environment name `{name}` starts with `{}`; start it with a letter, a digit or `_`",
            &name[..1]
        ));
    }
    None
}

/// Checks the names of environments and aliases as written.
pub fn check_env_names(
    file: &Arc<PathBuf>,
    environments: impl IntoIterator<Item = SStr>,
    aliases: &IndexMap<SStr, SStr>,
    errors: &mut Vec<Diagnostic>,
) {
    let names = environments
        .into_iter()
        .chain(aliases.iter().flat_map(|(a, t)| [a.clone(), t.clone()]));
    for name in names {
        if let Some(problem) = env_name_problem(&name.value) {
            errors.push(
                Diagnostic::at(Loc::new(file, &name.referenced), problem).with_help(
                    "environment names become folder and file names (backups, runbooks)",
                ),
            );
        }
    }
}

/// Every value that is interpolated later, checked now for a `${` without its `}`.
pub fn check_interpolation(project: &Project, errors: &mut Vec<Diagnostic>) {
    let mut text = |t: &Text, what: &str| {
        if let Some(d) = check_text(&t.value, &t.loc, what) {
            errors.push(d);
        }
    };
    if let Some(d) = &project.default_env {
        text(d, "default_env");
    }
    for env in project.environments.values() {
        let name = &env.name;
        text(&env.url, &format!("the url of environment `{name}`"));
        if let Some(direct) = &env.direct_url {
            text(direct, &format!("the direct_url of environment `{name}`"));
        }
        for (key, value) in &env.vars {
            text(value, &format!("vars.{key} of environment `{name}`"));
        }
    }
    for workflow in project.workflows.values() {
        for step in &workflow.steps {
            let what = format!("step `{}` of workflow `{}`", step.id, workflow.name);
            json(&step.params, &step.params_loc, &what, errors);
        }
    }
    for task in project.tasks.values() {
        let what = format!("task `{}`", task.name);
        let file = &task.loc.file;
        let mut sstr = |s: &SStr| {
            let loc = Loc::new(file, &s.referenced);
            if let Some(d) = check_text(&s.value, &loc, &what) {
                errors.push(d);
            }
        };
        let def: &RawTask = &task.def;
        def.command.iter().for_each(&mut sstr);
        def.args.iter().for_each(&mut sstr);
        def.script.iter().for_each(&mut sstr);
        def.env.values().for_each(&mut sstr);
        def.cwd.iter().for_each(&mut sstr);
        for over in [&def.linux, &def.macos, &def.windows].into_iter().flatten() {
            let over: &RawTaskOverride = over;
            over.command.iter().for_each(&mut sstr);
            over.args.iter().flatten().for_each(&mut sstr);
            over.script.iter().for_each(&mut sstr);
            over.env.values().for_each(&mut sstr);
            over.cwd.iter().for_each(&mut sstr);
        }
        for p in &def.preconditions {
            if let Some(d) = p
                .message
                .as_deref()
                .and_then(|m| check_text(m, &task.loc, &what))
            {
                errors.push(d);
            }
        }
    }
}

fn json(value: &serde_json::Value, loc: &Loc, what: &str, errors: &mut Vec<Diagnostic>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(d) = check_text(s, loc, what) {
                errors.push(d);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json(v, loc, what, errors)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json(v, loc, what, errors)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names() {
        for ok in ["production", "staging-eu", "pr_42", "v1.2", "_x", "9"] {
            assert_eq!(env_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "../x", "a/b", ".hidden", "-rf", "a b", "prod\n", "é", "..",
        ] {
            assert!(env_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
