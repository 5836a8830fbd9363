//! Running one workflow over a fleet: waves in order, up to `concurrency` targets at
//! once, a failure budget, a soft Ctrl-C.
//!
//! Targets run in worker threads of this process, not in child processes: every
//! target's run is the engine's ordinary run (its own plan, journal, database session,
//! `on_failure`) and shares nothing mutable with the others — the async runtime, the
//! redaction registry and the signal state are process-wide and made for concurrent
//! use, the run context owns its connection. Threads keep the fleet at one process's
//! memory (the benchmark's 200 targets stay well under 100 MiB) and let a Ctrl-C stop
//! every target the same way: [`crate::interrupt::soft`] makes the first signal stop
//! starting targets (and steps, and migrations) while each running migration finishes.

use super::record::{Outcome, Record, TargetResult};
use super::{instance, Target};
use crate::config::{Project, ResolvedEnv, Vars};
use crate::engine::{plan, Executor, Registry, RunOptions};
use crate::journal::{Journal, BACKUP_ID};
use crate::ui::Ui;
use serde_json::json;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A fleet run, ready to go.
pub struct FleetRun<'a> {
    /// The project.
    pub project: &'a Project,
    /// Step kinds.
    pub registry: &'a Registry,
    /// Variables.
    pub vars: &'a Vars,
    /// Where the fleet prints (one line per target).
    pub ui: &'a Ui,
    /// The fleet's environment.
    pub env: &'a ResolvedEnv,
    /// The workflow.
    pub workflow: &'a str,
    /// Options every target's run gets.
    pub options: RunOptions,
    /// Targets at once.
    pub concurrency: usize,
    /// Failures tolerated before no further target starts.
    pub allowed_failures: usize,
    /// The fleet run id.
    pub run_id: String,
    /// Attempt number (1, then 2… for each `--resume`).
    pub attempt: usize,
    /// The project root.
    pub root: PathBuf,
}

impl FleetRun<'_> {
    /// Runs `waves` (targets already skipped by a resume are not in them) and records
    /// everything in `record`. Returns every target's result (not started ones too),
    /// in wave order.
    pub fn run(&self, waves: Vec<Vec<Target>>, record: &Record) -> Vec<TargetResult> {
        let _scope = crate::interrupt::scope();
        let _soft = crate::interrupt::soft();
        let failures = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<TargetResult>> = Mutex::new(Vec::new());
        let total_waves = waves.len();
        for (w, wave) in waves.into_iter().enumerate() {
            let wave_no = w + 1;
            if stop.load(Ordering::SeqCst) || crate::interrupt::received().is_some() {
                let mut r = results.lock().expect("results");
                r.extend(wave.into_iter().map(|t| not_started(t, wave_no)));
                continue;
            }
            self.ui.out(&format!(
                "wave {wave_no}/{total_waves}: {} target{}",
                wave.len(),
                if wave.len() == 1 { "" } else { "s" }
            ));
            record.event(
                "wave_start",
                json!({ "wave": wave_no, "targets": wave.iter().map(|t| &t.name).collect::<Vec<_>>() }),
            );
            let workers = self.concurrency.clamp(1, wave.len().max(1));
            let queue = Mutex::new(VecDeque::from(wave));
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| loop {
                        let next = {
                            let mut q = queue.lock().expect("queue");
                            if stop.load(Ordering::SeqCst) || crate::interrupt::received().is_some() {
                                let left: Vec<Target> = q.drain(..).collect();
                                drop(q);
                                let mut r = results.lock().expect("results");
                                r.extend(left.into_iter().map(|t| not_started(t, wave_no)));
                                return;
                            }
                            q.pop_front()
                        };
                        let Some(target) = next else { return };
                        let result = self.one(&target, wave_no, record);
                        if matches!(result.outcome, Outcome::Failed)
                            && failures.fetch_add(1, Ordering::SeqCst) + 1 > self.allowed_failures
                            && !stop.swap(true, Ordering::SeqCst)
                        {
                            self.ui.error(&format!(
                                "more than {} target{} failed (max_failures): starting no further target; running ones finish",
                                self.allowed_failures,
                                if self.allowed_failures == 1 { "" } else { "s" }
                            ));
                            record.event("budget_spent", json!({ "failures": failures.load(Ordering::SeqCst), "allowed": self.allowed_failures }));
                        }
                        results.lock().expect("results").push(result);
                    });
                }
            });
        }
        for r in results.lock().expect("results").iter() {
            if r.outcome == Outcome::NotStarted {
                record.event("target_end", serde_json::to_value(r).unwrap_or_default());
            }
        }
        results.into_inner().expect("results")
    }

    /// One target: its instance, plan and run, like `dbflow run` on `ENV/TARGET`.
    fn one(&self, target: &Target, wave: usize, record: &Record) -> TargetResult {
        let env = instance(self.env, target);
        let run_id = if self.attempt <= 1 {
            format!("{}.{}", self.run_id, target.name)
        } else {
            format!("{}.{}.{}", self.run_id, target.name, self.attempt)
        };
        record.event(
            "target_start",
            json!({ "target": target.name, "wave": wave, "run_id": run_id, "url": target.url.redacted() }),
        );
        let started = Instant::now();
        let mut result = TargetResult {
            target: target.name.clone(),
            outcome: Outcome::Failed,
            applied: Vec::new(),
            duration_ms: 0,
            backup_id: None,
            run_id: Some(run_id.clone()),
            error: None,
            wave,
            part: String::new(),
        };
        let cx = crate::engine::PlanContext {
            project: self.project,
            env: &env,
            vars: self.vars,
            registry: self.registry,
        };
        match plan::plan_workflow(&cx, self.workflow) {
            Err(diagnostics) => {
                result.error = Some(
                    diagnostics
                        .first()
                        .map(|d| d.message.clone())
                        .unwrap_or_else(|| "the workflow could not be planned".into()),
                );
            }
            Ok(plan) => match Journal::create(&self.root, &run_id) {
                Err(e) => result.error = Some(e.to_string()),
                Ok(journal) => {
                    let mut ui = self.ui.clone();
                    ui.quiet = true;
                    ui.tty = false;
                    let executor = Executor {
                        project: self.project,
                        env: &env,
                        vars: self.vars,
                        options: &self.options,
                        ui: &ui,
                    };
                    let report = executor.execute(&plan, &run_id, journal);
                    result.applied = report.changes.committed.clone();
                    result.backup_id = report.outputs.values().find_map(|o| {
                        o.get(BACKUP_ID)
                            .and_then(|b| b.as_str())
                            .map(str::to_string)
                    });
                    match (&report.failure, report.code) {
                        (None, _) => result.outcome = Outcome::Succeeded,
                        (Some((step, message)), code) => {
                            result.outcome = match code {
                                crate::error::ExitCode::Interrupted(_) => Outcome::Interrupted,
                                _ => Outcome::Failed,
                            };
                            let first = message.lines().next().unwrap_or_default();
                            result.error = Some(format!("step `{step}`: {first}"));
                        }
                    }
                }
            },
        }
        result.duration_ms = started.elapsed().as_millis() as u64;
        record.event(
            "target_end",
            serde_json::to_value(&result).unwrap_or_default(),
        );
        let line = match result.outcome {
            Outcome::Succeeded => format!(
                "✔ {}: {} migration{} applied ({}{})",
                target.name,
                result.applied.len(),
                if result.applied.len() == 1 { "" } else { "s" },
                crate::ui::human_ms(result.duration_ms),
                result
                    .backup_id
                    .as_deref()
                    .map(|b| format!(", backup {b}"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "✘ {}: {} — {} (run {run_id})",
                target.name,
                result.outcome.as_str(),
                result.error.as_deref().unwrap_or("")
            ),
        };
        if result.outcome == Outcome::Succeeded {
            self.ui.out(&line);
        } else {
            crate::ui::eprint_styled(&line);
        }
        result
    }
}

fn not_started(target: Target, wave: usize) -> TargetResult {
    TargetResult {
        target: target.name,
        outcome: Outcome::NotStarted,
        applied: Vec::new(),
        duration_ms: 0,
        backup_id: None,
        run_id: None,
        error: None,
        wave,
        part: String::new(),
    }
}
