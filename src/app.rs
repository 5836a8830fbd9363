//! Loading everything a command needs: the project (validated, step kinds included), the
//! variables, and the environment.

use crate::config::{self, Diagnostic, Project, ResolvedEnv, Vars};
use crate::engine::{self, Registry};
use crate::error::{Error, Result};
use crate::ui::Ui;
use std::path::{Path, PathBuf};

/// A loaded, validated project and what goes with it.
pub struct App {
    /// The project.
    pub project: Project,
    /// Step kinds.
    pub registry: Registry,
    /// Interpolation variables (process environment + .env).
    pub vars: Vars,
    /// Output.
    pub ui: Ui,
}

impl App {
    /// Finds and loads the Workflowfile (or the zero-config project) and validates it,
    /// step kinds and parameters included. Nothing runs before this succeeds.
    pub fn load(file: Option<&Path>, ui: Ui) -> Result<Self> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
        let path = config::find(file, &cwd)?;
        let project = config::load(path.as_deref(), &cwd).map_err(Error::Config)?;
        let mut registry = crate::steps::builtin();
        let lua = std::sync::Arc::new(crate::lua::LuaHost::load(&project).map_err(Error::Config)?);
        registry.register(std::sync::Arc::new(crate::steps::provider::ProviderKind {
            host: lua.clone(),
        }));
        let mut errors = Vec::new();
        registry.register(std::sync::Arc::new(crate::steps::backup::BackupKind {
            host: Some(lua.clone()),
        }));
        for def in &lua.steps {
            if registry.get(&def.name).is_some() {
                errors.push(crate::config::Diagnostic::bare(format!(
                    "{}: step kind `{}` is built in; a Lua script cannot replace it (rename the script's `name`)",
                    def.path, def.name
                )));
                continue;
            }
            registry.register(std::sync::Arc::new(crate::lua::step::LuaStepKind {
                def: def.clone(),
                host: lua.clone(),
            }));
        }
        engine::validate::check_steps(&project, &registry, &mut errors);
        engine::validate::check_protected_deploys(&project, &registry, &mut errors);
        crate::guard::validate(&project, &mut errors);
        crate::lint::validate_settings(&project, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        let vars = Vars::load(&project.env_files)?;
        Ok(App {
            project,
            registry,
            vars,
            ui,
        })
    }

    /// Resolves the target environment.
    pub fn env(&self, flag: Option<&str>) -> Result<ResolvedEnv> {
        // `production/acme`: one target of a fleet, a first-class environment instance.
        if let Some(instance) =
            crate::fleet::targets::resolve_instance(&self.project, flag, &self.vars)?
        {
            return Ok(instance);
        }
        config::environment::resolve(&self.project, flag, &self.vars)
            .map_err(|d: Diagnostic| Error::Config(vec![d]))
    }

    /// The project root as an absolute path.
    pub fn root(&self) -> PathBuf {
        std::env::current_dir()
            .map(|c| c.join(&self.project.root))
            .unwrap_or_else(|_| self.project.root.clone())
    }

    /// A plan context for `env`.
    pub fn plan_context<'a>(&'a self, env: &'a ResolvedEnv) -> engine::PlanContext<'a> {
        engine::PlanContext {
            project: &self.project,
            env,
            vars: &self.vars,
            registry: &self.registry,
        }
    }
}
