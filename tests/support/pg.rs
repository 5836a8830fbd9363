//! Real PostgreSQL databases for integration tests: one fresh database per
//! test, on a real server.
//!
//! Usage from a test:
//!
//! ```ignore
//! mod support;
//! use support::pg;
//!
//! #[test]
//! fn applies_migration() {
//!     let Some(db) = pg::database("applies_migration") else { return };
//!     db.psql("CREATE TABLE t (id int)");
//!     assert_eq!(db.psql("SELECT count(*) FROM t"), "0");
//! }
//! ```
//!
//! Where the server comes from:
//!
//! * `DBFLOW_TEST_PG_URL=postgres://user:pw@host:5432/postgres` — use that
//!   server; the database in the URL is the admin database that
//!   `CREATE DATABASE` / `DROP DATABASE` run in. Needs PostgreSQL 13+
//!   (`DROP DATABASE ... WITH (FORCE)`).
//! * otherwise one throw-away cluster per test binary, started lazily with the
//!   newest `initdb`/`pg_ctl` found under `/usr/lib/postgresql/*/bin` (or on
//!   `PATH`), torn down by a watchdog when the test process exits.
//!
//! When neither is available, [`database`] returns `None` and prints a
//! skip message, unless `CI=true`, where a missing server is a hard failure:
//! a CI run that silently skips every database test would be green and
//! worthless.
//!
//! Set `DBFLOW_TEST_PG_KEEP=1` to keep the throw-away cluster running after
//! the test binary exits when a test failed, so the database that failing
//! test left behind can still be inspected.
//!
//! Cost to keep in mind: the cluster is per *process*. `cargo test` runs all
//! tests of a binary in one process, so they share one cluster; a runner that
//! spawns one process per test (cargo-nextest) pays the cluster start-up for
//! every test — point `DBFLOW_TEST_PG_URL` at a running server there.
#![allow(dead_code)]

use std::env;
use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every database this module creates starts with this, so leftovers from
/// failed runs on a shared server are easy to find and drop.
const DB_PREFIX: &str = "dbflow_t_";

/// PostgreSQL silently truncates identifiers longer than this (NAMEDATALEN-1),
/// which would make two long test names collide on the same database.
const MAX_IDENT_BYTES: usize = 63;

/// Printed whenever a test is skipped for lack of a server.
const SKIP_MESSAGE: &str = "skipping: no PostgreSQL (set DBFLOW_TEST_PG_URL or install postgresql)";

/// The OS user that owns the throw-away cluster when tests run as root:
/// `initdb` and `postgres` refuse to run as root.
const PG_OS_USER: &str = "postgres";

/// A fresh, empty database that belongs to one test.
///
/// Dropping it drops the database (`WITH (FORCE)`, so connections a test
/// forgot to close do not keep it alive). If the thread is panicking the
/// database is kept and its URL printed, so a failed test can be inspected.
#[derive(Debug)]
pub struct TestDb {
    /// The database name, e.g. `dbflow_t_applies_migration_4242_0`.
    pub name: String,
    /// A connection URL for this database, e.g.
    /// `postgres://postgres@127.0.0.1:54321/dbflow_t_applies_migration_4242_0`.
    pub url: String,
    /// URL of the server's admin database, where CREATE/DROP DATABASE run.
    admin_url: String,
    /// The `psql` binary used for every statement this module runs.
    psql_bin: PathBuf,
    /// Data-dir root of the throw-away cluster; `None` for an external server.
    cluster_dir: Option<PathBuf>,
}

/// Returns a fresh database for the test `test_name`, or `None` (after
/// printing [`SKIP_MESSAGE`]) when no PostgreSQL is available and `CI` is not
/// `true`.
///
/// The name is `dbflow_t_<sanitised test name>_<pid>_<counter>`, at most 63
/// bytes, so parallel tests — threads of this binary or other test processes
/// on a shared server — never collide.
///
/// # Panics
///
/// With `CI=true` when no PostgreSQL is available; always when a server was
/// configured or found but could not be started or reached, or when
/// `CREATE DATABASE` fails (a broken setup must fail loudly, not skip).
pub fn database(test_name: &str) -> Option<TestDb> {
    let server = match server() {
        ServerState::Ready(server) => server,
        ServerState::Missing => {
            if env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but no PostgreSQL is available: set DBFLOW_TEST_PG_URL or install \
                     postgresql (initdb/pg_ctl/psql under /usr/lib/postgresql/*/bin or on PATH); \
                     database tests must not be skipped in CI"
                );
            }
            loud(&format!("{SKIP_MESSAGE} [test: {test_name}]"));
            return None;
        }
        ServerState::Broken(why) => panic!("test PostgreSQL is unusable: {why}"),
    };

    // A few attempts: a name can already exist on a shared server when a
    // kept database of an earlier run had the same pid, and CREATE DATABASE
    // fails while someone is connected to the template database.
    let mut last_error = String::new();
    for _ in 0..10 {
        let name = unique_name(test_name);
        let sql = format!("CREATE DATABASE {}", quote_ident(&name));
        match run_psql(&server.psql_bin, &server.admin_url, &sql) {
            Ok(_) => {
                return Some(TestDb {
                    url: replace_database(&server.admin_url, &name),
                    name,
                    admin_url: server.admin_url.clone(),
                    psql_bin: server.psql_bin.clone(),
                    cluster_dir: server.cluster_dir.clone(),
                });
            }
            Err(e) if e.contains("already exists") => last_error = e,
            Err(e) if e.contains("is being accessed by other users") => {
                last_error = e;
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("creating test database {name} failed: {e}"),
        }
    }
    panic!("creating a test database for {test_name} failed repeatedly: {last_error}");
}

/// The PostgreSQL bin directory (holding `initdb`, `pg_ctl`, `psql`,
/// `pg_dump`, ...), so tests can put it first on `PATH` for the binary under
/// test: the newest `/usr/lib/postgresql/<version>/bin`, else the first
/// `PATH` entry that has all three of `initdb`, `pg_ctl` and `psql`.
pub fn bin_dir() -> Option<PathBuf> {
    static BIN_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN_DIR
        .get_or_init(|| find_pg_bin(&["initdb", "pg_ctl", "psql"]))
        .clone()
}

/// The admin URL (`postgres://postgres@127.0.0.1:<port>/postgres`) of a second
/// throw-away cluster, started on first use (one per test binary, torn down by its own
/// watchdog like the first), for tests that need two servers: a restore drill onto
/// another server than the primary's. `None` (after printing why) without local
/// PostgreSQL binaries; a second cluster that fails to start fails the test.
pub fn second_server() -> Option<String> {
    static SECOND: OnceLock<Option<Result<String, String>>> = OnceLock::new();
    let started = SECOND.get_or_init(|| {
        let bin = bin_dir()?;
        Some(start_cluster(&bin).map(|server| server.admin_url))
    });
    match started {
        Some(Ok(url)) => Some(url.clone()),
        Some(Err(why)) => panic!("the second test PostgreSQL is unusable: {why}"),
        None => {
            loud("skipping the second-server part: no local PostgreSQL binaries to start one");
            None
        }
    }
}

impl TestDb {
    /// Runs `sql` in this database with
    /// `psql -X -q -At -v ON_ERROR_STOP=1` and returns trimmed stdout: one
    /// line per row, columns separated by `|`.
    ///
    /// Several `;`-separated statements run in one transaction.
    ///
    /// # Panics
    ///
    /// When psql fails; the message carries the SQL and psql's stderr.
    pub fn psql(&self, sql: &str) -> String {
        run_psql(&self.psql_bin, &self.url, sql)
            .unwrap_or_else(|e| panic!("psql on {} failed for `{sql}`: {e}", self.name))
    }

    /// Whether a database named `db` exists on this test's server (asked in
    /// the admin database, so it works for dropped or never-created names).
    ///
    /// # Panics
    ///
    /// When the server cannot be queried.
    pub fn database_exists(&self, db: &str) -> bool {
        let sql = format!(
            "SELECT 1 FROM pg_database WHERE datname = {}",
            quote_literal(db)
        );
        run_psql(&self.psql_bin, &self.admin_url, &sql)
            .unwrap_or_else(|e| panic!("querying pg_database for {db} failed: {e}"))
            == "1"
    }

    /// URL of the server's admin database (the one CREATE/DROP DATABASE run
    /// in), for tests of code that itself creates or drops databases.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if thread::panicking() {
            let fate = match &self.cluster_dir {
                None => "it stays on the server given by DBFLOW_TEST_PG_URL".to_string(),
                Some(dir) if env::var_os("DBFLOW_TEST_PG_KEEP").is_some() => {
                    // The watchdog skips teardown when this marker exists.
                    let _ = fs::write(dir.join("keep"), b"");
                    let data = dir.join("data");
                    let pg_ctl = bin_dir().map_or("pg_ctl".into(), |b| b.join("pg_ctl"));
                    let stop = pg_shell_command(
                        is_root(),
                        &[
                            pg_ctl.to_string_lossy().as_ref(),
                            "-D",
                            data.to_string_lossy().as_ref(),
                            "stop",
                        ],
                    );
                    format!(
                        "DBFLOW_TEST_PG_KEEP is set: the cluster keeps running after this \
                         process exits; stop it with `{stop} && rm -rf {}`",
                        shell_quote(&dir.to_string_lossy()),
                    )
                }
                Some(_) => "the throw-away cluster is removed when this test process exits; \
                            set DBFLOW_TEST_PG_KEEP=1 to keep it"
                    .to_string(),
            };
            loud(&format!(
                "test panicked: keeping database {} for inspection: {} ({fate})",
                self.name, self.url
            ));
            return;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        if let Err(e) = run_psql(&self.psql_bin, &self.admin_url, &sql) {
            // The test itself passed; a database leaked on a throw-away or
            // test-only server deserves a warning, not a failed test.
            loud(&format!(
                "warning: could not drop test database {}: {e}",
                self.name
            ));
        }
    }
}

/// The server every [`TestDb`] of this process lives on.
struct Server {
    admin_url: String,
    psql_bin: PathBuf,
    cluster_dir: Option<PathBuf>,
}

enum ServerState {
    Ready(Server),
    /// No URL configured and no PostgreSQL installation found: skip (or fail
    /// in CI).
    Missing,
    /// Configured or installed, but unusable: always a test failure. Stored
    /// rather than panicking inside `get_or_init`, so every test reports the
    /// same cause instead of each one retrying a slow, failing initdb.
    Broken(String),
}

/// One server per test binary: initdb + start cost about a second, far too
/// much to pay per test, and databases give tests all the isolation they need.
fn server() -> &'static ServerState {
    static SERVER: OnceLock<ServerState> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Some(url) = env::var("DBFLOW_TEST_PG_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            return external_server(url.trim());
        }
        match bin_dir() {
            None => ServerState::Missing,
            Some(bin) => match start_cluster(&bin) {
                Ok(server) => ServerState::Ready(server),
                Err(why) => ServerState::Broken(why),
            },
        }
    })
}

fn external_server(url: &str) -> ServerState {
    // An explicitly configured server that does not work is a broken setup,
    // not a reason to skip.
    let Some(psql_bin) = bin_dir()
        .map(|b| b.join("psql"))
        .or_else(|| find_pg_bin(&["psql"]).map(|b| b.join("psql")))
    else {
        return ServerState::Broken(
            "DBFLOW_TEST_PG_URL is set but no psql binary was found (install postgresql-client)"
                .into(),
        );
    };
    // Fail fast with one clear message instead of one per test.
    match run_psql(&psql_bin, url, "SELECT 1") {
        Ok(_) => ServerState::Ready(Server {
            admin_url: url.to_string(),
            psql_bin,
            cluster_dir: None,
        }),
        Err(e) => ServerState::Broken(format!(
            "cannot connect to DBFLOW_TEST_PG_URL ({}): {e}",
            redact_password(url)
        )),
    }
}

/// initdb + pg_ctl start a private cluster listening on 127.0.0.1 only, with
/// durability switched off (tests never need crash safety, and fsync
/// dominates CREATE DATABASE time otherwise).
fn start_cluster(bin: &Path) -> Result<Server, String> {
    let dir = init_cluster(bin)?;
    let (port, _) = start_on_free_port(
        bin,
        &dir,
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
    )?;
    Ok(Server {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        psql_bin: bin.join("psql"),
        cluster_dir: Some(dir),
    })
}

/// A fresh cluster directory (`data/` initialised, owned by the cluster's OS user), its
/// watchdog already up.
fn init_cluster(bin: &Path) -> Result<PathBuf, String> {
    let as_root = is_root();
    if as_root && !command_ok(Command::new("id").args(["-u", PG_OS_USER])) {
        return Err(format!(
            "running as root, but there is no OS user `{PG_OS_USER}` to run the cluster as \
             (initdb refuses root); create it or set DBFLOW_TEST_PG_URL"
        ));
    }
    let dir = make_cluster_dir(as_root)?;
    if as_root {
        run(Command::new("chown").args(["-R", PG_OS_USER]).arg(&dir))
            .map_err(|e| format!("chown -R {PG_OS_USER} {} failed: {e}", dir.display()))?;
    }
    // The watchdog goes up before anything else runs, so even a panic or
    // kill during start-up leaves neither the directory nor a postmaster.
    spawn_watchdog(bin, &dir, as_root)?;

    let data = dir.join("data");
    run(&mut pg_command(as_root, &dir, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .command())
    .map_err(|e| format!("initdb failed: {e}"))?;
    Ok(dir)
}

/// Starts the cluster in `dir` on a free port with `settings` (`-c name=value …`);
/// returns the port and the `pg_ctl -o` options it was started with.
fn start_on_free_port(bin: &Path, dir: &Path, settings: &str) -> Result<(u16, String), String> {
    // The free port is only free until someone else binds it; another test
    // binary doing the same thing can win that race, so retry with a new one.
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 {settings}",
            // pg_ctl hands -o to /bin/sh, so the path needs shell quoting.
            shell_quote(&dir.to_string_lossy())
        );
        match pg_ctl_start(bin, dir, &options) {
            Ok(()) => return Ok((port, options)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// `pg_ctl start -w` with these `-o` options; the error carries the log's tail.
fn pg_ctl_start(bin: &Path, dir: &Path, options: &str) -> Result<(), String> {
    let log = dir.join("log");
    run(&mut pg_command(is_root(), dir, &bin.join("pg_ctl"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", options, "start"])
        .command())
    .map(|_| ())
    .map_err(|e| {
        let log_tail = fs::read_to_string(&log).unwrap_or_default();
        let log_tail: Vec<&str> = log_tail.lines().rev().take(15).collect();
        format!(
            "pg_ctl start failed: {e}\n--- server log (last lines) ---\n{}",
            log_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })
}

/// A cluster of one test's own, for tests that crash or stop the server (which the
/// shared one must never be). Removed when dropped (and by its watchdog when the test
/// process dies).
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    options: String,
}

/// Starts a cluster of this test's own with `settings` (`-c name=value …`, added to
/// listen_addresses and the socket folder), or `None` (after the skip message) when no
/// PostgreSQL installation is found. An external `DBFLOW_TEST_PG_URL` server does not
/// count: the test needs a server it may kill.
///
/// # Panics
///
/// When a found installation cannot initialise or start a cluster.
pub fn own_cluster(test_name: &str, settings: &str) -> Option<Cluster> {
    let Some(bin) = bin_dir() else {
        if env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no PostgreSQL installation to start a cluster with");
        }
        loud(&format!("{SKIP_MESSAGE} [test: {test_name}]"));
        return None;
    };
    let dir = init_cluster(&bin).unwrap_or_else(|e| panic!("own cluster for {test_name}: {e}"));
    let (port, options) = start_on_free_port(&bin, &dir, settings)
        .unwrap_or_else(|e| panic!("own cluster for {test_name}: {e}"));
    Some(Cluster {
        bin,
        dir,
        port,
        options,
    })
}

/// A cluster of the test's own (autovacuum off: nothing else completes transactions there,
/// so commit horizons stay put between runs) with a database `app`, and the project `make`
/// builds for that database's URL deployed into it (`migrate deploy`, exit 0).
pub fn own_deployed(
    test_name: &str,
    make: impl FnOnce(&str) -> super::cli::Test,
) -> Option<(Cluster, super::cli::Test)> {
    let cluster = own_cluster(test_name, "-c autovacuum=off")?;
    cluster.psql("postgres", "CREATE DATABASE app").unwrap();
    let t = make(&cluster.url("app"));
    t.run_with(["migrate", "deploy"]).assert_code(0);
    Some((cluster, t))
}

impl Cluster {
    /// A URL for database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` in `db` with psql (`-At`), returning trimmed stdout or psql's error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        run_psql(&self.bin.join("psql"), &self.url(db), sql)
    }

    /// `pg_ctl stop -m immediate`: every server process is killed at once, what the
    /// shared buffers and WAL buffers held is gone, and the next start runs crash recovery.
    pub fn crash(&self) {
        run(
            &mut pg_command(is_root(), &self.dir, &self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .command(),
        )
        .unwrap_or_else(|e| panic!("pg_ctl stop -m immediate failed: {e}"));
    }

    /// Starts the server again (same port and settings), crash recovery included.
    pub fn start(&self) {
        pg_ctl_start(&self.bin, &self.dir, &self.options).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = run(
            &mut pg_command(is_root(), &self.dir, &self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .command(),
        );
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Rust never runs destructors of statics, so nothing inside the test process
/// can stop the cluster at exit. Instead a detached shell polls the test
/// process and, once it is gone (normal exit, panic=abort, SIGKILL alike),
/// stops the postmaster and deletes the directory.
///
/// The watchdog runs as the invoking user — root when tests run as root — so
/// `kill -0` on the test process is permitted and `rm -rf` removes the whole
/// tree whoever created its files (root writes the keep marker, postgres the
/// data); only `pg_ctl stop` is dropped to the `postgres` user, because
/// pg_ctl refuses to run as root.
fn spawn_watchdog(bin: &Path, dir: &Path, as_root: bool) -> Result<(), String> {
    let pg_ctl = bin.join("pg_ctl");
    let data = dir.join("data");
    let stop = pg_shell_command(
        as_root,
        &[
            pg_ctl.to_string_lossy().as_ref(),
            "-D",
            data.to_string_lossy().as_ref(),
            "stop",
            "-m",
            "immediate",
            "-w",
        ],
    );
    let dir_q = shell_quote(&dir.to_string_lossy());
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done\n\
         [ -e {dir_q}/keep ] && exit 0\n\
         {stop} >/dev/null 2>&1\n\
         rm -rf {dir_q}\n",
        pid = std::process::id(),
    );
    // Double fork: the outer sh backgrounds the loop and exits at once, so
    // the loop is re-parented to init and nothing is left for us to reap.
    // Its own process group keeps a Ctrl-C aimed at `cargo test` from
    // killing the watchdog before it has cleaned up.
    let outer = format!(
        "sh -c {} >/dev/null 2>&1 </dev/null &",
        shell_quote(&script)
    );
    let argv = ["sh".to_string(), "-c".to_string(), outer];
    without_inherited_fds(&argv)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .map_err(|e| format!("cannot spawn the cluster watchdog: {e}"))
        .and_then(|s| {
            if s.success() {
                Ok(())
            } else {
                Err(format!("watchdog shell exited with {s}"))
            }
        })
}

/// A fresh directory for the cluster. As root it lives directly under /tmp
/// with mode 0755: the `postgres` user must be able to traverse every parent
/// and `$TMPDIR` may point into root's private home. The path also stays
/// short, which matters because the Unix socket lives in it (108-byte limit).
fn make_cluster_dir(as_root: bool) -> Result<PathBuf, String> {
    let parent = if as_root {
        PathBuf::from("/tmp")
    } else {
        env::temp_dir()
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last_error = None;
    for attempt in 0..100u32 {
        let dir = parent.join(format!(
            "dbflow-pg-{}-{:x}",
            std::process::id(),
            nanos.wrapping_add(attempt)
        ));
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "cannot create a cluster directory under {}: {last_error:?}",
        parent.display()
    ))
}

/// A command for a PostgreSQL server binary, run as `postgres` when we are
/// root (initdb and postgres refuse to run as root). The working directory is
/// the cluster directory because `postgres` may not be allowed into ours.
fn pg_command(as_root: bool, cwd: &Path, program: &Path) -> PgCommand {
    PgCommand {
        as_root,
        cwd: cwd.to_path_buf(),
        program: program.to_path_buf(),
        args: Vec::new(),
    }
}

/// Collects a command line so it can be turned into a `runuser`/`su`
/// invocation (which needs the whole line up front) or a plain one.
struct PgCommand {
    as_root: bool,
    cwd: PathBuf,
    program: PathBuf,
    args: Vec<String>,
}

impl PgCommand {
    fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    fn command(&self) -> Command {
        let program = self.program.to_string_lossy();
        let mut line = vec![program.as_ref()];
        line.extend(self.args.iter().map(String::as_str));
        let mut cmd = without_inherited_fds(&pg_argv(self.as_root, &line));
        cmd.current_dir(&self.cwd);
        cmd
    }
}

/// The argv that runs `line` as the cluster's owner: unchanged when we are
/// not root, else through `runuser` (or `su` where util-linux's runuser is
/// missing).
fn pg_argv(as_root: bool, line: &[&str]) -> Vec<String> {
    let owned = || line.iter().map(|w| (*w).to_string());
    if !as_root {
        owned().collect()
    } else if let Some(runuser) = find_runuser() {
        let runuser = runuser.to_string_lossy().into_owned();
        [runuser, "-u".into(), PG_OS_USER.into(), "--".into()]
            .into_iter()
            .chain(owned())
            .collect()
    } else {
        ["su", PG_OS_USER, "-s", "/bin/sh", "-c", &shell_line(line)]
            .map(String::from)
            .to_vec()
    }
}

/// The same as [`PgCommand`], but as a line for the watchdog shell script.
fn pg_shell_command(as_root: bool, line: &[&str]) -> String {
    let argv = pg_argv(as_root, line);
    shell_line(&argv.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Shell code that closes every descriptor above 2 the shell inherited.
///
/// Rust's `Command` passes on every descriptor that is not close-on-exec, so
/// the postmaster (and the watchdog) would otherwise hold pipes that the test
/// process inherited from whatever launched it — a CI harness or tool that
/// waits for EOF on such a pipe would then wait for the cluster too, forever
/// once `DBFLOW_TEST_PG_KEEP` keeps it. Needs bash: dash cannot name
/// descriptors above 9 in a redirection.
const CLOSE_INHERITED_FDS: &str = r#"for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done"#;

fn find_bash() -> Option<PathBuf> {
    ["/bin/bash", "/usr/bin/bash"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A `Command` for `argv` that starts without inherited descriptors above 2
/// where bash is available (best effort: without bash it runs as is).
fn without_inherited_fds(argv: &[String]) -> Command {
    if let Some(bash) = find_bash() {
        let mut cmd = Command::new(bash);
        cmd.args(["-c", &format!("{CLOSE_INHERITED_FDS}; exec \"$@\""), "bash"])
            .args(argv);
        cmd
    } else {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

fn find_runuser() -> Option<PathBuf> {
    [
        "/usr/sbin/runuser",
        "/sbin/runuser",
        "/usr/bin/runuser",
        "/bin/runuser",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .or_else(|| find_in_path("runuser"))
}

/// Runs `cmd` and returns its stdout, or an error carrying the exit status
/// and both output streams (callers say which step it was: the program is
/// usually a bash or runuser wrapper, so naming it would not help).
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn command_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one SQL string with psql and returns trimmed stdout. `-X` ignores
/// ~/.psqlrc so a developer's settings cannot change the output format, and
/// ON_ERROR_STOP makes any failing statement a non-zero exit.
fn run_psql(psql: &Path, url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        // A wedged server should fail the test, not hang it forever.
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "psql exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `dbflow_t_<test name as [a-z0-9_]>_<pid>_<n>`, cut to 63 bytes by
/// shortening the test-name part, never the unique suffix.
fn unique_name(test_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("_{}_{n}", std::process::id());

    let mut base = String::new();
    for c in test_name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        };
        // `module::test` would otherwise give `module__test`.
        if !(c == '_' && (base.is_empty() || base.ends_with('_'))) {
            base.push(c);
        }
    }
    // Everything is ASCII now, so byte truncation cannot split a character.
    base.truncate(MAX_IDENT_BYTES - DB_PREFIX.len() - suffix.len());
    let base = base.trim_end_matches('_');
    let base = if base.is_empty() { "db" } else { base };
    format!("{DB_PREFIX}{base}{suffix}")
}

/// Double-quoted SQL identifier: names are always quoted so that nothing in a
/// (sanitised) name can be read as a keyword.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Single-quoted SQL literal (standard_conforming_strings is on by default).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `url` with its database path replaced by `db`; userinfo, host, port and
/// query parameters (sslmode, host=/socket/dir, ...) are kept.
fn replace_database(url: &str, db: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let authority_end = rest
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{db}{query}", &url[..authority_end])
}

/// The URL with any password replaced, for error messages.
fn redact_password(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    match url[after_scheme..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &url[after_scheme..after_scheme + at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..after_scheme],
                    &userinfo[..colon],
                    &url[after_scheme + at..]
                ),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian/Ubuntu layout,
/// several versions side by side) holding all of `tools`, else the first
/// `PATH` entry that does.
fn find_pg_bin(tools: &[&str]) -> Option<PathBuf> {
    let has_all = |dir: &Path| tools.iter().all(|t| dir.join(t).is_file());
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            // Compare versions numerically: "9.6" < "10" < "16".
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_all(&bin).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin);
    newest.or_else(|| {
        env::split_paths(&env::var_os("PATH").unwrap_or_default()).find(|dir| has_all(dir))
    })
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether the effective uid is 0, read from /proc so no libc binding is
/// needed; falls back to `id -u` where /proc is absent.
fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            // "Uid:\treal\teffective\tsaved\tfs"
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Binds port 0 to let the kernel pick a free port, then releases it for the
/// postmaster.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free TCP port: {e}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn shell_line(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes straight to the process's stderr instead of `eprintln!`, which
/// libtest captures for passing tests: a skip must be visible in every run.
fn loud(message: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** dbflow test support: {message}\n"
    );
}
