//! The Lua host (mlua, Lua 5.4 vendored): loads `scripts-lua/providers/*.lua` and
//! `scripts-lua/steps/*.lua` at validation time (a syntax error is a validation error with
//! file:line), runs them sandboxed (`sandbox`) with the host API (`api`), and exposes
//! providers and Lua step kinds to the engine.

pub mod api;
pub mod patterns;
pub mod read_only;
pub mod sandbox;
pub mod shell;
pub mod step;

use crate::config::{Diagnostic, Loc, Project};
use api::CallContext;
use indexmap::IndexMap;
use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use sandbox::Limits;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Provider scripts shipped in the binary (the repository's `scripts-lua/providers/`),
/// available to every project; a project's own file with the same name replaces one.
pub const SHIPPED_PROVIDERS: &[(&str, &str)] = &[
    (
        "aws_rds",
        include_str!("../../scripts-lua/providers/aws_rds.lua"),
    ),
    (
        "gcp_cloudsql",
        include_str!("../../scripts-lua/providers/gcp_cloudsql.lua"),
    ),
    (
        "azure_flexible",
        include_str!("../../scripts-lua/providers/azure_flexible.lua"),
    ),
    (
        "compose",
        include_str!("../../scripts-lua/providers/compose.lua"),
    ),
];

/// The functions every provider must define, and the optional ones.
pub const PROVIDER_REQUIRED: &[&str] = &["snapshot", "wait", "list", "restore", "delete"];
/// Optional provider functions.
pub const PROVIDER_OPTIONAL: &[&str] = &["stop_writes", "resume_writes"];

/// A provider: the project's own scripts are loaded (and checked) with the project;
/// the shipped ones are compiled when first used, since they are tested here and every
/// command would otherwise pay for four scripts it rarely calls.
pub struct ProviderDef {
    /// Provider name (file stem).
    pub name: String,
    /// Script path as shown.
    pub path: String,
    /// The script, while not yet loaded (shipped providers).
    source: Option<&'static str>,
    table: std::sync::OnceLock<Table>,
}

impl ProviderDef {
    /// The manual equivalent of `action` (`manual = { snapshot = "aws rds …" }`), for docs.
    pub fn manual(&self, host: &LuaHost, action: &str) -> Option<String> {
        host.table_of(self)?
            .get::<Option<Table>>("manual")
            .ok()
            .flatten()
            .and_then(|m| m.get::<Option<String>>(action).ok().flatten())
    }

    /// Whether the provider defines `function`.
    pub fn has(&self, host: &LuaHost, function: &str) -> bool {
        host.table_of(self)
            .is_some_and(|t| matches!(t.get::<Value>(function), Ok(Value::Function(_))))
    }

    /// Whether `dbflow.sql` may write during its calls.
    pub fn writes(&self, host: &LuaHost) -> bool {
        host.table_of(self)
            .and_then(|t| t.get::<Option<bool>>("writes").ok().flatten())
            .unwrap_or(false)
    }
}

/// The diagnostic for a provider script lacking required functions, if it does.
fn missing_functions(name: &str, path: &str, table: &Table) -> Option<Diagnostic> {
    let missing: Vec<&str> = PROVIDER_REQUIRED
        .iter()
        .copied()
        .filter(|f| !matches!(table.get::<Value>(*f), Ok(Value::Function(_))))
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(
        Diagnostic::at(
            Loc {
                file: Arc::new(PathBuf::from(path)),
                line: 1,
                col: 1,
            },
            format!("provider `{name}` does not define {}", missing.join(", ")),
        )
        .with_help(format!(
            "a provider returns a table with {} (and optionally {})",
            PROVIDER_REQUIRED.join(", "),
            PROVIDER_OPTIONAL.join(", ")
        )),
    )
}

/// The loaded scripts and their Lua state.
pub struct LuaHost {
    /// Started with the project's own scripts, else on first use (a shipped provider):
    /// a project without Lua files never pays for a state it does not call.
    lua: std::sync::OnceLock<Result<Lua, String>>,
    limits: Limits,
    root: PathBuf,
    /// The folder `require` reads from, absolute.
    scripts_root: PathBuf,
    allow_shell: bool,
    /// Providers by name.
    pub providers: IndexMap<String, ProviderDef>,
    /// Lua step kinds.
    pub steps: Vec<Arc<step::LuaStepDef>>,
}

/// A failed call into Lua, with the script and function named; the flag says the
/// guard refused something the script asked for (exit 3 rather than 1); the journal
/// events the call produced before it failed (guard decisions included).
#[derive(Debug, Clone)]
pub struct CallError(pub String, pub bool, pub Vec<(String, serde_json::Value)>);

impl CallError {
    /// Whether the guard refused a command or statement during the call.
    pub fn blocked(&self) -> bool {
        self.1
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallError {}

/// The first meaningful lines of a Lua error (the traceback is noise for operators).
pub fn error_text(err: &mlua::Error) -> String {
    let text = err.to_string();
    let text = text.split("\nstack traceback:").next().unwrap_or(&text);
    text.trim()
        .trim_start_matches("runtime error: ")
        .replace("callback error\n", "")
        .trim()
        .to_string()
}

/// `scripts-lua/steps/x.lua:3: unexpected symbol` → a diagnostic at that line.
fn script_diagnostic(path: &str, err: &mlua::Error) -> Diagnostic {
    let text = error_text(err);
    let re = regex::Regex::new(r"(?m)([^\s:]+\.lua):(\d+): (.*)").expect("static regex");
    if let Some(caps) = re.captures(&text) {
        let line = caps[2].parse().unwrap_or(1);
        return Diagnostic::at(
            Loc {
                file: Arc::new(PathBuf::from(&caps[1])),
                line,
                col: 1,
            },
            format!("Lua: {}", &caps[3]),
        );
    }
    Diagnostic::at(
        Loc {
            file: Arc::new(PathBuf::from(path)),
            line: 1,
            col: 1,
        },
        format!("Lua: {text}"),
    )
}

fn lua_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "lua"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

impl LuaHost {
    /// Loads every provider and step script of the project (plus the shipped providers).
    pub fn load(project: &Project) -> Result<LuaHost, Vec<Diagnostic>> {
        let settings = &project.lua;
        let mut limits = Limits::default();
        if let Some(mib) = settings.memory_mib {
            limits.memory = mib * 1024 * 1024;
        }
        if let Some(n) = settings.max_instructions {
            limits.instructions = n;
        }
        let mut errors = Vec::new();
        if let Some(t) = &settings.timeout {
            match humantime::parse_duration(&t.value) {
                Ok(d) => limits.wall = d,
                Err(e) => errors.push(Diagnostic::bare(format!("lua.timeout `{}`: {e}", t.value))),
            }
        }
        let providers_dir = project.root.join(
            settings
                .providers_dir
                .as_deref()
                .unwrap_or("scripts-lua/providers"),
        );
        let steps_dir = project
            .root
            .join(settings.steps_dir.as_deref().unwrap_or("scripts-lua/steps"));
        let scripts_root = steps_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| project.root.clone());
        // Absolute now, as the state would have made it had it started here.
        let scripts_root = if scripts_root.is_absolute() {
            scripts_root
        } else {
            std::env::current_dir()
                .unwrap_or_default()
                .join(scripts_root)
        };
        let mut host = LuaHost {
            lua: std::sync::OnceLock::new(),
            limits,
            root: project.root.clone(),
            scripts_root,
            allow_shell: settings.allow_shell,
            providers: IndexMap::new(),
            steps: Vec::new(),
        };
        for (name, text) in SHIPPED_PROVIDERS {
            host.providers.insert(
                name.to_string(),
                ProviderDef {
                    name: name.to_string(),
                    path: format!("<builtin>/scripts-lua/providers/{name}.lua"),
                    source: Some(text),
                    table: std::sync::OnceLock::new(),
                },
            );
        }
        let provider_files = lua_files(&providers_dir);
        let step_files = lua_files(&steps_dir);
        if !provider_files.is_empty() || !step_files.is_empty() {
            // The project's scripts are checked now: start the state they load into.
            host.lua().map_err(|e| vec![Diagnostic::bare(e)])?;
        }
        for path in provider_files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            // The project's script replaces a shipped one of the same name.
            host.providers.shift_remove(&name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(Diagnostic::bare(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )));
                    continue;
                }
            };
            let path = path.display().to_string();
            match host.load_table(&path, &text) {
                Ok(table) => {
                    if let Some(d) = missing_functions(&name, &path, &table) {
                        errors.push(d);
                        continue;
                    }
                    host.providers.insert(
                        name.clone(),
                        ProviderDef {
                            name,
                            path,
                            source: None,
                            table: table.into(),
                        },
                    );
                }
                Err(d) => errors.push(d),
            }
        }
        for path in step_files {
            let shown = path
                .strip_prefix(&project.root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let shown = if project.root == Path::new(".") {
                shown
            } else {
                path.display().to_string()
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(Diagnostic::bare(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )));
                    continue;
                }
            };
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            match host
                .load_table(&shown, &text)
                .and_then(|t| step::LuaStepDef::from_table(host.state(), &stem, &shown, t))
            {
                Ok(def) => host.steps.push(Arc::new(def)),
                Err(d) => errors.push(d),
            }
        }
        for env in project.environments.values() {
            if let Some(provider) = &env.provider {
                if !host.providers.contains_key(provider) {
                    let names: Vec<&str> = host.providers.keys().map(String::as_str).collect();
                    let d = match &env.loc {
                        Some(loc) => Diagnostic::at(
                            loc.clone(),
                            format!(
                                "environment `{}` names unknown provider `{provider}`",
                                env.name
                            ),
                        ),
                        None => Diagnostic::bare(format!(
                            "environment `{}` names unknown provider `{provider}`",
                            env.name
                        )),
                    };
                    errors.push(
                        d.with_help_opt(
                            crate::config::diagnostic::did_you_mean(
                                provider,
                                names.iter().copied(),
                            )
                            .or_else(|| Some(format!("known providers: {}", names.join(", ")))),
                        ),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(host)
        } else {
            Err(errors)
        }
    }

    /// The Lua state, started on first use ("cannot start Lua: …" if it cannot be).
    fn lua(&self) -> Result<&Lua, String> {
        self.lua
            .get_or_init(|| {
                sandbox::new_state(&self.root, &self.scripts_root, &self.limits)
                    .and_then(|lua| api::install(&lua).map(|()| lua))
                    .map_err(|e| format!("cannot start Lua: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load_table(&self, path: &str, text: &str) -> Result<Table, Diagnostic> {
        let lua = self.lua().map_err(Diagnostic::bare)?;
        sandbox::reset_budget(lua, &self.limits);
        let value: Value = lua
            .load(text)
            .set_name(format!("@{path}"))
            .eval()
            .map_err(|e| script_diagnostic(path, &e))?;
        match value {
            Value::Table(t) => Ok(t),
            _ => Err(Diagnostic::at(
                Loc {
                    file: Arc::new(PathBuf::from(path)),
                    line: 1,
                    col: 1,
                },
                "the script must `return { … }` a table",
            )),
        }
    }

    /// A call context for this project (the caller fills env, run id, outputs).
    pub fn context(&self, ui: &crate::ui::Ui, script: &str, writes: bool) -> CallContext {
        CallContext {
            ui: ui.clone(),
            env: None,
            run_id: String::new(),
            outputs: serde_json::Value::Object(Default::default()),
            root: self.root.clone(),
            allow_shell: self.allow_shell,
            gate: None,
            writes,
            events: Default::default(),
            script: script.to_string(),
            base_env: Vec::new(),
        }
    }

    /// A call context for a step of a running workflow: its environment, run id, the
    /// outputs so far and the variables commands get.
    pub fn run_context(
        &self,
        cx: &crate::engine::RunContext<'_>,
        script: &str,
        writes: bool,
    ) -> CallContext {
        let mut call = self.context(cx.ui, script, writes);
        call.env = Some(cx.env.clone());
        call.run_id = cx.run_id.to_string();
        call.outputs = serde_json::to_value(&*cx.outputs).unwrap_or_default();
        call.base_env = crate::runner::base_env(cx.env, cx.vars);
        call.gate = Some(cx.script_gate());
        call
    }

    /// Calls `function` (async-aware: `exec`, `sleep` and `sql` yield to the runtime) with
    /// `ctx` first (unless `with_ctx` is false) and `args` converted from JSON; returns the
    /// result as JSON and the journal events the call produced.
    pub fn call(
        &self,
        runtime: &tokio::runtime::Runtime,
        function: &Function,
        cx: CallContext,
        with_ctx: bool,
        args: Vec<serde_json::Value>,
        what: &str,
    ) -> Result<(serde_json::Value, Vec<(String, serde_json::Value)>), CallError> {
        let events = cx.events.clone();
        let script = cx.script.clone();
        let lua = self
            .lua()
            .map_err(|e| CallError(format!("{script}: {what} failed: {e}"), false, Vec::new()))?;
        sandbox::reset_budget(lua, &self.limits);
        let fail = |e: mlua::Error| {
            CallError(
                format!("{script}: {what} failed: {}", error_text(&e)),
                false,
                Vec::new(),
            )
        };
        let mut lua_args = Vec::new();
        if with_ctx {
            lua_args.push(Value::Table(api::ctx_table(lua, &cx).map_err(fail)?));
        }
        for arg in &args {
            lua_args.push(lua.to_value(arg).map_err(fail)?);
        }
        lua.set_app_data(cx);
        let result: mlua::Result<Value> =
            runtime.block_on(function.call_async(mlua::MultiValue::from_vec(lua_args)));
        let _ = lua.remove_app_data::<CallContext>();
        // A memory-limited state that failed may hold garbage: collect it now.
        let _ = lua.gc_collect();
        let drained = events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        // The guard refused, or a protected operation went unconfirmed: exit 3.
        let blocked = drained.iter().any(|(name, fields)| {
            name == "guard_blocked"
                || (name == "protected_confirmation" && !fields["refused"].is_null())
        });
        let value = match result {
            Ok(value) => value,
            Err(e) => return Err(CallError(fail(e).0, blocked, drained)),
        };
        let json = match value {
            Value::Nil => serde_json::Value::Null,
            other => lua.from_value(other).map_err(|e| {
                CallError(
                    format!(
                        "{script}: {what} returned a value that is not data: {}",
                        error_text(&e)
                    ),
                    false,
                    Vec::new(),
                )
            })?,
        };
        Ok((json, drained))
    }

    /// A provider's function.
    pub fn provider_function(
        &self,
        provider: &str,
        function: &str,
    ) -> Option<(Function, &ProviderDef)> {
        let def = self.providers.get(provider)?;
        match self.table_of(def)?.get::<Value>(function) {
            Ok(Value::Function(f)) => Some((f, def)),
            _ => None,
        }
    }

    /// A provider's table, loading a shipped provider on first use. `None` only if a
    /// shipped script failed to load, which the tests here rule out.
    fn table_of(&self, def: &ProviderDef) -> Option<Table> {
        if let Some(table) = def.table.get() {
            return Some(table.clone());
        }
        let table = self.load_table(&def.path, def.source?).ok()?;
        Some(def.table.get_or_init(|| table).clone())
    }

    /// The Lua state (for step kinds calling `describe` synchronously). A Lua step kind
    /// exists only once its script loaded, so the state has started by then.
    pub fn state(&self) -> &Lua {
        match self.lua() {
            Ok(lua) => lua,
            Err(e) => panic!("{e} (the state started with the project's scripts)"),
        }
    }

    /// Resets the per-call budget before a synchronous call.
    pub fn reset(&self) {
        sandbox::reset_budget(self.state(), &self.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shipped providers are loaded on first use, not with the project: this is where a
    /// broken one would be caught.
    #[test]
    fn every_shipped_provider_loads_and_defines_every_required_function() {
        let dir = tempfile::tempdir().unwrap();
        let project =
            crate::config::load(None, dir.path()).unwrap_or_else(|_| panic!("zero-config project"));
        let host = LuaHost::load(&project).unwrap_or_else(|_| panic!("Lua host"));
        for (name, _) in SHIPPED_PROVIDERS {
            let def = &host.providers[*name];
            let table = host
                .table_of(def)
                .unwrap_or_else(|| panic!("{name} does not load"));
            assert!(
                missing_functions(name, &def.path, &table).is_none(),
                "{name}"
            );
            assert!(
                def.manual(&host, "snapshot").is_some(),
                "{name} has no manual snapshot"
            );
        }
    }

    fn project_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let file = dir.path().join("Workflowfile.yaml");
        let project = crate::config::load(Some(&file), dir.path())
            .unwrap_or_else(|d| panic!("project: {d:?}"));
        (dir, project)
    }

    const PROVIDER_ENV: &str =
        "environments:\n  prod:\n    url: sqlite:prod.db\n    provider: compose\n";

    /// A project without Lua files (most of them: `migrate status` runs in these) starts
    /// no Lua state at load; the shipped provider it names starts it when first used.
    #[test]
    fn without_project_scripts_the_state_starts_when_a_provider_is_first_used() {
        let (_dir, project) = project_with(&[("Workflowfile.yaml", PROVIDER_ENV)]);
        let host = LuaHost::load(&project).unwrap_or_else(|d| panic!("Lua host: {d:?}"));
        assert!(
            host.lua.get().is_none(),
            "the state started with the project"
        );
        let (function, def) = host
            .provider_function("compose", "snapshot")
            .expect("compose defines snapshot");
        assert!(matches!(host.lua.get(), Some(Ok(_))));
        assert!(def.has(&host, "restore"));
        let ui = crate::ui::Ui::new(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A call runs in the state started on demand (the sandbox and host API included):
        // `snapshot` without a ctx fails inside the script, not for want of a state.
        let err = host
            .call(
                &runtime,
                &function,
                host.context(&ui, &def.path, false),
                false,
                vec![],
                "snapshot",
            )
            .expect_err("snapshot needs its ctx");
        assert!(err.0.contains("compose.lua"), "{}", err.0);
    }

    /// The project's own scripts are still loaded and checked with the project: a
    /// syntax error in a provider is a validation error at file:line before anything runs.
    #[test]
    fn project_scripts_start_the_state_and_are_checked_at_load() {
        let step = "return { name = \"hello\", run = function(ctx) return {} end }\n";
        let (_dir, project) = project_with(&[
            ("Workflowfile.yaml", PROVIDER_ENV),
            ("scripts-lua/steps/hello.lua", step),
        ]);
        let host = LuaHost::load(&project).unwrap_or_else(|d| panic!("Lua host: {d:?}"));
        assert!(matches!(host.lua.get(), Some(Ok(_))));
        assert_eq!(host.steps.len(), 1);

        let broken = "return {\n  snapshot = function(ctx)\n    local x = = 1\n  end,\n}\n";
        let (_dir, project) = project_with(&[
            ("Workflowfile.yaml", PROVIDER_ENV),
            ("scripts-lua/providers/mine.lua", broken),
        ]);
        let errors = match LuaHost::load(&project) {
            Ok(_) => panic!("a broken provider loaded"),
            Err(errors) => errors,
        };
        let text = errors
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("mine.lua:3"), "{text}");
        assert!(text.contains("unexpected symbol"), "{text}");
    }
}
