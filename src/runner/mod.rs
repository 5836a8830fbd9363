//! Tasks, cargo-make style: dependencies in topological order (each once), conditions,
//! preconditions, `sources`/`generates` skipping, platform overrides, duct execution.

pub mod condition;
pub mod exec;
pub mod fingerprint;

use crate::config::interpolate::interpolate_text;
use crate::config::model::Text;
use crate::config::raw::{Platform, RawTask};
use crate::config::{Diagnostic, Project, ResolvedEnv, Vars};
use exec::{CommandLine, CommandSpec, Exit};
use std::path::PathBuf;
use std::time::Duration;

/// One task ready to run: everything interpolated, overrides applied.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Task name.
    pub task: String,
    /// Why it will be skipped (its condition does not hold), if it will.
    pub skip: Option<String>,
    /// The command, unless the task only groups dependencies.
    pub command: Option<CommandSpec>,
    /// Preconditions: command and the message shown when it fails.
    pub preconditions: Vec<(CommandSpec, Option<String>)>,
    /// Source globs.
    pub sources: Vec<String>,
    /// Output globs.
    pub generates: Vec<String>,
    /// Stable text of the definition (part of the fingerprint).
    pub definition: String,
}

/// The variables every task gets: the environment's database URL and name.
pub fn base_env(env: &ResolvedEnv, vars: &Vars) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .dotenv()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.push(("DATABASE_URL".into(), env.url.expose().to_string()));
    if let Some(direct) = &env.direct_url {
        out.push(("DIRECT_URL".into(), direct.expose().to_string()));
    }
    out.push(("DBFLOW_ENV".into(), env.name.clone()));
    // A fleet target (`production/acme`): its name alone, for per-tenant hooks.
    if let Some((_, target)) = env.name.split_once('/') {
        out.push(("DBFLOW_TARGET".into(), target.to_string()));
    }
    out.push(("DBFLOW_PROTECTION".into(), env.protection.as_str().into()));
    out
}

/// The task and its dependencies in the order they run (each once, dependencies first).
pub fn order(project: &Project, name: &str) -> Vec<String> {
    fn visit(project: &Project, name: &str, seen: &mut Vec<String>) {
        if seen.iter().any(|n| n == name) {
            return;
        }
        if let Some(task) = project.tasks.get(name) {
            for dep in &task.def.dependencies {
                visit(project, &dep.value, seen);
            }
        }
        seen.push(name.to_string());
    }
    let mut seen = Vec::new();
    visit(project, name, &mut seen);
    seen
}

/// Resolves task `name` and its dependencies for this environment.
pub fn plan(
    project: &Project,
    env: &ResolvedEnv,
    vars: &Vars,
    name: &str,
) -> Result<Vec<Invocation>, Diagnostic> {
    order(project, name)
        .iter()
        .map(|task_name| invocation(project, env, vars, task_name))
        .collect()
}

fn effective(def: &RawTask) -> RawTask {
    let mut task = def.clone();
    let over = match Platform::current() {
        Platform::Linux => def.linux.as_deref(),
        Platform::Macos => def.macos.as_deref(),
        Platform::Windows => def.windows.as_deref(),
    };
    if let Some(over) = over {
        if over.command.is_some() || over.script.is_some() {
            task.command = over.command.clone();
            task.script = over.script.clone();
            task.args = over.args.clone().unwrap_or_default();
        } else if let Some(args) = &over.args {
            task.args = args.clone();
        }
        for (k, v) in &over.env {
            task.env.insert(k.clone(), v.clone());
        }
        if over.cwd.is_some() {
            task.cwd = over.cwd.clone();
        }
    }
    task
}

fn invocation(
    project: &Project,
    env: &ResolvedEnv,
    vars: &Vars,
    name: &str,
) -> Result<Invocation, Diagnostic> {
    let task = project
        .tasks
        .get(name)
        .ok_or_else(|| Diagnostic::bare(format!("no task named `{name}`")))?;
    let def = effective(&task.def);
    let file = &task.loc.file;
    let what = format!("task `{name}`");
    let text = |s: &crate::config::raw::SStr| -> Result<String, Diagnostic> {
        interpolate_text(
            &Text {
                value: s.value.clone(),
                loc: crate::config::Loc::new(file, &s.referenced),
            },
            vars,
            &what,
        )
    };
    let mut env_pairs = base_env(env, vars);
    for (k, v) in &def.env {
        let value = text(v)?;
        if crate::redact::is_secret_name(k) {
            crate::redact::register_secret(&value);
        }
        env_pairs.push((k.clone(), value));
    }
    let cwd = match &def.cwd {
        Some(c) => project.root.join(text(c)?),
        None => project.root.clone(),
    };
    let timeout = match &def.timeout {
        Some(t) => Some(humantime::parse_duration(&t.value).map_err(|e| {
            Diagnostic::at(
                crate::config::Loc::new(file, &t.referenced),
                format!("invalid timeout: {e}"),
            )
        })?),
        None => None,
    };
    let command = if let Some(program) = &def.command {
        Some(CommandLine::Program {
            program: text(program)?,
            args: def.args.iter().map(&text).collect::<Result<_, _>>()?,
        })
    } else if let Some(script) = &def.script {
        Some(CommandLine::Script(text(script)?))
    } else {
        None
    };
    let spec = |command: CommandLine, timeout: Option<Duration>| CommandSpec {
        command,
        env: env_pairs.clone(),
        cwd: cwd.clone(),
        timeout,
    };
    let preconditions = def
        .preconditions
        .iter()
        .map(|p| {
            let message = match &p.message {
                Some(m) => Some(crate::config::interpolate::interpolate(m, vars).map_err(
                    |why| {
                        crate::config::interpolate::unresolved_diagnostic(
                            &why,
                            m,
                            &task.loc,
                            &format!("a precondition message of task `{name}`"),
                        )
                    },
                )?),
                None => None,
            };
            Ok((spec(CommandLine::Script(text(&p.command)?), None), message))
        })
        .collect::<Result<Vec<_>, Diagnostic>>()?;
    let skip = def
        .condition
        .as_ref()
        .and_then(|c| condition::evaluate(c, env, vars).err());
    let definition = format!(
        "{:?}|{:?}|{:?}",
        command.as_ref().map(CommandLine::display),
        def.env
            .iter()
            .map(|(k, v)| (k, &v.value))
            .collect::<Vec<_>>(),
        def.cwd.as_ref().map(|c| &c.value)
    );
    Ok(Invocation {
        task: name.to_string(),
        skip,
        command: command.map(|c| spec(c, timeout)),
        preconditions,
        sources: def.sources.clone(),
        generates: def.generates.clone(),
        definition,
    })
}

/// How running one task went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult {
    /// It ran and succeeded.
    Ran,
    /// It was skipped, and why.
    Skipped(String),
    /// A precondition failed, with the message to show.
    PreconditionFailed(String),
    /// The command failed.
    Failed(Exit),
}

/// Runs one resolved task (not its dependencies: callers iterate [`plan`]).
pub fn run_one(
    project: &Project,
    invocation: &Invocation,
    sink: &dyn exec::Sink,
) -> std::io::Result<TaskResult> {
    if let Some(reason) = &invocation.skip {
        return Ok(TaskResult::Skipped(format!("condition not met: {reason}")));
    }
    for (check, message) in &invocation.preconditions {
        if !exec::succeeds(check) {
            let detail = message
                .clone()
                .unwrap_or_else(|| format!("`{}` failed", check.command.display()));
            return Ok(TaskResult::PreconditionFailed(detail));
        }
    }
    let fingerprint = (!invocation.sources.is_empty())
        .then(|| fingerprint::compute(&project.root, &invocation.definition, &invocation.sources));
    if let Some((hash, count)) = &fingerprint {
        if fingerprint::unchanged(&project.root, &invocation.task, hash, &invocation.generates) {
            return Ok(TaskResult::Skipped(format!(
                "sources unchanged since its last run ({count} file{})",
                if *count == 1 { "" } else { "s" }
            )));
        }
    }
    let Some(command) = &invocation.command else {
        return Ok(TaskResult::Ran);
    };
    let exit = exec::run(command, sink)?;
    if !exit.success() {
        return Ok(TaskResult::Failed(exit));
    }
    if let Some((hash, _)) = fingerprint {
        if let Err(e) = fingerprint::record(&project.root, &invocation.task, &hash) {
            sink.line(&format!(
                "warning: cannot record the sources hash of `{}`: {e}",
                invocation.task
            ));
        }
    }
    Ok(TaskResult::Ran)
}

/// The task's working directory for display.
pub fn display_cwd(project: &Project, invocation: &Invocation) -> Option<PathBuf> {
    invocation
        .command
        .as_ref()
        .map(|c| c.cwd.clone())
        .filter(|cwd| cwd != &project.root)
}
