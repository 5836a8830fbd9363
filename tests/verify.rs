//! The `verify` step: every check runs, all are reported, the step fails if any fails.

use crate::support::cli::Test;
use crate::support::pg;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A one-route HTTP server on loopback answering `status` with `body`, for `count` requests.
fn health_server(status: u16, body: &'static str, count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    url
}

fn project(url: &str, health: &str, checks: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  local:\n    url: {url}\nworkflows:\n  check:\n    steps:\n      - deploy: {{}}\n      - verify:\n          checks:\n{checks}"
            )
            .replace("HEALTH", health),
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE \"User\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"email\" TEXT NOT NULL);\nINSERT INTO \"User\" VALUES (1, 'a@example.com'), (2, 'b@example.com');\n",
        )
}

const PASSING: &str = "            - name: two users
              sql: SELECT count(*) FROM \"User\"
              equals: 2
            - name: user rows
              sql: SELECT id FROM \"User\"
              expect_rows: 2
            - name: no duplicate emails
              sql: SELECT email FROM \"User\" GROUP BY email HAVING count(*) > 1
              no_rows: true
            - name: core tables
              tables: [User]
            - name: migrations clean
              status_clean: true
            - name: app health
              http: { url: HEALTH, status: 200, json: { status: ok }, timeout: 5s }
";

#[test]
fn verify_passes_on_postgres() {
    let Some(db) = pg::database("verify_passes_on_postgres") else {
        return;
    };
    let health = health_server(200, r#"{"status":"ok","db":"up"}"#, 1);
    let out = project(&db.url, &health, PASSING).run_with(["run", "check"]);
    out.assert_code(0);
    for label in [
        "two users: = 2",
        "user rows: 2 row(s)",
        "no duplicate emails: no rows",
        "core tables",
        "migrations clean: clean",
        "app health: 200 with status = ok",
    ] {
        assert!(
            out.stdout.contains(label),
            "missing `{label}` in\n{}",
            out.stdout
        );
    }
}

#[test]
fn verify_passes_on_sqlite() {
    let health = health_server(200, r#"{"status":"ok"}"#, 1);
    let out = project("sqlite:app.db", &health, PASSING).run_with(["run", "check"]);
    out.assert_code(0);
    assert!(out.stdout.contains("two users: = 2"), "{}", out.stdout);
}

#[test]
fn every_failing_check_is_reported_together() {
    let health = health_server(503, r#"{"status":"down"}"#, 3);
    let checks = "            - name: three users
              sql: SELECT count(*) FROM \"User\"
              equals: 3
            - name: missing table
              tables: [User, Invoice]
            - name: health
              http: { url: HEALTH, status: 200, retries: 2, retry_delay: 10ms }
            - name: still fine
              sql: SELECT 1
              expect_rows: 1
";
    let out = project("sqlite:app.db", &health, checks).run_with(["run", "check"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("✘ three users: expected 3, got 2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("✘ missing table: missing: Invoice"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("answered 503, expected 200 (after 3 attempts)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("✔ still fine"), "{}", out.stdout);
    assert!(
        out.stderr.contains("3 of 4 checks failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn verify_parameters_are_validated_at_load_time() {
    let checks = "            - name: ambiguous
              sql: SELECT 1
              tables: [User]
";
    let out = project("sqlite:app.db", "http://127.0.0.1:1/", checks).run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("must have exactly one of `sql`, `tables`, `status_clean`, `http`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Workflowfile.yaml:"), "{}", out.stderr);
}

#[test]
fn an_unknown_fail_on_category_is_refused_at_its_place_with_a_suggestion() {
    let out = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: sqlite:app.db\nworkflows:\n  check:\n    steps:\n      - status:\n          fail_on: [failed, pendng]\n",
        )
        .run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("unknown value `pendng` for step kind `status` (expected one of: pending, failed, modified, missing, drift)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Workflowfile.yaml:8:29"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `pending`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_verify_check_key_is_refused_at_its_place_with_a_suggestion() {
    let checks = "            - name: users
              tabels: [User]
";
    let out = project("sqlite:app.db", "http://127.0.0.1:1/", checks).run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("unknown parameter `tabels` for step kind `verify`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Workflowfile.yaml:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `tables`?"),
        "{}",
        out.stderr
    );
}
