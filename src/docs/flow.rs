//! One workflow as a graph: steps in order, `when` conditions, confirmation gates and the
//! failure edges the engine follows. Built from the plan the engine runs (never from the
//! YAML alone), it is drawn twice: as a Mermaid block in the Markdown runbooks
//! ([`Flow::to_mermaid`]) and as inline SVG in the HTML site ([`super::flow_svg`]).
//!
//! Failure edges follow the engine's rules (`engine::run`): a step's own `on_failure`
//! workflow first, else the workflow's; `continue` goes on; a handler that restores a
//! backup runs only after a migration committed (or may have), so a failure before any
//! change stops with "nothing changed" instead.

use crate::config::raw::RawCondition;
use crate::config::Workflow;
use crate::engine::plan::{Plan, PlannedStep};
use crate::engine::registry::Role;
use crate::engine::{Confirmation, PlanContext};
use serde::Serialize;

/// What a node is, which decides how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Shape {
    /// Where the run starts or ends well.
    Terminal,
    /// A step.
    Step,
    /// A `when` condition: the step runs only when it holds.
    Condition,
    /// A question a person answers before the step goes on.
    Gate,
    /// A failure handler: the workflow run on failure.
    Handler,
    /// Where a failed run ends.
    Stop,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Stable identifier (`n0`, `n1`, …).
    pub id: String,
    /// How it is drawn.
    pub shape: Shape,
    /// Its text (may hold newlines).
    pub label: String,
    /// Skipped in this environment (its condition does not hold here).
    pub skipped: bool,
}

/// What an edge means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EdgeKind {
    /// On to the next node.
    Next,
    /// A condition that does not hold: the step is skipped.
    Skip,
    /// A failure (or a declined confirmation).
    Failure,
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// Index of the source node.
    pub from: usize,
    /// Index of the target node.
    pub to: usize,
    /// What it means.
    pub kind: EdgeKind,
    /// Its label ("" when none).
    pub label: String,
}

/// A workflow's graph in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// The workflow.
    pub workflow: String,
    /// Nodes, the main path first in order; handlers and stops are [`Flow::is_side`].
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<Edge>,
}

impl Flow {
    /// Whether node `i` is off the main path (a handler or a stop).
    pub fn is_side(&self, i: usize) -> bool {
        matches!(self.nodes[i].shape, Shape::Handler | Shape::Stop)
    }
}

/// Whether a failure at `step` may leave a change behind: a deploy commits migrations
/// (the engine's `changes`), also inside a nested workflow.
fn changes_database(step: &PlannedStep) -> bool {
    step.step.role() == Some(Role::Deploy)
        || step
            .nested
            .as_ref()
            .is_some_and(|n| n.steps.iter().any(changes_database))
}

/// Whether a condition is decided by the environment alone (its name, its protection),
/// so a runbook can say the step is skipped there. Variables and the platform are only
/// known on the machine that runs, so a step that depends on them is drawn as
/// conditional, never as skipped.
pub fn decided_by_environment(c: &RawCondition) -> bool {
    c.env_set.is_empty()
        && c.env_not_set.is_empty()
        && c.env_equals.is_empty()
        && c.platforms.is_empty()
}

/// Why step `index` of `plan` is skipped in its environment, when the environment alone
/// decides it (see [`decided_by_environment`]).
pub fn skipped_here(project: &crate::config::Project, plan: &Plan, index: usize) -> Option<String> {
    let step = plan.steps.get(index)?;
    let reason = step.skip.clone()?;
    let def = project.workflows.get(&plan.workflow)?.steps.get(index)?;
    def.when
        .as_ref()
        .is_none_or(|w| decided_by_environment(&w.raw))
        .then_some(reason)
}

/// A `when:` condition in words.
pub fn condition_text(c: &RawCondition) -> String {
    let mut parts = Vec::new();
    if !c.environments.is_empty() {
        let names: Vec<&str> = c.environments.iter().map(|e| e.value.as_str()).collect();
        parts.push(format!("environment is {}", names.join(" or ")));
    }
    if !c.protection.is_empty() {
        let levels: Vec<&str> = c.protection.iter().map(|p| p.as_str()).collect();
        parts.push(format!("protection is {}", levels.join(" or ")));
    }
    for v in &c.env_set {
        parts.push(format!("{v} is set"));
    }
    for v in &c.env_not_set {
        parts.push(format!("{v} is not set"));
    }
    for (k, v) in &c.env_equals {
        parts.push(format!("{k} = {v}"));
    }
    if !c.platforms.is_empty() {
        let names: Vec<String> = c
            .platforms
            .iter()
            .map(|p| format!("{:?}", p.value).to_lowercase())
            .collect();
        parts.push(format!("platform is {}", names.join(" or ")));
    }
    if parts.is_empty() {
        "always".into()
    } else {
        parts.join(" and ")
    }
}

/// A confirmation on one line: the question and how it is answered.
pub fn confirmation_text(c: &Confirmation) -> String {
    let unattended = if c.unattended.is_empty() {
        "only a person can answer".to_string()
    } else {
        format!("without a person: {}", c.unattended)
    };
    format!("{} {} ({unattended})", c.question, c.answer)
}

struct Builder {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Builder {
    fn node(&mut self, shape: Shape, label: String, skipped: bool) -> usize {
        let id = format!("n{}", self.nodes.len());
        self.nodes.push(Node {
            id,
            shape,
            label,
            skipped,
        });
        self.nodes.len() - 1
    }

    fn edge(&mut self, from: usize, to: usize, kind: EdgeKind, label: &str) {
        self.edges.push(Edge {
            from,
            to,
            kind,
            label: label.to_string(),
        });
    }

    /// The side node with this label, made once.
    fn side(&mut self, shape: Shape, label: String) -> usize {
        match self
            .nodes
            .iter()
            .position(|n| n.shape == shape && n.label == label)
        {
            Some(i) => i,
            None => self.node(shape, label, false),
        }
    }
}

/// Builds the graph of `plan` (planned from `workflow` in `cx`'s environment).
pub fn build(cx: &PlanContext<'_>, plan: &Plan, workflow: &Workflow) -> Flow {
    let mut b = Builder {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let start = b.node(
        Shape::Terminal,
        format!("dbflow run {} --env {}", plan.workflow, plan.env),
        false,
    );
    // Edges waiting for the next node on the main path: (from, kind, label).
    let mut pending: Vec<(usize, EdgeKind, String)> = vec![(start, EdgeKind::Next, String::new())];
    let mut changed = false;
    for (i, step) in plan.steps.iter().enumerate() {
        let def = workflow.steps.get(i);
        let skipped = skipped_here(cx.project, plan, i);
        let mut skips = Vec::new();
        if let Some(condition) = def.and_then(|d| d.when.as_ref()) {
            let mut label = format!("when {}?", condition_text(&condition.raw));
            if let Some(why) = &skipped {
                label.push_str(&format!("\nnot here: {why}"));
            }
            let node = b.node(Shape::Condition, label, skipped.is_some());
            connect(&mut b, node, &mut pending);
            pending.push((node, EdgeKind::Next, "yes".into()));
            skips.push(node);
        }
        let step_changes = changes_database(step);
        let failure = failure_target(&mut b, plan, step, changed || step_changes);
        for confirmation in step.step.confirmations(cx) {
            let node = b.node(
                Shape::Gate,
                format!(
                    "asks: {} {}\n{}",
                    confirmation.question,
                    confirmation.answer,
                    if confirmation.unattended.is_empty() {
                        "only a person can answer".to_string()
                    } else {
                        format!("without a person: {}", confirmation.unattended)
                    }
                ),
                skipped.is_some(),
            );
            connect(&mut b, node, &mut pending);
            pending.push((node, EdgeKind::Next, "yes".into()));
            // A step's own question comes before its own commits.
            match (failure.nothing_changed, changed) {
                (Some(stop), false) => b.edge(node, stop, EdgeKind::Failure, "declined"),
                _ => failure.connect(&mut b, node, "declined"),
            }
        }
        let node = b.node(
            Shape::Step,
            format!("{}. {}\n[{}]", i + 1, step.name, step.kind),
            skipped.is_some(),
        );
        connect(&mut b, node, &mut pending);
        if step.continue_on_failure {
            pending.push((node, EdgeKind::Failure, "fails: continue".into()));
        } else {
            failure.connect(&mut b, node, "fails");
        }
        changed |= step_changes;
        pending.push((node, EdgeKind::Next, String::new()));
        for skip in skips {
            pending.push((skip, EdgeKind::Skip, "no: skipped".into()));
        }
    }
    let done = b.node(Shape::Terminal, "done (exit 0)".into(), false);
    connect(&mut b, done, &mut pending);
    Flow {
        workflow: plan.workflow.clone(),
        nodes: b.nodes,
        edges: b.edges,
    }
}

/// Draws the edges waiting for the next node on the main path into `to`.
fn connect(b: &mut Builder, to: usize, pending: &mut Vec<(usize, EdgeKind, String)>) {
    for (from, kind, label) in pending.drain(..) {
        b.edge(from, to, kind, &label);
    }
}

/// Where a failure of one step goes.
struct FailureTarget {
    /// The handler (or the stop when there is none).
    target: usize,
    /// Whether `target` runs only after a change (a handler that restores).
    after_change: bool,
    /// With a handler that restores: the stop a failure goes to when nothing committed.
    nothing_changed: Option<usize>,
}

impl FailureTarget {
    fn connect(&self, b: &mut Builder, from: usize, what: &str) {
        if self.after_change {
            b.edge(
                from,
                self.target,
                EdgeKind::Failure,
                &format!("{what} after a migration committed"),
            );
            if let Some(stop) = self.nothing_changed {
                b.edge(
                    from,
                    stop,
                    EdgeKind::Failure,
                    &format!("{what}, nothing committed"),
                );
            }
        } else {
            b.edge(from, self.target, EdgeKind::Failure, what);
        }
    }
}

/// Where a failure of `step` goes: its own handler, else (for a nested workflow) that
/// workflow's, else the workflow's, else the run stops. A handler that restores runs
/// only when something may have changed (`may_have_changed`: a deploy ran here or
/// earlier), the engine's rule; before that a failure stops with nothing changed.
fn failure_target(
    b: &mut Builder,
    plan: &Plan,
    step: &PlannedStep,
    may_have_changed: bool,
) -> FailureTarget {
    // A nested workflow's own handler handles its failures; the caller's does not run
    // again (engine::run marks the failure handled).
    let handler = step
        .handler
        .as_deref()
        .or(step.nested.as_ref().and_then(|n| n.on_failure.as_deref()))
        .or(plan.on_failure.as_deref());
    let Some(handler) = handler else {
        let stop = b.side(
            Shape::Stop,
            "stop: the run fails\n(exit code of the step)".into(),
        );
        return FailureTarget {
            target: stop,
            after_change: false,
            nothing_changed: None,
        };
    };
    let label = format!("on_failure: run workflow `{}`", handler.workflow);
    if !crate::engine::run::restores(handler) {
        let node = b.side(Shape::Handler, label);
        return FailureTarget {
            target: node,
            after_change: false,
            nothing_changed: None,
        };
    }
    let nothing = b.side(
        Shape::Stop,
        format!(
            "stop: nothing changed, nothing to roll back\n(`{}` not run)",
            handler.workflow
        ),
    );
    if !may_have_changed {
        return FailureTarget {
            target: nothing,
            after_change: false,
            nothing_changed: None,
        };
    }
    let node = b.side(
        Shape::Handler,
        format!("{label}\n(only after a migration committed)"),
    );
    FailureTarget {
        target: node,
        after_change: true,
        nothing_changed: Some(nothing),
    }
}

/// Text for a Mermaid label: quoted, with the characters Mermaid reads as syntax
/// replaced by its entity codes.
fn mermaid_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push('\''),
            '#' => out.push_str("#35;"),
            '\n' => out.push_str("<br/>"),
            c => out.push(c),
        }
    }
    out
}

impl Flow {
    /// The graph as a Mermaid flowchart (GitHub renders it in Markdown).
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for node in &self.nodes {
            let text = mermaid_text(&node.label);
            let (open, close) = match node.shape {
                Shape::Terminal | Shape::Stop => ("([\"", "\"])"),
                Shape::Step => ("[\"", "\"]"),
                Shape::Condition => ("{\"", "\"}"),
                Shape::Gate => ("{{\"", "\"}}"),
                Shape::Handler => ("[[\"", "\"]]"),
            };
            out.push_str(&format!("  {}{open}{text}{close}\n", node.id));
        }
        for edge in &self.edges {
            let arrow = match edge.kind {
                EdgeKind::Next => "-->",
                EdgeKind::Skip | EdgeKind::Failure => "-.->",
            };
            let from = &self.nodes[edge.from].id;
            let to = &self.nodes[edge.to].id;
            if edge.label.is_empty() {
                out.push_str(&format!("  {from} {arrow} {to}\n"));
            } else {
                out.push_str(&format!(
                    "  {from} {arrow}|\"{}\"| {to}\n",
                    mermaid_text(&edge.label)
                ));
            }
        }
        let class = |pick: &dyn Fn(&Node) -> bool| {
            self.nodes
                .iter()
                .filter(|n| pick(n))
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str("  classDef failure fill:#fde8e8,stroke:#b03a2e\n");
        out.push_str("  classDef gate fill:#fff4d6,stroke:#b7791f\n");
        out.push_str("  classDef skipped fill:#eeeeee,stroke:#999999,stroke-dasharray:4 3\n");
        for (name, ids) in [
            (
                "failure",
                class(&|n| matches!(n.shape, Shape::Handler | Shape::Stop)),
            ),
            ("gate", class(&|n| n.shape == Shape::Gate && !n.skipped)),
            ("skipped", class(&|n| n.skipped)),
        ] {
            if !ids.is_empty() {
                out.push_str(&format!("  class {ids} {name}\n"));
            }
        }
        out
    }
}
