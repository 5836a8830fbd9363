//! Files that are not what they seem (issue 13, items 3 and 4): a migration that is a
//! symbolic link out of the project, a migration that is not UTF-8, includes of files
//! outside the project or of `/proc`, a `${` never closed, environment names that would
//! leave their folders, and a 50 MB migration deployed in bounded memory.

use crate::support::cli::{Output, Test};
use crate::support::pg;
use std::os::unix::fs::symlink;

const CANARY: &str = "CANARY-7731-DO-NOT-PRINT";

/// A file outside every project, holding SQL a linter would quote (and the canary).
fn secret_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shadow");
    std::fs::write(
        &path,
        format!("DROP TABLE users; -- {CANARY}\nroot:$6$hash:{CANARY}:0:99999:7:::\n"),
    )
    .unwrap();
    (dir, path)
}

fn project(url: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  staging:\n    url: ${DATABASE_URL}\n    protection: shared\n",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE t (id int);\n",
        )
        .env("DATABASE_URL", url)
}

fn assert_refused(out: &Output, naming: &str) {
    out.assert_code(2);
    let all = out.all();
    assert!(all.contains(naming), "should name {naming}:\n{all}");
    assert!(!all.contains(CANARY), "leaked the file's contents:\n{all}");
    assert!(
        !all.contains("root:$6$"),
        "leaked the file's contents:\n{all}"
    );
}

#[test]
fn migration_symlinked_out_of_the_folder_is_never_read() {
    let Some(db) = pg::database("hostile_symlinked_migration") else {
        return;
    };
    let (_keep, secret) = secret_file();
    let t = project(&db.url);
    std::fs::create_dir_all(t.path().join("prisma/migrations/20240102000000_evil")).unwrap();
    symlink(
        &secret,
        t.path()
            .join("prisma/migrations/20240102000000_evil/migration.sql"),
    )
    .unwrap();
    let shown = "20240102000000_evil/migration.sql";
    assert_refused(&t.run_with(["lint", "--env", "staging"]), shown);
    assert_refused(
        &t.run_with(["migrate", "status", "--env", "staging"]),
        shown,
    );
    assert_refused(
        &t.run_with(["migrate", "deploy", "--env", "staging", "--yes"]),
        shown,
    );
    assert_refused(&t.run_with(["lint", "prisma/migrations"]), shown);
    assert_refused(&t.run_with(["scan", "prisma"]), shown);
    // Named one by one, as a shell glob (`prisma/migrations/*/migration.sql`) would.
    let named = format!("prisma/migrations/{shown}");
    assert_refused(&t.run_with(["lint", named.as_str()]), shown);
    assert_refused(&t.run_with(["scan", named.as_str()]), shown);
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename = '_prisma_migrations'"),
        "0",
        "nothing may be applied when a migration is refused"
    );

    // A migration folder that is itself a link out of the migrations folder.
    let t = project(&db.url);
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(&secret, outside.path().join("migration.sql")).unwrap();
    symlink(
        outside.path(),
        t.path().join("prisma/migrations/20240103000000_linked"),
    )
    .unwrap();
    assert_refused(
        &t.run_with(["migrate", "status", "--env", "staging"]),
        "20240103000000_linked",
    );
    assert_refused(
        &t.run_with(["lint", "--env", "staging"]),
        "20240103000000_linked",
    );
}

#[test]
fn migration_that_is_not_utf8_is_refused_with_the_byte_offset() {
    let Some(db) = pg::database("hostile_not_utf8") else {
        return;
    };
    let t = project(&db.url);
    let mut bytes = b"CREATE TABLE latin (name text DEFAULT '".to_vec();
    bytes.push(0xe9); // 'é' in Latin-1
    bytes.extend_from_slice(b"');\n");
    std::fs::create_dir_all(t.path().join("prisma/migrations/20240102000000_latin")).unwrap();
    std::fs::write(
        t.path()
            .join("prisma/migrations/20240102000000_latin/migration.sql"),
        &bytes,
    )
    .unwrap();
    let out = t.run_with(["migrate", "deploy", "--env", "staging", "--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("20240102000000_latin/migration.sql: not valid UTF-8 at byte 39 (line 1)"),
        "{}",
        out.all()
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename IN ('t', 'latin')"),
        "0"
    );
    let lint = t.run_with(["lint", "--env", "staging"]);
    lint.assert_code(2);
    assert!(lint.all().contains("byte 39"), "{}", lint.all());
    let named = t.run_with([
        "lint",
        "prisma/migrations/20240102000000_latin/migration.sql",
    ]);
    named.assert_code(2);
    assert!(named.all().contains("byte 39"), "{}", named.all());
}

#[test]
fn includes_outside_the_project_or_not_regular_files_are_refused() {
    let (_keep, secret) = secret_file();
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "include:\n  - /proc/self/environ\nenvironments:\n  local:\n    url: sqlite:local.db\n",
        )
        .env("PGPASSWORD", CANARY);
    let out = t.run_with(["validate"]);
    assert_refused(&out, "include `/proc/self/environ`");
    assert!(
        out.stderr.contains("Workflowfile.yaml:2:5"),
        "{}",
        out.all()
    );

    let t = Test::new().file(
        "Workflowfile.yaml",
        &format!(
            "include:\n  - {}\nenvironments:\n  local:\n    url: sqlite:local.db\n",
            secret.display()
        ),
    );
    assert_refused(&t.run_with(["validate"]), "outside the project folder");

    // `../` and a link leading out are the same thing.
    let t = Test::new()
        .file(
            "app/Workflowfile.yaml",
            "include:\n  - ../other.yaml\n  - workflows/*.yaml\nenvironments:\n  local:\n    url: sqlite:local.db\n",
        )
        .file("other.yaml", &format!("tasks: {{{CANARY}\n"));
    std::fs::create_dir_all(t.path().join("app/workflows")).unwrap();
    symlink(&secret, t.path().join("app/workflows/linked.yaml")).unwrap();
    let out = t.current_dir("app").run_with(["validate"]);
    assert_refused(&out, "include `../other.yaml`");
    assert!(
        out.stderr.contains("workflows/linked.yaml"),
        "{}",
        out.all()
    );
}

#[test]
fn oversized_workflowfile_is_refused_with_its_size() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        &format!("# {}\n", "x".repeat(5 * 1024 * 1024)),
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("over the limit of 4 MiB"),
        "{}",
        out.all()
    );
}

#[test]
fn unterminated_interpolation_is_an_error_with_its_location() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  staging:\n    url: ${DATABASE_URL:-postgres://localhost/app\ntasks:\n  hello:\n    script: echo ${GREETING\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("unterminated `${` in the url of environment `staging`"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("Workflowfile.yaml:3:10"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("Workflowfile.yaml:6:18"),
        "{}",
        out.all()
    );
}

#[test]
fn environment_names_that_could_leave_a_folder_are_refused() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  ../prod:\n    url: sqlite:a.db\n  .hidden:\n    url: sqlite:b.db\naliases:\n  -x: ../prod\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    let all = out.all();
    for needle in [
        "environment name `../prod` contains '/'",
        "Workflowfile.yaml:2:3",
        "environment name `.hidden` starts with `.`",
        "Workflowfile.yaml:4:3",
        "environment name `-x` starts with `-`",
        "Workflowfile.yaml:7:3",
    ] {
        assert!(all.contains(needle), "missing {needle}:\n{all}");
    }
    // Zero-config takes any name from the chain: the flag and the variables are checked.
    let t = Test::new().env("DATABASE_URL", "sqlite:x.db");
    let out = t.run_with(["env", "--env", "../x"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("environment name `../x`"),
        "{}",
        out.all()
    );
    let out = t
        .env("DBFLOW_ENV", "../../etc")
        .run_with(["backup", "create"]);
    out.assert_code(2);
    assert!(out.stderr.contains("(from DBFLOW_ENV)"), "{}", out.all());
}

/// Peak RSS of a run, in KiB, from GNU time; `None` when it is not installed.
fn peak_rss_kib(t: &Test, args: &[&str]) -> Option<(Output, u64)> {
    if !std::path::Path::new("/usr/bin/time").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/usr/bin/time is needed (scripts/prereqs.sh installs it)"
        );
        eprintln!("skipping the memory check: no /usr/bin/time");
        return None;
    }
    let mut full = vec!["-v".to_string(), env!("CARGO_BIN_EXE_dbflow").to_string()];
    full.extend(args.iter().map(|a| a.to_string()));
    let out = std::process::Command::new("/usr/bin/time")
        .args(&full)
        .current_dir(t.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())?;
    Some((
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr,
            dir: t.path().to_path_buf(),
        },
        rss,
    ))
}

#[test]
fn a_50_mb_migration_deploys_in_under_four_times_its_size() {
    let Some(db) = pg::database("hostile_50mb_migration") else {
        return;
    };
    let t = Test::new().file(
        "Workflowfile.yaml",
        &format!(
            "environments:\n  staging:\n    url: {}\n    protection: shared\n",
            db.url
        ),
    );
    let mut sql = String::from("CREATE TABLE big (id int, payload text);\n");
    let mut i = 0;
    while sql.len() < 50 * 1024 * 1024 {
        sql.push_str(&format!(
            "INSERT INTO big VALUES ({i}, 'payload {i} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx');\n"
        ));
        i += 1;
    }
    t.write("prisma/migrations/20240101000000_big/migration.sql", &sql);
    let size_kib = sql.len() as u64 / 1024;
    drop(sql);
    let Some((out, rss)) = peak_rss_kib(&t, &["migrate", "deploy", "--env", "staging", "--yes"])
    else {
        return;
    };
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("`20240101000000_big` not linted: too large to lint: 50.0 MiB"),
        "{}",
        out.all()
    );
    assert_eq!(db.psql("SELECT count(*) FROM big"), i.to_string());
    eprintln!(
        "peak RSS {rss} KiB for a {size_kib} KiB migration ({:.2}×)",
        rss as f64 / size_kib as f64
    );
    assert!(
        rss < 4 * size_kib,
        "peak RSS {rss} KiB is over 4× the migration's {size_kib} KiB"
    );
}

fn docs_project(template: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: sqlite:local.db\n",
        )
        .file("templates/evil.md.tera", template)
}

#[test]
fn templates_cannot_exhaust_memory_or_the_stack() {
    let started = std::time::Instant::now();
    let out = docs_project("{% for i in range(end=2000000000) %}{{ i }}{% endfor %}\n")
        .run_with(["docs"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("templates/evil.md.tera")
            && out.stderr.contains("would make 2000000000 numbers"),
        "{}",
        out.all()
    );

    let out = docs_project(
        "# Runbook\n\n{% macro walk(n) %}{{ n }} {{ self::walk(n=n + 1) }}{% endmacro walk %}\n{{ self::walk(n=1) }}\n",
    )
    .run_with(["docs"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("macro `walk` can call itself")
            && out.stderr.contains("templates/evil.md.tera:3:1"),
        "{}",
        out.all()
    );

    let out = docs_project("again {% include \"evil.md.tera\" %}\n").run_with(["docs"]);
    out.assert_code(2);
    assert!(out.stderr.contains("can include itself"), "{}", out.all());

    let out = docs_project(
        "{% for i in range(end=100000) %}{% for j in range(end=1000) %}a long line of runbook text{% endfor %}{% endfor %}\n",
    )
    .run_with(["docs"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("renders more than 16 MiB"),
        "{}",
        out.all()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_template_that_never_finishes_is_stopped_at_the_time_limit() {
    let started = std::time::Instant::now();
    let out = docs_project(
        "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{% endfor %}{% endfor %}\n",
    )
    .run_with(["docs"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("template evil.md.tera did not finish rendering within 10 s"),
        "{}",
        out.all()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn lint_says_a_file_too_large_to_parse_was_not_linted() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  staging:\n    url: sqlite:x.db\n    protection: shared\n",
        )
        .file(
            "prisma/migrations/20240101000000_seed/migration.sql",
            &"INSERT INTO t VALUES (1, 'a row of seed data');\n".repeat(100_000),
        );
    let out = t.run_with(["lint", "prisma/migrations"]);
    out.assert_code(1);
    assert!(
        out.all().contains("error: not linted: prisma/migrations/20240101000000_seed/migration.sql: too large to lint: 4.6 MiB"),
        "{}",
        out.all()
    );
}

/// The files `status` keeps in `.dbflow/` (issue 20: the listing copy, the hash cache, the
/// catalog-horizon memo and the history copy) replaced by things that are not files dbflow wrote: a FIFO
/// must not make `status` wait for a writer forever, and a link to `/dev/zero` must not
/// be read hundreds of MiB deep. Each is ignored like any unreadable cache.
#[test]
fn caches_that_are_fifos_or_devices_are_ignored_not_waited_on() {
    const CACHES: [&str; 4] = [
        ".dbflow/migration-listing",
        ".dbflow/migration-hashes",
        ".dbflow/catalog-horizons",
        ".dbflow/history-copy",
    ];
    let Some(db) = pg::database("hostile_cache_fifo") else {
        return;
    };
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  local:\n    url: {}\n    protection: sandbox\n",
                db.url
            ),
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE \"Item\" (\"id\" INTEGER NOT NULL PRIMARY KEY);\n",
        );
    t.run_with(["migrate", "deploy"]).assert_code(0);

    for cache in CACHES {
        let path = t.path().join(cache);
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let mut child = t.spawn_with(["migrate", "status"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`migrate status` still waits after 10 s on a FIFO in .dbflow/");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 applied, 0 pending"), "{stdout}");

    for cache in CACHES {
        let path = t.path().join(cache);
        let _ = std::fs::remove_file(&path);
        symlink("/dev/zero", &path).unwrap();
    }
    let Some((out, rss)) = peak_rss_kib(&t, &["migrate", "status"]) else {
        return;
    };
    out.assert_code(0);
    assert!(out.stdout.contains("1 applied, 0 pending"), "{}", out.all());
    assert!(
        rss < 128 * 1024,
        "peak RSS {rss} KiB: a cache linked to /dev/zero was read"
    );
}

/// A variable of the process environment that is not UTF-8 (a `PWD` inside a folder
/// named in Latin-1, a stray byte in some unrelated variable) is not one dbflow reads:
/// it must not make every command panic. One that is referenced reads as unset (the
/// usual error), and a `DBFLOW_ALLOW_*` one grants nothing.
#[test]
fn an_environment_variable_that_is_not_utf8_does_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DBFLOW_TEST_NOT_UTF8}\n    protection: sandbox\n",
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbflow"))
            .args(args)
            .current_dir(t.path())
            .env("DBFLOW_UNRELATED", std::ffi::OsStr::from_bytes(b"caf\xe9"))
            .env(
                "DBFLOW_TEST_NOT_UTF8",
                std::ffi::OsStr::from_bytes(b"postgres://h/\xff"),
            )
            .env("DBFLOW_ALLOW_DROP", std::ffi::OsStr::from_bytes(b"\xff"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, all) = run(&["--version"]);
    assert_eq!(code, Some(0), "{all}");
    let (code, all) = run(&["migrate", "status"]);
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(code, Some(2), "{all}");
    assert!(all.contains("DBFLOW_TEST_NOT_UTF8"), "{all}");
}
