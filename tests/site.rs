//! `dbflow docs --site DIR`: the static HTML site (index, each environment's runbook and
//! restore drill, each workflow's flowchart as inline SVG), no script, no network,
//! secrets redacted; `dbflow docs --check` covers its pages but not operations.html.

use crate::support::cli::Test;
use std::path::Path;

fn fixture() -> Test {
    let test = Test::new();
    for name in ["Workflowfile.yaml", "workflows.yaml"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/docs")
                .join(name),
            test.path().join(name),
        )
        .unwrap();
    }
    test.env(
        "PRODUCTION_DATABASE_URL",
        "postgres://app:ProdPoolPassw0rd@prod-pool.internal:6432/bookshop?pgbouncer=true",
    )
}

fn pages(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_site_has_an_index_a_runbook_and_drill_per_environment_and_no_script() {
    let test = fixture();
    test.run_with(["docs", "--site", "site"]).assert_code(0);
    // --site alone writes the site only.
    assert!(!test.exists("docs/generated"));
    let files = pages(&test.path().join("site"));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "index.html",
            "operations.html",
            "restore-drill-local.html",
            "restore-drill-production.html",
            "restore-drill-staging.html",
            "runbook-local.html",
            "runbook-production.html",
            "runbook-staging.html",
            "style.css",
        ]
    );
    for (name, content) in &files {
        let lower = content.to_lowercase();
        for forbidden in [
            "<script",
            "javascript:",
            "onload=",
            "onclick=",
            "@import",
            "src=\"http",
            "href=\"http",
            "url(http",
        ] {
            assert!(!lower.contains(forbidden), "{name} contains {forbidden}");
        }
        for secret in [
            "LocalPassw0rd",
            "StagingPassw0rd",
            "ProdDirectPassw0rd",
            "ProdPoolPassw0rd",
            "tok_live_ShouldNeverAppear",
        ] {
            assert!(!content.contains(secret), "{name} leaks {secret}");
        }
        // The operations page carries its own inline stylesheet (it is written
        // alone too); the runbook pages share style.css.
        if name.ends_with(".html") && name != "operations.html" {
            assert!(
                content.contains("<link rel=\"stylesheet\" href=\"style.css\">"),
                "{name}"
            );
            assert!(
                content.contains("href=\"operations.html\""),
                "{name} links the operations page"
            );
        }
    }
    let index = &files[0].1;
    for link in [
        "href=\"runbook-production.html\"",
        "href=\"restore-drill-staging.html\"",
        "href=\"runbook-production.html#flow-deploy\"",
        "href=\"runbook-local.html#flow-notify-failure\"",
    ] {
        assert!(index.contains(link), "index lacks {link}");
    }
    insta::assert_snapshot!("site__index.html", index);
    // One inline SVG per workflow, where the Markdown has its Mermaid block.
    let production = &files
        .iter()
        .find(|(n, _)| n == "runbook-production.html")
        .unwrap()
        .1;
    assert_eq!(
        production.matches("<svg ").count(),
        2,
        "deploy and notify-failure"
    );
    assert!(!production.contains("language-mermaid"));
    assert!(production.contains("<figure class=\"flow\" id=\"flow-deploy\">"));
    let start = production
        .find("<figure class=\"flow\" id=\"flow-deploy\">")
        .unwrap();
    let end = start + production[start..].find("</figure>").unwrap();
    insta::assert_snapshot!("site__deploy-production.svg", &production[start..end]);
    // The gates the production runbook lists are drawn: the confirm step and the guard's
    // question before the deploy.
    assert_eq!(
        production[start..end]
            .matches("class=\"node gate\"")
            .count(),
        2
    );
    // Headings, tables and check lists are HTML, not Markdown.
    assert!(production.contains("<h2>Quick reference</h2>"));
    assert!(production.contains("<table>"));
    assert!(production.contains("type=\"checkbox\""));
}

#[test]
fn markup_in_the_workflowfile_is_shown_as_text_never_run() {
    let test = Test::new();
    test.write(
        "Workflowfile.yaml",
        "project: hostile\nenvironments:\n  local:\n    url: sqlite:.dbflow/x_sandbox.db\n    protection: sandbox\nworkflows:\n  evil:\n    description: \"<script>alert(1)</script><img src=x onerror=alert(2)>\"\n    steps:\n      - name: \"<b onclick=alert(3)>bold</b>\"\n        shell: echo hi\n",
    );
    test.run_with(["docs", "--site", "site"]).assert_code(0);
    for (name, content) in pages(&test.path().join("site")) {
        let lower = content.to_lowercase();
        for forbidden in ["<script", "<img", "<b onclick"] {
            assert!(
                !lower.contains(forbidden),
                "{name} contains {forbidden}:\n{content}"
            );
        }
    }
    let runbook = test.read("site/runbook-local.html");
    assert!(
        runbook.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{runbook}"
    );
}

#[test]
fn check_covers_the_committed_site_pages_but_not_the_operations_page() {
    let test = fixture();
    test.run_with(["docs"]).assert_code(0);
    // No docs/site folder: nothing to check there.
    assert!(!test.exists("docs/site"));
    test.run_with(["docs", "--site", "docs/site"])
        .assert_code(0);
    test.write(
        "docs/site/operations.html",
        "<!DOCTYPE html><p>history changes daily</p>",
    );
    let out = test.run_with(["docs", "--check"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("generated file(s) in ./docs/site are up to date"),
        "{}",
        out.stdout
    );
    // A stale runbook page fails the check, and names the command that fixes it.
    let page = test.read("docs/site/runbook-production.html");
    test.write(
        "docs/site/runbook-production.html",
        &page.replace("Quick reference", "Quick ref"),
    );
    let out = test.run_with(["docs", "--check"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("stale: ./docs/site/runbook-production.html"),
        "{}",
        out.stdout
    );
    assert!(
        out.all().contains("run `dbflow docs --site ./docs/site`"),
        "{}",
        out.all()
    );
    // `dbflow docs` refreshes the committed site with the Markdown.
    test.run_with(["docs"]).assert_code(0);
    test.run_with(["docs", "--check"]).assert_code(0);
    // A runbook page of an environment that no longer exists is stale too; the
    // operations page is not ours to judge.
    test.write("docs/site/runbook-qa.html", "old");
    let out = test.run_with(["docs", "--check"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("no longer generated: ./docs/site/runbook-qa.html"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("operations.html"), "{}", out.stdout);
}

#[test]
fn the_example_site_is_up_to_date() {
    let test = Test::in_dir(env!("CARGO_MANIFEST_DIR"));
    let out = test.run_with(["docs", "--site", "docs/site", "--check"]);
    out.assert_code(0);
}

/// The operations page's version matrix of a fleet comes from what the fleet runs
/// recorded: two real runs over three tenant databases (the second failing on one of
/// them), then the targets made unreachable — the page is the same, read from
/// `.dbflow/fleets/`, never from the databases.
#[test]
fn the_operations_page_shows_each_fleets_version_matrix_from_its_journals() {
    use crate::support::pg;
    let mut tenants = Vec::new();
    for _ in 0..3 {
        let Some(db) = pg::database("site_fleet_matrix") else {
            return;
        };
        tenants.push(db);
    }
    let names = ["acme", "globex", "initech"];
    let listing = |urls: &[String]| -> String {
        names
            .iter()
            .zip(urls)
            .map(|(n, u)| format!("{n} {u}\n"))
            .collect()
    };
    let real: Vec<String> = tenants.iter().map(|d| d.url.clone()).collect();
    let test = Test::new()
        .file(
            "Workflowfile.yaml",
            "project: saas
environments:
  tenants:
    protection: shared
    fleet:
      command: cat targets.txt
      max_failures: 3
migrations:
  dir: prisma/migrations
workflows:
  migrate:
    steps:
      - deploy: {}
",
        )
        .file("targets.txt", &listing(&real))
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file(
            "prisma/migrations/20250101000000_accounts/migration.sql",
            "CREATE TABLE account (id int PRIMARY KEY, email text NOT NULL);\n",
        )
        .env("PATH", &crate::backup::pg_path());
    // Named so that name order is the reverse of time order.
    test.run_with(["run", "migrate", "--env", "tenants", "--run-id", "zz-first"])
        .assert_code(0);
    // Data-dependent: initech already has account 1.
    tenants[2].psql("INSERT INTO account VALUES (1, 'already@example.com')");
    test.write(
        "prisma/migrations/20250102000000_first_account/migration.sql",
        "INSERT INTO account VALUES (1, 'first@example.com');\n",
    );
    test.run_with([
        "run",
        "migrate",
        "--env",
        "tenants",
        "--run-id",
        "aa-second",
    ])
    .assert_code(1);
    // Unreachable now: docs must not care.
    let dead: Vec<String> = names
        .iter()
        .map(|n| format!("postgres://app:DeadPassw0rd@127.0.0.1:1/{n}"))
        .collect();
    test.write("targets.txt", &listing(&dead));
    test.run_with(["docs", "--site", "site"]).assert_code(0);
    let page = test.read("site/operations.html");
    let start = page
        .find("<section id=\"fleets\">")
        .expect("a fleets section");
    let section = &page[start..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(page.contains("<a href=\"#fleets\">Fleets</a>"));
    assert!(
        section.contains("3 targets seen in 2 fleet runs; the newest: <code>aa-second</code>"),
        "{section}"
    );
    assert!(
        section.contains("<tr><td><code>20250102000000_first_account</code></td><td class=\"num\">2</td><td>acme, globex</td></tr>"),
        "{section}"
    );
    assert!(
        section.contains("<tr><td><code>20250101000000_accounts</code></td><td class=\"num\">1</td><td>initech</td></tr>"),
        "{section}"
    );
    assert!(
        section.contains(">succeeded</span></td><td class=\"num\">2</td><td>acme, globex</td>"),
        "{section}"
    );
    assert!(
        section.contains(">failed</span></td><td class=\"num\">1</td><td>initech</td>"),
        "{section}"
    );
    assert!(!page.contains("DeadPassw0rd"));
    // A project without a fleet has no such section.
    let plain = fixture();
    plain.run_with(["docs", "--site", "site"]).assert_code(0);
    assert!(!plain.read("site/operations.html").contains("id=\"fleets\""));
}
