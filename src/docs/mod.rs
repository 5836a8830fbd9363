//! Generated documentation: Tera templates over the same definitions that run, rendered
//! per environment (`runbook-{env}.md`, `docker-compose.{env}.yml`, …), with a drift check.
//!
//! A template named with `{env}` is rendered once per environment (the placeholder in the
//! file name becomes the environment's name); others are rendered once. A rendering that is
//! empty produces no file (e.g. `pgbouncer.{env}.ini` for an environment without pooling).
//! Templates in the project's `templates/` folder override shipped ones of the same name.

pub mod context;
pub mod filters;

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
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                vec![Diagnostic::bare(format!(
                    "cannot read {}: {e}",
                    path.display()
                ))]
            })?;
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

/// Renders every template for the selected environments (all when `only` is `None`).
pub fn render_all(
    project: &Project,
    registry: &Registry,
    only: Option<&str>,
) -> Result<Vec<Rendered>, Vec<Diagnostic>> {
    let sources = sources(project)?;
    let mut tera = tera::Tera::default();
    tera.register_filter("redact", filters::redact);
    tera.register_filter("shell_quote", filters::shell_quote);
    tera.register_filter("env_var_ref", filters::env_var_ref);
    tera.register_filter("md_table", filters::md_table);
    let mut errors = Vec::new();
    for source in &sources {
        if let Err(e) = tera.add_raw_template(&source.name, &source.text) {
            errors.push(template_error(source, &e));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
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
    let project_context = tera::Context::from_serialize(context::build(project, registry, None)?)
        .map_err(|e| vec![Diagnostic::bare(e.to_string())])?;
    let mut env_contexts = Vec::new();
    for name in &env_names {
        let cx = context::build(project, registry, Some(name))?;
        env_contexts.push((
            name.clone(),
            tera::Context::from_serialize(cx).map_err(|e| vec![Diagnostic::bare(e.to_string())])?,
        ));
    }
    let mut out = Vec::new();
    for source in &sources {
        let output_name = source.name.trim_end_matches(".tera").to_string();
        let targets: Vec<(String, &tera::Context)> = if output_name.contains("{env}") {
            env_contexts
                .iter()
                .map(|(name, cx)| (output_name.replace("{env}", name), cx))
                .collect()
        } else {
            vec![(output_name.clone(), &project_context)]
        };
        for (path, cx) in targets {
            match tera.render(&source.name, cx) {
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
