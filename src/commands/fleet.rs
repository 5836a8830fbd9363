//! `dbflow run WORKFLOW` over a fleet, `dbflow fleet summary RUN_ID`, and the choice of
//! the one database a single-database command works on when the environment is a fleet.

use crate::app::App;
use crate::cli::{Command, FleetArgs, MigrateAction};
use crate::config::fleet::MaxFailures;
use crate::config::{Protection, ResolvedEnv};
use crate::engine::RunOptions;
use crate::error::{Error, ExitCode, Result};
use crate::fleet::record::{self, Outcome, Record, TargetResult};
use crate::fleet::runner::FleetRun;
use crate::fleet::shard::{Shard, INDEX_VAR};
use crate::fleet::{summary, targets, waves};
use serde_json::json;
use std::path::PathBuf;

/// Default targets at once when neither `--concurrency` nor `fleet.concurrency` says
/// (kept with the fleet's model so the runbooks state the same number).
pub use crate::config::fleet::DEFAULT_CONCURRENCY;

/// The environment a command works on. For a command that works on one database, a
/// fleet environment needs one target: `--target NAME` (matching exactly one) makes it
/// `ENV/NAME`; without one it is refused (exit 2) before anything is touched.
/// Commands that understand fleets (`run`, `migrate status`, `targets`) get the flag
/// as given.
pub fn env_flag(
    app: &App,
    flag: Option<&str>,
    globs: &[String],
    command: &Command,
) -> Result<Option<String>> {
    let single = match command {
        Command::Migrate { action } => !matches!(
            action,
            MigrateAction::Status { .. } | MigrateAction::New { .. }
        ),
        Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Rollback { .. }
        | Command::Drill { .. } => true,
        _ => false,
    };
    let fleet_aware = matches!(
        command,
        Command::Run { .. }
            | Command::Targets { .. }
            | Command::Migrate {
                action: MigrateAction::Status { .. }
            }
    );
    if !single {
        if !fleet_aware && !globs.is_empty() {
            return Err(Error::Usage(
                "--target does not apply to this command (it narrows `run`, `migrate status`, `targets`, and picks the database of commands that work on one)".into(),
            ));
        }
        return Ok(flag.map(str::to_string));
    }
    let (requested, _) = crate::config::environment::detect(&app.project, flag, &app.vars)
        .map_err(|d| Error::Config(vec![d]))?;
    if requested.contains('/') {
        if !globs.is_empty() {
            return Err(Error::Usage(format!(
                "`{requested}` already names a target: drop --target"
            )));
        }
        return Ok(flag.map(str::to_string));
    }
    let env = app.env(flag)?;
    if targets::fleet_of(&app.project, &env).is_none() {
        if !globs.is_empty() {
            return Err(Error::Usage(format!(
                "environment `{}` declares no fleet: --target needs one",
                env.name
            )));
        }
        return Ok(flag.map(str::to_string));
    }
    if globs.is_empty() {
        return Err(Error::Usage(format!(
            "environment `{}` is a fleet: this command works on one database; name it with --target NAME (or --env {}/NAME; `dbflow targets --env {}` lists them), or run a workflow over all with `dbflow run WORKFLOW --env {}`",
            env.name, env.name, env.name, env.name
        )));
    }
    let chosen = targets::select(targets::list(&app.project, &env, &app.vars)?, globs)?;
    match chosen.as_slice() {
        [one] => Ok(Some(format!("{}/{}", env.name, one.name))),
        many => Err(Error::Usage(format!(
            "--target matches {} targets ({}…): this command works on one database; name one, or use `dbflow run`",
            many.len(),
            many.iter().take(3).map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Everything `dbflow run` was given.
pub struct RunArgs<'a> {
    /// `--env`.
    pub env_flag: Option<&'a str>,
    /// `--target` globs.
    pub globs: &'a [String],
    /// The workflow.
    pub name: &'a str,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--yes`.
    pub yes: bool,
    /// `--confirm`.
    pub confirm: Option<String>,
    /// `--cut-over`.
    pub cut_over: bool,
    /// The fleet options.
    pub fleet: &'a FleetArgs,
}

/// `dbflow run` when the environment is a fleet (and no single target was named):
/// `Ok(None)` when it is not, and the ordinary run goes on.
pub fn run(app: &App, a: RunArgs<'_>) -> Result<Option<ExitCode>> {
    let fleet_flags = a.fleet.concurrency.is_some()
        || a.fleet.max_failures.is_some()
        || a.fleet.resume.is_some()
        || a.fleet.run_id.is_some()
        || a.fleet.shard.is_some();
    let (requested, _) = crate::config::environment::detect(&app.project, a.env_flag, &app.vars)
        .map_err(|d| Error::Config(vec![d]))?;
    if requested.contains('/') {
        if fleet_flags || !a.globs.is_empty() {
            return Err(Error::Usage(format!("`{requested}` names one target: fleet options (--target, --shard, --resume, …) do not apply")));
        }
        return Ok(None);
    }
    let env = app.env(a.env_flag)?;
    let Some(fleet) = targets::fleet_of(&app.project, &env) else {
        if fleet_flags || !a.globs.is_empty() {
            return Err(Error::Usage(format!(
                "environment `{}` declares no fleet: --target, --shard, --resume, --concurrency and --max-failures need one",
                env.name
            )));
        }
        return Ok(None);
    };
    if !app.project.workflows.contains_key(a.name) && app.project.tasks.contains_key(a.name) {
        return Err(Error::Usage(format!(
            "`{}` is a task: over a fleet, `dbflow run` runs workflows (a task runs on one target: --env {}/NAME)",
            a.name, env.name
        )));
    }
    // Everything is checked before anything runs: options, targets, the resume record.
    let concurrency = a
        .fleet
        .concurrency
        .or(fleet.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(Error::Usage("--concurrency must be at least 1".into()));
    }
    let budget = match &a.fleet.max_failures {
        Some(text) => parse_budget(text)?,
        None => fleet.max_failures.unwrap_or(MaxFailures::Count(0)),
    };
    let shard = match &a.fleet.shard {
        Some(text) => Some(Shard::parse(
            text,
            std::env::var(INDEX_VAR).ok().as_deref(),
        )?),
        None => None,
    };
    let run_id = match a.fleet.resume.as_ref().or(a.fleet.run_id.as_ref()) {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None => crate::journal::new_run_id(),
    };
    let part = shard.map_or_else(|| "all".to_string(), |s| s.part());
    let root = app.root();
    let mut selected = targets::select(targets::list(&app.project, &env, &app.vars)?, a.globs)?;
    if let Some(shard) = shard {
        selected.retain(|t| shard.contains(&t.name));
    }
    let total = selected.len();
    // An unknown workflow or a step that cannot be planned is bad input, before anything.
    if let Some(first) = selected.first() {
        let instance = crate::fleet::instance(&env, first);
        crate::engine::plan::plan_workflow(&app.plan_context(&instance), a.name)
            .map_err(Error::Config)?;
    }
    let mut earlier: Vec<TargetResult> = Vec::new();
    let mut attempt = 1;
    let dir = record::dir(&root, &run_id);
    if a.fleet.resume.is_some() && !dir.is_dir() {
        return Err(Error::Usage(format!(
            "no fleet run `{run_id}` here ({} does not exist)",
            dir.display()
        )));
    }
    if dir.is_dir() {
        // The same run id again (`--resume`, or a CI job re-run with `--run-id`): the
        // same workflow on the same environment, a new attempt whose target journals
        // never overwrite the earlier ones.
        let read = record::read(&[dir])?;
        if read.workflow.is_some()
            && (read.workflow.as_deref() != Some(a.name)
                || read.env.as_deref() != Some(env.name.as_str()))
        {
            return Err(Error::Usage(format!(
                "fleet run `{run_id}` ran `{}` on `{}`, not `{}` on `{}`",
                read.workflow.as_deref().unwrap_or("?"),
                read.env.as_deref().unwrap_or("?"),
                a.name,
                env.name
            )));
        }
        attempt = read.attempts_by_part.get(&part).copied().unwrap_or(0) + 1;
        if a.fleet.resume.is_some() {
            // Done means its run ended and said so; anything else runs again, and its
            // workflow reads the database's history table, never this journal, to know
            // which migrations are still pending.
            selected.retain(|t| match read.results.get(&t.name) {
                Some(r) if matches!(r.outcome, Outcome::Succeeded | Outcome::Failed) => {
                    earlier.push(r.clone());
                    false
                }
                _ => true,
            });
        }
    }
    let waves = waves::split(selected, &fleet.waves);
    let allowed = budget.allowed(total);
    let options = RunOptions {
        yes: a.yes,
        dry_run: a.dry_run,
        confirm: a.confirm,
        cut_over: a.cut_over,
        ..RunOptions::default()
    };
    if a.dry_run {
        return dry_run(app, &env, a.name, &waves, concurrency, allowed, &earlier).map(Some);
    }
    if env.protection == Protection::Protected && !a.yes {
        return Err(Error::Usage(format!(
            "a fleet run on protected `{}` asks no confirmation per target: add --yes (after reviewing `dbflow run {} --env {} --dry-run`)",
            env.name, a.name, env.name
        )));
    }
    let record = Record::open(&root, &run_id, &part)?;
    let count: usize = waves.iter().map(Vec::len).sum();
    app.ui.out(&format!(
        "Fleet run {run_id}: workflow `{}` on `{}`{}: {count} target{} in {} wave{}, {concurrency} at a time, stopping after {} failure{}{}",
        a.name,
        env.name,
        shard.map(|s| format!(" (shard {}/{})", s.index, s.count)).unwrap_or_default(),
        if count == 1 { "" } else { "s" },
        waves.len(),
        if waves.len() == 1 { "" } else { "s" },
        allowed + 1,
        if allowed == 0 { "" } else { "s" },
        if earlier.is_empty() { String::new() } else { format!(" ({} done in an earlier attempt, skipped)", earlier.len()) },
    ));
    record.event(
        "fleet_start",
        json!({
            "run_id": run_id, "workflow": a.name, "env": env.name, "part": part, "attempt": attempt,
            "concurrency": concurrency, "allowed_failures": allowed,
            "waves": waves.iter().map(|w| w.iter().map(|t| &t.name).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "skipped": earlier.iter().map(|r| &r.target).collect::<Vec<_>>(),
            "user": crate::actor::actor(), "pid": std::process::id(),
        }),
    );
    let runner = FleetRun {
        project: &app.project,
        registry: &app.registry,
        vars: &app.vars,
        ui: &app.ui,
        env: &env,
        workflow: a.name,
        options,
        concurrency,
        allowed_failures: allowed,
        run_id: run_id.clone(),
        attempt,
        root: root.clone(),
    };
    let mut results = runner.run(waves, &record);
    let signal = crate::interrupt::received();
    let counts = summary::count(&results);
    record.event(
        "fleet_end",
        json!({ "counts": counts, "signal": signal.map(crate::interrupt::name) }),
    );
    results.extend(earlier);
    let code = summary::exit_code(&results, signal);
    report(
        app,
        &run_id,
        &env.name,
        a.name,
        &results,
        code,
        Some(record.path()),
    );
    if let Some(signal) = signal {
        app.ui.error(&format!(
            "{} received: no further target was started; continue with `dbflow run {} --env {} --resume {run_id}`",
            crate::interrupt::name(signal),
            a.name,
            env.name
        ));
    }
    Ok(Some(code))
}

fn report(
    app: &App,
    run_id: &str,
    env: &str,
    workflow: &str,
    results: &[TargetResult],
    code: ExitCode,
    journal: Option<&std::path::Path>,
) {
    if app.ui.json {
        app.ui.json_doc(&json!({
            "fleet_run_id": run_id,
            "env": env,
            "workflow": workflow,
            "result": if code == ExitCode::Ok { "succeeded" } else { "failed" },
            "exit_code": code.code(),
            "counts": summary::count(results),
            "targets": results,
        }));
    }
    let shown = journal
        .map(|p| {
            p.strip_prefix(app.root())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .map(|p| format!(" (fleet journal: {p})"))
        .unwrap_or_default();
    let table = summary::render(results);
    if code == ExitCode::Ok {
        app.ui.out(&format!(
            "\nFleet run {run_id}: `{workflow}` on `{env}`{shown}\n{table}"
        ));
    } else {
        app.ui.error(&format!("fleet run {run_id}: `{workflow}` on `{env}` did not succeed everywhere{shown}\n{table}"));
    }
}

fn dry_run(
    app: &App,
    env: &ResolvedEnv,
    workflow: &str,
    waves: &[Vec<crate::fleet::Target>],
    concurrency: usize,
    allowed: usize,
    earlier: &[TargetResult],
) -> Result<ExitCode> {
    if app.ui.json {
        app.ui.json_doc(&json!({
            "dry_run": true, "env": env.name, "workflow": workflow, "concurrency": concurrency,
            "allowed_failures": allowed,
            "waves": waves.iter().map(|w| w.iter().map(|t| &t.name).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "skipped": earlier.iter().map(|r| &r.target).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::Ok);
    }
    let mut out = format!(
        "Fleet plan: workflow `{workflow}` on `{}`, {concurrency} target(s) at a time, no further target starts after {} failure(s)\n",
        env.name,
        allowed + 1
    );
    for (i, wave) in waves.iter().enumerate() {
        out.push_str(&format!(
            "  wave {}: {}\n",
            i + 1,
            wave.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !earlier.is_empty() {
        out.push_str(&format!(
            "  skipped (done in an earlier attempt): {}\n",
            earlier
                .iter()
                .map(|r| r.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(first) = waves.first().and_then(|w| w.first()) {
        let instance = crate::fleet::instance(env, first);
        let plan = crate::engine::plan::plan_workflow(&app.plan_context(&instance), workflow)
            .map_err(Error::Config)?;
        out.push_str(&format!(
            "Each target runs (shown for `{}`):\n",
            instance.name
        ));
        out.push_str(&plan.render());
    }
    app.ui.out(&out);
    app.ui.out("Dry run: nothing was executed.");
    Ok(ExitCode::Ok)
}

fn parse_budget(text: &str) -> Result<MaxFailures> {
    let bad = || {
        Error::Usage(format!(
            "--max-failures `{text}`: a count (2) or a share (10%)"
        ))
    };
    match text.trim().strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= 100)
            .map(MaxFailures::Percent)
            .ok_or_else(bad),
        None => text
            .trim()
            .parse()
            .map(MaxFailures::Count)
            .map_err(|_| bad()),
    }
}

/// A fleet run id names a folder: letters, digits, `-`, `_`, `.`.
fn check_run_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.starts_with(['.', '-'])
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::Usage(format!(
            "fleet run id `{id}`: use letters, digits, `-`, `_`, `.`"
        )));
    }
    Ok(())
}

/// `dbflow fleet summary RUN_ID [--from DIR]…`: one summary from every journal part.
pub fn summary(
    app: &App,
    env_flag: Option<&str>,
    run_id: &str,
    from: &[PathBuf],
) -> Result<ExitCode> {
    check_run_id(run_id)?;
    // Kept until the summary is printed: the parts read from the backup repository.
    let fetched =
        Fetched(std::env::temp_dir().join(format!("dbflow-fleet-{run_id}-{}", std::process::id())));
    std::fs::create_dir_all(fetched.path())
        .map_err(|e| Error::io(format!("creating {}", fetched.path().display()), e))?;
    let dirs: Vec<PathBuf> = if from.is_empty() {
        let mut dirs = Vec::new();
        let local = record::dir(&app.root(), run_id);
        if local.is_dir() {
            dirs.push(local);
        }
        let env = app.env(env_flag)?;
        let n = crate::fleet::shared::download(
            &app.project,
            &env.name,
            &app.vars,
            run_id,
            fetched.path(),
        )
        .map_err(|message| Error::Failed {
            message,
            code: ExitCode::Failed,
        })?;
        if n > 0 {
            dirs.push(fetched.path().to_path_buf());
        }
        if dirs.is_empty() {
            return Err(Error::Usage(format!(
                "no journal of fleet run `{run_id}` here ({}) nor in the backup repository of `{}`: give the folders with --from",
                record::dir(&app.root(), run_id).display(),
                env.name
            )));
        }
        dirs
    } else {
        // A folder given may be the run's own, or one holding `<run-id>/`.
        from.iter()
            .map(|d| {
                let inner = d.join(run_id);
                if inner.is_dir() {
                    inner
                } else {
                    d.clone()
                }
            })
            .collect()
    };
    for d in &dirs {
        if !d.is_dir() {
            return Err(Error::Usage(format!(
                "no journal of fleet run `{run_id}` in {}",
                d.display()
            )));
        }
    }
    let read = record::read(&dirs)?;
    if read.results.is_empty() && read.workflow.is_none() {
        return Err(Error::Usage(format!(
            "no journal of fleet run `{run_id}` in the folders given"
        )));
    }
    let results: Vec<TargetResult> = read.results.into_values().collect();
    let code = summary::exit_code(&results, None);
    if !app.ui.json {
        app.ui.out(&format!("Parts: {}", read.parts.join(", ")));
    }
    report(
        app,
        run_id,
        read.env.as_deref().unwrap_or("?"),
        read.workflow.as_deref().unwrap_or("?"),
        &results,
        code,
        None,
    );
    Ok(code)
}

/// Whether `--env` (or the variables) picks a whole fleet, not one of its targets.
pub fn is_fleet(app: &App, flag: Option<&str>) -> Result<bool> {
    let (requested, _) = crate::config::environment::detect(&app.project, flag, &app.vars)
        .map_err(|d| Error::Config(vec![d]))?;
    if requested.contains('/') {
        return Ok(false);
    }
    let env = app.env(flag)?;
    Ok(targets::fleet_of(&app.project, &env).is_some())
}

/// `dbflow migrate status` over a fleet: the version matrix; exit 4 when a target is
/// not clean, 1 when one could not be read.
pub fn status(app: &App, flag: Option<&str>, globs: &[String]) -> Result<ExitCode> {
    let env = app.env(flag)?;
    let fleet = targets::fleet_of(&app.project, &env);
    let concurrency = fleet
        .and_then(|f| f.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY)
        .max(8);
    let selected = targets::select(targets::list(&app.project, &env, &app.vars)?, globs)?;
    let rows = crate::fleet::status::read(&app.project, &env, &selected, concurrency).map_err(
        |message| Error::Failed {
            message,
            code: ExitCode::BadInput,
        },
    )?;
    let code = if rows.iter().any(|r| r.error.is_some()) {
        ExitCode::Failed
    } else if rows.iter().any(|r| !r.clean()) {
        ExitCode::NotClean
    } else {
        ExitCode::Ok
    };
    if app.ui.json {
        app.ui.json_doc(&json!({
            "env": env.name,
            "clean": code == ExitCode::Ok,
            "exit_code": code.code(),
            "targets": rows,
        }));
    } else {
        app.ui.out(&crate::fleet::status::render(&env.name, &rows));
    }
    Ok(code)
}

/// A temporary folder removed when dropped.
struct Fetched(PathBuf);

impl Fetched {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
