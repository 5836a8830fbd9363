//! Generated documentation: Tera templates over the same definitions that run, rendered
//! per environment (`runbook-{env}.md`, `docker-compose.{env}.yml`, …), with a drift check.
//!
//! A template named with `{env}` is rendered once per environment (the placeholder in the
//! file name becomes the environment's name); others are rendered once. A rendering that is
//! empty produces no file (e.g. `pgbouncer.{env}.ini` for an environment without pooling).
//! Templates in the project's `templates/` folder override shipped ones of the same name.

pub mod context;
pub mod filters;
pub mod fleet;
pub mod flow;
pub mod flow_svg;
pub mod limits;
pub mod ops;
pub mod site;

use crate::config::{Diagnostic, Loc, Project};
use crate::engine::Registry;
use std::path::PathBuf;
use std::sync::Arc;

/// Templates shipped in the binary (the repository's `templates/` folder).
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "index.md.tera",
        include_str!("../../templates/index.md.tera"),
    ),
    (
        "runbook-{env}.md.tera",
        include_str!("../../templates/runbook-{env}.md.tera"),
    ),
    (
        "restore-drill-{env}.md.tera",
        include_str!("../../templates/restore-drill-{env}.md.tera"),
    ),
    (
        "docker-compose.{env}.yml.tera",
        include_str!("../../templates/docker-compose.{env}.yml.tera"),
    ),
    (
        "pgbouncer.{env}.ini.tera",
        include_str!("../../templates/pgbouncer.{env}.ini.tera"),
    ),
];

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Path relative to the output folder.
    pub path: String,
    /// Content.
    pub content: String,
}

/// The largest template dbflow reads (the shipped ones are a few KB).
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

struct Source {
    name: String,
    path: PathBuf,
    text: String,
}

fn sources(project: &Project) -> Result<Vec<Source>, Vec<Diagnostic>> {
    let mut sources: Vec<Source> = SHIPPED
        .iter()
        .map(|(name, text)| Source {
            name: name.to_string(),
            path: PathBuf::from(format!("<builtin>/templates/{name}")),
            text: text.to_string(),
        })
        .collect();
    let dir = project.root.join("templates");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "tera"))
            .collect();
        paths.sort();
        let root = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            // A template linked from elsewhere would print that file in error snippets.
            if path
                .canonicalize()
                .is_ok_and(|real| !real.starts_with(&root))
            {
                return Err(vec![Diagnostic::bare(format!(
                    "{}: a symbolic link that resolves outside {}; dbflow does not read it",
                    path.display(),
                    dir.display()
                ))]);
            }
            let text = crate::config::load::read_limited(&path, MAX_TEMPLATE_BYTES)
                .map_err(|d| vec![d])?;
            match sources.iter_mut().find(|s| s.name == name) {
                Some(existing) => {
                    existing.path = path;
                    existing.text = text;
                }
                None => sources.push(Source { name, path, text }),
            }
        }
    }
    Ok(sources)
}

/// A Tera error as a diagnostic naming the template file (and line, when Tera gives one).
fn template_error(source: &Source, err: &tera::Error) -> Diagnostic {
    let mut chain = vec![err.to_string()];
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    let full = chain.join("\n");
    let position = regex::Regex::new(r"--> (\d+):(\d+)").ok().and_then(|re| {
        re.captures(&full)
            .map(|c| (c[1].parse().unwrap_or(1), c[2].parse().unwrap_or(1)))
    });
    let message = chain
        .iter()
        .rev()
        .find(|m| !m.starts_with("Failed to render") && !m.starts_with("Failed to parse"))
        .cloned()
        .unwrap_or_else(|| full.clone());
    let first_line = message
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains("-->")
                && !l.trim_start().starts_with('|')
                && !l
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ' ' || c == '|')
        })
        .collect::<Vec<_>>()
        .join(" ");
    let loc = Loc {
        file: Arc::new(source.path.clone()),
        line: position.map(|p| p.0).unwrap_or(1),
        col: position.map(|p| p.1).unwrap_or(1),
    };
    Diagnostic::at(
        loc,
        format!("template error in {}: {}", source.name, first_line.trim()),
    )
}

/// Renders every template for the selected environments (all when `only` is `None`),
/// within the limits of [`limits`]: on a thread of its own, with a deadline.
pub fn render_all(
    project: &Project,
    registry: &Registry,
    only: Option<&str>,
) -> Result<Vec<Rendered>, Vec<Diagnostic>> {
    render_with_contexts(project, registry, only).map(|r| r.files)
}

/// What [`render_with_contexts`] gives: the files, and per environment the context they
/// were rendered from (the site draws its flowcharts from the same graphs).
pub struct WithContexts {
    /// The rendered files.
    pub files: Vec<Rendered>,
    /// Each environment with its planned workflows.
    pub envs: Vec<(context::EnvDoc, Vec<context::WorkflowDoc>)>,
}

/// [`render_all`], keeping the per-environment contexts.
pub fn render_with_contexts(
    project: &Project,
    registry: &Registry,
    only: Option<&str>,
) -> Result<WithContexts, Vec<Diagnostic>> {
    let sources = sources(project)?;
    let env_names: Vec<String> = project
        .environments
        .keys()
        .filter(|n| only.is_none_or(|o| o == n.as_str()))
        .cloned()
        .collect();
    if let Some(only) = only {
        if env_names.is_empty() {
            return Err(vec![Diagnostic::bare(format!(
                "no environment `{only}` in the Workflowfile"
            ))]);
        }
    }
    let contacts = crate::config::model::ProjectContacts::read(project).map_err(|d| vec![d])?;
    let project_context =
        tera::Context::from_serialize(context::build_with(project, registry, None, &contacts)?)
            .map_err(|e| vec![Diagnostic::bare(e.to_string())])?;
    let mut env_contexts = Vec::new();
    let mut envs = Vec::new();
    for name in &env_names {
        let cx = context::build_with(project, registry, Some(name), &contacts)?;
        env_contexts.push((
            name.clone(),
            tera::Context::from_serialize(&cx)
                .map_err(|e| vec![Diagnostic::bare(e.to_string())])?,
        ));
        if let Some(env) = cx.env {
            envs.push((env, cx.workflows));
        }
    }
    let current = Arc::new(std::sync::Mutex::new(None::<usize>));
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = (Arc::new(sources), Arc::clone(&current));
    let (thread_sources, thread_current) = (Arc::clone(&shared.0), Arc::clone(&shared.1));
    let spawned = std::thread::Builder::new()
        .name("templates".into())
        .stack_size(limits::STACK_SIZE)
        .spawn(move || {
            let result = render_sources(
                &thread_sources,
                &project_context,
                &env_contexts,
                &thread_current,
            );
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(vec![Diagnostic::bare(format!(
            "cannot start rendering templates: {e}"
        ))]);
    }
    match rx.recv_timeout(limits::TIME_LIMIT) {
        Ok(result) => result.map(|files| WithContexts { files, envs }),
        Err(timeout) => {
            // The thread is left behind: the command fails and the process exits with it.
            let at = *current.lock().unwrap_or_else(|e| e.into_inner());
            let source = at.and_then(|i| shared.0.get(i));
            let what = match timeout {
                std::sync::mpsc::RecvTimeoutError::Timeout => format!(
                    "did not finish rendering within {} s (a loop too large?)",
                    limits::TIME_LIMIT.as_secs()
                ),
                std::sync::mpsc::RecvTimeoutError::Disconnected => {
                    "stopped rendering unexpectedly".to_string()
                }
            };
            Err(vec![match source {
                Some(source) => Diagnostic::at(
                    Loc {
                        file: Arc::new(source.path.clone()),
                        line: 1,
                        col: 1,
                    },
                    format!("template {} {what}", source.name),
                ),
                None => Diagnostic::bare(format!("templates {what}")),
            }])
        }
    }
}

/// Parses and renders every source (on the rendering thread); `current` says which
/// source is rendering, for the deadline's message.
fn render_sources(
    sources: &[Source],
    project_context: &tera::Context,
    env_contexts: &[(String, tera::Context)],
    current: &std::sync::Mutex<Option<usize>>,
) -> Result<Vec<Rendered>, Vec<Diagnostic>> {
    let mut tera = tera::Tera::default();
    tera.register_filter("redact", filters::redact);
    tera.register_filter("shell_quote", filters::shell_quote);
    tera.register_filter("env_var_ref", filters::env_var_ref);
    tera.register_filter("md_table", filters::md_table);
    tera.register_function("range", limits::range);
    let mut errors = Vec::new();
    for source in sources {
        if let Err(e) = tera.add_raw_template(&source.name, &source.text) {
            errors.push(template_error(source, &e));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(recursion) = limits::find_recursion(&tera.templates) {
        return Err(vec![recursion_error(sources, &recursion)]);
    }
    let mut out = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
        let output_name = source.name.trim_end_matches(".tera").to_string();
        let targets: Vec<(String, &tera::Context)> = if output_name.contains("{env}") {
            env_contexts
                .iter()
                .map(|(name, cx)| (output_name.replace("{env}", name), cx))
                .collect()
        } else {
            vec![(output_name.clone(), project_context)]
        };
        for (path, cx) in targets {
            let mut writer = limits::Limited::default();
            let result = tera.render_to(&source.name, cx, &mut writer);
            if writer.exceeded {
                errors.push(Diagnostic::at(
                    Loc {
                        file: Arc::new(source.path.clone()),
                        line: 1,
                        col: 1,
                    },
                    format!(
                        "template {} renders more than {} MiB for {path}; runbooks are far smaller (a loop too large?)",
                        source.name,
                        limits::MAX_OUTPUT / (1024 * 1024)
                    ),
                ));
                continue;
            }
            match result.map(|()| String::from_utf8_lossy(&writer.bytes).into_owned()) {
                Ok(content) if content.trim().is_empty() => {}
                Ok(content) => out.push(Rendered {
                    path,
                    content: crate::redact::redact(&content),
                }),
                Err(e) => errors.push(template_error(source, &e)),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The diagnostic for a recursive macro or include, at the definition (or include) that
/// starts the cycle.
fn recursion_error(sources: &[Source], recursion: &limits::Recursion) -> Diagnostic {
    let source = sources.iter().find(|s| s.name == recursion.template);
    let needle = match &recursion.macro_name {
        Some(name) => regex::Regex::new(&format!(r"\{{%-?\s*macro\s+{}\s*\(", regex::escape(name))),
        None => regex::Regex::new(r"\{%-?\s*include\s"),
    };
    let (line, col) = source
        .zip(needle.ok())
        .and_then(|(s, re)| re.find(&s.text).map(|m| position(&s.text, m.start())))
        .unwrap_or((1, 1));
    let what = match &recursion.macro_name {
        Some(name) => format!("macro `{name}` can call itself"),
        None => "this template can include itself".to_string(),
    };
    let message = format!(
        "template {}: {what} ({}); recursion is not allowed in templates (Tera has no depth limit: it would overflow the stack)",
        recursion.template, recursion.path
    );
    match source {
        Some(source) => Diagnostic::at(
            Loc {
                file: Arc::new(source.path.clone()),
                line,
                col,
            },
            message,
        )
        .with_help("write the repetition as a `{% for %}` loop over the data"),
        None => Diagnostic::bare(message),
    }
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, col)
}
