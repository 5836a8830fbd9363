//! `workflow`: run another workflow as one step. The engine plans the called workflow
//! inline (so `--dry-run` shows its steps) and runs it with the same context.

use crate::config::Diagnostic;
use crate::engine::registry::{
    parse_params, Outcome, Reference, Step, StepDoc, StepError, StepKind,
};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `workflow` step kind.
pub struct WorkflowKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
}

/// A configured `workflow` step.
#[derive(Debug)]
pub struct WorkflowStep {
    name: String,
}

impl StepKind for WorkflowKind {
    fn name(&self) -> &str {
        "workflow"
    }

    fn summary(&self) -> &str {
        "run another workflow"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let name = match params {
            serde_json::Value::String(name) => name.clone(),
            other => parse_params::<Params>(other)?.name,
        };
        Ok(Box::new(WorkflowStep { name }))
    }
}

impl Step for WorkflowStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let description = cx
            .project
            .workflows
            .get(&self.name)
            .and_then(|w| w.description.clone());
        Ok(StepDoc {
            summary: format!(
                "Run workflow `{}`{}",
                self.name,
                description.map(|d| format!(": {d}")).unwrap_or_default()
            ),
            details: String::new(),
            commands: vec![format!("dbflow run {} --env {}", self.name, cx.env.name)],
        })
    }

    fn run(&self, _cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        // The engine runs the nested plan itself; reaching this means the plan was built
        // without it, which is a bug worth failing loudly on rather than skipping.
        Err(StepError::failed(format!(
            "workflow `{}` was not planned",
            self.name
        )))
    }

    fn references(&self) -> Vec<Reference> {
        vec![Reference::Workflow(self.name.clone())]
    }
}
