//! Property tests (proptest) over the code that reads hostile input and the code that
//! keeps secrets out of output (issue 13, item 8):
//!
//! * redaction: for arbitrary user names, hosts and passwords (URL-special characters
//!   included, written raw the way libpq accepts them, or percent-encoded), the redacted
//!   text never holds the password, raw or percent-encoded; the same for `key=value`
//!   connection strings with quoted, escaped passwords;
//! * interpolation: never panics, and a `${` never closed is always an error;
//! * the Workflowfile loader: on mutated Workflowfiles it never panics, every error
//!   carries a location (or names the file), and each load stays well under a second.
//!
//! Case counts are fixed (no environment variable needed) so that the whole file runs in
//! a few seconds in CI; failures are kept in `proptest-regressions/` and replayed first.

use dbflow::config::interpolate::{interpolate, unterminated, Unresolved, Vars};
use dbflow::ui::redact::{redact, redact_json};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Characters a password may hold raw inside a libpq URL (anything but whitespace),
/// weighted towards the ones URL parsers trip on.
fn password() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '@', ':', '/', '?', '#', '%', '&', '=', '+', '$', ',', ';', '[', ']', '!', '\'', '(', ')',
        '*', '~', '"', '\\', '`', '{', '}', '|', '<', '>', '^', 'é', '€', '密',
    ]);
    let plain = prop::char::range('!', '~');
    prop::collection::vec(prop_oneof![special, plain], 6..24)
        .prop_map(|chars| chars.into_iter().collect())
}

fn user() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_.-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,2}",
        "(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}",
        Just("[::1]".to_string()),
    ]
}

fn url(user: &str, password: &str, host: &str, tail: &str) -> String {
    format!("postgres://{user}:{password}@{host}{tail}")
}

/// Every run of 6 characters of `password` (all of it when shorter): a partly masked
/// password (`app:****@ss@host`) leaks too.
fn fragments(password: &str) -> Vec<String> {
    let chars: Vec<char> = password.chars().collect();
    let width = chars.len().min(6);
    chars.windows(width).map(|w| w.iter().collect()).collect()
}

fn leaks(out: &str, password: &str) -> Option<String> {
    let encoded = utf8_percent_encode(password, NON_ALPHANUMERIC).to_string();
    if let Some(fragment) = fragments(password)
        .into_iter()
        .find(|f| out.contains(f.as_str()))
    {
        return Some(format!(
            "{fragment:?} of the password {password:?} in {out:?}"
        ));
    }
    if out.contains(&encoded) {
        return Some(format!("encoded password {encoded:?} in {out:?}"));
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn url_passwords_never_survive_redaction(
        user in user(),
        password in password(),
        host in host(),
        tail in prop_oneof![
            Just(String::new()),
            Just("/shop".to_string()),
            Just(":5432/shop?sslmode=require".to_string()),
            Just("/db?application_name=x&connect_timeout=3".to_string()),
        ],
        encode in any::<bool>(),
    ) {
        // The password must be told apart from the rest of the text to be checked.
        let context = format!("postgres:// {user} {host} {tail} error connecting to : timeout DATABASE_URL= next line ****");
        prop_assume!(fragments(&password).iter().all(|f| !context.contains(f.as_str())));
        let written = if encode {
            utf8_percent_encode(&password, NON_ALPHANUMERIC).to_string()
        } else {
            password.clone()
        };
        let raw = url(&user, &written, &host, &tail);
        for text in [
            raw.clone(),
            format!("error connecting to {raw}: timeout"),
            format!("DATABASE_URL={raw}\nnext line"),
        ] {
            let out = redact(&text);
            if let Some(leak) = leaks(&out, &password) {
                prop_assert!(false, "{leak}\n(input {text:?})");
            }
            prop_assert!(out.contains(&user), "user name lost: {out:?}");
        }
        let json = redact_json(&serde_json::json!({ "url": raw, "list": [raw] })).to_string();
        if let Some(leak) = leaks(&json, &password) {
            prop_assert!(false, "{leak}");
        }
    }

    #[test]
    fn conninfo_passwords_never_survive_redaction(
        user in user(),
        password in password(),
        host in host(),
        quoted in any::<bool>(),
    ) {
        let context = format!("host= user= dbname=shop sslmode=require {user} {host} ****");
        prop_assume!(fragments(&password).iter().all(|f| !context.contains(f.as_str())));
        let plain = !password.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\');
        let value = if quoted || !plain {
            format!("'{}'", password.replace('\\', "\\\\").replace('\'', "\\'"))
        } else {
            password.clone()
        };
        let text = format!("host={host} user={user} password={value} dbname=shop sslmode=require");
        let out = redact(&text);
        if let Some(leak) = leaks(&out, &password) {
            prop_assert!(false, "{leak}");
        }
        prop_assert!(out.contains("dbname=shop"), "{out:?}");
    }

    #[test]
    fn interpolation_never_panics_and_unclosed_is_an_error(
        text in "([a-z:/@-]|\\$|\\{|\\}|\\$\\{|\\$\\$\\{|:-|[A-Z_]){0,40}",
    ) {
        let vars = Vars::from_pairs([("A", "1"), ("B", "two"), ("HOST", "db")]);
        let result = interpolate(&text, &vars);
        match unterminated(&text) {
            Some(offset) => {
                prop_assert!(offset < text.len());
                prop_assert!(matches!(result, Err(Unresolved::Unterminated { .. })), "{result:?}");
            }
            None => prop_assert!(!matches!(result, Err(Unresolved::Unterminated { .. })), "{result:?}"),
        }
    }
}

/// Lines a Workflowfile is made of, valid and not: the loader is fed random selections
/// of them, mutated.
const FRAGMENTS: &[&str] = &[
    "environments:",
    "  staging:",
    "  ../prod:",
    "  -x:",
    "    url: ${DATABASE_URL}",
    "    url: ${DATABASE_URL:-postgres://app:p@ss@localhost/db",
    "    url: postgres://app:secret@db/shop",
    "    protection: protected",
    "    protection: [a, b]",
    "    vars:",
    "      API_TOKEN: ${TOKEN:-",
    "default_env: ${ENV",
    "aliases:",
    "  prod: production",
    "include:",
    "  - /proc/self/environ",
    "  - ../../etc/passwd",
    "  - workflows/*.yaml",
    "tasks:",
    "  build:",
    "    script: echo ${GREETING:-hi}",
    "    command: [1, 2",
    "    dependencies: build",
    "workflows:",
    "  deploy:",
    "    steps:",
    "      - task: build",
    "      - shell: echo ${X",
    "      - backup: {}",
    "      - guard: { forbid: [reset] }",
    "      - when: { env: [staging] }",
    "    on_failure: rollback",
    "migrations:",
    "  dir: ../../",
    "  lock_timeout: 5x",
    "backups:",
    "  jobs: 0",
    "guard:",
    "  forbidden:",
    "    shared: [reset",
    "\t- tab",
    "&anchor x: *anchor",
    "? complex key",
    "--- ",
    "%YAML 1.2",
    "\"unterminated",
    "key: 'single",
    "k: !!binary aGVsbG8=",
    "é€密: ☃",
];

fn workflowfile() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => "[ -~]{0,30}",
    ];
    let mutation = (
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            "", "${", "}", ":", "- ", "[", "{", "\n", "  ", "\t", "\u{0}", "'", "\"", "#", "&a",
            "*a",
        ]),
    );
    (
        prop::collection::vec(line, 0..30),
        prop::collection::vec(mutation, 0..4),
    )
        .prop_map(|(lines, mutations)| {
            let mut text = lines.join("\n");
            for (at, insert) in mutations {
                let mut cut = at.index(text.len() + 1);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.insert_str(cut, insert);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_loader_never_panics_and_every_error_has_a_location(text in workflowfile()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Workflowfile.yaml");
        std::fs::write(&path, &text).unwrap();
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| dbflow::config::load(Some(&path), dir.path()));
        let elapsed = started.elapsed();
        prop_assert!(result.is_ok(), "the loader panicked on:\n{text}");
        prop_assert!(elapsed < Duration::from_secs(2), "took {elapsed:?} on:\n{text}");
        if let Ok(Err(diagnostics)) = result {
            prop_assert!(!diagnostics.is_empty());
            for d in diagnostics {
                let rendered = d.render();
                prop_assert!(
                    d.loc.is_some() || rendered.contains("Workflowfile.yaml"),
                    "error without a location: {rendered}\non:\n{text}"
                );
                prop_assert!(!rendered.contains("secret@"), "{rendered}");
            }
        }
    }
}

/// Passwords for the end-to-end check: URL-special characters written raw (as libpq
/// takes them), long and odd enough never to occur in output by chance.
fn e2e_password() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        '@', ':', '!', '$', '&', '(', ')', '*', '+', ',', ';', '=', '~', 'x', 'Q', '7', 'é',
    ]);
    prop::collection::vec(chars, 8..14)
        .prop_map(|c| format!("Pw{}9z", c.into_iter().collect::<String>()))
}

/// A handful of generated passwords through the real binary: `env` (text and JSON), a
/// `validate` error whose snippet is the URL's line, a `--dry-run` plan, a run and its
/// journal, `migrate status --json`, and a connection that fails: none holds the
/// password, raw or percent-encoded.
#[test]
fn passwords_never_reach_any_output_of_the_binary() {
    use crate::support::cli::Test;
    use crate::support::pg;
    use proptest::strategy::ValueTree;
    let Some(db) = pg::database("props_passwords_never_reach_output") else {
        return;
    };
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (userinfo, server) = rest.rsplit_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    let (address, _) = server.split_once('/').unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = e2e_password();
    for round in 0..5 {
        let password = strategy.new_tree(&mut runner).unwrap().current();
        let good = format!("{scheme}://{user}:{password}@{server}");
        let refused = format!("{scheme}://{user}:{password}@127.0.0.1:1/nowhere");
        let t = Test::new()
            .file(
                "Workflowfile.yaml",
                "environments:\n  staging:\n    url: ${DATABASE_URL}\n    protection: shared\n  broken:\n    url: ${BROKEN_URL}\n    protection: shared\ntasks:\n  ping:\n    script: echo 'connecting to ${DATABASE_URL}'\nworkflows:\n  release:\n    steps:\n      - task: ping\n      - status: {}\n",
            )
            .file(
                "prisma/migrations/20240101000000_init/migration.sql",
                "CREATE TABLE t (id int);\n",
            )
            .env("DATABASE_URL", &good)
            .env("BROKEN_URL", &refused);
        let mut outputs = vec![
            t.run_with(["env", "--env", "staging"]),
            t.run_with(["--json", "env", "--env", "staging"]),
            t.run_with(["run", "release", "--env", "staging", "--dry-run"]),
            t.run_with(["--json", "run", "release", "--env", "staging", "--dry-run"]),
            t.run_with(["run", "release", "--env", "staging"]),
            t.run_with(["--json", "migrate", "status", "--env", "staging"]),
            t.run_with(["migrate", "status", "--env", "broken"]),
            t.run_with(["migrate", "deploy", "--env", "broken", "--yes"]),
        ];
        // An error whose snippet is the line holding the URL.
        t.write(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  staging:\n    url: ['postgres://{user}:{password}@{address}/db']\n"
            ),
        );
        outputs.push(t.run_with(["validate"]));
        let mut texts: Vec<String> = outputs.iter().map(|o| o.all()).collect();
        for path in crate::support::cli::journal_paths(t.path()) {
            texts.push(std::fs::read_to_string(path).unwrap());
        }
        assert!(
            texts.iter().any(|t| t.contains("****")),
            "nothing was masked"
        );
        for text in &texts {
            if let Some(leak) = leaks(text, &password) {
                panic!("round {round}: {leak}");
            }
        }
        let codes: Vec<i32> = outputs.iter().map(|o| o.code).collect();
        assert_eq!(
            codes[..6],
            [0, 0, 0, 0, 0, 4],
            "round {round}: {outputs:#?}"
        );
        assert!(
            codes[6] != 0 && codes[7] != 0,
            "round {round}: {outputs:#?}"
        );
        assert_eq!(codes[8], 2, "round {round}: {outputs:#?}");
        assert!(outputs[8].stderr.contains("3 |"), "{outputs:#?}");
    }
}

/// Values of variables named like secrets (`*PASSWORD*`, `*TOKEN*`, `*SECRET*`, `*KEY*`)
/// are masked wherever they appear: in a task's echoed output, the plan and the journal.
#[test]
fn values_of_secret_named_variables_are_masked_everywhere() {
    use crate::support::cli::Test;
    let secrets = [
        ("STRIPE_KEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("DEPLOY_TOKEN", "ghp_R4nd0mT0k3nV4lu3"),
        ("APP_SECRET", "s3cr3t-v4lu3-for-app"),
        ("SMTP_PASSWORD", "mail-pa55word-x"),
    ];
    let mut t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:local.db\n    protection: sandbox\ntasks:\n  show:\n    script: echo \"${STRIPE_KEY} ${DEPLOY_TOKEN} ${APP_SECRET} ${SMTP_PASSWORD}\"\nworkflows:\n  show-all:\n    steps:\n      - task: show\n",
    );
    for (name, value) in secrets {
        t = t.env(name, value);
    }
    let outputs = [
        t.run_with(["run", "show-all", "--env", "local"]),
        t.run_with(["run", "show-all", "--env", "local", "--dry-run"]),
        t.run_with(["--json", "run", "show-all", "--env", "local"]),
    ];
    let mut texts: Vec<String> = outputs.iter().map(|o| o.all()).collect();
    for path in crate::support::cli::journal_paths(t.path()) {
        texts.push(std::fs::read_to_string(path).unwrap());
    }
    assert_eq!(outputs[0].code, 0, "{}", outputs[0].all());
    assert!(
        outputs[0].stdout.contains("**** **** **** ****"),
        "{}",
        outputs[0].all()
    );
    for text in &texts {
        for (name, value) in secrets {
            assert!(!text.contains(value), "{name} leaked:\n{text}");
        }
    }
}
