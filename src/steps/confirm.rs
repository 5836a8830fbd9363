//! `confirm`: ask a person before going on. Without a terminal (or with `CI=true`) it
//! refuses unless the run was given `--yes`.

use crate::config::Diagnostic;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::ui::prompt::{self, Answer};
use serde::Deserialize;

/// The `confirm` step kind.
pub struct ConfirmKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    message: String,
    #[serde(default)]
    default: bool,
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

    fn parse(&self, params: &serde_json::Value) -> Result<Box<dyn Step>, String> {
        let params = match params {
            serde_json::Value::String(message) => Params {
                message: message.clone(),
                default: false,
            },
            other => parse_params::<Params>(other)?,
        };
        Ok(Box::new(ConfirmStep { params }))
    }
}

impl Step for ConfirmStep {
    fn describe(&self, _cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        Ok(StepDoc {
            summary: format!("Ask: \"{}\"", self.params.message),
            details: "Stops unless confirmed; non-interactive runs need --yes.".into(),
            commands: Vec::new(),
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let answer = prompt::confirm(&self.params.message, cx.options.yes, self.params.default);
        cx.journal.record(
            "confirmation",
            serde_json::json!({ "question": self.params.message, "answer": format!("{answer:?}") }),
        );
        match answer {
            Answer::Yes => Ok(Outcome::done().with("confirmed_by", "person")),
            Answer::AssumedYes => {
                cx.ui.out(&format!("  {} → yes (--yes)", self.params.message));
                Ok(Outcome::done().with("confirmed_by", "--yes"))
            }
            Answer::No => Err(StepError::failed("not confirmed")),
            Answer::CannotAsk(reason) => Err(StepError::failed(format!(
                "confirmation required but nobody can be asked ({reason}); rerun with --yes to confirm"
            ))),
        }
    }
}
