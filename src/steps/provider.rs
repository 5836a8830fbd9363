//! `provider`: call the environment's Lua provider — `snapshot`, `wait`, `list`, `restore`,
//! `delete`, `stop_writes`, `resume_writes`. Ids flow between steps: `wait`, `restore` and
//! `delete` use `id:` or the `snapshot_id` an earlier step produced.

use crate::config::Diagnostic;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::lua::LuaHost;
use serde::Deserialize;
use std::sync::Arc;

/// Actions a provider step can take.
pub const ACTIONS: &[&str] = &[
    "snapshot",
    "wait",
    "list",
    "restore",
    "delete",
    "stop_writes",
    "resume_writes",
];

/// The `provider` step kind (registered when the Lua host is loaded).
pub struct ProviderKind {
    /// The Lua host with the providers.
    pub host: Arc<LuaHost>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Params {
    action: String,
    /// Provider name (default: the environment's `provider`).
    provider: Option<String>,
    /// Snapshot id for wait/restore/delete (default: the latest `snapshot_id` output).
    id: Option<String>,
    /// Options passed to the provider function.
    #[serde(default)]
    opts: serde_json::Map<String, serde_json::Value>,
}

/// A configured `provider` step.
pub struct ProviderStep {
    host: Arc<LuaHost>,
    params: Params,
}

impl std::fmt::Debug for ProviderStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderStep({:?})", self.params)
    }
}

impl StepKind for ProviderKind {
    fn name(&self) -> &str {
        "provider"
    }

    fn summary(&self) -> &str {
        "call the environment's Lua provider (snapshot, wait, list, restore, delete, stop/resume writes)"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let params: Params = match params {
            serde_json::Value::String(action) => Params {
                action: action.clone(),
                provider: None,
                id: None,
                opts: Default::default(),
            },
            other => parse_params(other)?,
        };
        if !ACTIONS.contains(&params.action.as_str()) {
            return Err(format!(
                "unknown variant `{}`, expected one of {}",
                params.action,
                ACTIONS.join(", ")
            )
            .into());
        }
        if let Some(name) = &params.provider {
            if !self.host.providers.contains_key(name) {
                let names: Vec<&str> = self.host.providers.keys().map(String::as_str).collect();
                return Err(
                    format!("unknown provider `{name}` (known: {})", names.join(", ")).into(),
                );
            }
        }
        Ok(Box::new(ProviderStep {
            host: Arc::clone(&self.host),
            params,
        }))
    }
}

impl ProviderStep {
    fn provider_name(&self, env: &crate::config::ResolvedEnv) -> Result<String, String> {
        self.params
            .provider
            .clone()
            .or_else(|| env.provider.clone())
            .ok_or_else(|| format!("environment `{}` declares no provider (add `provider:` to it, or `provider:` to the step)", env.name))
    }
}

impl Step for ProviderStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let name = self
            .provider_name(cx.env)
            .unwrap_or_else(|_| "(none)".into());
        let manual = self
            .host
            .providers
            .get(&name)
            .and_then(|p| p.manual(&self.host, &self.params.action))
            .into_iter()
            .collect();
        Ok(StepDoc {
            summary: format!(
                "Provider `{name}`: {}",
                self.params.action.replace('_', " ")
            ),
            details: String::new(),
            commands: manual,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let name = self.provider_name(cx.env).map_err(StepError::failed)?;
        let action = self.params.action.as_str();
        let (function, def) = self.host.provider_function(&name, action).ok_or_else(|| {
            StepError::failed(format!("provider `{name}` does not define `{action}`"))
        })?;
        let id = self.params.id.clone().or_else(|| {
            cx.latest_output("snapshot_id")
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        });
        let mut args = Vec::new();
        match action {
            "snapshot" | "list" | "stop_writes" | "resume_writes" => {}
            _ => args.push(serde_json::Value::String(id.clone().ok_or_else(|| {
                StepError::failed(format!(
                    "`{action}` needs a snapshot id: give `id:` or run a snapshot step first"
                ))
            })?)),
        }
        if matches!(action, "snapshot" | "restore") {
            args.push(serde_json::Value::Object(self.params.opts.clone()));
        }
        let call = self.host.run_context(cx, &def.path, def.writes(&self.host));
        let result = self.host.call(
            cx.runtime(),
            &function,
            call,
            true,
            args,
            &format!("provider `{name}` {action}"),
        );
        let (value, events) = result.map_err(|e| {
            for (name, event) in e.2.iter().cloned() {
                cx.journal.record(&name, event);
            }
            if e.blocked() {
                StepError::blocked(e.0)
            } else {
                StepError::failed(e.0)
            }
        })?;
        for (event, data) in events {
            cx.journal.record(&event, data);
        }
        let mut outcome = Outcome::done().with("provider", name.clone());
        match action {
            "snapshot" => {
                let id = value
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| value.get("id").and_then(|v| v.as_str()).map(str::to_string))
                    .ok_or_else(|| {
                        StepError::failed(format!(
                            "provider `{name}` snapshot returned no id (got {value})"
                        ))
                    })?;
                cx.ui.out(&format!("  snapshot {id}"));
                outcome = outcome.with("snapshot_id", id);
            }
            "list" => outcome = outcome.with("snapshots", value),
            "restore" => {
                outcome = outcome
                    .with("snapshot_id", id.unwrap_or_default())
                    .with("restored", value)
            }
            _ => {
                if let Some(id) = id {
                    outcome = outcome.with("snapshot_id", id);
                }
                if !value.is_null() {
                    outcome = outcome.with("result", value);
                }
            }
        }
        Ok(outcome)
    }
}
