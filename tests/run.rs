//! `dbflow run`, `runs`, `env` and `list` against the real binary: plans, execution
//! order, skips, failure policies, the journal, the task runner, environment detection.

use crate::support::cli::{events, Output, Test};
use serde_json::Value;

/// A project whose steps append to `order.txt`, so tests can see what ran and in which
/// order.
const ORDERED: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
      production:
        url: sqlite:.dbflow/prod.db
    workflows:
      deploy:
        description: Apply pending migrations
        steps:
          - name: First
            shell: echo first >> order.txt
          - name: Production only
            shell: echo production >> order.txt
            when: { environments: [production] }
          - name: Second
            shell: echo second >> order.txt
          - id: third
            name: Third
            shell: echo third >> order.txt
";

/// Variables the tests below interpolate and expect unset unless they set them.
const UNSET: &[&str] = &[
    "APP_URL",
    "FROM_FILE",
    "GREETING",
    "LOCAL_URL",
    "MIGRATION_NAME",
    "REGION",
    "SCHEMA_NAME",
    "SLACK_WEBHOOK",
];

/// A test folder whose child process cannot see the host's values of [`UNSET`].
fn project() -> Test {
    UNSET
        .iter()
        .fold(Test::new(), |test, name| test.env_remove(name))
}

fn lines(test: &Test, path: &str) -> Vec<String> {
    if !test.exists(path) {
        return Vec::new();
    }
    test.read(path).lines().map(str::to_string).collect()
}

fn event_names(journal: &[Value]) -> Vec<&str> {
    journal
        .iter()
        .map(|e| e["event"].as_str().expect("every event has a name"))
        .collect()
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected to find {needle:?} in:\n{haystack}"
    );
}

#[track_caller]
fn assert_lacks(haystack: &str, needle: &str) {
    assert!(
        !haystack.contains(needle),
        "did not expect {needle:?} in:\n{haystack}"
    );
}

// ---------------------------------------------------------------------------------------
// --dry-run

#[test]
fn dry_run_prints_every_interpolated_command_and_runs_nothing() {
    let test = project()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:.dbflow/app.db
            tasks:
              generate:
                description: Regenerate the client
                script: touch generated.txt
              migrate:
                command: touch
                args: [migrated.txt, '${MIGRATION_NAME:-all}']
                dependencies: [generate]
            workflows:
              deploy:
                steps:
                  - name: Mark the start
                    shell: touch ran.txt
                  - task: migrate
                  - shell: echo ${GREETING:-hello} ${WHO}
            ",
        )
        .env("WHO", "operator");
    let output = test.run_with(["run", "deploy", "--dry-run"]);
    output.assert_code(0);
    let plan = &output.stdout;
    assert_contains(
        plan,
        "Plan: workflow `deploy` on environment `local` (sqlite:.dbflow/app.db)",
    );
    assert_contains(plan, "1. Mark the start [shell]");
    assert_contains(plan, "$ touch ran.txt");
    assert_contains(plan, "runs in order: generate → migrate");
    assert_contains(plan, "$ touch generated.txt");
    assert_contains(plan, "$ touch migrated.txt all");
    // Interpolated: the default and the process variable, not the placeholders.
    assert_contains(plan, "$ echo hello operator");
    for command in plan.lines().filter(|l| l.trim_start().starts_with("$ ")) {
        assert_lacks(command, "${");
    }
    assert_contains(plan, "Dry run: nothing was executed.");

    for file in ["ran.txt", "generated.txt", "migrated.txt", "all"] {
        assert!(
            !test.exists(file),
            "{file} exists: a dry run executed something"
        );
    }
    assert!(output.journals().is_empty(), "a dry run writes no journal");
    assert!(
        !test.exists(".dbflow/tasks"),
        "a dry run records no task hashes"
    );
}

#[test]
fn dry_run_json_is_the_plan_and_runs_nothing() {
    let test = project().file("Workflowfile.yaml", ORDERED);
    let output = test.run_with(["run", "deploy", "--dry-run", "--json"]);
    output.assert_code(0);
    let doc: Value = serde_json::from_str(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["plan"]["workflow"], "deploy");
    assert_eq!(doc["plan"]["env"], "local");
    let steps = doc["plan"]["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["First", "Production only", "Second", "Third"]);
    assert_eq!(steps[0]["doc"]["commands"][0], "echo first >> order.txt");
    assert!(steps[0]["skip"].is_null());
    assert_eq!(
        steps[1]["skip"],
        "environment `local` is not one of production"
    );
    assert!(!test.exists("order.txt"));
    assert!(output.journals().is_empty());
}

// ---------------------------------------------------------------------------------------
// A real run and its journal

#[test]
fn steps_run_in_order_and_a_when_step_is_skipped_with_its_reason() {
    let test = project().file("Workflowfile.yaml", ORDERED);
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(0);
    assert_eq!(lines(&test, "order.txt"), ["first", "second", "third"]);
    assert_contains(
        &output.stdout,
        "○ [2/4] Production only: skipped (environment `local` is not one of production)",
    );
    assert_contains(
        &output.stdout,
        "✔ `deploy` succeeded (journal: .dbflow/runs/",
    );

    // On production the `when` holds and the step runs in its place.
    let output = test.run_with(["run", "deploy", "--env", "production"]);
    output.assert_code(0);
    assert_eq!(
        lines(&test, "order.txt"),
        [
            "first",
            "second",
            "third",
            "first",
            "production",
            "second",
            "third"
        ]
    );
}

#[test]
fn the_journal_records_the_run_step_by_step() {
    let test = project().file("Workflowfile.yaml", ORDERED);
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(0);
    let journal = output.journal();
    assert_eq!(
        event_names(&journal),
        [
            "run_start",
            "step_start",
            "step_end",
            "step_skipped",
            "step_start",
            "step_end",
            "step_start",
            "step_end",
            "run_end"
        ]
    );
    let start = &journal[0];
    let run_id = start["run_id"].as_str().expect("run_id");
    let path = &crate::support::cli::journal_paths(test.path())[0];
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        format!("{run_id}.jsonl"),
        "the journal is named after the run id"
    );
    assert_eq!(start["target"], "deploy");
    assert_eq!(start["kind"], "workflow");
    assert_eq!(start["env"], "local");
    assert_eq!(start["env_decided_by"], "no setting (first environment)");
    assert_eq!(start["protection"], "sandbox");
    assert_eq!(start["url"], "sqlite:.dbflow/app.db");
    for event in &journal {
        assert!(
            event["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "every event has a UTC timestamp: {event}"
        );
    }

    let ends = events(&journal, "step_end");
    let ids: Vec<&str> = ends.iter().map(|e| e["step"].as_str().unwrap()).collect();
    // Generated ids count every step, the skipped one included; `id:` wins.
    assert_eq!(ids, ["shell-1", "shell-3", "third"]);
    for end in &ends {
        assert_eq!(end["outcome"], "succeeded", "{end}");
        assert!(end["duration_ms"].is_u64(), "{end}");
        assert_eq!(end["outputs"]["exit_code"], 0, "{end}");
    }
    let skipped = events(&journal, "step_skipped");
    assert_eq!(skipped[0]["step"], "shell-2");
    assert_eq!(
        skipped[0]["reason"],
        "environment `local` is not one of production"
    );

    let end = journal.last().unwrap();
    assert_eq!(end["event"], "run_end");
    assert_eq!(end["result"], "succeeded");
    assert_eq!(end["exit_code"], 0);
    assert!(end["failed_step"].is_null());
    assert!(end["duration_ms"].is_u64());
}

#[test]
fn runs_reads_the_journals_back() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          deploy:
            steps:
              - shell: echo deploying
          broken:
            steps:
              - name: Doomed
                id: doomed
                shell: exit 1
        ",
    );
    // Back to back, well within one second: `--last` must still be the second run.
    test.run_with(["run", "deploy"]).assert_code(0);
    test.run_with(["run", "broken"]).assert_code(1);
    let journals = test.journals();
    assert_eq!(journals.len(), 2);
    let first_id = journals[0][0]["run_id"].as_str().unwrap().to_string();
    let last_id = journals[1][0]["run_id"].as_str().unwrap().to_string();

    let list = test.run_with(["runs"]);
    list.assert_code(0);
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{}", list.stdout);
    assert!(
        rows[0].starts_with(&last_id),
        "newest first:\n{}",
        list.stdout
    );
    assert_contains(rows[0], "broken");
    assert_contains(rows[0], "failed at doomed");
    assert!(rows[1].starts_with(&first_id), "{}", list.stdout);
    assert_contains(rows[1], "succeeded");

    let last = test.run_with(["runs", "--last"]);
    last.assert_code(0);
    assert_contains(&last.stdout, "run_start");
    assert_contains(&last.stdout, "workflow `broken` on local");
    assert_contains(&last.stdout, "doomed: failed");
    assert_contains(&last.stdout, "command exited with code 1");
    assert_contains(&last.stdout, "failed (exit 1,");
    assert_lacks(&last.stdout, "deploying");

    let by_id = test.run_with(["runs", &first_id]);
    by_id.assert_code(0);
    assert_contains(&by_id.stdout, "workflow `deploy` on local");

    let json = test.run_with(["runs", "--json"]);
    json.assert_code(0);
    let rows: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(rows[0]["run_id"], last_id.as_str());
    assert_eq!(rows[0]["result"], "failed");
    assert_eq!(rows[0]["failed_step"], "doomed");
    assert_eq!(rows[1]["result"], "succeeded");

    let unknown = test.run_with(["runs", "19990101T000000Z-0000"]);
    unknown.assert_code(2);
    assert_contains(&unknown.stderr, "no run `19990101T000000Z-0000`");
}

#[test]
fn runs_without_any_journal_says_so() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        ",
    );
    let output = test.run_with(["runs"]);
    output.assert_code(0);
    assert_eq!(output.stdout, "no runs recorded yet\n");
    let output = test.run_with(["runs", "--last"]);
    output.assert_code(1);
    assert_contains(&output.stderr, "no runs recorded yet");
}

// ---------------------------------------------------------------------------------------
// Failure policies

const FAILING: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
    workflows:
      restore:
        description: Put the database back
        steps:
          - name: Restore
            shell: echo restore >> order.txt
      deploy:
        steps:
          - name: Backup
            id: backup
            shell: echo backup >> order.txt
          - name: Migrate
            id: migrate
            shell: echo migrate >> order.txt; exit 3
            on_failure: restore
          - name: Verify
            id: verify
            shell: echo verify >> order.txt
";

#[test]
fn a_failing_step_runs_its_on_failure_workflow_then_stops() {
    let test = project().file("Workflowfile.yaml", FAILING);
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(1);
    assert_eq!(lines(&test, "order.txt"), ["backup", "migrate", "restore"]);
    assert_contains(&output.stderr, "✘ Migrate: command exited with code 3");
    assert_contains(
        &output.stderr,
        "step `migrate` of `deploy` failed; running on_failure workflow `restore`",
    );
    assert_contains(
        &output.stderr,
        "error: `deploy` failed at step `migrate`: command exited with code 3",
    );
    // What had succeeded, with the handler's steps named after their workflow.
    assert_contains(&output.stderr, "already done: backup, restore/shell-1;");

    let journal = output.journal();
    assert_eq!(
        event_names(&journal),
        [
            "run_start",
            "step_start",
            "step_end",
            "step_start",
            "step_end",
            "on_failure_start",
            "step_start",
            "step_end",
            "on_failure_end",
            "run_end"
        ]
    );
    let failed = &events(&journal, "step_end")[1];
    assert_eq!(failed["step"], "migrate");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["error"], "command exited with code 3");
    let handler = events(&journal, "on_failure_start")[0];
    assert_eq!(handler["workflow"], "deploy");
    assert_eq!(handler["failed_step"], "migrate");
    assert_eq!(handler["handler"], "restore");
    let handler_step = &events(&journal, "step_start")[2];
    assert_eq!(handler_step["workflow"], "restore");
    assert_eq!(events(&journal, "on_failure_end")[0]["result"], "succeeded");
    let end = journal.last().unwrap();
    assert_eq!(end["result"], "failed");
    assert_eq!(end["exit_code"], 1);
    assert_eq!(end["failed_step"], "migrate");
}

#[test]
fn a_workflow_level_on_failure_runs_when_any_step_fails() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          notify:
            steps:
              - shell: echo notified >> order.txt
          deploy:
            on_failure: notify
            steps:
              - shell: echo one >> order.txt
              - id: boom
                shell: exit 9
              - shell: echo never >> order.txt
        ",
    );
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(1);
    assert_eq!(lines(&test, "order.txt"), ["one", "notified"]);
    let journal = output.journal();
    let handler = events(&journal, "on_failure_start");
    assert_eq!(handler.len(), 1, "the handler runs once");
    assert_eq!(handler[0]["failed_step"], "boom");
    assert_eq!(handler[0]["handler"], "notify");
    assert_eq!(journal.last().unwrap()["failed_step"], "boom");
}

#[test]
fn a_failing_handler_is_reported_and_the_run_still_fails() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          restore:
            steps:
              - shell: exit 4
          deploy:
            on_failure: restore
            steps:
              - id: migrate
                shell: exit 3
        ",
    );
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(1);
    assert_contains(&output.stderr, "on_failure workflow `restore` failed too");
    let journal = output.journal();
    let end = events(&journal, "on_failure_end")[0];
    assert_eq!(end["result"], "failed");
    // The run's failure is the original one, not the handler's.
    assert_eq!(journal.last().unwrap()["failed_step"], "migrate");
}

#[test]
fn on_failure_continue_records_the_failure_and_goes_on() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          deploy:
            steps:
              - id: optional
                shell: echo optional >> order.txt; exit 5
                on_failure: continue
              - shell: echo after >> order.txt
        ",
    );
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(0);
    assert_eq!(lines(&test, "order.txt"), ["optional", "after"]);
    assert_contains(&output.stderr, "failed; continuing (on_failure: continue)");
    let journal = output.journal();
    assert_eq!(events(&journal, "step_end")[0]["outcome"], "failed");
    assert_eq!(events(&journal, "failure_ignored")[0]["step"], "optional");
    assert_eq!(journal.last().unwrap()["result"], "succeeded");
}

#[test]
fn a_nested_workflow_step_runs_the_called_workflow_inline() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          verify:
            steps:
              - shell: echo verify >> order.txt
          deploy:
            steps:
              - shell: echo deploy >> order.txt
              - workflow: verify
              - shell: echo done >> order.txt
        ",
    );
    let dry = test.run_with(["run", "deploy", "--dry-run"]);
    dry.assert_code(0);
    assert_contains(&dry.stdout, "$ echo verify >> order.txt");
    assert!(!test.exists("order.txt"));
    test.run_with(["run", "deploy"]).assert_code(0);
    assert_eq!(lines(&test, "order.txt"), ["deploy", "verify", "done"]);
}

// ---------------------------------------------------------------------------------------
// Tasks

#[test]
fn dependencies_run_once_each_in_topological_order() {
    // The diamond: d needs b and c, both need a.
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          a:
            script: echo a >> order.txt
          b:
            script: echo b >> order.txt
            dependencies: [a]
          c:
            script: echo c >> order.txt
            dependencies: [a]
          d:
            script: echo d >> order.txt
            dependencies: [b, c]
        workflows:
          both:
            steps:
              - task: b
              - task: d
        ",
    );
    test.run_with(["run", "d"]).assert_code(0);
    assert_eq!(lines(&test, "order.txt"), ["a", "b", "c", "d"]);

    // Within one workflow run a task that already ran is not run again.
    std::fs::remove_file(test.path().join("order.txt")).unwrap();
    let output = test.run_with(["run", "both"]);
    output.assert_code(0);
    assert_eq!(lines(&test, "order.txt"), ["a", "b", "c", "d"]);
    let journal = output.journals().pop().unwrap();
    let tasks: Vec<&str> = events(&journal, "task")
        .iter()
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["a", "b", "c", "d"]);
}

#[test]
fn a_task_run_directly_passes_its_exit_status_through() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          check:
            script: exit 7
        workflows:
          wrapped:
            steps:
              - task: check
        ",
    );
    let output = test.run_with(["run", "check"]);
    output.assert_code(7);
    assert_contains(&output.stderr, "task `check` exited with code 7");
    let journal = output.journal();
    assert_eq!(journal[0]["kind"], "task");
    assert_eq!(journal.last().unwrap()["exit_code"], 7);

    // Inside a workflow, a failing task is exit code 1: a workflow's codes keep their
    // documented meaning (3 = blocked by a guard, 4 = not clean).
    test.run_with(["run", "wrapped"]).assert_code(1);
}

#[test]
fn a_task_that_outlives_its_timeout_is_killed() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          slow:
            script: sleep 5; touch finished.txt
            timeout: 1s
        ",
    );
    let started = std::time::Instant::now();
    let output = test.run_with(["run", "slow"]);
    let elapsed = started.elapsed();
    output.assert_code(1);
    assert_contains(
        &output.stderr,
        "task `slow` timed out after 1s and was killed",
    );
    assert!(
        elapsed < std::time::Duration::from_secs(4),
        "the timeout did not cut the task short: {elapsed:?}"
    );
    // Killed means killed: the script's own children must not finish the job later.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        !test.exists("finished.txt"),
        "the timed-out script kept running"
    );
}

#[test]
fn a_shell_step_timeout_kills_the_command() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          wait:
            steps:
              - shell: { command: sleep 5, timeout: 500ms }
        ",
    );
    let started = std::time::Instant::now();
    let output = test.run_with(["run", "wait"]);
    output.assert_code(1);
    assert_contains(
        &output.stderr,
        "command timed out after 500ms and was killed",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[test]
fn a_task_whose_condition_does_not_hold_is_skipped_with_the_reason() {
    let test = project()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:.dbflow/app.db
              staging:
                url: sqlite:.dbflow/staging.db
            tasks:
              notify:
                script: echo notified >> order.txt
                condition:
                  environments: [staging]
              announce:
                script: echo announced >> order.txt
                condition:
                  env_set: [SLACK_WEBHOOK]
            ",
        )
        .env_remove("SLACK_WEBHOOK");
    let output = test.run_with(["run", "notify"]);
    output.assert_code(0);
    assert_contains(
        &output.stdout,
        "skipped: condition not met: environment `local` is not one of staging",
    );
    assert!(!test.exists("order.txt"));
    let journal = output.journal();
    let end = events(&journal, "step_end")[0];
    assert_eq!(end["outcome"], "skipped");
    assert_contains(end["reason"].as_str().unwrap(), "is not one of staging");

    let output = test.run_with(["run", "announce"]);
    output.assert_code(0);
    assert_contains(
        &output.stdout,
        "condition not met: SLACK_WEBHOOK is not set",
    );
    assert!(!test.exists("order.txt"));

    test.run_with(["run", "notify", "--env", "staging"])
        .assert_code(0);
    assert_eq!(lines(&test, "order.txt"), ["notified"]);
}

#[test]
fn a_failing_precondition_shows_its_message_and_the_command_does_not_run() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          migrate:
            script: touch migrated.txt
            preconditions:
              - command: test -f schema.prisma
                message: prisma/schema.prisma is missing; run `prisma init` first
        ",
    );
    let output = test.run_with(["run", "migrate"]);
    output.assert_code(1);
    assert_contains(
        &output.stderr,
        "precondition of task `migrate` failed: prisma/schema.prisma is missing; run `prisma init` first",
    );
    assert!(!test.exists("migrated.txt"));

    test.write("schema.prisma", "");
    test.run_with(["run", "migrate"]).assert_code(0);
    assert!(test.exists("migrated.txt"));
}

#[test]
fn sources_and_generates_skip_an_unchanged_task_and_rerun_after_an_edit() {
    let test = project()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:.dbflow/app.db
            tasks:
              generate:
                script: cat prisma/schema.prisma > client.txt && echo ran >> runs.txt
                sources: [prisma/*.prisma]
                generates: [client.txt]
            ",
        )
        .file("prisma/schema.prisma", "model User { id Int @id }");
    test.run_with(["run", "generate"]).assert_code(0);
    assert_eq!(lines(&test, "runs.txt"), ["ran"]);

    let second = test.run_with(["run", "generate"]);
    second.assert_code(0);
    assert_contains(
        &second.stdout,
        "task `generate` skipped: sources unchanged since its last run (1 file)",
    );
    assert_eq!(
        lines(&test, "runs.txt"),
        ["ran"],
        "the second run must skip"
    );

    test.write(
        "prisma/schema.prisma",
        "model User { id Int @id\n email String }",
    );
    let third = test.run_with(["run", "generate"]);
    third.assert_code(0);
    assert_lacks(&third.stdout, "skipped");
    assert_eq!(lines(&test, "runs.txt"), ["ran", "ran"]);
    assert_contains(&test.read("client.txt"), "email String");

    // A missing output forces a rerun even when the sources are unchanged.
    std::fs::remove_file(test.path().join("client.txt")).unwrap();
    test.run_with(["run", "generate"]).assert_code(0);
    assert_eq!(lines(&test, "runs.txt"), ["ran", "ran", "ran"]);
}

#[test]
fn a_task_gets_the_environment_its_env_and_cwd() {
    let test = project()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:.dbflow/app.db
            tasks:
              show:
                script: echo \"$DATABASE_URL|$DBFLOW_ENV|$DBFLOW_PROTECTION|$SCHEMA|$(basename $(pwd))\" > ../seen.txt
                cwd: prisma
                env:
                  SCHEMA: ${SCHEMA_NAME:-public}
            ",
        )
        .file("prisma/.keep", "");
    test.run_with(["run", "show"]).assert_code(0);
    assert_eq!(
        test.read("seen.txt"),
        "sqlite:.dbflow/app.db|local|sandbox|public|prisma\n"
    );
}

#[test]
fn a_private_task_cannot_be_run_directly() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          helper:
            private: true
            script: touch ran.txt
        ",
    );
    let output = test.run_with(["run", "helper"]);
    output.assert_code(2);
    assert_contains(&output.stderr, "task `helper` is private");
    assert!(!test.exists("ran.txt"));
}

#[test]
fn the_workflowfile_is_found_upward_and_commands_run_in_its_folder() {
    let test = project()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:.dbflow/app.db
            workflows:
              where:
                steps:
                  - shell: pwd > where.txt
            ",
        )
        .current_dir("prisma/migrations");
    let output = test.run_with(["run", "where"]);
    output.assert_code(0);
    assert_eq!(
        test.read("where.txt").trim_end(),
        test.path().to_string_lossy(),
        "steps run in the project root, not in the current directory"
    );
    assert_eq!(
        output.journals().len(),
        1,
        "the journal lives in the project root"
    );
    assert!(!test.exists("prisma/migrations/.dbflow"));
    assert!(!test.exists("prisma/migrations/where.txt"));
}

#[test]
fn an_explicit_workflowfile_that_does_not_exist_is_bad_input() {
    let output = project().run_with(["-f", "nope.yaml", "validate"]);
    output.assert_code(2);
    assert_contains(&output.stderr, "nope.yaml: no such file");
}

#[test]
fn an_unknown_target_is_bad_input_with_a_suggestion() {
    let test = project().file("Workflowfile.yaml", ORDERED);
    let output = test.run_with(["run", "deplyo"]);
    output.assert_code(2);
    assert_contains(&output.stderr, "no workflow or task named `deplyo`");
    assert_contains(&output.stderr, "did you mean `deploy`?");
    assert!(output.journals().is_empty());
}

// ---------------------------------------------------------------------------------------
// confirm

const CONFIRMING: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
    workflows:
      deploy:
        steps:
          - confirm: Apply migrations to the shared database?
          - shell: touch deployed.txt
";

#[test]
fn confirm_without_a_terminal_refuses_unless_yes() {
    let test = project().file("Workflowfile.yaml", CONFIRMING);
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(1);
    assert_contains(
        &output.stderr,
        "confirmation required but nobody can be asked",
    );
    assert_contains(&output.stderr, "rerun with --yes");
    assert!(!test.exists("deployed.txt"));

    let output = test.run_with(["run", "deploy", "--yes"]);
    output.assert_code(0);
    assert_contains(
        &output.stdout,
        "Apply migrations to the shared database? → yes (--yes)",
    );
    assert!(test.exists("deployed.txt"));
    let journal = output.journals().pop().unwrap();
    assert_eq!(journal[0]["yes"], true);
    let confirmation = events(&journal, "confirmation")[0];
    assert_eq!(
        confirmation["question"],
        "Apply migrations to the shared database?"
    );
    assert_eq!(confirmation["answer"], "AssumedYes");
    assert_eq!(
        events(&journal, "step_end")[0]["outputs"]["confirmed_by"],
        "--yes"
    );
}

#[test]
fn confirm_under_ci_refuses_even_with_input_available() {
    let test = project()
        .file("Workflowfile.yaml", CONFIRMING)
        .env("CI", "true")
        .stdin("y\n");
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(1);
    assert_contains(&output.stderr, "CI=true");
    assert_contains(&output.stderr, "--yes");
    assert!(!test.exists("deployed.txt"));
}

/// A project's own question (`yes_answers: false`): `--yes` never answers it; a person or
/// the step's own variable must.
#[test]
fn a_question_that_yes_does_not_answer_is_blocked_without_a_person_or_its_variable() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          release:
            steps:
              - confirm:
                  message: Passed the staging smoke tests?
                  yes_answers: false
                  variable: SMOKE_TESTS_PASSED
              - shell: touch released.txt
          plain:
            steps:
              - confirm: { message: Anyone there?, yes_answers: false }
              - shell: touch plain.txt
        ",
    );
    let output = test.run_with(["run", "release", "--yes"]);
    output.assert_code(3);
    assert_contains(
        &output.stderr,
        "\"Passed the staging smoke tests?\" needs a person's answer but nobody can be asked (no terminal); --yes does not answer this question: run it where a person can answer, or set SMOKE_TESTS_PASSED=yes for this run",
    );
    assert!(!test.exists("released.txt"));
    let output = test.run_with(["run", "plain", "--yes"]);
    output.assert_code(3);
    assert_contains(
        &output.stderr,
        "the step declares no `variable:` that could",
    );
    assert!(!test.exists("plain.txt"));
    // Under CI, with input available, still nobody is asked.
    let output = Test::in_dir(test.path())
        .env("CI", "true")
        .stdin("y\n")
        .run_with(["run", "release", "--yes"]);
    output.assert_code(3);
    assert!(!test.exists("released.txt"));
    // A value that is not yes does not answer it.
    let output = Test::in_dir(test.path())
        .env("SMOKE_TESTS_PASSED", "maybe")
        .run_with(["run", "release", "--yes"]);
    output.assert_code(3);

    let output = Test::in_dir(test.path())
        .env("SMOKE_TESTS_PASSED", "yes")
        .run_with(["run", "release"]);
    output.assert_code(0);
    assert_contains(
        &output.stdout,
        "Passed the staging smoke tests? → yes (SMOKE_TESTS_PASSED=yes)",
    );
    assert!(test.exists("released.txt"));
    let journal = output.journals().pop().unwrap();
    assert_eq!(
        events(&journal, "confirmation")[0]["variable"],
        "SMOKE_TESTS_PASSED"
    );
    assert_eq!(
        events(&journal, "step_end")[0]["outputs"]["confirmed_by"],
        "SMOKE_TESTS_PASSED"
    );

    // A variable without `yes_answers: false` is a load error.
    test.write(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          release:
            steps:
              - confirm: { message: Go?, variable: GO }
        ",
    );
    let output = test.run_with(["validate"]);
    output.assert_code(2);
    assert_contains(&output.stderr, "add `yes_answers: false`");
}

// ---------------------------------------------------------------------------------------
// Environments

const ENVIRONMENTS: &str = "
    default_env: local
    aliases:
      prod: production
      dev: local
    environments:
      local:
        url: sqlite:.dbflow/local.db
      staging:
        url: sqlite:.dbflow/staging.db
      test:
        url: sqlite:.dbflow/test.db
      production:
        url: sqlite:.dbflow/production.db
";

fn env_json(output: &Output) -> Value {
    output.assert_code(0);
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("`dbflow env --json` is not JSON ({e}):\n{}", output.stdout))
}

#[test]
fn environment_detection_follows_the_precedence_chain() {
    let base = || project().file("Workflowfile.yaml", ENVIRONMENTS);

    let doc = env_json(&base().run_with(["env", "--json"]));
    assert_eq!(doc["name"], "local");
    assert_eq!(doc["decided_by"], "default_env in the Workflowfile");

    let doc = env_json(&base().env("NODE_ENV", "test").run_with(["env", "--json"]));
    assert_eq!(doc["name"], "test");
    assert_eq!(doc["decided_by"], "NODE_ENV");

    let doc = env_json(
        &base()
            .env("NODE_ENV", "test")
            .env("DATABASE_ENV", "staging")
            .run_with(["env", "--json"]),
    );
    assert_eq!(doc["name"], "staging");
    assert_eq!(doc["decided_by"], "DATABASE_ENV");

    let doc = env_json(
        &base()
            .env("NODE_ENV", "test")
            .env("DATABASE_ENV", "staging")
            .env("DBFLOW_ENV", "production")
            .run_with(["env", "--json"]),
    );
    assert_eq!(doc["name"], "production");
    assert_eq!(doc["decided_by"], "DBFLOW_ENV");
    assert_eq!(doc["protection"], "protected", "protection from the name");

    let doc = env_json(
        &base()
            .env("NODE_ENV", "test")
            .env("DATABASE_ENV", "staging")
            .env("DBFLOW_ENV", "production")
            .run_with(["env", "--json", "--env", "local"]),
    );
    assert_eq!(doc["name"], "local");
    assert_eq!(doc["decided_by"], "--env flag");
    let chain: Vec<(&str, &Value)> = doc["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["source"].as_str().unwrap(), &c["value"]))
        .collect();
    assert_eq!(
        chain,
        [
            ("--env", &Value::from("local")),
            ("DBFLOW_ENV", &Value::from("production")),
            ("DATABASE_ENV", &Value::from("staging")),
            ("NODE_ENV", &Value::from("test")),
            ("default_env", &Value::from("local")),
        ]
    );

    // An empty variable does not count as set.
    let doc = env_json(
        &base()
            .env("DBFLOW_ENV", "")
            .env("NODE_ENV", "test")
            .run_with(["env", "--json"]),
    );
    assert_eq!(doc["name"], "test");
}

#[test]
fn aliases_resolve_to_their_environment() {
    let test = project().file("Workflowfile.yaml", ENVIRONMENTS);
    let doc = env_json(&test.run_with(["env", "--json", "--env", "prod"]));
    assert_eq!(doc["name"], "production");
    assert_eq!(doc["alias"], "prod");
    assert_eq!(doc["url"], "sqlite:.dbflow/production.db");

    let doc = env_json(
        &project()
            .file("Workflowfile.yaml", ENVIRONMENTS)
            .env("NODE_ENV", "dev")
            .run_with(["env", "--json"]),
    );
    assert_eq!(doc["name"], "local");
    assert_eq!(doc["alias"], "dev");
    assert_eq!(doc["decided_by"], "NODE_ENV");

    let human = test.run_with(["env", "--env", "prod"]);
    human.assert_code(0);
    assert_contains(&human.stdout, "environment: production (alias `prod`)");
    assert_contains(&human.stdout, "decided by:  --env flag");
}

#[test]
fn an_unknown_environment_is_bad_input_naming_where_it_came_from() {
    let test = project()
        .file("Workflowfile.yaml", ENVIRONMENTS)
        .env("NODE_ENV", "producton")
        .file("touch.yaml", "");
    let output = test.run_with(["env"]);
    output.assert_code(2);
    assert_contains(
        &output.stderr,
        "environment `producton` (from NODE_ENV) is not declared",
    );
    assert_contains(&output.stderr, "did you mean `production`?");
}

#[test]
fn interpolation_uses_defaults_the_process_and_the_dotenv_file() {
    let test = project()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: ${LOCAL_URL:-sqlite:.dbflow/fallback.db}
                vars:
                  region: ${REGION:-eu-west-1}
                  owner: ${OWNER}
            workflows:
              show:
                steps:
                  - shell: echo \"${GREETING:-hello} ${OWNER} ${FROM_FILE} $FROM_FILE\" > seen.txt
            ",
        )
        .file(
            ".env",
            "
            OWNER=from-dotenv
            FROM_FILE=dotenv-only
            ",
        )
        .env("OWNER", "from-process");
    let output = test.run_with(["run", "show"]);
    output.assert_code(0);
    // Defaults fill unset variables; the process wins over .env; .env values are both
    // interpolated and exported to the command.
    assert_eq!(
        test.read("seen.txt"),
        "hello from-process dotenv-only dotenv-only\n"
    );

    let doc = env_json(&test.run_with(["env", "--json"]));
    assert_eq!(doc["url"], "sqlite:.dbflow/fallback.db");
    assert_eq!(doc["vars"]["region"], "eu-west-1");
    assert_eq!(doc["vars"]["owner"], "from-process");

    let doc = env_json(
        &project()
            .file("Workflowfile.yaml", &test.read("Workflowfile.yaml"))
            .env("LOCAL_URL", "sqlite:.dbflow/chosen.db")
            .env("OWNER", "x")
            .run_with(["env", "--json"]),
    );
    assert_eq!(doc["url"], "sqlite:.dbflow/chosen.db");
}

#[test]
fn a_missing_variable_names_itself_and_where_it_is_used() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          verify:
            steps:
              - shell: curl -fsS ${APP_URL}/health
        ",
    );
    let output = test.run_with(["run", "verify"]);
    output.assert_code(2);
    assert_contains(
        &output.stderr,
        "environment variable `APP_URL` is not set (used in step `shell curl -fsS ${APP_URL}/health`)",
    );
    assert_contains(&output.stderr, "--> Workflowfile.yaml:7:26");
    assert!(output.journals().is_empty());
}

// ---------------------------------------------------------------------------------------
// list

#[test]
fn list_groups_by_category_and_hides_private_items() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          generate:
            description: Regenerate the Prisma client
            category: build
            script: npx prisma generate
          lint-sql:
            description: Lint migration SQL
            category: checks
            script: echo ok
          internal-helper:
            description: Not for people
            category: build
            private: true
            script: echo ok
          loose:
            script: echo ok
        workflows:
          deploy:
            description: Apply pending migrations
            category: migrations
            steps:
              - shell: echo ok
          preflight:
            description: Pre-migration checklist
            category: checks
            steps:
              - shell: echo ok
          cleanup:
            private: true
            category: migrations
            steps:
              - shell: echo ok
        ",
    );
    let output = test.run_with(["list"]);
    output.assert_code(0);
    let expected = "\
migrations:
  deploy     Apply pending migrations
checks:
  preflight  Pre-migration checklist
  lint-sql   Lint migration SQL (task)
build:
  generate   Regenerate the Prisma client (task)
tasks:
  loose       (task)
";
    assert_eq!(output.stdout, expected);

    let all = test.run_with(["list", "--all"]);
    all.assert_code(0);
    assert_contains(&all.stdout, "internal-helper");
    assert_contains(&all.stdout, "cleanup");

    let json = test.run_with(["list", "--json"]);
    json.assert_code(0);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["checks"][1]["name"], "lint-sql");
    assert_eq!(doc["checks"][1]["kind"], "task");
    assert!(!json.stdout.contains("internal-helper"));
}

#[test]
fn a_task_named_by_two_steps_runs_twice_but_shared_dependencies_once() {
    let test = project().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        tasks:
          setup:
            script: echo setup >> order.txt
          notify:
            script: echo notify >> order.txt
            dependencies: [setup]
        workflows:
          deploy:
            steps:
              - task: notify
              - shell: echo work >> order.txt
              - task: notify
        ",
    );
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(0);
    assert_eq!(
        lines(&test, "order.txt"),
        ["setup", "notify", "work", "notify"]
    );
    assert_contains(&output.stdout, "dependency `setup` already ran in this run");
}
