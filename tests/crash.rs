//! Crash safety on real PostgreSQL: the server is killed (`pg_ctl stop -m immediate`) in
//! the middle of a deploy, on a cluster of the test's own running with
//! `synchronous_commit = off` (and the database set the same way). Every migration dbflow
//! printed as applied must have survived, with its schema object, and a re-run must
//! finish clean.

use crate::support::cli::Test;
use crate::support::pg;
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MIGRATIONS: usize = 2000;
const RUNS: usize = 20;

/// A small xorshift generator: the kill moments vary from run to run and the seed is
/// printed, so a failing sequence can be replayed with `DBFLOW_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

fn name(i: usize) -> String {
    format!("20240101{i:06}_m{i}")
}

/// `✔ name (…)` lines of the deploy's output: what it told a person was applied.
fn printed_applied(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("✔ "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|n| n.contains("_m"))
        .map(str::to_string)
        .collect()
}

#[test]
fn crash_mid_deploy_never_loses_a_migration_printed_as_applied() {
    // fsync stays off to keep the 20 runs fast: `-m immediate` kills the server
    // processes, not the machine, so WAL the server wrote survives in the page cache and
    // WAL it had not written (an asynchronous commit still in its buffers) is lost,
    // exactly as after a real crash.
    let Some(cluster) = pg::own_cluster(
        "crash_mid_deploy",
        "-c synchronous_commit=off -c fsync=off -c full_page_writes=off -c wal_writer_delay=200ms",
    ) else {
        return;
    };
    let project = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\n",
        )
        .file("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    for i in 0..MIGRATIONS {
        project.write(
            &format!("prisma/migrations/{}/migration.sql", name(i)),
            // A domain: a schema object that commits like a table without the table's
            // files, so 20 runs of 2,000 stay within the test's time budget.
            &format!("CREATE DOMAIN \"d{i}\" AS INTEGER CHECK (VALUE >= {i});\n"),
        );
    }
    let seed = std::env::var("DBFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: {seed} (DBFLOW_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut survived_total, mut mid_deploy) = (0, 0);
    for run in 0..RUNS {
        let db = format!("crash_{run}");
        cluster
            .psql("postgres", &format!("CREATE DATABASE {db}"))
            .unwrap();
        cluster
            .psql(
                "postgres",
                &format!("ALTER DATABASE {db} SET synchronous_commit = off"),
            )
            .unwrap();
        let t = Test::in_dir(project.path()).env("DATABASE_URL", &cluster.url(&db));
        let deploy = t.spawn_with(["migrate", "deploy"]);
        let after = rng.between(100, 1500);
        std::thread::sleep(Duration::from_millis(after));
        cluster.crash();
        let output = deploy.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let printed = printed_applied(&stdout);
        cluster.start();

        let history_exists = cluster
            .psql(&db, "SELECT to_regclass('_prisma_migrations') IS NOT NULL")
            .unwrap()
            == "t";
        let in_history: BTreeSet<String> = if history_exists {
            cluster
                .psql(&db, "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL")
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        } else {
            BTreeSet::new()
        };
        let objects: BTreeSet<String> = cluster
            .psql(&db, "SELECT typname FROM pg_type WHERE typtype = 'd' AND typnamespace = 'public'::regnamespace")
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let lost: Vec<&String> = printed
            .iter()
            .filter(|n| !in_history.contains(*n))
            .collect();
        assert!(
            lost.is_empty(),
            "run {run} (seed {seed}, crash after {after} ms): {} migration(s) printed as applied are not in the history after the crash: {:?} ({} printed, {} in history)",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>(),
            printed.len(),
            in_history.len()
        );
        for i in 0..MIGRATIONS {
            // A history row and its object commit together: neither without the other.
            assert_eq!(
                in_history.contains(&name(i)),
                objects.contains(&format!("d{i}")),
                "run {run}: migration {} and its domain disagree after the crash",
                name(i)
            );
        }
        survived_total += printed.len();
        if printed.len() < MIGRATIONS {
            mid_deploy += 1;
        }

        let rerun = t.run_with(["migrate", "deploy"]);
        rerun.assert_code(0);
        let status = t.run_with(["migrate", "status"]);
        status.assert_code(0);
        assert!(
            status
                .stdout
                .contains(&format!("{MIGRATIONS} applied, 0 pending, 0 failed")),
            "run {run}: {}",
            status.stdout
        );
        cluster
            .psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"))
            .unwrap();
    }
    eprintln!(
        "{RUNS} crashes in {:?} ({mid_deploy} in the middle of the deploy): {survived_total} migrations printed as applied, all of them kept",
        started.elapsed()
    );
    assert!(
        mid_deploy > 0 && survived_total > 0,
        "no crash came in the middle of a deploy that had printed something: the test proved nothing"
    );
}
