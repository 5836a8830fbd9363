//! The run journal's events as types. Each serializes to exactly the JSON line the
//! journal has always held (`{"ts": …, "event": "<name>", <fields>…}`, fields in this
//! order), so journals written before the types existed read back as the same events.
//!
//! Events named at run time (Lua steps and providers), and those the guard's gates hand
//! on as name and fields (the script gate's events, shared with Lua; the deploy gate's
//! callback; a command's own journal) still go through
//! [`Journal::record`](super::Journal::record). A line whose name and fields fit no
//! variant reads back as [`Line::Other`].
//!
//! A field the old line held as `null` is an `Option` written as `null`; a field the old
//! line left out when it had no value is an `Option` skipped when `None` (`repository`,
//! `server`, `variable`, `yes_answers`), so both shapes come back byte for byte.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a run changed in the database: what a rollback after a failure would undo.
/// Recorded at the end of every run (`run_end.changes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Migrations committed by this run, in order.
    pub committed: Vec<String>,
    /// A migration left half applied, or that may have committed.
    pub uncertain: Option<String>,
}

impl Changes {
    /// Whether the run may have changed the database.
    pub fn any(&self) -> bool {
        !self.committed.is_empty() || self.uncertain.is_some()
    }
}

/// A typed journal event. The variant's name in snake case is the line's `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run began: what, where, by whom.
    RunStart {
        /// The run's id (also the journal's file name).
        run_id: String,
        /// The workflow or task run.
        target: String,
        /// `workflow` or `task`.
        kind: String,
        /// The environment.
        env: String,
        /// How the environment was chosen.
        env_decided_by: String,
        /// Its protection level.
        protection: String,
        /// The database URL, redacted.
        url: String,
        /// Who ran it.
        user: String,
        /// On which machine.
        host: String,
        /// The process id.
        pid: u32,
        /// dbflow's version.
        dbflow_version: String,
        /// Whether `--yes` was given.
        yes: bool,
    },
    /// A workflow deploys to a protected environment without backup/verify steps, as its
    /// Workflowfile allows.
    UnguardedDeploy {
        /// The workflow.
        workflow: String,
        /// The environment.
        env: String,
        /// The reason the Workflowfile gives.
        reason: String,
    },
    /// A step was skipped before it started (its `when` was false, …).
    StepSkipped {
        /// The workflow it belongs to.
        workflow: String,
        /// The step's id.
        step: String,
        /// Its name.
        name: String,
        /// Its kind.
        kind: String,
        /// Why it was skipped.
        reason: String,
    },
    /// A step started.
    StepStart {
        /// The workflow it belongs to.
        workflow: String,
        /// The step's id.
        step: String,
        /// Its name.
        name: String,
        /// Its kind.
        kind: String,
        /// Its position in the workflow, from 1.
        index: usize,
    },
    /// A step ended (succeeded, skipped itself, or failed).
    StepEnd(StepEnd),
    /// SIGINT or SIGTERM stopped the run at this step.
    Interrupted {
        /// The workflow.
        workflow: String,
        /// The step's id.
        step: String,
        /// Its kind.
        kind: String,
        /// The signal's name.
        signal: String,
        /// Where things were left.
        state: String,
    },
    /// A step failed and `on_failure: continue` let the run go on.
    FailureIgnored {
        /// The step's id.
        step: String,
    },
    /// The `on_failure` workflow was not run (nothing was changed to undo).
    OnFailureSkipped {
        /// The workflow that failed.
        workflow: String,
        /// The step that failed.
        failed_step: String,
        /// The `on_failure` workflow.
        handler: String,
        /// Why it was not run.
        reason: String,
    },
    /// The `on_failure` workflow starts.
    OnFailureStart {
        /// The workflow that failed.
        workflow: String,
        /// The step that failed.
        failed_step: String,
        /// The `on_failure` workflow.
        handler: String,
    },
    /// The `on_failure` workflow ended.
    OnFailureEnd {
        /// The `on_failure` workflow.
        handler: String,
        /// `succeeded` or `failed`.
        result: String,
        /// Its error, when it failed.
        error: Option<String>,
    },
    /// The run ended.
    RunEnd {
        /// `succeeded`, `failed` or `interrupted`.
        result: String,
        /// The process's exit code.
        exit_code: i32,
        /// The step that failed, when one did.
        failed_step: Option<String>,
        /// What the run changed in the database.
        changes: Changes,
        /// The failure's message, when it failed.
        error: Option<String>,
        /// How long it took.
        duration_ms: u64,
    },
    /// The results of a `verify` step's checks, by check label.
    Verify {
        /// Each check's result, in the order they ran.
        checks: IndexMap<String, CheckResult>,
    },
    /// The guard step reviewed the pending and modified migrations (lint).
    GuardLint {
        /// Pending migrations.
        pending: Vec<String>,
        /// Applied migrations whose files changed.
        modified: Vec<String>,
        /// The lint's totals.
        summary: LintTotals,
        /// Why the lint did not run, when it did not.
        skipped: Option<String>,
    },
    /// A seed on a protected environment that the workflow sanctions, allowed or refused.
    SeedSanctioned {
        /// The environment.
        env: String,
        /// The workflow that sanctions it.
        workflow: String,
        /// The reason the workflow gives.
        reason: String,
        /// The seed command.
        command: String,
        /// The backup this run took (`backup_id`, [`BACKUP_ID`](super::BACKUP_ID)).
        backup_id: Option<String>,
        /// `allowed` or `refused`.
        outcome: String,
        /// Why it was refused.
        refused: Option<String>,
    },
    /// A protected operation was confirmed, or not.
    ProtectedConfirmation {
        /// The operation's name.
        operation: String,
        /// The question asked.
        question: String,
        /// Who confirmed it (`person`, `--yes`), when confirmed.
        confirmed_by: Option<String>,
        /// Why it was not, when refused.
        refused: Option<String>,
    },
    /// A question was answered (`confirm` step, in-place restore).
    Confirmation {
        /// The question asked.
        question: String,
        /// The answer (`Yes`, `AssumedYes`, `No`, `CannotAsk(…)`, `Variable`).
        answer: String,
        /// The variable that answered yes, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variable: Option<String>,
        /// Whether `--yes` may answer it (`confirm` steps).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        yes_answers: Option<bool>,
    },
    /// The typed word that switches the application to a restored copy was asked for.
    CutOverConfirmation {
        /// The question asked.
        question: String,
        /// The answer.
        answer: String,
        /// The restored copy.
        database: String,
    },
    /// A `stop_writes` step stopped writes through its task, or had none to run.
    StopWrites {
        /// The task run (null when none was declared).
        task: Option<String>,
        /// Whether writes were stopped.
        stopped: bool,
    },
    /// A task (or a hook task) ran, skipped, or its precondition failed.
    Task {
        /// The task.
        task: String,
        /// Its result (`Ran`, `Skipped(…)`, `PreconditionFailed(…)`, …).
        result: String,
    },
    /// A `prune` step kept and deleted backups.
    Prune {
        /// Whether it only said what it would delete.
        dry_run: bool,
        /// The backups kept.
        kept: Vec<String>,
        /// The backups deleted (or that would be).
        deleted: Vec<String>,
        /// The object-storage repository pruned, when not the local folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
    },
    /// A `preflight` step's checks, by name (each a field of the line).
    Preflight {
        /// Each check's result, in the order they ran.
        #[serde(flatten)]
        checks: IndexMap<String, PreflightCheck>,
    },
    /// A drill server was checked not to be the primary's.
    DrillServer {
        /// The drill server, redacted.
        server: String,
        /// Whether the guard allowed it.
        allowed: bool,
        /// Why it was refused.
        refused: Option<String>,
    },
    /// A backup was taken for a drill (`backup_id`, [`BACKUP_ID`](super::BACKUP_ID)).
    BackupUsed {
        /// The backup.
        backup_id: String,
        /// The object-storage repository it went to, when not the local folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
    },
    /// A restore starts (`backup_id`, [`BACKUP_ID`](super::BACKUP_ID)).
    RestoreStart {
        /// The backup restored.
        backup_id: String,
        /// The object-storage repository it comes from, when not the local folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
        /// Where it goes.
        destination: String,
    },
    /// A restore ended.
    RestoreEnd {
        /// The backup restored.
        backup_id: String,
        /// The database restored into.
        database: String,
        /// The drill server it was restored on, redacted, when not the primary's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        /// How long it took.
        duration_ms: u64,
    },
    /// A guard rule was overridden by its variable.
    GuardOverride(GuardRule),
    /// A guard rule's override variable was set but does not count (refused).
    GuardOverrideRefused(GuardRule),
    /// The guard blocked an operation.
    GuardBlocked {
        /// The operation's name.
        operation: String,
        /// The environment.
        env: String,
        /// Its protection level.
        protection: String,
        /// The database, when known.
        database: Option<String>,
        /// The rules that block it.
        rules: Vec<String>,
    },
    /// An in-place restore swapped the restored copy into place.
    RestoreSwap {
        /// The database replaced.
        database: String,
        /// The copy that took its place.
        from: String,
        /// The name the replaced database is kept under.
        kept_aside: String,
    },
}

/// A guard rule as a `guard_override` / `guard_override_refused` line names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRule {
    /// The operation's name.
    pub operation: String,
    /// The environment.
    pub env: String,
    /// Its protection level.
    pub protection: String,
    /// The database, when known.
    pub database: Option<String>,
    /// The rule.
    pub rule: String,
    /// The variable that overrides it.
    pub variable: String,
    /// Why the rule applies.
    pub reason: String,
}

/// The lint's totals in a `guard_lint` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintTotals {
    /// Files linted.
    pub files: usize,
    /// Statements in them.
    pub statements: usize,
    /// Findings that are errors.
    pub errors: usize,
    /// Findings that are warnings.
    pub warnings: usize,
    /// Findings silenced by an annotation.
    pub allowed: usize,
}

/// One `preflight` check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightCheck {
    /// `PASS`, `WARN` or `FAIL`.
    pub result: String,
    /// What was found.
    pub detail: String,
}

/// How a step ended. Succeeded and skipped steps carry their outputs; failed ones their
/// error and exit code (the two shapes `step_end` lines have always had).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepEnd {
    /// The step failed (`outcome` is `failed`).
    Failed {
        /// The workflow.
        workflow: String,
        /// The step's id.
        step: String,
        /// Its kind.
        kind: String,
        /// Always `failed`.
        outcome: String,
        /// Its error.
        error: String,
        /// The exit code the error maps to.
        exit_code: i32,
        /// How long it ran.
        duration_ms: u64,
    },
    /// The step succeeded (`outcome` `succeeded`) or skipped itself (`skipped`, with the
    /// reason).
    Done {
        /// The workflow.
        workflow: String,
        /// The step's id.
        step: String,
        /// Its kind.
        kind: String,
        /// `succeeded` or `skipped`.
        outcome: String,
        /// Why it skipped itself (null when it ran).
        reason: Option<String>,
        /// How long it ran.
        duration_ms: u64,
        /// Its outputs (what later steps and commands read back).
        outputs: Value,
    },
}

/// One `verify` check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Whether it passed.
    pub passed: bool,
    /// What was found (or why it failed).
    pub detail: String,
}

impl Event {
    /// The line's `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStart { .. } => "run_start",
            Event::UnguardedDeploy { .. } => "unguarded_deploy",
            Event::StepSkipped { .. } => "step_skipped",
            Event::StepStart { .. } => "step_start",
            Event::StepEnd(_) => "step_end",
            Event::Interrupted { .. } => "interrupted",
            Event::FailureIgnored { .. } => "failure_ignored",
            Event::OnFailureSkipped { .. } => "on_failure_skipped",
            Event::OnFailureStart { .. } => "on_failure_start",
            Event::OnFailureEnd { .. } => "on_failure_end",
            Event::RunEnd { .. } => "run_end",
            Event::Verify { .. } => "verify",
            Event::GuardLint { .. } => "guard_lint",
            Event::SeedSanctioned { .. } => "seed_sanctioned",
            Event::ProtectedConfirmation { .. } => "protected_confirmation",
            Event::Confirmation { .. } => "confirmation",
            Event::CutOverConfirmation { .. } => "cut_over_confirmation",
            Event::StopWrites { .. } => "stop_writes",
            Event::Task { .. } => "task",
            Event::Prune { .. } => "prune",
            Event::Preflight { .. } => "preflight",
            Event::DrillServer { .. } => "drill_server",
            Event::BackupUsed { .. } => "backup_used",
            Event::RestoreStart { .. } => "restore_start",
            Event::RestoreEnd { .. } => "restore_end",
            Event::RestoreSwap { .. } => "restore_swap",
            Event::GuardOverride(_) => "guard_override",
            Event::GuardOverrideRefused(_) => "guard_override_refused",
            Event::GuardBlocked { .. } => "guard_blocked",
        }
    }

    /// The event as `record`'s name and fields, for the gates that hand events on by
    /// name (shared with Lua and `dbflow check`).
    pub fn into_named(self) -> (&'static str, Value) {
        let name = self.name();
        let mut fields = self.to_json();
        fields.shift_remove("event");
        (name, Value::Object(fields))
    }

    /// The event as the JSON object of its line, without the timestamp: `event` first,
    /// then the fields.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // Every variant is a struct of strings, numbers, maps and lists.
            _ => Map::from_iter([("event".to_string(), Value::from(self.name()))]),
        }
    }
}

/// One line of a journal read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// When it was written (RFC 3339, milliseconds, UTC).
    pub ts: String,
    /// What it says.
    pub line: Line,
}

/// A line's content: a typed event, or one named at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A typed event.
    Event(Event),
    /// Any other event: its name and its fields (everything but `ts` and `event`).
    Other {
        /// The `event` name.
        event: String,
        /// The other fields.
        fields: Map<String, Value>,
    },
}

impl Recorded {
    /// Reads one line's JSON object. A line whose `event` is not a typed one, or whose
    /// fields do not fit its type (a journal from another version), is kept as
    /// [`Line::Other`]: nothing of an old journal is dropped.
    pub fn from_json(mut object: Map<String, Value>) -> Recorded {
        // `shift_remove` keeps the other fields in their order (`remove` swaps the last
        // one into the gap), which a `preflight` line's checks and `Other` fields need.
        let ts = match object.shift_remove("ts") {
            Some(Value::String(ts)) => ts,
            _ => String::new(),
        };
        let line = match serde_json::from_value::<Event>(Value::Object(object.clone())) {
            Ok(event) => Line::Event(event),
            Err(_) => {
                let event = match object.shift_remove("event") {
                    Some(Value::String(event)) => event,
                    _ => String::new(),
                };
                Line::Other {
                    event,
                    fields: object,
                }
            }
        };
        Recorded { ts, line }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal as dbflow wrote it before events were typed (each line as the old
    /// `record("<name>", json!({…}))` call sites produced it), plus one untyped event.
    const BEFORE: &str = include_str!("../../tests/fixtures/journals/before-typed-events.jsonl");

    fn object(line: &str) -> Map<String, Value> {
        match serde_json::from_str(line).unwrap() {
            Value::Object(o) => o,
            other => panic!("not an object: {other}"),
        }
    }

    /// The line a typed event is written as, with the given time stamp.
    fn written(ts: &str, event: &Event) -> String {
        let mut line = Map::new();
        line.insert("ts".into(), Value::from(ts));
        line.extend(event.to_json());
        Value::Object(line).to_string()
    }

    #[test]
    fn an_old_journal_reads_back_as_typed_events_and_writes_back_byte_for_byte() {
        let mut typed = 0;
        for text in BEFORE.lines() {
            let recorded = Recorded::from_json(object(text));
            match &recorded.line {
                Line::Event(event) => {
                    typed += 1;
                    assert_eq!(written(&recorded.ts, event), text, "{}", event.name());
                    assert_eq!(object(text)["event"], event.name());
                }
                Line::Other { event, fields } => {
                    assert_eq!(event, "guard_decision");
                    assert_eq!(fields["operation"], "deploy");
                    assert_eq!(fields["allowed"], true);
                }
            }
        }
        assert_eq!(typed, BEFORE.lines().count() - 1);
    }

    #[test]
    fn an_old_journal_reads_back_as_the_events_it_recorded() {
        let lines: Vec<Recorded> = BEFORE
            .lines()
            .map(|l| Recorded::from_json(object(l)))
            .collect();
        assert_eq!(lines[0].ts, "2026-11-30T10:00:00.000Z");
        let Line::Event(Event::RunStart { env, pid, yes, .. }) = &lines[0].line else {
            panic!("{:?}", lines[0]);
        };
        assert_eq!((env.as_str(), *pid, *yes), ("production", 4242, true));
        let Line::Event(Event::StepEnd(StepEnd::Done {
            outcome, outputs, ..
        })) = &lines[4].line
        else {
            panic!("{:?}", lines[4]);
        };
        assert_eq!(outcome, "succeeded");
        assert_eq!(outputs["backup_id"], "20261130T100000Z-production");
        let Line::Event(Event::StepEnd(StepEnd::Failed { exit_code, .. })) = &lines[8].line else {
            panic!("{:?}", lines[8]);
        };
        assert_eq!(*exit_code, 1);
        let Line::Event(Event::Verify { checks }) = &lines[7].line else {
            panic!("{:?}", lines[7]);
        };
        let labels: Vec<&str> = checks.keys().map(String::as_str).collect();
        assert_eq!(labels, ["users table", "health"]);
        assert!(!checks["health"].passed);
        let Line::Event(Event::RunEnd { changes, .. }) = &lines[15].line else {
            panic!("{:?}", lines[15]);
        };
        assert_eq!(changes.committed, ["20261130_add_users"]);
        assert!(changes.any());
    }

    /// The lines of the old journal with the given `event`, typed.
    fn typed(name: &str) -> Vec<Event> {
        BEFORE
            .lines()
            .map(|l| Recorded::from_json(object(l)).line)
            .filter_map(|line| match line {
                Line::Event(event) if event.name() == name => Some(event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_steps_old_events_read_back_as_what_they_recorded() {
        let [Event::GuardLint {
            pending,
            summary,
            skipped: None,
            ..
        }, Event::GuardLint {
            skipped: Some(_), ..
        }] = &typed("guard_lint")[..]
        else {
            panic!("{:?}", typed("guard_lint"));
        };
        assert_eq!(pending.len(), 2);
        assert_eq!(summary.warnings, 1);
        let [Event::SeedSanctioned {
            backup_id: Some(id),
            refused: None,
            ..
        }, Event::SeedSanctioned {
            backup_id: None,
            refused: Some(_),
            outcome,
            ..
        }] = &typed("seed_sanctioned")[..]
        else {
            panic!("{:?}", typed("seed_sanctioned"));
        };
        assert_eq!(
            (id.as_str(), outcome.as_str()),
            ("20261130T100000Z-production", "refused")
        );
        let refused: Vec<bool> = typed("protected_confirmation")
            .iter()
            .map(|e| {
                matches!(
                    e,
                    Event::ProtectedConfirmation {
                        refused: Some(_),
                        confirmed_by: None,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(refused, [false, true]);
        let confirmations = typed("confirmation");
        assert!(
            matches!(&confirmations[0], Event::Confirmation { variable: Some(v), yes_answers: None, .. } if v == "DBFLOW_CONFIRM")
        );
        assert!(matches!(
            &confirmations[1],
            Event::Confirmation {
                variable: None,
                yes_answers: Some(true),
                ..
            }
        ));
        assert!(matches!(
            &confirmations[2],
            Event::Confirmation {
                variable: None,
                yes_answers: None,
                ..
            }
        ));
        assert!(
            matches!(&typed("cut_over_confirmation")[..], [Event::CutOverConfirmation { answer, .. }] if answer == "No")
        );
        assert!(matches!(
            &typed("stop_writes")[..],
            [
                Event::StopWrites {
                    task: None,
                    stopped: false
                },
                Event::StopWrites {
                    task: Some(_),
                    stopped: true
                }
            ]
        ));
        assert_eq!(typed("task").len(), 2);
        let [Event::Prune {
            dry_run: true,
            deleted,
            repository: None,
            ..
        }, Event::Prune {
            repository: Some(_),
            ..
        }] = &typed("prune")[..]
        else {
            panic!("{:?}", typed("prune"));
        };
        assert_eq!(deleted.len(), 2);
        let [Event::Preflight { checks }] = &typed("preflight")[..] else {
            panic!("{:?}", typed("preflight"));
        };
        let labels: Vec<&str> = checks.keys().map(String::as_str).collect();
        assert_eq!(
            labels,
            [
                "server version",
                "disk space for backups",
                "pooler and direct URL"
            ]
        );
        assert_eq!(checks["pooler and direct URL"].result, "FAIL");
        assert!(matches!(
            &typed("drill_server")[..],
            [
                Event::DrillServer {
                    allowed: true,
                    refused: None,
                    ..
                },
                Event::DrillServer {
                    allowed: false,
                    refused: Some(_),
                    ..
                }
            ]
        ));
        assert!(matches!(
            &typed("backup_used")[..],
            [
                Event::BackupUsed {
                    repository: None,
                    ..
                },
                Event::BackupUsed {
                    repository: Some(_),
                    ..
                }
            ]
        ));
        let starts = typed("restore_start");
        assert!(
            matches!(&starts[0], Event::RestoreStart { repository: None, destination, .. } if destination == "New(None)")
        );
        assert!(
            matches!(&starts[2], Event::RestoreStart { repository: Some(_), backup_id, .. } if backup_id == "20261130T100400Z-production")
        );
        assert!(matches!(
            &typed("restore_end")[..],
            [
                Event::RestoreEnd {
                    server: None,
                    duration_ms: 977,
                    ..
                },
                Event::RestoreEnd {
                    server: Some(_),
                    ..
                }
            ]
        ));
        assert!(
            matches!(&typed("restore_swap")[..], [Event::RestoreSwap { kept_aside, .. }] if kept_aside == "app_replaced_20261130")
        );
        assert!(
            matches!(&typed("guard_override")[..], [Event::GuardOverride(GuardRule { database: Some(_), rule, .. })] if rule == "lint_errors")
        );
        assert!(matches!(
            &typed("guard_override_refused")[..],
            [Event::GuardOverrideRefused(GuardRule {
                database: None,
                ..
            })]
        ));
        assert!(
            matches!(&typed("guard_blocked")[..], [Event::GuardBlocked { rules, .. }] if rules.len() == 2)
        );
    }

    #[test]
    fn the_backup_id_is_written_under_the_output_key_readers_look_for() {
        let id = |event: &Event| event.to_json().get(crate::journal::BACKUP_ID).cloned();
        for event in every_event() {
            if matches!(
                event,
                Event::SeedSanctioned { .. }
                    | Event::BackupUsed { .. }
                    | Event::RestoreStart { .. }
                    | Event::RestoreEnd { .. }
            ) {
                assert_eq!(id(&event), Some(Value::from("b1")), "{}", event.name());
            }
        }
    }

    /// One of each event (both shapes of `step_end`).
    fn every_event() -> Vec<Event> {
        let s = |v: &str| v.to_string();
        vec![
            Event::RunStart {
                run_id: s("r"),
                target: s("deploy"),
                kind: s("workflow"),
                env: s("staging"),
                env_decided_by: s("default_env"),
                protection: s("shared"),
                url: s("postgres://u:***@h/db"),
                user: s("me"),
                host: s("box"),
                pid: 1,
                dbflow_version: s("0.1.0"),
                yes: false,
            },
            Event::UnguardedDeploy {
                workflow: s("w"),
                env: s("e"),
                reason: s("why"),
            },
            Event::StepSkipped {
                workflow: s("w"),
                step: s("a-1"),
                name: s("a"),
                kind: s("shell"),
                reason: s("when"),
            },
            Event::StepStart {
                workflow: s("w"),
                step: s("a-1"),
                name: s("a"),
                kind: s("shell"),
                index: 1,
            },
            Event::StepEnd(StepEnd::Done {
                workflow: s("w"),
                step: s("a-1"),
                kind: s("shell"),
                outcome: s("succeeded"),
                reason: None,
                duration_ms: 5,
                outputs: serde_json::json!({"stdout": "x", "n": 2}),
            }),
            Event::StepEnd(StepEnd::Done {
                workflow: s("w"),
                step: s("a-1"),
                kind: s("shell"),
                outcome: s("skipped"),
                reason: Some(s("nothing to do")),
                duration_ms: 0,
                outputs: serde_json::json!({}),
            }),
            Event::StepEnd(StepEnd::Failed {
                workflow: s("w"),
                step: s("a-1"),
                kind: s("shell"),
                outcome: s("failed"),
                error: s("boom"),
                exit_code: 3,
                duration_ms: 7,
            }),
            Event::Interrupted {
                workflow: s("w"),
                step: s("a-1"),
                kind: s("shell"),
                signal: s("SIGTERM"),
                state: s("stopped"),
            },
            Event::FailureIgnored { step: s("a-1") },
            Event::OnFailureSkipped {
                workflow: s("w"),
                failed_step: s("a-1"),
                handler: s("h"),
                reason: s("nothing changed"),
            },
            Event::OnFailureStart {
                workflow: s("w"),
                failed_step: s("a-1"),
                handler: s("h"),
            },
            Event::OnFailureEnd {
                handler: s("h"),
                result: s("succeeded"),
                error: None,
            },
            Event::RunEnd {
                result: s("failed"),
                exit_code: 1,
                failed_step: Some(s("a-1")),
                changes: Changes {
                    committed: vec![s("m1"), s("m2")],
                    uncertain: Some(s("m3")),
                },
                error: Some(s("boom")),
                duration_ms: 9,
            },
            Event::Verify {
                checks: IndexMap::from_iter([
                    (
                        s("b"),
                        CheckResult {
                            passed: true,
                            detail: s("ok"),
                        },
                    ),
                    (
                        s("a"),
                        CheckResult {
                            passed: false,
                            detail: s("no"),
                        },
                    ),
                ]),
            },
            Event::GuardLint {
                pending: vec![s("m1")],
                modified: vec![],
                summary: LintTotals {
                    files: 1,
                    statements: 2,
                    errors: 0,
                    warnings: 1,
                    allowed: 0,
                },
                skipped: None,
            },
            Event::SeedSanctioned {
                env: s("production"),
                workflow: s("seed"),
                reason: s("demo"),
                command: s("npm run seed"),
                backup_id: Some(s("b1")),
                outcome: s("allowed"),
                refused: None,
            },
            Event::ProtectedConfirmation {
                operation: s("migrate_down"),
                question: s("sure?"),
                confirmed_by: None,
                refused: Some(s("nobody to ask")),
            },
            Event::Confirmation {
                question: s("sure?"),
                answer: s("Yes"),
                variable: None,
                yes_answers: Some(false),
            },
            Event::CutOverConfirmation {
                question: s("type CUTOVER"),
                answer: s("Yes"),
                database: s("app_restore"),
            },
            Event::StopWrites {
                task: Some(s("maintenance-on")),
                stopped: true,
            },
            Event::Task {
                task: s("seed"),
                result: s("Ran"),
            },
            Event::Prune {
                dry_run: false,
                kept: vec![s("b2")],
                deleted: vec![s("b1")],
                repository: Some(s("s3://b/app")),
            },
            Event::Preflight {
                checks: IndexMap::from_iter([(
                    s("server version"),
                    PreflightCheck {
                        result: s("PASS"),
                        detail: s("16.4"),
                    },
                )]),
            },
            Event::DrillServer {
                server: s("postgres://d/postgres"),
                allowed: true,
                refused: None,
            },
            Event::BackupUsed {
                backup_id: s("b1"),
                repository: None,
            },
            Event::RestoreStart {
                backup_id: s("b1"),
                repository: Some(s("s3://b/app")),
                destination: s("new"),
            },
            Event::RestoreEnd {
                backup_id: s("b1"),
                database: s("app_restore"),
                server: Some(s("postgres://d/postgres")),
                duration_ms: 12,
            },
            Event::RestoreSwap {
                database: s("app"),
                from: s("app_restore"),
                kept_aside: s("app_replaced"),
            },
            Event::GuardOverride(GuardRule {
                operation: s("deploy"),
                env: s("staging"),
                protection: s("shared"),
                database: None,
                rule: s("lint_errors"),
                variable: s("DBFLOW_ALLOW_LINT_ERRORS"),
                reason: s("lint errors"),
            }),
            Event::GuardOverrideRefused(GuardRule {
                operation: s("deploy"),
                env: s("staging"),
                protection: s("shared"),
                database: None,
                rule: s("lint_errors"),
                variable: s("DBFLOW_ALLOW_LINT_ERRORS"),
                reason: s("lint errors"),
            }),
            Event::GuardBlocked {
                operation: s("reset"),
                env: s("production"),
                protection: s("protected"),
                database: Some(s("app")),
                rules: vec![s("protected_reset")],
            },
        ]
    }

    #[test]
    fn every_event_round_trips_through_its_line() {
        let events = every_event();
        let mut names: Vec<&str> = events.iter().map(Event::name).collect();
        names.dedup();
        assert_eq!(names.len(), 29, "one of each variant: {names:?}");
        for event in events {
            let text = written("2026-01-01T00:00:00.000Z", &event);
            let line = object(&text);
            assert_eq!(line["event"], event.name());
            assert_eq!(line.keys().next().map(String::as_str), Some("ts"));
            let back = Recorded::from_json(line);
            assert_eq!(back.ts, "2026-01-01T00:00:00.000Z");
            assert_eq!(back.line, Line::Event(event));
        }
    }

    #[test]
    fn an_untyped_line_keeps_its_fields_in_their_order() {
        let line = object(r#"{"ts":"t","event":"lua_note","a":1,"b":2,"c":3}"#);
        let Line::Other { fields, .. } = Recorded::from_json(line).line else {
            panic!("lua_note is not typed");
        };
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn a_typed_name_with_other_fields_is_kept_as_it_was() {
        // A Lua step may record an event whose name a typed one has.
        let line = object(r#"{"ts":"t","event":"verify","checks":"all good"}"#);
        let Line::Other { event, fields } = Recorded::from_json(line).line else {
            panic!("should not be typed");
        };
        assert_eq!(event, "verify");
        assert_eq!(fields["checks"], "all good");
    }
}
