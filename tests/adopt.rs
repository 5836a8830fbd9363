//! Adopting dbflow on an existing Prisma project (issue 15): dbflow's own state out of the
//! app's schema, Prisma's `?schema=` and `.env` files, `dbflow init` on a Prisma project,
//! and drift checks that survive other tools applying migrations.

use crate::support::cli::Test;
use crate::support::pg::{self, TestDb};
use std::process::Command;

const INIT: &str = "CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN');\nCREATE TABLE \"User\" (\n    \"id\" SERIAL NOT NULL,\n    \"email\" TEXT NOT NULL,\n    \"role\" \"Role\" NOT NULL DEFAULT 'USER',\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\nCREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\n";
const POSTS: &str = "CREATE TABLE \"Post\" (\n    \"id\" SERIAL NOT NULL,\n    \"authorId\" INTEGER NOT NULL,\n    CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\")\n);\nALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY (\"authorId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;\n";
const NICK: &str = "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\nDO $$ BEGIN\n  UPDATE \"User\" SET \"nickname\" = split_part(\"email\", '@', 1);\nEND $$;\n";

const MIGRATIONS: &[(&str, &str)] = &[
    ("20240101000000_init", INIT),
    ("20240102000000_posts", POSTS),
    ("20240103000000_nickname", NICK),
];

/// `_prisma_migrations` exactly as Prisma's migration engine creates it.
const PRISMA_HISTORY_DDL: &str = "CREATE TABLE \"_prisma_migrations\" (\n    \"id\" VARCHAR(36) PRIMARY KEY NOT NULL,\n    \"checksum\" VARCHAR(64) NOT NULL,\n    \"finished_at\" TIMESTAMPTZ,\n    \"migration_name\" VARCHAR(255) NOT NULL,\n    \"logs\" TEXT,\n    \"rolled_back_at\" TIMESTAMPTZ,\n    \"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(),\n    \"applied_steps_count\" INTEGER NOT NULL DEFAULT 0\n)";

/// A PostgreSQL Prisma project whose environment `local` reads `DATABASE_URL`, with the
/// first `count` migrations of [`MIGRATIONS`].
fn project(db: &TestDb, count: usize, extra_config: &str) -> Test {
    let mut t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!("environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\n{extra_config}"),
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .env("DATABASE_URL", &db.url);
    for (name, sql) in &MIGRATIONS[..count] {
        t = t.file(&format!("prisma/migrations/{name}/migration.sql"), sql);
    }
    t
}

fn add_migration(t: &Test, index: usize) {
    let (name, sql) = MIGRATIONS[index];
    t.write(&format!("prisma/migrations/{name}/migration.sql"), sql);
}

/// `pg_dump --schema-only` of `url` limited to `schema`, without the lines that differ
/// between any two dumps (comments with versions, psql 17's `\restrict` keys).
fn schema_dump(url: &str, schema: &str) -> String {
    let bin = pg::bin_dir().expect("PostgreSQL binaries");
    let out = Command::new(bin.join("pg_dump"))
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-n",
            schema,
            "-d",
            url,
        ])
        .output()
        .expect("running pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Item 6: a dbflow deploy leaves in `public` exactly what psql running the same files
/// leaves there, plus the `_prisma_migrations` table Prisma itself would create (the
/// psql-built side gets it from Prisma's own DDL, so both sides are what Prisma would
/// see). dbflow's state lives in the `dbflow` schema.
#[test]
fn deploy_leaves_the_app_schema_as_prisma_would() {
    let Some(db) = pg::database("adopt_public_equals_psql") else {
        return;
    };
    let Some(reference) = pg::database("adopt_public_equals_psql_ref") else {
        return;
    };
    let t = project(&db, 3, "");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    for (_, sql) in MIGRATIONS {
        reference.psql(sql);
    }
    reference.psql(PRISMA_HISTORY_DDL);
    let ours = schema_dump(&db.url, "public");
    assert!(!ours.contains("_dbflow"), "{ours}");
    assert_eq!(ours, schema_dump(&reference.url, "public"));
    assert_eq!(
        db.psql("SELECT count(*) FROM dbflow._dbflow_schema_state"),
        "1"
    );
    t.run_with(["migrate", "status"]).assert_code(0);
}

/// A state table left in `public` by an older dbflow is still read by status, and the
/// next deploy moves it into the state schema (here a configured one).
#[test]
fn legacy_state_table_in_public_is_moved_by_the_next_deploy() {
    let Some(db) = pg::database("adopt_legacy_state_moved") else {
        return;
    };
    let t = project(&db, 2, "  state_schema: ops_state\n");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(
        db.psql("SELECT to_regclass('dbflow._dbflow_schema_state') IS NULL"),
        "t"
    );
    // What an older dbflow left behind.
    db.psql("ALTER TABLE ops_state._dbflow_schema_state SET SCHEMA public; DROP SCHEMA ops_state");
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(0);
    assert!(
        status.stdout.contains("schema drift: none"),
        "{}",
        status.stdout
    );
    db.psql("ALTER TABLE \"User\" ADD COLUMN shadow int");
    let drifted = t.run_with(["migrate", "status"]);
    drifted.assert_code(4);
    assert!(
        drifted.stdout.contains("\"User\".shadow integer"),
        "{}",
        drifted.stdout
    );
    db.psql("ALTER TABLE \"User\" DROP COLUMN shadow");

    add_migration(&t, 2);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(
        db.psql("SELECT to_regclass('public._dbflow_schema_state') IS NULL, to_regclass('ops_state._dbflow_schema_state') IS NOT NULL"),
        "t|t"
    );
    t.run_with(["migrate", "status"]).assert_code(0);
}

/// `url` with `password` set (the test server trusts local connections, so any password
/// connects: what matters is that it never shows).
fn with_password(url: &str, password: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("test URL");
    parsed
        .set_password(Some(password))
        .expect("a URL with a host");
    parsed.to_string()
}

/// Item 7: Prisma's `?schema=NAME` puts the history table and the migrations' objects in
/// that schema (created when missing, as Prisma does), and status reads them there.
#[test]
fn url_schema_parameter_is_honoured_like_prisma() {
    let Some(db) = pg::database("adopt_url_schema") else {
        return;
    };
    let t = project(&db, 3, "").env("DATABASE_URL", &format!("{}?schema=tenant_a", db.url));
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(
        db.psql("SELECT count(*) FROM tenant_a._prisma_migrations WHERE finished_at IS NOT NULL"),
        "3"
    );
    assert_eq!(
        db.psql("SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'tenant_a'"),
        "Post,User,_prisma_migrations"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"),
        "0"
    );
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(0);
    assert!(status.stdout.contains("3 applied"), "{}", status.stdout);
    // The scratch database gets the same `?schema=`: the migrations build the same schema.
    let shadow = t.run_with(["migrate", "status", "--shadow"]);
    shadow.assert_code(0);
    assert!(
        shadow.stdout.contains("schema drift: none"),
        "{}",
        shadow.stdout
    );
    // A backup of such a database still works (libpq never sees `schema=`).
    let backup = t.run_with(["backup", "create"]);
    backup.assert_code(0);
}

/// Item 7: `prisma/.env` is read where Prisma reads it (zero-config and with a
/// Workflowfile), its secrets redacted like any other.
#[test]
fn prisma_dotenv_is_read_and_redacted() {
    let Some(db) = pg::database("adopt_prisma_dotenv") else {
        return;
    };
    let url = with_password(&db.url, "pr1sma-dotenv-secret");
    let t = Test::new()
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .file("prisma/.env", &format!("DATABASE_URL=\"{url}\"\n"));
    let deploy = t.run_with(["migrate", "deploy"]);
    deploy.assert_code(0);
    assert_eq!(db.psql("SELECT count(*) FROM _prisma_migrations"), "1");
    let shown = t.run_with(["env"]);
    shown.assert_code(0);
    for out in [&deploy, &shown] {
        assert!(!out.all().contains("pr1sma-dotenv-secret"), "{}", out.all());
    }
    assert!(
        shown.all().contains(&format!("/{}", db.name)),
        "{}",
        shown.all()
    );

    // The same with a Workflowfile naming ${DATABASE_URL}.
    t.write(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\n",
    );
    t.run_with(["migrate", "status"]).assert_code(0);

    // A variable with different values in .env and prisma/.env: refused, as Prisma does,
    // naming the variable and the files, never the values.
    t.write(".env", "DATABASE_URL=postgres://other:0ther-secret@db/x\n");
    let clash = t.run_with(["migrate", "status"]);
    clash.assert_code(2);
    assert!(clash.all().contains("DATABASE_URL"), "{}", clash.all());
    assert!(clash.all().contains("prisma/.env"), "{}", clash.all());
    assert!(
        !clash.all().contains("0ther-secret") && !clash.all().contains("pr1sma-dotenv-secret"),
        "{}",
        clash.all()
    );
}

/// Item 8: `dbflow init` on a PostgreSQL Prisma project makes `local` that database
/// (DATABASE_URL from `.env`), maps `NODE_ENV=development` onto it, appends `backups/`
/// and `.dbflow/` to an existing `.gitignore`, prints the next commands, and the result
/// validates and deploys without a single edit.
#[test]
fn init_on_a_postgres_prisma_project_deploys_without_edits() {
    let Some(db) = pg::database("adopt_init_postgres") else {
        return;
    };
    let mut t = Test::new()
        .file(
            "prisma/schema.prisma",
            "datasource db {\n  provider = \"postgresql\"\n  url      = env(\"DATABASE_URL\")\n}\n",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "# Please do not edit this file manually\nprovider = \"postgresql\"\n",
        )
        .file(".gitignore", "node_modules\n/.env")
        .file(
            ".env",
            &format!("DATABASE_URL=\"{}\"\nNODE_ENV=development\n", db.url),
        );
    for (name, sql) in MIGRATIONS {
        t = t.file(&format!("prisma/migrations/{name}/migration.sql"), sql);
    }
    let init = t.run_with(["init"]);
    init.assert_code(0);
    assert!(
        init.stdout.contains("next:\n  dbflow validate\n  dbflow migrate status --env local\n  dbflow run deploy --env local --dry-run\n"),
        "{}",
        init.stdout
    );
    assert_eq!(
        t.read(".gitignore"),
        "node_modules\n/.env\n# dbflow: backups hold customer data; .dbflow/ holds run journals\nbackups/\n.dbflow/\n"
    );
    assert!(
        t.read("Workflowfile.yaml")
            .contains("url: ${LOCAL_DATABASE_URL:-${DATABASE_URL}}"),
        "{}",
        t.read("Workflowfile.yaml")
    );
    t.run_with(["validate"]).assert_code(0);
    let deploy = t.run_with(["run", "deploy", "--env", "local"]);
    deploy.assert_code(0);
    assert_eq!(
        db.psql("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL"),
        "3"
    );
    // NODE_ENV=development from .env names `local` through the alias.
    let env = t.run_with(["env", "--json"]);
    env.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&env.stdout).unwrap();
    assert_eq!(doc["name"], "local", "{}", env.stdout);
    t.run_with(["migrate", "status"]).assert_code(0);

    // A second init changes nothing, .gitignore included.
    let before = t.read(".gitignore");
    t.run_with(["init"]).assert_code(2);
    assert_eq!(t.read(".gitignore"), before);
}

/// Item 8: an entry `.gitignore` already has (in any spelling) is not repeated, a missing
/// one is appended after a last line without its newline; a project without Prisma keeps
/// a SQLite `local`.
#[test]
fn init_never_duplicates_gitignore_entries() {
    let t = Test::new().file(".gitignore", "/backups");
    let init = t.run_with(["init"]);
    init.assert_code(0);
    assert_eq!(
        t.read(".gitignore"),
        "/backups\n# dbflow: backups hold customer data; .dbflow/ holds run journals\n.dbflow/\n"
    );
    assert!(
        init.stdout.contains("appended to ./.gitignore: .dbflow/"),
        "{}",
        init.stdout
    );
    assert!(t
        .read("Workflowfile.yaml")
        .contains("url: ${LOCAL_DATABASE_URL:-sqlite:.dbflow/local.db}"));
}

/// Applies migration `index` the way `prisma migrate deploy` does: a started row, the
/// script (here through psql), then `finished_at = now()` and the step count.
fn apply_like_prisma(db: &TestDb, t: &Test, index: usize) {
    use sha2::Digest;
    let (name, sql) = MIGRATIONS[index];
    add_migration(t, index);
    let checksum = hex::encode(sha2::Sha256::digest(sql.as_bytes()));
    let id = format!("7c1e5b0a-0000-4000-8000-00000000000{index}");
    db.psql(&format!(
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES ('{id}', '{checksum}', '{name}', now(), 0)"
    ));
    db.psql(sql);
    db.psql(&format!(
        "UPDATE _prisma_migrations SET finished_at = now(), applied_steps_count = 1 WHERE id = '{id}'"
    ));
}

/// Scratch databases left on the server beside `db`.
fn scratch_databases(db: &TestDb) -> String {
    db.psql(&format!(
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '{}\\_shadow\\_%' AND datname <> '{}'",
        &db.name[..db.name.len().min(40)],
        db.name
    ))
}

/// Item 5: dbflow deploys part, Prisma applies the rest. Status neither invents drift
/// (the recorded schema is stale and says so) nor hides it: `--shadow` builds the
/// migrations in a scratch database, finds the schema clean (exit 0), drops the scratch
/// database and records the baseline again; a hand-made change is then named (exit 4).
#[test]
fn drift_after_prisma_applied_the_rest_is_checked_in_a_scratch_database() {
    let Some(db) = pg::database("adopt_shadow_sandbox") else {
        return;
    };
    let t = project(&db, 2, "");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    apply_like_prisma(&db, &t, 2);

    let stale = t.run_with(["migrate", "status"]);
    stale.assert_code(0);
    assert!(
        stale.stdout.contains("3 applied")
            && stale.stdout.contains(
                "`20240103000000_nickname`) were applied after dbflow recorded the schema"
            )
            && stale.stdout.contains("--shadow"),
        "{}",
        stale.stdout
    );
    assert!(
        !stale.stdout.contains("outside migrations"),
        "{}",
        stale.stdout
    );

    let shadow = t.run_with(["migrate", "status", "--shadow"]);
    shadow.assert_code(0);
    assert!(
        shadow
            .stdout
            .contains("built the 3 applied migration(s) in scratch database")
            && shadow.stdout.contains("dropped afterwards")
            && shadow.stdout.contains("schema drift: none"),
        "{}",
        shadow.stdout
    );
    assert_eq!(scratch_databases(&db), "");

    // The clean comparison recorded the baseline again: the fast path is back.
    let fast = t.run_with(["migrate", "status"]);
    fast.assert_code(0);
    assert!(
        fast.stdout
            .contains("schema drift: none since the last deploy"),
        "{}",
        fast.stdout
    );

    db.psql("ALTER TABLE \"User\" ADD COLUMN \"handMade\" int");
    for args in [
        &["migrate", "status"][..],
        &["migrate", "status", "--shadow"][..],
    ] {
        let drift = t.run_with(args);
        drift.assert_code(4);
        assert!(
            drift
                .stdout
                .contains("added outside migrations: column public.\"User\".\"handMade\" integer"),
            "{args:?}: {}",
            drift.stdout
        );
        assert!(
            drift.stdout.contains("1 change(s)") && !drift.stdout.contains(".nickname "),
            "{}",
            drift.stdout
        );
    }
    assert_eq!(scratch_databases(&db), "");
}

/// Item 5 on a shared environment: a stale recorded schema makes status compare with a
/// scratch database by itself, saying so; the other tool's migration is not drift, a
/// hand-made index is. A scratch build that fails still drops the scratch database.
#[test]
fn shared_environments_compare_with_the_migrations_when_the_record_is_stale() {
    let Some(db) = pg::database("adopt_shadow_shared") else {
        return;
    };
    let t = project(&db, 2, "");
    t.write(
        "Workflowfile.yaml",
        "environments:\n  staging:\n    url: ${DATABASE_URL}\n    protection: shared\nmigrations:\n  dir: prisma/migrations\n",
    );
    t.run_with(["migrate", "deploy", "--env", "staging"])
        .assert_code(0);
    apply_like_prisma(&db, &t, 2);
    db.psql("CREATE INDEX \"User_nickname_idx\" ON \"User\" (\"nickname\")");

    let out = t.run_with(["migrate", "status", "--env", "staging"]);
    out.assert_code(4);
    assert!(
        out.stdout
            .contains("schema compared with the migrations: built the 3 applied migration(s)")
            && out
                .stdout
                .contains("were applied after dbflow recorded the schema"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("schema drift: 1 change(s) made outside migrations:")
            && out.stdout.contains("User_nickname_idx"),
        "{}",
        out.stdout
    );
    assert_eq!(scratch_databases(&db), "");

    db.psql("DROP INDEX \"User_nickname_idx\"");
    t.run_with(["migrate", "status", "--env", "staging"])
        .assert_code(0);

    // A script that no longer builds: the comparison fails, says so, leaves nothing.
    t.write(
        "prisma/migrations/20240103000000_nickname/migration.sql",
        "ALTER TABLE \"Nope\" ADD COLUMN x int;\n",
    );
    let broken = t.run_with(["migrate", "status", "--env", "staging", "--shadow"]);
    broken.assert_code(4);
    assert!(
        broken.stdout.contains("scratch-database comparison failed"),
        "{}",
        broken.stdout
    );
    assert_eq!(scratch_databases(&db), "");
}

/// Item 5: a dbflow deploy on top of a stale record leaves it stale instead of carrying
/// the other tool's changes into it as drift (what made status exit 4 "forever").
#[test]
fn a_dbflow_deploy_after_prisma_does_not_turn_its_changes_into_drift() {
    let Some(db) = pg::database("adopt_deploy_after_prisma") else {
        return;
    };
    let t = project(&db, 1, "");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    apply_like_prisma(&db, &t, 1);
    add_migration(&t, 2);
    let deploy = t.run_with(["migrate", "deploy"]);
    deploy.assert_code(0);
    assert!(
        deploy.all().contains("the recorded schema is stale"),
        "{}",
        deploy.all()
    );
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(0);
    assert!(
        !status.stdout.contains("outside migrations"),
        "{}",
        status.stdout
    );
    t.run_with(["migrate", "status", "--shadow"]).assert_code(0);
}

/// `migrations.shadow_url` is where the scratch database goes; a server that cannot be
/// reached makes the comparison fail (exit 1: asked for and not done), its password
/// redacted.
#[test]
fn shadow_url_is_used_and_redacted() {
    let Some(db) = pg::database("adopt_shadow_url") else {
        return;
    };
    let t = project(
        &db,
        2,
        "  shadow_url: postgres://builder:sh4dow-secret@127.0.0.1:1/scratch\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    let out = t.run_with(["migrate", "status", "--shadow"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("scratch-database comparison failed: connecting to postgres://builder:")
            && out.stdout.contains("127.0.0.1:1/scratch"),
        "{}",
        out.stdout
    );
    assert!(!out.all().contains("sh4dow-secret"), "{}", out.all());
}

/// Drift checks skip dbflow's state schema: one the app uses is refused where written.
#[test]
fn state_schema_cannot_be_the_apps() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:dev.db\nmigrations:\n  state_schema: public\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("Workflowfile.yaml:5:")
            && out
                .stderr
                .contains("migrations.state_schema `public` cannot hold dbflow's state"),
        "{}",
        out.stderr
    );
}
