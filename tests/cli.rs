//! How dbflow fits the tools around it (issue 17): who ran it, colour, `--json` on every
//! command, progress in CI logs, completions and the manual page.

use crate::support::cli::{events, Test};

/// A project with one workflow that needs no database.
const HELLO: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
    workflows:
      hello:
        steps:
          - name: Say hello
            shell: echo hello
";

/// Every variable the actor may come from, removed so the host cannot leak in.
const ACTOR_VARIABLES: &[&str] = &[
    "DBFLOW_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR_EMAIL",
    "CIRCLE_USERNAME",
    "BITBUCKET_STEP_TRIGGERER_UUID",
    "BUILD_REQUESTEDFOREMAIL",
    "BUILD_REQUESTEDFOR",
    "DRONE_COMMIT_AUTHOR",
    "CI_COMMIT_AUTHOR",
    "BUILD_USER_ID",
    "USER",
    "USERNAME",
];

fn bare() -> Test {
    ACTOR_VARIABLES
        .iter()
        .fold(Test::new(), |t, v| t.env_remove(v))
        .file("Workflowfile.yaml", HELLO)
}

fn journal_user(test: &Test) -> String {
    let out = test.run_with(["run", "hello"]);
    out.assert_code(0);
    let journal = out.journals().pop().expect("a journal");
    events(&journal, "run_start")[0]["user"]
        .as_str()
        .expect("run_start has a user")
        .to_string()
}

#[test]
fn actor_without_user_is_the_os_account_not_unknown() {
    let expected = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    assert_eq!(journal_user(&bare()), expected);
}

#[test]
fn actor_comes_from_dbflow_actor_then_the_ci() {
    assert_eq!(
        journal_user(&bare().env("GITLAB_USER_LOGIN", "gitlab-ann")),
        "gitlab-ann"
    );
    assert_eq!(
        journal_user(&bare().env("GITHUB_ACTOR", "octocat")),
        "octocat"
    );
    assert_eq!(
        journal_user(
            &bare()
                .env("GITHUB_ACTOR", "octocat")
                .env("DBFLOW_ACTOR", "release-bot")
        ),
        "release-bot"
    );
}

// --- colour ------------------------------------------------------------------------------

/// A project where `dbflow check` answers BLOCKED (coloured red when colour is on).
const GUARDED: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
      production:
        url: sqlite:.dbflow/prod.db
        protection: protected
";

const ESC: char = '\u{1b}';

fn blocked(test: &Test, extra: &[&str]) -> crate::support::cli::Output {
    let mut args = vec!["check", "npx prisma migrate reset", "--env", "production"];
    args.extend_from_slice(extra);
    let out = test.run_with(args);
    out.assert_code(3);
    assert!(out.all().contains("BLOCKED"), "{}", out.all());
    out
}

fn colour_test() -> Test {
    ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR"]
        .iter()
        .fold(Test::new(), |t, v| t.env_remove(v))
        .file("Workflowfile.yaml", GUARDED)
}

#[test]
fn a_pipe_gets_no_colour_by_default_and_color_always_colours_it() {
    let test = colour_test();
    let out = blocked(&test, &[]);
    assert!(
        !out.all().contains(ESC),
        "escape codes on a pipe:\n{}",
        out.all()
    );
    let out = blocked(&test, &["--color", "never"]);
    assert!(!out.all().contains(ESC));
    let out = blocked(&test, &["--color", "always"]);
    assert!(out.stdout.contains(&format!("{ESC}[")), "{:?}", out.stdout);
    // The flag is explicit, so it wins over the variable.
    let out = blocked(&test.env("NO_COLOR", "1"), &["--color", "always"]);
    assert!(out.stdout.contains(ESC));
}

#[test]
fn no_color_beats_clicolor_force_and_clicolor_force_colours_a_pipe() {
    let out = blocked(&colour_test().env("CLICOLOR_FORCE", "1"), &[]);
    assert!(out.stdout.contains(ESC), "{:?}", out.stdout);
    let out = blocked(
        &colour_test()
            .env("CLICOLOR_FORCE", "1")
            .env("NO_COLOR", "1"),
        &[],
    );
    assert!(!out.all().contains(ESC), "{:?}", out.all());
}

/// In a real terminal (a pty from util-linux `script`), colour is on unless NO_COLOR.
#[test]
fn a_terminal_is_coloured_unless_no_color() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: util-linux `script` is not installed");
        return;
    }
    let test = colour_test();
    let bin = env!("CARGO_BIN_EXE_dbflow");
    let in_pty = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args([
            "-qec",
            &format!("{bin} check 'npx prisma migrate reset' --env production"),
            "/dev/null",
        ])
        .current_dir(test.path())
        .env("TERM", "xterm-256color")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("running script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = in_pty(false);
    assert!(
        coloured.contains("BLOCKED") && coloured.contains(ESC),
        "{coloured:?}"
    );
    let plain = in_pty(true);
    assert!(
        plain.contains("BLOCKED") && !plain.contains(ESC),
        "{plain:?}"
    );
}
