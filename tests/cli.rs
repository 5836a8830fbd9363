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
