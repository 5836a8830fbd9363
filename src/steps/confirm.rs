//! `confirm`: ask a person before going on. Without a terminal (or with `CI=true`) it
//! refuses unless the run was given `--yes`.
//!
//! A project's own human question ("passed the staging smoke tests?") can say
//! `yes_answers: false`: `--yes` never answers it. It then needs a person at a terminal,
//! or the step's own `variable:` (a process variable set to `yes` or `1` for that run),
//! and is blocked (exit 3) otherwise.

use crate::config::Diagnostic;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::journal::Event;
use crate::ui::prompt::{self, Answer};
use serde::Deserialize;

/// The `confirm` step kind.
pub struct ConfirmKind;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    message: String,
    #[serde(default)]
    default: bool,
    /// Whether `--yes` answers this question (default true).
    #[serde(default = "yes")]
    yes_answers: bool,
    /// A process variable that answers it when set to `yes` or `1` (only with
    /// `yes_answers: false`, where `--yes` does not).
    variable: Option<String>,
}

/// A configured `confirm` step.
#[derive(Debug)]
pub struct ConfirmStep {
    params: Params,
}

impl StepKind for ConfirmKind {
    fn name(&self) -> &str {
        "confirm"
    }

    fn summary(&self) -> &str {
        "ask for confirmation (needs --yes when not interactive)"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let params = match params {
            serde_json::Value::String(message) => Params {
                message: message.clone(),
                default: false,
                yes_answers: true,
                variable: None,
            },
            other => parse_params::<Params>(other)?,
        };
        if let Some(var) = &params.variable {
            if params.yes_answers {
                return Err(format!(
                    "`variable: {var}` answers a question that --yes does not; add `yes_answers: false` (with --yes answering, the variable would never be needed)"
                ).into());
            }
            let valid = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "`variable: {var}` is not a variable name (letters, digits and `_`)"
                )
                .into());
            }
        }
        Ok(Box::new(ConfirmStep { params }))
    }
}

impl ConfirmStep {
    /// How a run without a person answers, for messages and plans.
    fn how(&self) -> String {
        match (&self.params.variable, self.params.yes_answers) {
            (_, true) => "rerun with --yes to confirm".to_string(),
            (Some(var), false) => format!(
                "--yes does not answer this question: run it where a person can answer, or set {var}=yes for this run"
            ),
            (None, false) => "--yes does not answer this question: run it where a person can answer (the step declares no `variable:` that could)".to_string(),
        }
    }

    /// The step's own variable, when it is set to a yes value.
    fn variable_says_yes(&self) -> Option<&str> {
        let var = self.params.variable.as_deref()?;
        let value = std::env::var(var).ok()?;
        matches!(value.trim().to_ascii_lowercase().as_str(), "yes" | "1").then_some(var)
    }
}

impl Step for ConfirmStep {
    fn describe(&self, _cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let details = if self.params.yes_answers {
            "Stops unless confirmed; non-interactive runs need --yes.".to_string()
        } else {
            match &self.params.variable {
                Some(var) => format!("Stops unless a person confirms, or {var}=yes is set for the run; --yes does not answer it."),
                None => "Stops unless a person confirms; --yes does not answer it.".to_string(),
            }
        };
        Ok(StepDoc {
            summary: format!("Ask: \"{}\"", self.params.message),
            details,
            commands: Vec::new(),
        })
    }

    fn confirmations(&self, _cx: &PlanContext<'_>) -> Vec<crate::engine::Confirmation> {
        vec![crate::engine::Confirmation {
            question: self.params.message.clone(),
            answer: prompt::yes_no_hint(self.params.default).to_string(),
            unattended: match (&self.params.variable, self.params.yes_answers) {
                (_, true) => "--yes".to_string(),
                (Some(var), false) => format!("{var}=yes"),
                (None, false) => String::new(),
            },
        }]
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        if let Some(var) = self.variable_says_yes() {
            cx.ui
                .out(&format!("  {} → yes ({var}=yes)", self.params.message));
            cx.journal.log(Event::Confirmation {
                question: self.params.message.clone(),
                answer: "Variable".into(),
                variable: Some(var.to_string()),
                yes_answers: None,
            });
            return Ok(Outcome::done().with("confirmed_by", var));
        }
        let yes = cx.options.yes && self.params.yes_answers;
        let answer = prompt::confirm(&self.params.message, yes, self.params.default);
        cx.journal.log(Event::Confirmation {
            question: self.params.message.clone(),
            answer: format!("{answer:?}"),
            variable: None,
            yes_answers: Some(self.params.yes_answers),
        });
        match answer {
            Answer::Yes => Ok(Outcome::done().with("confirmed_by", "person")),
            Answer::AssumedYes => {
                cx.ui
                    .out(&format!("  {} → yes (--yes)", self.params.message));
                Ok(Outcome::done().with("confirmed_by", "--yes"))
            }
            Answer::No => Err(StepError::failed("not confirmed")),
            Answer::CannotAsk(reason) if self.params.yes_answers => {
                Err(StepError::failed(format!(
                    "confirmation required but nobody can be asked ({reason}); {}",
                    self.how()
                )))
            }
            Answer::CannotAsk(reason) => Err(StepError::blocked(format!(
                "\"{}\" needs a person's answer but nobody can be asked ({reason}); {}",
                self.params.message,
                self.how()
            ))),
        }
    }
}
