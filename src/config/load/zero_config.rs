//! The project dbflow assumes when there is no Workflowfile.

use super::build::Builder;
use super::file::{folder_name, prisma_env_files};
use super::settings::migration_limits;
use super::yaml_error::parse_yaml;
use super::DEFAULT_SANDBOX_PATTERN;
use crate::config::diagnostic::Diagnostic;
use crate::config::model::{BackupSettings, DrillSettings, GuardConfig, Project};
use crate::config::raw::RawInclude;
use crate::config::validate;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Built-in workflows compiled into the binary (the repository's `workflows/` folder),
/// used when there is no Workflowfile.
pub const BUILTIN_WORKFLOWS: &[(&str, &str)] = &[
    (
        "workflows/deploy.yaml",
        include_str!("../../../workflows/deploy.yaml"),
    ),
    (
        "workflows/checks.yaml",
        include_str!("../../../workflows/checks.yaml"),
    ),
    (
        "workflows/backups.yaml",
        include_str!("../../../workflows/backups.yaml"),
    ),
    (
        "workflows/runbooks.yaml",
        include_str!("../../../workflows/runbooks.yaml"),
    ),
];

/// The project dbflow assumes when there is no Workflowfile: environments come from the
/// detection chain with `DATABASE_URL`, workflows are the built-in ones.
pub(super) fn zero_config(cwd: &Path) -> Result<Project, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut builder = Builder::default();
    for (name, text) in BUILTIN_WORKFLOWS {
        let file = Arc::new(PathBuf::from(format!("<builtin>/{name}")));
        match parse_yaml::<RawInclude>(&file, text) {
            Ok(inc) => {
                builder.add_tasks(&file, inc.tasks, &mut errors);
                builder.add_workflows(&file, inc.workflows, &mut errors);
            }
            Err(d) => errors.push(d),
        }
    }
    let env_files = prisma_env_files(cwd, "prisma/migrations")
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let project = Project {
        name: folder_name(cwd),
        root: PathBuf::from("."),
        file: None,
        files: Vec::new(),
        default_env: None,
        aliases: [("dev", "development"), ("prod", "production")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        env_files,
        sandbox_pattern: DEFAULT_SANDBOX_PATTERN.into(),
        migrations_dir: "prisma/migrations".into(),
        migrations_table: "_prisma_migrations".into(),
        state_schema: crate::config::model::DEFAULT_STATE_SCHEMA.into(),
        shadow_url: None,
        migration_limits: migration_limits(None, &Arc::new(PathBuf::new()), &mut errors),
        lint: Default::default(),
        lua: Default::default(),
        backups_dir: "backups".into(),
        backups: BackupSettings::default(),
        metrics_textfile: None,
        drill: DrillSettings::default(),
        guard: GuardConfig::default(),
        environments: IndexMap::new(),
        implicit_environments: true,
        tasks: builder.tasks,
        workflows: builder.workflows,
    };
    validate::check_project(&project, &mut errors);
    if errors.is_empty() {
        Ok(project)
    } else {
        Err(errors)
    }
}
