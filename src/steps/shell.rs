//! `shell`: an inline shell command, run in the project root with the environment's
//! variables (including `DATABASE_URL`).

use crate::config::Diagnostic;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::runner::exec::{self, CommandLine, CommandSpec, Exit};
use crate::ui::ChildOutput;
use indexmap::IndexMap;
use serde::Deserialize;

/// The `shell` step kind.
pub struct ShellKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    command: String,
    #[serde(default)]
    env: IndexMap<String, String>,
    cwd: Option<String>,
    timeout: Option<String>,
}

/// A configured `shell` step.
#[derive(Debug)]
pub struct ShellStep {
    params: Params,
    timeout: Option<std::time::Duration>,
}

impl StepKind for ShellKind {
    fn name(&self) -> &str {
        "shell"
    }

    fn summary(&self) -> &str {
        "run an inline shell command"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let params = match params {
            serde_json::Value::String(command) => Params {
                command: command.clone(),
                env: IndexMap::new(),
                cwd: None,
                timeout: None,
            },
            other => parse_params::<Params>(other)?,
        };
        let timeout = match &params.timeout {
            Some(t) => Some(
                humantime::parse_duration(t).map_err(|e| format!("invalid timeout `{t}`: {e}"))?,
            ),
            None => None,
        };
        if params.command.trim().is_empty() {
            return Err("`command` is empty".into());
        }
        Ok(Box::new(ShellStep { params, timeout }))
    }
}

impl Step for ShellStep {
    fn describe(&self, _cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let cd = self
            .params
            .cwd
            .as_ref()
            .map(|d| format!("cd {} && ", shell_words::quote(d)))
            .unwrap_or_default();
        Ok(StepDoc {
            summary: "Run a shell command".into(),
            details: String::new(),
            commands: vec![format!("{cd}{}", self.params.command.trim_end())],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let mut env = crate::runner::base_env(cx.env, cx.vars);
        env.extend(self.params.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let spec = CommandSpec {
            command: CommandLine::Script(self.params.command.clone()),
            env,
            cwd: match &self.params.cwd {
                Some(dir) => cx.project.root.join(dir),
                None => cx.project.root.clone(),
            },
            timeout: self.timeout,
        };
        super::guard::guard_command(cx, &self.params.command, &spec.env)?;
        cx.ui.out(&format!("  $ {}", spec.command.display()));
        let exit = exec::run(&spec, &ChildOutput { ui: cx.ui })
            .map_err(|e| StepError::failed(format!("could not start the shell: {e}")))?;
        match exit {
            Exit::Code(0) => Ok(Outcome::done().with("exit_code", 0)),
            Exit::Code(code) => Err(StepError::failed(format!(
                "command exited with code {code}"
            ))),
            Exit::TimedOut(limit) => Err(StepError::failed(format!(
                "command timed out after {} and was killed",
                humantime::format_duration(limit)
            ))),
        }
    }
}
