//! Reading real command lines for guarded operations: `npx prisma migrate reset`,
//! `pnpm prisma migrate dev --name x`, `DATABASE_URL=… yarn prisma db push
//! --accept-data-loss`, `dropdb shop_test`, `psql -c "DROP DATABASE x"`, and
//! `npm run db:reset` through the project's package.json scripts.

use super::operation::Operation;

/// An operation found in a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The operation.
    pub operation: Operation,
    /// The simple command it was found in (one segment of a pipeline or `&&` chain).
    pub command: String,
    /// The database the command names itself (`dropdb NAME`, an inline
    /// `DATABASE_URL=…`), when it does.
    pub database: Option<String>,
    /// The package.json script it came from, when it did.
    pub via_script: Option<String>,
}

/// Package managers and launchers that run a program given after them.
const LAUNCHERS: &[&str] = &[
    "npx", "pnpx", "pnpm", "yarn", "bunx", "bun", "npm", "exec", "dlx", "x", "env", "sudo", "time",
    "nice", "--",
];

/// Launcher options that take a value (`pnpm --filter db prisma …`).
const VALUED_OPTIONS: &[&str] = &[
    "--filter",
    "-F",
    "--package",
    "-p",
    "--cwd",
    "-C",
    "--dir",
    "--prefix",
    "--workspace",
    "-w",
    "-u",
    "--user",
];

/// How deep `npm run` indirections are followed.
const MAX_SCRIPT_DEPTH: usize = 4;

/// Finds the guarded operations in `line`. `scripts` looks up a package.json script by
/// name (for `npm run NAME`, `pnpm NAME`, `yarn NAME`).
pub fn detect(line: &str, scripts: &dyn Fn(&str) -> Option<String>) -> Vec<Detected> {
    detect_depth(line, scripts, 0, None)
}

fn detect_depth(
    line: &str,
    scripts: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    via: Option<&str>,
) -> Vec<Detected> {
    let mut out = Vec::new();
    for segment in segments(line) {
        let text = segment.join(" ");
        let mut database = None;
        let mut words: &[String] = &segment;
        // Leading VAR=value assignments (and `env VAR=value`).
        loop {
            match words.first() {
                Some(w) if is_assignment(w) => {
                    if let Some(url) = w.strip_prefix("DATABASE_URL=") {
                        database = crate::config::DbUrl::new(url).database_name();
                    }
                    words = &words[1..];
                }
                Some(w) if w == "env" || w == "sudo" || w == "time" || w == "nice" => {
                    words = &words[1..];
                }
                _ => break,
            }
        }
        let found = |operation: Operation, database: Option<String>| Detected {
            operation,
            command: text.clone(),
            database,
            via_script: via.map(str::to_string),
        };
        if let Some(prisma_args) = prisma_args(words) {
            for op in prisma_operations(prisma_args) {
                out.push(found(op, database.clone()));
            }
            continue;
        }
        let program = words.first().map(|w| basename(w)).unwrap_or_default();
        match program.as_str() {
            "dropdb" => {
                let name = positional(
                    &words[1..],
                    &[
                        "-h",
                        "--host",
                        "-p",
                        "--port",
                        "-U",
                        "--username",
                        "--maintenance-db",
                    ],
                );
                out.push(found(Operation::DropDatabase, name.or(database.clone())));
            }
            "psql" => {
                for sql in option_values(&words[1..], &["-c", "--command"]) {
                    if let Some(name) = dropped_database(&sql) {
                        out.push(found(Operation::DropDatabase, Some(name)));
                    }
                }
            }
            "pg_restore" => {
                let clean = words[1..].iter().any(|w| w == "--clean" || w == "-c");
                if clean {
                    let db = option_values(&words[1..], &["-d", "--dbname"])
                        .into_iter()
                        .next()
                        .map(|d| {
                            if d.contains("://") {
                                crate::config::DbUrl::new(&d).database_name().unwrap_or(d)
                            } else {
                                d
                            }
                        });
                    out.push(found(Operation::RestoreInPlace, db.or(database.clone())));
                }
            }
            "npm" | "pnpm" | "yarn" | "bun" if depth < MAX_SCRIPT_DEPTH => {
                if let Some(name) = script_name(&program, &words[1..]) {
                    if let Some(body) = scripts(&name) {
                        out.extend(detect_depth(&body, scripts, depth + 1, Some(&name)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Splits a command line into simple commands at `&&`, `||`, `;`, `|`, `&` and newlines,
/// each as shell words (quotes removed). Unbalanced quotes fall back to whitespace.
fn segments(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for physical in line.split(['\n', '\r']) {
        let physical = physical.trim();
        if physical.is_empty() || physical.starts_with('#') {
            continue;
        }
        let words = shell_words::split(physical)
            .unwrap_or_else(|_| physical.split_whitespace().map(str::to_string).collect());
        let mut current = Vec::new();
        for word in words {
            if matches!(word.as_str(), "&&" | "||" | ";" | "|" | "&") {
                out.push(std::mem::take(&mut current));
                continue;
            }
            if let Some(stripped) = word.strip_suffix(';') {
                if !stripped.is_empty() {
                    current.push(stripped.to_string());
                }
                out.push(std::mem::take(&mut current));
                continue;
            }
            current.push(word);
        }
        out.push(current);
    }
    out.retain(|s| !s.is_empty());
    out
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn basename(word: &str) -> String {
    word.rsplit('/').next().unwrap_or(word).to_string()
}

/// The arguments after `prisma` when the command runs Prisma's CLI (directly, through a
/// package manager, or from node_modules/.bin).
fn prisma_args(words: &[String]) -> Option<&[String]> {
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let name = basename(word);
        let is_prisma = name == "prisma" || name.starts_with("prisma@");
        if is_prisma {
            return Some(&words[i + 1..]);
        }
        if LAUNCHERS.contains(&name.as_str()) || name == "run" {
            i += 1;
            continue;
        }
        if word.starts_with('-') {
            i += if VALUED_OPTIONS.contains(&word.as_str()) {
                2
            } else {
                1
            };
            continue;
        }
        return None;
    }
    None
}

/// The operations a Prisma CLI invocation performs.
fn prisma_operations(args: &[String]) -> Vec<Operation> {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with('-'))
        .collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    match words.as_slice() {
        ["migrate", "dev", ..] => vec![Operation::MigrateDev],
        ["migrate", "reset", ..] => {
            let mut ops = vec![Operation::MigrateReset];
            if !has("--skip-seed") {
                ops.push(Operation::Seed);
            }
            ops
        }
        ["migrate", "deploy", ..] => vec![Operation::Deploy],
        ["migrate", "resolve", ..] => vec![Operation::MigrateResolve],
        ["db", "push", ..] => {
            let mut ops = vec![Operation::DbPush];
            if has("--accept-data-loss") {
                ops.push(Operation::DbPushAcceptDataLoss);
            }
            if has("--force-reset") {
                ops.push(Operation::DbPushForceReset);
            }
            ops
        }
        ["db", "seed", ..] => vec![Operation::Seed],
        ["db", "execute", ..] => vec![Operation::DbExecute],
        _ => Vec::new(),
    }
}

/// The first positional argument, skipping options (and the values of `valued`).
fn positional(words: &[String], valued: &[&str]) -> Option<String> {
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if w.starts_with('-') {
            i += if valued.contains(&w.as_str()) { 2 } else { 1 };
            continue;
        }
        return Some(w.clone());
    }
    None
}

/// Values of `-c X`, `--command X`, `--command=X`, `-cX`.
fn option_values(words: &[String], names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if names.contains(&w.as_str()) {
            if let Some(v) = words.get(i + 1) {
                out.push(v.clone());
            }
            i += 2;
            continue;
        }
        for name in names {
            if let Some(v) = w.strip_prefix(&format!("{name}=")) {
                out.push(v.to_string());
            } else if name.len() == 2 && w.len() > 2 && w.starts_with(name) && !w.starts_with("--")
            {
                out.push(w[2..].to_string());
            }
        }
        i += 1;
    }
    out
}

/// The database a `DROP DATABASE` in `sql` drops (parsed with PostgreSQL's grammar).
fn dropped_database(sql: &str) -> Option<String> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    parsed
        .protobuf
        .stmts
        .iter()
        .find_map(|s| match s.stmt.as_ref()?.node.as_ref()? {
            pg_query::protobuf::node::Node::DropdbStmt(d) => Some(d.dbname.clone()),
            _ => None,
        })
}

/// The script `npm run NAME`, `pnpm [run] NAME`, `yarn [run] NAME`, `bun run NAME` runs.
fn script_name(program: &str, args: &[String]) -> Option<String> {
    let words: Vec<&String> = args.iter().filter(|w| !w.starts_with('-')).collect();
    match (program, words.as_slice()) {
        (_, [run, name, ..]) if run.as_str() == "run" || run.as_str() == "run-script" => {
            Some(name.to_string())
        }
        ("pnpm" | "yarn", [name, ..]) if !is_builtin(program, name) => Some(name.to_string()),
        _ => None,
    }
}

fn is_builtin(program: &str, word: &str) -> bool {
    let common = [
        "add",
        "install",
        "i",
        "remove",
        "rm",
        "update",
        "up",
        "exec",
        "dlx",
        "x",
        "create",
        "init",
        "why",
        "outdated",
        "list",
        "ls",
        "link",
        "unlink",
        "publish",
        "pack",
        "test",
        "workspace",
        "workspaces",
        "config",
        "cache",
        "audit",
        "info",
    ];
    common.contains(&word) || (program == "yarn" && word == "global")
}

/// Reads `package.json` scripts from `dir`, for [`detect`].
pub fn package_scripts(dir: &std::path::Path) -> impl Fn(&str) -> Option<String> {
    let scripts: std::collections::HashMap<String, String> =
        std::fs::read_to_string(dir.join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("scripts").cloned())
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
    move |name: &str| scripts.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(line: &str) -> Vec<&'static str> {
        detect(line, &|_| None)
            .into_iter()
            .map(|d| d.operation.name())
            .collect()
    }

    #[test]
    fn prisma_through_every_launcher() {
        let cases: &[(&str, &[&str])] = &[
            ("prisma migrate reset", &["migrate-reset", "seed"]),
            (
                "npx prisma migrate reset --force --skip-seed",
                &["migrate-reset"],
            ),
            (
                "npx prisma db push --accept-data-loss",
                &["db-push", "db-push-accept-data-loss"],
            ),
            ("pnpm prisma migrate dev --name add_users", &["migrate-dev"]),
            ("pnpm exec prisma migrate dev", &["migrate-dev"]),
            ("pnpm --filter db prisma migrate deploy", &["deploy"]),
            (
                "yarn prisma db push --force-reset",
                &["db-push", "db-push-force-reset"],
            ),
            ("yarn dlx prisma@5.10 db seed", &["seed"]),
            ("bunx prisma migrate dev", &["migrate-dev"]),
            ("bun x prisma migrate deploy", &["deploy"]),
            (
                "npm exec -- prisma migrate reset -f",
                &["migrate-reset", "seed"],
            ),
            (
                "npx --yes prisma@latest migrate resolve --applied x",
                &["migrate-resolve"],
            ),
            (
                "./node_modules/.bin/prisma db execute --file x.sql",
                &["db-execute"],
            ),
            (
                "DATABASE_URL=postgres://u@h/app_test npx prisma migrate reset --force",
                &["migrate-reset", "seed"],
            ),
            (
                "npx prisma generate && npx prisma migrate deploy",
                &["deploy"],
            ),
            ("npx prisma migrate status", &[]),
            ("echo prisma migrate reset", &[]),
            ("git commit -m 'prisma migrate reset'", &[]),
            ("dropdb -h localhost shop_test", &["drop-database"]),
            ("psql \"$URL\" -c 'DROP DATABASE shop'", &["drop-database"]),
            ("psql -c 'DROP TABLE users'", &[]),
            (
                "pg_restore --clean -d shop backup.dump",
                &["restore-in-place"],
            ),
            ("pg_restore -d shop_copy backup.dump", &[]),
        ];
        for (line, expected) in cases {
            assert_eq!(&ops(line), expected, "{line}");
        }
    }

    #[test]
    fn databases_named_by_the_command() {
        let d = detect(
            "DATABASE_URL=postgres://u:p@h:5432/app_e2e npx prisma migrate reset",
            &|_| None,
        );
        assert_eq!(d[0].database.as_deref(), Some("app_e2e"));
        let d = detect("dropdb --if-exists -U postgres scratch_1", &|_| None);
        assert_eq!(d[0].database.as_deref(), Some("scratch_1"));
        let d = detect("npx prisma migrate dev", &|_| None);
        assert_eq!(d[0].database, None);
    }

    #[test]
    fn package_json_scripts_are_followed() {
        let scripts = |name: &str| match name {
            "db:reset" => Some("prisma migrate reset --force".to_string()),
            "reset" => Some("npm run db:reset".to_string()),
            "loop" => Some("npm run loop".to_string()),
            _ => None,
        };
        let found = detect("npm run reset", &scripts);
        assert_eq!(found[0].operation, Operation::MigrateReset);
        assert_eq!(found[0].via_script.as_deref(), Some("db:reset"));
        assert_eq!(detect("pnpm db:reset", &scripts).len(), 2);
        assert_eq!(detect("yarn run db:reset", &scripts).len(), 2);
        assert!(detect("npm run loop", &scripts).is_empty());
        assert!(detect("pnpm install", &scripts).is_empty());
    }
}
