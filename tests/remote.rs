//! Backups in an object-storage repository (`backups.repository: s3://…`), against a
//! real S3-compatible server (tests/support/s3.rs) and real PostgreSQL.

use crate::backup::{pg_path, psql};
use crate::support::cli::Test;
use crate::support::pg::{self, TestDb};
use crate::support::s3::{self, S3};
use serde_json::Value;
use std::time::{Duration, Instant};

const INIT: &str = "CREATE TABLE \"Item\" (id SERIAL PRIMARY KEY, name TEXT NOT NULL, blob BYTEA);";

/// A project whose backups go to `s3://<bucket>/dbflow`, with `rows` rows of
/// `blob_bytes` random (incompressible) bytes each.
fn project(db: &TestDb, s3: &S3, rows: u32, blob_bytes: u32) -> Test {
    let mut t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://{}/dbflow\n",
                s3.bucket
            ),
        )
        .file("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n")
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path());
    for (key, value) in s3.env() {
        t = t.env(key, &value);
    }
    t.run_with(["migrate", "deploy"]).assert_code(0);
    db.psql(&format!(
        "CREATE EXTENSION IF NOT EXISTS pgcrypto; INSERT INTO \"Item\" (name, blob) SELECT 'item ' || g, gen_random_bytes({blob_bytes}) FROM generate_series(1, {rows}) g"
    ));
    t
}

/// Random bytes without pgcrypto's 1024-byte limit: md5 chains are incompressible enough.
fn project_big(db: &TestDb, s3: &S3, megabytes: u32) -> Test {
    let t = project(db, s3, 0, 1);
    db.psql(&format!(
        "INSERT INTO \"Item\" (name, blob) SELECT 'big ' || g, decode(string_agg(md5(g::text || ':' || i::text), ''), 'hex') FROM generate_series(1, {megabytes}) g, generate_series(1, 65536) i GROUP BY g"
    ));
    t
}

/// An object read with signed requests (moto refuses anonymous reads of objects stored
/// with a single PUT), through the same client library dbflow uses.
fn signed_get(s3: &S3, key: &str) -> Vec<u8> {
    use object_store::ObjectStoreExt;
    let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(&s3.bucket);
    for (name, value) in s3.env() {
        builder = builder.with_config(name.to_ascii_lowercase().parse().unwrap(), value);
    }
    let store = builder.build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let path = object_store::path::Path::parse(key).unwrap();
        store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    })
}

fn url_for(db: &TestDb, name: &str) -> String {
    let mut parsed = url::Url::parse(&db.url).unwrap();
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

fn list(t: &Test) -> Vec<Value> {
    let out = t.run_with(["backup", "list", "--env", "local", "--json"]);
    out.assert_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("json");
    doc["backups"].as_array().cloned().unwrap_or_default()
}

fn create(t: &Test) -> String {
    let out = t.run_with(["backup", "create", "--env", "local"]);
    out.assert_code(0);
    assert!(!out.all().contains(s3::SECRET_KEY), "{}", out.all());
    let listed = list(t);
    listed[0]["id"].as_str().unwrap().to_string()
}

#[test]
fn backup_list_verify_restore_go_through_the_s3_repository() {
    let Some(s3) = s3::server("acme-backups") else {
        return;
    };
    let Some(db) = pg::database("s3_round_trip") else {
        return;
    };
    let t = project(&db, &s3, 200, 500);
    let id = create(&t);

    // In the bucket, manifest beside the dump; nothing on this machine.
    let keys = s3.keys("dbflow/local/");
    assert!(
        keys.contains(&format!("dbflow/local/{id}/manifest.json")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("dbflow/local/{id}/dump.pgdump")),
        "{keys:?}"
    );
    assert!(!t.exists("backups"), "a local backups folder was written");
    assert_eq!(s3.open_uploads(), 0);

    let listed = list(&t);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "verified");
    let text = t.run_with(["backup", "list", "--env", "local"]);
    assert!(
        text.stdout.contains("s3://acme-backups/dbflow"),
        "{}",
        text.stdout
    );

    let verified = t.run_with(["backup", "verify", &id, "--env", "local"]);
    verified.assert_code(0);
    assert!(
        verified.stdout.contains("streamed back"),
        "{}",
        verified.stdout
    );

    let restored = t.run_with([
        "restore",
        &id,
        "--env",
        "local",
        "--into",
        &format!("{}_r", db.name),
    ]);
    restored.assert_code(0);
    let copy = url_for(&db, &format!("{}_r", db.name));
    assert_eq!(psql(&copy, "SELECT count(*) FROM \"Item\""), "200");
    assert_eq!(
        psql(
            &copy,
            "SELECT md5(string_agg(blob::text, '' ORDER BY id)) FROM \"Item\""
        ),
        db.psql("SELECT md5(string_agg(blob::text, '' ORDER BY id)) FROM \"Item\"")
    );
    psql(db.admin_url(), &format!("DROP DATABASE \"{}_r\"", db.name));

    // Drills through the repository: an existing backup, and a fresh one.
    let drill = t.run_with(["drill", "--env", "local", "--backup", &id]);
    drill.assert_code(0);
    assert!(drill.stdout.contains("drill PASS"), "{}", drill.stdout);
    assert!(
        drill.stdout.contains("from s3://acme-backups/dbflow"),
        "{}",
        drill.stdout
    );
    let fresh = t.run_with(["drill", "--env", "local"]);
    fresh.assert_code(0);
    assert!(fresh.stdout.contains("drill PASS"), "{}", fresh.stdout);
    let labels: Vec<Value> = list(&t).iter().map(|b| b["label"].clone()).collect();
    assert!(labels.contains(&Value::from("drill")), "{labels:?}");
    // The reports outlive this machine: one JSON and one Markdown object per drill in
    // the repository, beside the backups (and not taken for backups).
    assert!(
        fresh
            .stdout
            .contains("s3://acme-backups/dbflow/local/.drills/"),
        "{}",
        fresh.stdout
    );
    let reports: Vec<String> = s3
        .keys("dbflow/local/.drills/")
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(s3.keys("dbflow/local/.drills/").len(), 4);
    for key in &reports {
        let report: Value = serde_json::from_slice(&signed_get(&s3, key)).unwrap();
        assert_eq!(report["result"], "PASS", "{report}");
        assert_eq!(report["environment"], "local");
    }
    assert_eq!(list(&t).len(), 2, "drill reports are not backups");
    let left = psql(
        db.admin_url(),
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE '{}%restore_drill%'",
            db.name
        ),
    );
    assert_eq!(left, "0", "a drill database was left behind");
    for out in [&verified, &restored] {
        assert!(!out.all().contains(s3::SECRET_KEY), "{}", out.all());
    }
}

#[test]
fn a_flipped_byte_in_the_bucket_fails_verify_and_restore() {
    let Some(s3) = s3::server("flip") else { return };
    let Some(db) = pg::database("s3_flipped_byte") else {
        return;
    };
    let t = project(&db, &s3, 50, 200);
    let id = create(&t);
    let key = format!("dbflow/local/{id}/dump.pgdump");
    let mut bytes = s3.get(&key);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    s3.put(&key, &bytes);

    let target = format!("{}_r", db.name);
    let restored = t.run_with(["restore", &id, "--env", "local", "--into", &target]);
    assert_ne!(restored.code, 0, "{}", restored.all());
    assert!(
        !db.database_exists(&target),
        "a half-restored database was left behind"
    );

    let verified = t.run_with(["backup", "verify", &id, "--env", "local"]);
    verified.assert_code(1);
    assert!(
        verified.all().contains("sha256 mismatch"),
        "{}",
        verified.all()
    );
    // Marked in the repository's catalog: no longer offered.
    assert_eq!(list(&t)[0]["state"], "failed");
    let latest = t.run_with(["restore", "latest", "--env", "local", "--into", &target]);
    assert_ne!(latest.code, 0);
    assert!(!db.database_exists(&target));
}

#[test]
fn an_interrupted_upload_is_never_listed_and_its_parts_are_aborted() {
    let Some(s3) = s3::server("interrupted") else {
        return;
    };
    let Some(db) = pg::database("s3_interrupted") else {
        return;
    };
    let t = project_big(&db, &s3, 48);
    let mut child = t.spawn_with(["backup", "create", "--env", "local"]);
    // Wait for the multipart upload to be under way, then stop dbflow.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s3.open_uploads() == 0 {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "dbflow ended before the upload was seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(list(&t).is_empty(), "an interrupted backup was listed");
    assert_eq!(s3.open_uploads(), 0, "the multipart upload was not aborted");
    assert!(
        !s3.keys("dbflow/")
            .iter()
            .any(|k| k.ends_with("manifest.json")),
        "{:?}",
        s3.keys("dbflow/")
    );
}

#[test]
fn a_server_killed_mid_upload_fails_the_backup_and_catalogs_nothing() {
    let Some(mut s3) = s3::server("killed") else {
        return;
    };
    let Some(db) = pg::database("s3_server_killed") else {
        return;
    };
    let t = project_big(&db, &s3, 48);
    let child = t.spawn_with(["backup", "create", "--env", "local"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while s3.open_uploads() == 0 {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    s3.kill();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("s3://killed/dbflow"), "{stderr}");
    assert!(!stderr.contains(s3::SECRET_KEY), "{stderr}");
    assert!(!t.exists("backups"));
}

#[test]
fn a_pin_in_the_bucket_is_kept_by_every_runners_prune() {
    let Some(s3) = s3::server("pins") else { return };
    let Some(db) = pg::database("s3_pins") else {
        return;
    };
    let t = project(&db, &s3, 1, 1);
    let older = create(&t);
    std::thread::sleep(Duration::from_millis(1100));
    let newer = create(&t);
    t.run_with([
        "backup", "pin", &older, "--env", "local", "--reason", "audit",
    ])
    .assert_code(0);
    let prune = t.run_with(["backup", "prune", "--env", "local"]);
    prune.assert_code(0);
    let ids = |t: &Test| -> Vec<String> {
        list(t)
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&t),
        vec![newer.clone(), older.clone()],
        "{}",
        prune.stdout
    );
    assert!(prune.stdout.contains("audit"), "{}", prune.stdout);
    t.run_with(["backup", "unpin", &older, "--env", "local"])
        .assert_code(0);
    t.run_with(["backup", "prune", "--env", "local"])
        .assert_code(0);
    assert_eq!(ids(&t), vec![newer]);
}

#[test]
fn a_bad_repository_url_is_bad_input_with_its_position() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:dev.db\nbackups:\n  repository: s3://key:Hunter2Secret@bucket/x\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(out.all().contains("Workflowfile.yaml:5:"), "{}", out.all());
    assert!(!out.all().contains("Hunter2Secret"), "{}", out.all());
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:dev.db\n    backups:\n      repository: ftp://host/x\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.all().contains("unknown repository scheme"),
        "{}",
        out.all()
    );
}

#[test]
fn a_folder_repository_holds_the_backups_of_its_environment() {
    let Some(db) = pg::database("folder_repository") else {
        return;
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\n    backups:\n      repository: file://{}\nmigrations:\n  dir: prisma/migrations\n",
                elsewhere.path().display()
            ),
        )
        .file("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n")
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path());
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.run_with(["backup", "create", "--env", "local"])
        .assert_code(0);
    assert!(!t.exists("backups"), "the default folder was used");
    let id = list(&t)[0]["id"].as_str().unwrap().to_string();
    assert!(elsewhere
        .path()
        .join("local")
        .join(&id)
        .join("manifest.json")
        .is_file());
    t.run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(0);
}

/// A working copy of the same project (same Workflowfile, migrations and repository) in
/// another folder: another runner.
fn working_copy(db: &TestDb, s3: &S3, migrations: &[(&str, &str)]) -> Test {
    let mut t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://{}/dbflow\ninclude:\n  - workflows/*.yaml\n",
                s3.bucket
            ),
        )
        .file("workflows/deploy.yaml", include_str!("../workflows/deploy.yaml"))
        .file("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n")
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path());
    for (name, sql) in migrations {
        t = t.file(&format!("prisma/migrations/{name}/migration.sql"), sql);
    }
    for (key, value) in s3.env() {
        t = t.env(key, &value);
    }
    t
}

#[test]
fn rollback_run_from_another_working_copy_restores_that_runs_backup() {
    let Some(s3) = s3::server("shared") else {
        return;
    };
    let Some(db) = pg::database("s3_rollback_run") else {
        return;
    };
    let first = ("20240101000000_init", INIT);
    let second = (
        "20240102000000_price",
        "ALTER TABLE \"Item\" ADD COLUMN \"price\" NUMERIC;",
    );
    // Runner A deploys the second migration; its pre-deploy backup goes to the bucket.
    let a = working_copy(&db, &s3, &[first]);
    a.run_with(["migrate", "deploy"]).assert_code(0);
    db.psql("INSERT INTO \"Item\" (name) VALUES ('before the deploy')");
    a.write(
        &format!("prisma/migrations/{}/migration.sql", second.0),
        second.1,
    );
    let deploy = a.run_with(["run", "deploy", "--env", "local"]);
    deploy.assert_code(0);
    let journal = deploy.journal();
    let run_id = journal[0]["run_id"].as_str().unwrap().to_string();
    let recorded = serde_json::to_string(&journal).unwrap();
    assert!(recorded.contains("s3://shared/dbflow"), "{recorded}");
    assert!(!recorded.contains(s3::SECRET_KEY));
    // A newer backup after the deploy: `latest` would be the wrong one.
    std::thread::sleep(Duration::from_millis(1100));
    db.psql("INSERT INTO \"Item\" (name, price) VALUES ('after the deploy', 1)");
    a.run_with(["backup", "create", "--env", "local"])
        .assert_code(0);

    // Runner B: another folder, no journal of run A.
    let b = working_copy(&db, &s3, &[first, second]);
    assert!(b.journals().is_empty());
    let into = format!("{}_rb", db.name);
    let out = b.run_with([
        "rollback", "--run", &run_id, "--env", "local", "--into", &into,
    ]);
    out.assert_code(0);
    assert!(
        out.all().contains(&format!("was taken by run {run_id}")),
        "{}",
        out.all()
    );
    let copy = url_for(&db, &into);
    assert_eq!(
        psql(&copy, "SELECT string_agg(name, ',') FROM \"Item\""),
        "before the deploy"
    );
    assert_eq!(
        psql(
            &copy,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'price'"
        ),
        "0"
    );
    psql(db.admin_url(), &format!("DROP DATABASE \"{into}\""));
    let unknown = b.run_with([
        "rollback",
        "--run",
        "no-such-run",
        "--env",
        "local",
        "--into",
        &into,
    ]);
    unknown.assert_code(1);
    assert!(
        unknown.all().contains("took no backup"),
        "{}",
        unknown.all()
    );
    assert!(!db.database_exists(&into));
}

#[test]
fn encrypted_backups_round_trip_and_a_wrong_or_missing_identity_is_refused() {
    use age::secrecy::ExposeSecret;
    let Some(s3) = s3::server("sealed") else {
        return;
    };
    let Some(db) = pg::database("s3_encrypted") else {
        return;
    };
    let key = age::x25519::Identity::generate();
    let secret = key.to_string().expose_secret().to_string();
    let other = age::x25519::Identity::generate();
    let other_secret = other.to_string().expose_secret().to_string();
    let t = project(&db, &s3, 100, 300);
    t.write(
        "Workflowfile.yaml",
        &format!(
            "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://sealed/dbflow\n  encryption:\n    recipients: [{}]\n",
            key.to_public()
        ),
    );
    t.write(
        "keys/right.txt",
        &format!(
            "# created: now\n# public key: {}\n{secret}\n",
            key.to_public()
        ),
    );
    t.write("keys/wrong.txt", &format!("{other_secret}\n"));
    let id = create(&t);

    // Only ciphertext in the bucket; the manifest names who can decrypt.
    let dump = s3.get(&format!("dbflow/local/{id}/dump.pgdump"));
    assert!(
        dump.starts_with(b"age-encryption.org/v1"),
        "not an age file"
    );
    assert_eq!(
        list(&t)[0]["encryption"]["recipients"][0],
        key.to_public().to_string()
    );

    let target = format!("{}_r", db.name);
    let missing = t.run_with(["restore", &id, "--env", "local", "--into", &target]);
    missing.assert_code(2);
    assert!(
        missing.all().contains("DBFLOW_BACKUP_IDENTITY_FILE"),
        "{}",
        missing.all()
    );
    assert!(!db.database_exists(&target));

    let with = |file: &str| {
        let path = t.path().join(file).display().to_string();
        let mut copy = Test::in_dir(t.path())
            .env("DATABASE_URL", &db.url)
            .env("PATH", &pg_path())
            .env("DBFLOW_BACKUP_IDENTITY_FILE", &path);
        for (k, v) in s3.env() {
            copy = copy.env(k, &v);
        }
        copy
    };
    let wrong =
        with("keys/wrong.txt").run_with(["restore", &id, "--env", "local", "--into", &target]);
    wrong.assert_code(2);
    assert!(wrong.all().contains("wrong identity"), "{}", wrong.all());
    assert!(
        !db.database_exists(&target),
        "a half-restored database was left behind"
    );
    with("keys/wrong.txt")
        .run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(2);

    let right = with("keys/right.txt");
    let verified = right.run_with(["backup", "verify", &id, "--env", "local"]);
    verified.assert_code(0);
    assert!(
        verified.stdout.contains("they decrypt"),
        "{}",
        verified.stdout
    );
    let restored = right.run_with(["restore", &id, "--env", "local", "--into", &target]);
    restored.assert_code(0);
    let copy = url_for(&db, &target);
    assert_eq!(psql(&copy, "SELECT count(*) FROM \"Item\""), "100");
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));

    // The inline form works too; no key appears in any output or journal.
    let inline = Test::in_dir(t.path())
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path())
        .env("DBFLOW_BACKUP_IDENTITY", &secret);
    let mut inline = inline;
    for (k, v) in s3.env() {
        inline = inline.env(k, &v);
    }
    inline
        .run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(0);
    let journals = serde_json::to_string(&t.journals()).unwrap();
    for out in [&missing, &wrong, &verified, &restored] {
        assert!(!out.all().contains(&secret[15..]), "{}", out.all());
        assert!(!out.all().contains(&other_secret[15..]), "{}", out.all());
    }
    assert!(!journals.contains(&secret[15..]));
}

#[test]
fn encryption_recipients_are_checked_at_load_and_a_secret_key_is_never_echoed() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:dev.db\nbackups:\n  repository: s3://b/x\n  encryption:\n    recipients: [AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSAMPLE]\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(out.all().contains("Workflowfile.yaml:7:"), "{}", out.all());
    assert!(out.all().contains("not a recipient"), "{}", out.all());
    assert!(!out.all().contains("QQQQQQQQQQQQQQQQQQQQ"), "{}", out.all());
}

#[test]
fn the_prune_lease_admits_one_runner_at_a_time_on_the_real_server() {
    use dbflow::db::backup::repository::{self, object};
    let Some(s3) = s3::server("lease") else {
        return;
    };
    let pairs: Vec<(&str, String)> = s3.env();
    let vars =
        dbflow::config::interpolate::Vars::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    let location =
        repository::Location::parse("s3://lease/dbflow", std::path::Path::new("/")).unwrap();
    let remote = repository::open(&location, &vars).unwrap();
    let rt = object::runtime().unwrap();
    let first = rt
        .block_on(object::take_lease(&remote, "local", Duration::ZERO))
        .expect("the first runner takes the lease");
    let second = rt.block_on(object::take_lease(
        &remote,
        "local",
        Duration::from_millis(600),
    ));
    let refused = second
        .err()
        .expect("a second runner must not get a held lease")
        .to_string();
    assert!(refused.contains("another runner is pruning"), "{refused}");
    rt.block_on(first.release(&remote));
    let third = rt
        .block_on(object::take_lease(&remote, "local", Duration::ZERO))
        .expect("released: free again");
    rt.block_on(third.release(&remote));
}

#[test]
fn two_concurrent_prunes_apply_the_retention_once_and_keep_what_it_keeps() {
    let Some(s3) = s3::server("prune") else {
        return;
    };
    let Some(db) = pg::database("s3_two_prunes") else {
        return;
    };
    let t = project(&db, &s3, 10, 10);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create(&t));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let newest = ids.last().unwrap().clone();
    let a = t.spawn_with(["backup", "prune", "--env", "local"]);
    let b = t.spawn_with(["backup", "prune", "--env", "local"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // 7 daily: only the newest of today stays; each older one deleted exactly once.
    let left: Vec<String> = list(&t)
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![newest.clone()]);
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    for old in &ids[..3] {
        assert_eq!(
            stdout.matches(&format!("delete       {old}")).count(),
            1,
            "{stdout}"
        );
    }
    assert!(!s3
        .keys("dbflow/")
        .iter()
        .any(|k| k.contains(".prune-lease")));
    assert_eq!(s3.keys("dbflow/").len(), 2, "{:?}", s3.keys("dbflow/"));
}

#[test]
fn backup_copy_moves_a_local_backup_into_the_bucket_verified() {
    let Some(s3) = s3::server("copy") else { return };
    let Some(db) = pg::database("s3_copy") else {
        return;
    };
    // Backups in the default folder first.
    let t = project(&db, &s3, 30, 100);
    t.write(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\n",
    );
    t.run_with(["backup", "create", "--env", "local"])
        .assert_code(0);
    let id = list(&t)[0]["id"].as_str().unwrap().to_string();
    let out = t.run_with([
        "backup",
        "copy",
        &id,
        "--env",
        "local",
        "--to",
        "s3://copy/dbflow",
    ]);
    out.assert_code(0);
    assert!(out.stdout.contains("copied from"), "{}", out.stdout);
    assert!(!out.all().contains(s3::SECRET_KEY));
    let again = t.run_with([
        "backup",
        "copy",
        &id,
        "--env",
        "local",
        "--to",
        "s3://copy/dbflow",
    ]);
    again.assert_code(1);
    assert!(again.all().contains("already holds"), "{}", again.all());

    // The bucket's catalog now has it: verified by streaming it back, and restorable.
    t.write(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://copy/dbflow\n",
    );
    let listed = list(&t);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    t.run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(0);
    let target = format!("{}_c", db.name);
    t.run_with(["restore", &id, "--env", "local", "--into", &target])
        .assert_code(0);
    assert_eq!(
        psql(&url_for(&db, &target), "SELECT count(*) FROM \"Item\""),
        "30"
    );
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));
}

#[test]
fn memory_stays_flat_while_a_dump_streams_to_and_from_the_bucket() {
    let time = std::path::Path::new("/usr/bin/time");
    if !time.is_file() {
        eprintln!("skipping: /usr/bin/time measures the peak RSS");
        return;
    }
    let Some(s3) = s3::server("rss") else { return };
    let Some(db) = pg::database("s3_rss") else {
        return;
    };
    // ~72 MB of incompressible rows: far more than the buffers the upload may hold.
    let t = project_big(&db, &s3, 72);
    let peak_kib = |args: &[&str]| -> u64 {
        let mut full = vec!["-f", "RSS=%M", env!("CARGO_BIN_EXE_dbflow")];
        full.extend_from_slice(args);
        let mut command = std::process::Command::new(time);
        command.args(&full).current_dir(t.path());
        command.env("DATABASE_URL", &db.url).env("PATH", pg_path());
        for (k, v) in s3.env() {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        stderr
            .lines()
            .filter_map(|l| l.strip_prefix("RSS="))
            .next_back()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no RSS in {stderr}"))
    };
    let backup = peak_kib(&["backup", "create", "--env", "local"]);
    let id = list(&t)[0]["id"].as_str().unwrap().to_string();
    let size = list(&t)[0]["size"].as_u64().unwrap();
    assert!(size > 64 << 20, "the dump is too small to tell: {size}");
    let target = format!("{}_m", db.name);
    let restore = peak_kib(&["restore", &id, "--env", "local", "--into", &target]);
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));
    for (what, kib) in [("backup create", backup), ("restore", restore)] {
        assert!(kib < 64 * 1024, "{what}: peak RSS {} MiB", kib / 1024);
    }
}

#[test]
fn max_backup_age_reads_the_bucket() {
    let Some(s3) = s3::server("fresh") else {
        return;
    };
    let Some(db) = pg::database("s3_max_backup_age") else {
        return;
    };
    let t = project(&db, &s3, 1, 1);
    t.write(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://fresh/dbflow\nworkflows:\n  release:\n    allow_unguarded_deploy: 'these tests are about backups'\n    steps:\n      - deploy: { max_backup_age: 1h }\n",
    );
    let blocked = t.run_with(["run", "release", "--env", "local"]);
    blocked.assert_code(3);
    assert!(
        blocked
            .all()
            .contains("no verified backup of `local` in s3://fresh/dbflow"),
        "{}",
        blocked.all()
    );
    create(&t);
    let out = t.run_with(["run", "release", "--env", "local"]);
    out.assert_code(0);
}

#[test]
fn backup_keygen_writes_a_private_identity_and_prints_only_its_recipient() {
    // No Workflowfile: the key is made before the project is configured.
    let t = Test::new();
    let out = t.run_with(["backup", "keygen", "--out", "backup.key"]);
    out.assert_code(0);
    let recipient = out.stdout.trim().to_string();
    assert!(recipient.starts_with("age1"), "{}", out.all());
    let file = t.read("backup.key");
    let secret = file
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("an identity line");
    assert!(
        file.contains(&format!("# public key: {recipient}")),
        "{file}"
    );
    assert!(!out.all().contains(&secret[16..]), "{}", out.all());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join("backup.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An identity is never overwritten: backups encrypted to it would be lost.
    let again = t.run_with(["backup", "keygen", "--out", "backup.key"]);
    again.assert_code(2);
    assert!(again.all().contains("already exists"), "{}", again.all());
    assert_eq!(t.read("backup.key"), file);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn a_backup_copied_into_a_folder_repository_is_private_to_its_owner() {
    let Some(s3) = s3::server("to-folder") else {
        return;
    };
    let Some(db) = pg::database("s3_copy_private") else {
        return;
    };
    let t = project(&db, &s3, 20, 100);
    let id = create(&t);
    let out = t.run_with(["backup", "copy", &id, "--env", "local", "--to", "vault"]);
    out.assert_code(0);
    let dir = t.path().join("vault/local").join(&id);
    assert_eq!(mode(&t.path().join("vault/local")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let file = file.unwrap().path();
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        files += 1;
    }
    assert_eq!(files, 2, "the dump and its manifest");
    // The folder catalog reads the copy as a verified backup.
    t.write(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: vault\n",
    );
    let listed = list(&t);
    assert_eq!(listed[0]["id"], id.as_str());
    t.run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(0);
}

#[test]
fn reuse_if_younger_than_reuses_a_backup_in_the_bucket_sealed_as_configured() {
    let Some(s3) = s3::server("reuse") else {
        return;
    };
    let Some(db) = pg::database("s3_reuse") else {
        return;
    };
    let t = project(&db, &s3, 10, 50);
    let workflowfile = |extra: &str| {
        format!(
            "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://reuse/dbflow\n{extra}workflows:\n  nightly:\n    steps:\n      - backup: {{ reuse_if_younger_than: 30m }}\n"
        )
    };
    t.write("Workflowfile.yaml", &workflowfile(""));
    let reused = |t: &Test| {
        let out = t.run_with(["run", "nightly", "--env", "local", "--json"]);
        out.assert_code(0);
        let doc: Value = serde_json::from_str(&out.stdout).expect("json");
        let backup = doc["outputs"]["backup-1"].clone();
        assert_eq!(backup["repository"], "s3://reuse/dbflow", "{backup}");
        (
            backup["reused"].as_bool().unwrap(),
            backup["backup_id"].as_str().unwrap().to_string(),
        )
    };
    let (first, id) = reused(&t);
    assert!(!first);
    assert_eq!(reused(&t), (true, id.clone()));
    assert_eq!(list(&t).len(), 1);

    // Encryption configured now: the plain backup is not reused, a sealed one is taken.
    let key = age::x25519::Identity::generate();
    t.write(
        "Workflowfile.yaml",
        &workflowfile(&format!(
            "  encryption:\n    recipients: [{}]\n",
            key.to_public()
        )),
    );
    let (again, sealed) = reused(&t);
    assert!(!again);
    assert_ne!(sealed, id);
    assert_eq!(reused(&t), (true, sealed));
    assert_eq!(list(&t).len(), 2);

    // A new migration head: never reused.
    db.psql("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES ('x', 'x', '20240202000000_more', now(), now(), 1)");
    assert!(!reused(&t).0);
}

#[test]
fn an_in_place_restore_from_the_bucket_restores_beside_validates_then_swaps() {
    let Some(s3) = s3::server("in-place") else {
        return;
    };
    let Some(db) = pg::database("s3_scratch_in_place") else {
        return;
    };
    let t = project(&db, &s3, 40, 100);
    let id = create(&t);
    db.psql("INSERT INTO \"Item\" (name) VALUES ('written after the backup')");

    // Without the typed word nothing is touched.
    let refused = t.run_with(["restore", &id, "--env", "local", "--in-place"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert_eq!(db.psql("SELECT count(*) FROM \"Item\""), "41");

    let out = t.run_with([
        "restore",
        &id,
        "--env",
        "local",
        "--in-place",
        "--confirm",
        "RESTORE",
    ]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("from s3://in-place/dbflow"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("validating it before anything is replaced"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("kept as"), "{}", out.stdout);
    assert_eq!(db.psql("SELECT count(*) FROM \"Item\""), "40");
    assert!(!out.all().contains(s3::SECRET_KEY));
}

#[test]
fn rehearse_restores_its_scratch_copy_from_the_bucket() {
    let Some(s3) = s3::server("rehearsal") else {
        return;
    };
    let Some(db) = pg::database("s3_rehearse") else {
        return;
    };
    let t = project(&db, &s3, 10, 50);
    t.write(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://rehearsal/dbflow\nworkflows:\n  try:\n    steps:\n      - backup: {}\n      - rehearse: {}\n",
    );
    t.write(
        "prisma/migrations/20240102000000_note/migration.sql",
        "ALTER TABLE \"Item\" ADD COLUMN \"note\" TEXT;\n",
    );
    let out = t.run_with(["run", "try", "--env", "local"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("from s3://rehearsal/dbflow into"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("1 pending migration(s) apply cleanly on a copy of backup"),
        "{}",
        out.stdout
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"),
        "0",
        "the primary is untouched"
    );
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE '{}%rehearsal%'",
            db.name
        )),
        "0",
        "the scratch copy was dropped"
    );
}

#[test]
fn an_access_key_equal_to_the_environment_name_does_not_mislead_the_catalog() {
    // Credentials are redacted from every document, manifests included: with an access
    // key id `local`, the stored manifest says `****` where the environment was.
    let Some(s3) = s3::server("same-word") else {
        return;
    };
    let Some(db) = pg::database("s3_same_word") else {
        return;
    };
    let t = project(&db, &s3, 10, 50).env("AWS_ACCESS_KEY_ID", "local");
    let id = create(&t);
    t.run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(0);
    let target = format!("{}_w", db.name);
    let out = t.run_with(["restore", &id, "--env", "local", "--into", &target]);
    out.assert_code(0);
    assert_eq!(
        psql(&url_for(&db, &target), "SELECT count(*) FROM \"Item\""),
        "10"
    );
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));
}

#[test]
fn a_restore_from_the_bucket_checks_the_new_name_before_anything_is_downloaded() {
    let Some(s3) = s3::server("names") else {
        return;
    };
    let Some(db) = pg::database("s3_names") else {
        return;
    };
    let t = project(&db, &s3, 5, 10);
    let id = create(&t);
    // PostgreSQL would silently cut it to 63 bytes: a database under another name.
    let long = format!("{}_{}", db.name, "x".repeat(70));
    let out = t.run_with(["restore", &id, "--env", "local", "--into", &long]);
    out.assert_code(2);
    assert!(out.all().contains("PostgreSQL keeps 63"), "{}", out.all());
    assert_eq!(
        psql(
            db.admin_url(),
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE '{}\\_x%'",
                db.name
            )
        ),
        "0"
    );
}

/// Replaces an object with signed requests (see [`signed_get`]).
fn signed_put(s3: &S3, key: &str, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt;
    let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(&s3.bucket);
    for (name, value) in s3.env() {
        builder = builder.with_config(name.to_ascii_lowercase().parse().unwrap(), value);
    }
    let store = builder.build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let path = object_store::path::Path::parse(key).unwrap();
        store.put(&path, bytes.into()).await.unwrap();
    });
}

/// `backups.format: directory` (2 jobs) into `s3://<bucket>/dbflow`, with `extra` lines
/// under `backups:`; temporary folders go to `<project>/tmp` (checked empty afterwards).
fn directory_format(t: Test, s3: &S3, extra: &str) -> Test {
    t.write(
        "Workflowfile.yaml",
        &format!(
            "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\nbackups:\n  repository: s3://{}/dbflow\n  format: directory\n  jobs: 2\n{extra}",
            s3.bucket
        ),
    );
    let tmp = t.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    t.env("TMPDIR", tmp.to_str().unwrap())
}

/// What is left in the project's temporary folder.
fn temporary_leftovers(t: &Test) -> Vec<String> {
    std::fs::read_dir(t.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

fn checksum(url: &str) -> String {
    psql(
        url,
        "SELECT count(*) || ':' || md5(string_agg(name || blob::text, '' ORDER BY id)) FROM \"Item\"",
    )
}

#[test]
fn a_directory_format_backup_goes_to_the_bucket_file_by_file_and_restores() {
    let Some(s3) = s3::server("dirfmt") else {
        return;
    };
    let Some(db) = pg::database("s3_dirfmt") else {
        return;
    };
    // One file above a part (a multipart upload), the others small (one put each).
    let t = directory_format(project_big(&db, &s3, 12), &s3, "");
    let id = create(&t);

    let listed = list(&t);
    assert_eq!(listed[0]["state"], "verified", "{}", listed[0]);
    assert_eq!(listed[0]["format"], "directory", "{}", listed[0]);
    let keys = s3.keys(&format!("dbflow/local/{id}/"));
    assert!(
        keys.contains(&format!("dbflow/local/{id}/dump/toc.dat")),
        "{keys:?}"
    );
    // The manifest lists every stored file with its size and sha256.
    let manifest: Value = serde_json::from_slice(&signed_get(
        &s3,
        &format!("dbflow/local/{id}/manifest.json"),
    ))
    .unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(files.len() >= 3, "{manifest}");
    assert_eq!(files.len() + 1, keys.len(), "{keys:?}");
    for file in files {
        let path = file["path"].as_str().unwrap();
        let bytes = signed_get(&s3, &format!("dbflow/local/{id}/dump/{path}"));
        assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap(), "{path}");
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            file["sha256"].as_str().unwrap(),
            "{path}"
        );
    }
    assert!(files.iter().any(|f| f["size"].as_u64().unwrap() > 8 << 20));
    assert_eq!(s3.open_uploads(), 0);
    // A fleet target's backup (`<env>/<target>/<id>/`) is not a backup of `<env>`.
    signed_put(
        &s3,
        &format!("dbflow/local/acme/{id}/manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    );
    assert_eq!(list(&t).len(), 1, "{:?}", list(&t));
    assert!(!t.exists("backups"), "a local backups folder was written");

    let verified = t.run_with(["backup", "verify", &id, "--env", "local"]);
    verified.assert_code(0);
    assert!(
        verified.stdout.contains("stored files"),
        "{}",
        verified.stdout
    );

    let target = format!("{}_r", db.name);
    let restored = t.run_with(["restore", &id, "--env", "local", "--into", &target]);
    restored.assert_code(0);
    let copy = url_for(&db, &target);
    assert_eq!(checksum(&copy), checksum(&db.url));
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));

    let drill = t.run_with(["drill", "--env", "local", "--backup", &id]);
    drill.assert_code(0);
    assert!(drill.stdout.contains("drill PASS"), "{}", drill.stdout);
    for out in [&verified, &restored, &drill] {
        assert!(!out.all().contains(s3::SECRET_KEY), "{}", out.all());
    }
    assert!(
        temporary_leftovers(&t).is_empty(),
        "{:?}",
        temporary_leftovers(&t)
    );
}

#[test]
fn a_flipped_byte_in_one_file_of_a_directory_backup_fails_verify_and_restore() {
    let Some(s3) = s3::server("dirflip") else {
        return;
    };
    let Some(db) = pg::database("s3_dirflip") else {
        return;
    };
    let t = directory_format(project(&db, &s3, 100, 300), &s3, "");
    let id = create(&t);
    let manifest: Value = serde_json::from_slice(&signed_get(
        &s3,
        &format!("dbflow/local/{id}/manifest.json"),
    ))
    .unwrap();
    // The largest file: a table's data.
    let file = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|f| f["size"].as_u64().unwrap())
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let key = format!("dbflow/local/{id}/dump/{file}");
    let mut bytes = signed_get(&s3, &key);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    signed_put(&s3, &key, bytes);

    let target = format!("{}_r", db.name);
    let restored = t.run_with(["restore", &id, "--env", "local", "--into", &target]);
    restored.assert_code(1);
    assert!(
        restored.all().contains("sha256 mismatch") && restored.all().contains(&file),
        "{}",
        restored.all()
    );
    // Refused before pg_restore (or even createdb) ran.
    assert!(!restored.all().contains("createdb"), "{}", restored.all());
    assert!(!db.database_exists(&target));
    assert!(temporary_leftovers(&t).is_empty());

    let verified = t.run_with(["backup", "verify", &id, "--env", "local"]);
    verified.assert_code(1);
    assert!(
        verified.all().contains("sha256 mismatch"),
        "{}",
        verified.all()
    );
    assert_eq!(list(&t)[0]["state"], "failed");

    // Pruning removes every object of a directory-format backup, manifest first.
    std::thread::sleep(Duration::from_millis(1100));
    let newer = create(&t);
    t.run_with(["backup", "prune", "--env", "local"])
        .assert_code(0);
    let left: Vec<Value> = list(&t).iter().map(|b| b["id"].clone()).collect();
    assert_eq!(left, vec![Value::from(newer.as_str())]);
    assert_eq!(
        s3.keys(&format!("dbflow/local/{id}/")),
        Vec::<String>::new()
    );
}

#[test]
fn an_interrupted_directory_upload_is_never_listed_and_leaves_nothing() {
    let Some(s3) = s3::server("dirstop") else {
        return;
    };
    let Some(db) = pg::database("s3_dirstop") else {
        return;
    };
    let t = directory_format(project_big(&db, &s3, 64), &s3, "");
    let mut child = t.spawn_with(["backup", "create", "--env", "local"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while s3.open_uploads() == 0 {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "dbflow ended before the upload was seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(list(&t).is_empty(), "an interrupted backup was listed");
    assert_eq!(s3.open_uploads(), 0, "the multipart upload was not aborted");
    assert_eq!(s3.keys("dbflow/"), Vec::<String>::new());
    assert!(
        temporary_leftovers(&t).is_empty(),
        "the private dump folder was left: {:?}",
        temporary_leftovers(&t)
    );
}

#[test]
fn an_encrypted_directory_backup_round_trips_file_by_file() {
    use age::secrecy::ExposeSecret;
    let Some(s3) = s3::server("dirsealed") else {
        return;
    };
    let Some(db) = pg::database("s3_dirsealed") else {
        return;
    };
    let key = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    let t = directory_format(
        project(&db, &s3, 100, 300),
        &s3,
        &format!("  encryption:\n    recipients: [{}]\n", key.to_public()),
    );
    t.write(
        "keys/right.txt",
        &format!("{}\n", key.to_string().expose_secret()),
    );
    t.write(
        "keys/wrong.txt",
        &format!("{}\n", other.to_string().expose_secret()),
    );
    let id = create(&t);
    let manifest: Value = serde_json::from_slice(&signed_get(
        &s3,
        &format!("dbflow/local/{id}/manifest.json"),
    ))
    .unwrap();
    for file in manifest["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let stored = signed_get(&s3, &format!("dbflow/local/{id}/dump/{path}"));
        assert!(
            stored.starts_with(b"age-encryption.org/v1"),
            "{path} is not an age file"
        );
    }
    let target = format!("{}_r", db.name);
    let with = |file: &str| {
        let mut copy = Test::in_dir(t.path())
            .env("DATABASE_URL", &db.url)
            .env("PATH", &pg_path())
            .env("TMPDIR", t.path().join("tmp").to_str().unwrap())
            .env(
                "DBFLOW_BACKUP_IDENTITY_FILE",
                t.path().join(file).to_str().unwrap(),
            );
        for (k, v) in s3.env() {
            copy = copy.env(k, &v);
        }
        copy
    };
    let wrong =
        with("keys/wrong.txt").run_with(["restore", &id, "--env", "local", "--into", &target]);
    wrong.assert_code(2);
    assert!(wrong.all().contains("wrong identity"), "{}", wrong.all());
    assert!(!db.database_exists(&target));
    let right = with("keys/right.txt");
    right
        .run_with(["backup", "verify", &id, "--env", "local"])
        .assert_code(0);
    right
        .run_with(["restore", &id, "--env", "local", "--into", &target])
        .assert_code(0);
    assert_eq!(checksum(&url_for(&db, &target)), checksum(&db.url));
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));
    assert!(temporary_leftovers(&t).is_empty());
}

#[test]
fn memory_stays_flat_while_a_directory_format_backup_moves_file_by_file() {
    let time = std::path::Path::new("/usr/bin/time");
    if !time.is_file() {
        eprintln!("skipping: /usr/bin/time measures the peak RSS");
        return;
    }
    let Some(s3) = s3::server("dirrss") else {
        return;
    };
    let Some(db) = pg::database("s3_dirrss") else {
        return;
    };
    let t = directory_format(project_big(&db, &s3, 72), &s3, "");
    let peak_kib = |args: &[&str]| -> u64 {
        let mut full = vec!["-f", "RSS=%M", env!("CARGO_BIN_EXE_dbflow")];
        full.extend_from_slice(args);
        let mut command = std::process::Command::new(time);
        command.args(&full).current_dir(t.path());
        command
            .env("DATABASE_URL", &db.url)
            .env("PATH", pg_path())
            .env("TMPDIR", t.path().join("tmp"));
        for (k, v) in s3.env() {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        stderr
            .lines()
            .filter_map(|l| l.strip_prefix("RSS="))
            .next_back()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no RSS in {stderr}"))
    };
    let backup = peak_kib(&["backup", "create", "--env", "local"]);
    let id = list(&t)[0]["id"].as_str().unwrap().to_string();
    let size = list(&t)[0]["size"].as_u64().unwrap();
    assert!(size > 64 << 20, "the dump is too small to tell: {size}");
    let target = format!("{}_m", db.name);
    let restore = peak_kib(&["restore", &id, "--env", "local", "--into", &target]);
    psql(db.admin_url(), &format!("DROP DATABASE \"{target}\""));
    eprintln!(
        "directory format, {} MiB: peak RSS backup create {} MiB, restore {} MiB",
        size >> 20,
        backup / 1024,
        restore / 1024
    );
    for (what, kib) in [("backup create", backup), ("restore", restore)] {
        assert!(kib < 64 * 1024, "{what}: peak RSS {} MiB", kib / 1024);
    }
    assert!(temporary_leftovers(&t).is_empty());
}
