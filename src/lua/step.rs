//! Step kinds written in Lua: a script in `scripts-lua/steps/` returns
//! `{ name, summary, params = { key = { type, required, default, one_of } }, writes,
//! describe = function(params) … end, run = function(ctx, params) … end }`. Parameters are
//! checked against the schema at load time, like built-in kinds.

use super::{error_text, LuaHost};
use crate::config::{Diagnostic, Loc};
use crate::engine::params::{ParamError, UnknownField};
use crate::engine::registry::{Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use indexmap::IndexMap;
use mlua::{Function, LuaSerdeExt, Table, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// `string`, `number`, `integer`, `boolean`, `list`, `table`.
    pub kind: String,
    /// Must be given.
    pub required: bool,
    /// Used when not given.
    pub default: Option<serde_json::Value>,
    /// Allowed values.
    pub one_of: Vec<serde_json::Value>,
}

/// A loaded Lua step kind.
pub struct LuaStepDef {
    /// Kind name.
    pub name: String,
    /// One line.
    pub summary: String,
    /// The script, as shown.
    pub path: String,
    /// Parameter schema.
    pub params: IndexMap<String, ParamSpec>,
    /// Whether `dbflow.sql` may write.
    pub writes: bool,
    /// Whether `dbflow.exec` may run a shell (`allow_shell = true` in the script).
    pub allow_shell: bool,
    run: Function,
    describe: Option<Function>,
}

const TYPES: &[&str] = &["string", "number", "integer", "boolean", "list", "table"];

impl LuaStepDef {
    /// Reads the table a step script returned.
    pub fn from_table(
        lua: &mlua::Lua,
        stem: &str,
        path: &str,
        table: Table,
    ) -> Result<Self, Diagnostic> {
        let at = || Loc {
            file: Arc::new(PathBuf::from(path)),
            line: 1,
            col: 1,
        };
        let bad = |msg: String| Diagnostic::at(at(), msg);
        let name = table
            .get::<Option<String>>("name")
            .map_err(|e| bad(error_text(&e)))?
            .unwrap_or_else(|| stem.to_string());
        let run = match table.get::<Value>("run") {
            Ok(Value::Function(f)) => f,
            _ => {
                return Err(bad(format!(
                    "step kind `{name}` has no `run = function(ctx, params) … end`"
                )))
            }
        };
        let describe = match table.get::<Value>("describe") {
            Ok(Value::Function(f)) => Some(f),
            _ => None,
        };
        let mut params = IndexMap::new();
        if let Ok(Some(schema)) = table.get::<Option<Table>>("params") {
            for pair in schema.pairs::<String, Table>() {
                let (key, spec) =
                    pair.map_err(|e| bad(format!("params of `{name}`: {}", error_text(&e))))?;
                let kind = spec
                    .get::<Option<String>>("type")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "string".into());
                if !TYPES.contains(&kind.as_str()) {
                    return Err(bad(format!(
                        "parameter `{key}` of `{name}` has unknown type `{kind}` (one of {})",
                        TYPES.join(", ")
                    )));
                }
                let to_json = |v: Value| -> Option<serde_json::Value> { lua.from_value(v).ok() };
                params.insert(
                    key,
                    ParamSpec {
                        kind,
                        required: spec
                            .get::<Option<bool>>("required")
                            .ok()
                            .flatten()
                            .unwrap_or(false),
                        default: spec
                            .get::<Value>("default")
                            .ok()
                            .filter(|v| !v.is_nil())
                            .and_then(&to_json),
                        one_of: spec
                            .get::<Option<Table>>("one_of")
                            .ok()
                            .flatten()
                            .map(|t| {
                                t.sequence_values::<Value>()
                                    .filter_map(|v| v.ok().and_then(&to_json))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    },
                );
            }
        }
        params.sort_keys();
        Ok(LuaStepDef {
            summary: table
                .get::<Option<String>>("summary")
                .ok()
                .flatten()
                .unwrap_or_else(|| format!("Lua step `{name}`")),
            writes: table
                .get::<Option<bool>>("writes")
                .ok()
                .flatten()
                .unwrap_or(false),
            allow_shell: table
                .get::<Option<bool>>("allow_shell")
                .ok()
                .flatten()
                .unwrap_or(false),
            name,
            path: path.to_string(),
            params,
            run,
            describe,
        })
    }

    /// Checks parameters against the schema and fills defaults. An unknown key is
    /// reported as data, so it gets the same "did you mean" as built-in kinds.
    pub fn validate(&self, params: &serde_json::Value) -> Result<serde_json::Value, ParamError> {
        use serde_json::Value as J;
        let given = match params {
            J::Null => serde_json::Map::new(),
            J::Object(map) => map.clone(),
            other => {
                return Err(format!(
                    "invalid type: expected a mapping of parameters, found {other}"
                )
                .into())
            }
        };
        let expected: Vec<&str> = self.params.keys().map(String::as_str).collect();
        for key in given.keys() {
            if !self.params.contains_key(key) {
                return Err(ParamError {
                    message: format!(
                        "unknown field `{key}`, expected one of {}",
                        expected.join(", ")
                    ),
                    unknown: Some(UnknownField {
                        field: key.clone(),
                        expected: expected.iter().map(|s| s.to_string()).collect(),
                    }),
                    unknown_value: None,
                });
            }
        }
        let mut out = serde_json::Map::new();
        for (key, spec) in &self.params {
            let value = match given.get(key) {
                Some(v) => v.clone(),
                None if spec.required => return Err(format!("missing field `{key}`").into()),
                None => match &spec.default {
                    Some(d) => d.clone(),
                    None => continue,
                },
            };
            let ok = match spec.kind.as_str() {
                "string" => value.is_string(),
                "number" => value.is_number(),
                "integer" => value.is_i64() || value.is_u64(),
                "boolean" => value.is_boolean(),
                "list" => value.is_array(),
                _ => value.is_object(),
            };
            if !ok {
                return Err(format!(
                    "parameter `{key}` must be {} {}, found {value}",
                    if spec.kind == "integer" { "an" } else { "a" },
                    spec.kind
                )
                .into());
            }
            if !spec.one_of.is_empty() && !spec.one_of.contains(&value) {
                let allowed: Vec<String> = spec.one_of.iter().map(|v| v.to_string()).collect();
                return Err(format!(
                    "parameter `{key}` is {value}, expected one of {}",
                    allowed.join(", ")
                )
                .into());
            }
            out.insert(key.clone(), value);
        }
        Ok(J::Object(out))
    }
}

/// The registry entry for a Lua step kind.
pub struct LuaStepKind {
    /// The definition.
    pub def: Arc<LuaStepDef>,
    /// The host that loaded it.
    pub host: Arc<LuaHost>,
}

/// A configured Lua step.
pub struct LuaStep {
    def: Arc<LuaStepDef>,
    host: Arc<LuaHost>,
    params: serde_json::Value,
}

impl std::fmt::Debug for LuaStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LuaStep({}, {})", self.def.name, self.params)
    }
}

impl StepKind for LuaStepKind {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn summary(&self) -> &str {
        &self.def.summary
    }

    fn parse(&self, params: &serde_json::Value) -> Result<Box<dyn Step>, ParamError> {
        let params = self.def.validate(params)?;
        Ok(Box::new(LuaStep {
            def: Arc::clone(&self.def),
            host: Arc::clone(&self.host),
            params,
        }))
    }
}

impl Step for LuaStep {
    fn describe(&self, _cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let default = || StepDoc {
            summary: self.def.summary.clone(),
            details: format!("Lua step from {}", self.def.path),
            commands: Vec::new(),
        };
        let Some(describe) = &self.def.describe else {
            return Ok(default());
        };
        self.host.reset();
        let lua = self.host.state();
        let args = lua
            .to_value(&self.params)
            .map_err(|e| Diagnostic::bare(error_text(&e)))?;
        let value: Value = describe.call(args).map_err(|e| {
            Diagnostic::bare(format!(
                "{}: describe failed: {}",
                self.def.path,
                error_text(&e)
            ))
        })?;
        let doc: serde_json::Value = lua.from_value(value).map_err(|e| {
            Diagnostic::bare(format!(
                "{}: describe must return a table: {}",
                self.def.path,
                error_text(&e)
            ))
        })?;
        let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(StepDoc {
            summary: text("summary").unwrap_or_else(|| self.def.summary.clone()),
            details: text("details").unwrap_or_default(),
            commands: doc
                .get("commands")
                .and_then(|c| c.as_array())
                .map(|c| {
                    c.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let mut call = self.host.run_context(cx, &self.def.path, self.def.writes);
        call.allow_shell |= self.def.allow_shell;
        let result = self.host.call(
            cx.runtime(),
            &self.def.run,
            call,
            true,
            vec![self.params.clone()],
            &format!("step `{}`", self.def.name),
        );
        match result {
            Ok((value, events)) => {
                for (name, event) in events {
                    cx.journal.record(&name, event);
                }
                let mut outcome = Outcome::done();
                if let serde_json::Value::Object(map) = value {
                    outcome.outputs = map;
                }
                Ok(outcome)
            }
            Err(e) => {
                for (name, event) in e.2.iter().cloned() {
                    cx.journal.record(&name, event);
                }
                if e.blocked() {
                    Err(StepError::blocked(e.0))
                } else {
                    Err(StepError::failed(e.0))
                }
            }
        }
    }
}
