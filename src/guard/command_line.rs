//! Reading real command lines for guarded operations: `npx prisma migrate reset`,
//! `pnpm prisma migrate dev --name x`, `DATABASE_URL=… yarn prisma db push
//! --accept-data-loss`, `dropdb shop_test`, `psql -c "DROP DATABASE x"`, bare phrases
//! (`migrate reset`), `npm run db:reset` and `pnpm db:seed` through the project's
//! package.json scripts, Prisma's seed command, and the project's shell scripts.
//!
//! `dbflow check`, task and shell steps, and Lua's `dbflow.exec` all read command lines
//! here, so what `check` answers is what the real command meets.

use super::operation::Operation;
use super::package_scripts::script_name;
pub use super::package_scripts::{package_scripts, PackageScripts, ScriptLookup};

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
    /// The package.json script (or project shell script) it came from, when it did.
    pub via_script: Option<String>,
}

/// Package managers and launchers that run a program given after them.
const LAUNCHERS: &[&str] = &[
    "npx", "pnpx", "pnpm", "yarn", "bunx", "bun", "npm", "exec", "dlx", "x", "env", "sudo", "time",
    "nice", "--",
];

/// Launcher options that take a value (`pnpm --filter db prisma …`).
pub(super) const VALUED_OPTIONS: &[&str] = &[
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

/// Finds the guarded operations in `line`. `scripts` looks up a package.json script by
/// name (for `npm run NAME`, `pnpm NAME`, `yarn NAME`) and names the seed command.
///
/// It fails closed: besides the programs it reads precisely (Prisma through any
/// launcher, `dropdb`, `psql -c`, `pg_restore --clean`, package-manager scripts), it
/// looks through every word of every simple command, and into quoted command strings
/// (`sh -c "…"`, `docker compose exec app npx prisma …`), for an operation phrase
/// (`migrate reset`, `db push`), `prisma`, `dropdb`, `DROP DATABASE` or the seed
/// command. Only the arguments of programs that never run them (`echo`, `printf`, `git`,
/// `grep`, `cat`, …) are taken as text, and not when the line feeds a shell, `eval`,
/// `xargs` or `psql`.
pub fn detect(line: &str, scripts: &dyn ScriptLookup) -> Vec<Detected> {
    let seeds: Vec<Vec<String>> = scripts
        .seed_commands()
        .iter()
        .filter_map(|c| shell_words::split(c).ok())
        .map(|w| strip_launchers(&w).to_vec())
        .filter(|w| !w.is_empty())
        .collect();
    let mut walk = Walk {
        scripts,
        seeds,
        out: Vec::new(),
        visiting: Vec::new(),
        steps: 0,
    };
    walk.line(line, None, None);
    walk.out
}

/// How many lines (scripts, quoted strings) one detection reads at most: a bound on
/// hostile input; past it the classifier stops looking and says so by blocking.
const MAX_STEPS: usize = 256;

/// Programs whose arguments are text or file names, never run (a `grep "DROP
/// DATABASE"` safety check must not read as a drop).
const INERT: &[&str] = &[
    "echo", "printf", "git", "true", ":", "grep", "egrep", "fgrep", "rg", "ag", "cat", "ls",
    "test", "[", "[[", "export", "exit",
];

/// Programs that run what they read on stdin or as arguments.
const EXECUTORS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox", "eval",
    "xargs", "source", ".", "psql", "env", "sudo", "doas", "exec",
];

/// Subcommands after `migrate` and `db` that name an operation (bare phrases).
const PHRASES: &[(&str, &[&str])] = &[
    ("migrate", &["dev", "reset", "deploy", "resolve"]),
    ("db", &["push", "seed", "execute"]),
];

struct Walk<'a> {
    scripts: &'a dyn ScriptLookup,
    seeds: Vec<Vec<String>>,
    out: Vec<Detected>,
    visiting: Vec<String>,
    steps: usize,
}

impl Walk<'_> {
    fn push(&mut self, detected: Detected) {
        if !self.out.contains(&detected) {
            self.out.push(detected);
        }
    }

    /// Reads a command line; `database` is the one an enclosing command's
    /// `DATABASE_URL=` named, `via` the script it came from.
    fn line(&mut self, line: &str, database: Option<String>, via: Option<&str>) {
        self.steps += 1;
        if self.steps == MAX_STEPS + 1 {
            // Too much to read to the end: what was not read could reset a database.
            self.push(Detected {
                operation: Operation::MigrateReset,
                command: format!("{} (too many nested scripts to read)", line.trim()),
                database: None,
                via_script: via.map(str::to_string),
            });
        }
        if self.steps > MAX_STEPS {
            return;
        }
        let segments = segments(line);
        let feeds_executor = segments.iter().any(|s| {
            strip_assignments(s)
                .0
                .first()
                .is_some_and(|w| EXECUTORS.contains(&basename(w).as_str()))
        });
        for segment in &segments {
            let (words, assigned) = strip_assignments(segment);
            let database = assigned.or_else(|| database.clone());
            let program = words.first().map(|w| basename(w)).unwrap_or_default();
            if INERT.contains(&program.as_str()) && !feeds_executor {
                continue;
            }
            let text = segment.join(" ");
            for i in 0..words.len() {
                self.at(&words[i..], &text, &database, via);
            }
            // Shell scripts of the project the command runs: read like the line itself.
            for word in words {
                if self.visiting.iter().any(|v| v == word) {
                    continue;
                }
                if let Some(body) = self.scripts.shell_script(word) {
                    self.visiting.push(word.clone());
                    self.line(&body, database.clone(), Some(word));
                    self.visiting.pop();
                }
            }
            // Quoted command strings (`sh -c "…"`, `env -S "…"`, `concurrently "…"`).
            for word in words {
                if word.contains(char::is_whitespace) {
                    self.line(word, database.clone(), via);
                } else if word.contains([';', '&', '|']) {
                    // `generate&&npx`: operators without spaces around them.
                    let spaced = word
                        .replace("&&", " && ")
                        .replace("||", " || ")
                        .replace(';', " ; ")
                        .replace('|', " | ");
                    let spaced = spaced.replace("|  |", "||");
                    self.line(&spaced, database.clone(), via);
                }
            }
        }
    }

    /// Rules on the command that starts at `words[0]`.
    fn at(&mut self, words: &[String], text: &str, database: &Option<String>, via: Option<&str>) {
        let found = |operation: Operation, db: Option<String>| Detected {
            operation,
            command: text.to_string(),
            database: db,
            via_script: via.map(str::to_string),
        };
        let first = &words[0];
        let program = basename(first);
        if program == "prisma" || program.starts_with("prisma@") {
            for op in prisma_operations(&words[1..]) {
                self.push(found(op, database.clone()));
            }
            return;
        }
        // A bare operation phrase: `migrate reset`, `db push --accept-data-loss`.
        if let Some(next) = words.get(1) {
            let is_phrase = PHRASES
                .iter()
                .any(|(verb, subs)| first == verb && subs.contains(&next.as_str()));
            if is_phrase {
                for op in prisma_operations(words) {
                    self.push(found(op, database.clone()));
                }
                return;
            }
        }
        if self.seeds.iter().any(|seed| seed_matches(words, seed)) {
            self.push(found(Operation::Seed, database.clone()));
            return;
        }
        if let Some(name) = drop_database_in(first) {
            self.push(found(Operation::DropDatabase, name.or(database.clone())));
        }
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
                self.push(found(Operation::DropDatabase, name.or(database.clone())));
            }
            "psql" => {
                for sql in option_values(&words[1..], &["-c", "--command"]) {
                    if let Some(name) = dropped_database(&sql) {
                        self.push(found(Operation::DropDatabase, Some(name)));
                    }
                }
                // `psql -f reset.sql`, `psql < reset.sql`: the project's SQL files.
                let mut files = option_values(&words[1..], &["-f", "--file"]);
                files.extend(
                    words
                        .windows(2)
                        .filter(|w| w[0] == "<")
                        .map(|w| w[1].clone()),
                );
                for file in files {
                    let sql = self.scripts.sql_file(&file).unwrap_or_default();
                    for (operation, name) in sql_operations(&sql) {
                        self.push(found(operation, name.or(database.clone())));
                    }
                }
            }
            "pg_restore" => {
                let clean = words[1..]
                    .iter()
                    .any(|w| w == "--clean" || short_flag(w, 'c'));
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
                    self.push(found(Operation::RestoreInPlace, db.or(database.clone())));
                }
            }
            "npm" | "pnpm" | "yarn" | "bun" => {
                if let Some(name) = script_name(&program, &words[1..]) {
                    self.script(&name, database, via, text);
                }
            }
            "npm-run-all" | "run-s" | "run-p" => {
                for name in words[1..].iter().filter(|w| !w.starts_with('-')) {
                    for name in self.glob(name) {
                        self.script(&name, database, via, text);
                    }
                }
            }
            "concurrently" => {
                for arg in words[1..].iter().filter(|w| !w.starts_with('-')) {
                    let shorthand = ["npm:", "pnpm:", "yarn:", "bun:"]
                        .iter()
                        .find_map(|p| arg.strip_prefix(p));
                    match shorthand {
                        Some(name) => {
                            for name in self.glob(name) {
                                self.script(&name, database, via, text);
                            }
                        }
                        None => self.line(arg, database.clone(), via),
                    }
                }
            }
            _ => {}
        }
    }

    /// Script names a `run-s`/`concurrently` argument stands for (`db:*` globs).
    fn glob(&self, pattern: &str) -> Vec<String> {
        match pattern.strip_suffix('*') {
            Some(prefix) => {
                let names: Vec<String> = self
                    .scripts
                    .script_names()
                    .into_iter()
                    .filter(|n| n.starts_with(prefix))
                    .collect();
                if names.is_empty() {
                    vec![pattern.to_string()]
                } else {
                    names
                }
            }
            None => vec![pattern.to_string()],
        }
    }

    /// Follows the package.json script `name` (with the `pre`/`post` scripts npm runs
    /// around it). A script that is not in package.json is judged by its name.
    fn script(&mut self, name: &str, database: &Option<String>, via: Option<&str>, text: &str) {
        if self.visiting.iter().any(|v| v == name) {
            return;
        }
        let mut any = false;
        for full in [
            format!("pre{name}"),
            name.to_string(),
            format!("post{name}"),
        ] {
            if let Some(body) = self.scripts.script(&full) {
                any = true;
                self.visiting.push(full.clone());
                self.line(&body, database.clone(), Some(&full));
                self.visiting.pop();
            }
        }
        if !any {
            for operation in operations_named(name) {
                self.push(Detected {
                    operation,
                    command: text.to_string(),
                    database: database.clone(),
                    via_script: Some(match via {
                        Some(v) => {
                            format!("{v} → {name} (not in package.json: judged by its name)")
                        }
                        None => format!("{name} (not in package.json: judged by its name)"),
                    }),
                });
            }
        }
    }
}

/// The operations a script name promises when its body cannot be read (`db:seed`,
/// `reset-db`, `db:push`, `drop`, `migrate:dev`).
fn operations_named(name: &str) -> Vec<Operation> {
    let parts: Vec<String> = name
        .split([':', '-', '_', '.', '/'])
        .map(str::to_ascii_lowercase)
        .collect();
    let has = |p: &str| parts.iter().any(|x| x == p);
    let mut ops = Vec::new();
    if has("reset") {
        ops.push(Operation::MigrateReset);
    }
    if has("seed") {
        ops.push(Operation::Seed);
    }
    if has("push") {
        ops.push(Operation::DbPush);
    }
    if has("drop") {
        ops.push(Operation::DropDatabase);
    }
    if has("migrate") && has("dev") {
        ops.push(Operation::MigrateDev);
    }
    ops
}

/// Whether `words` run the seed command (its words after any launcher), or the file it
/// runs (`tsx prisma/seed.ts` → `node --import tsx ./prisma/seed.ts` too).
fn seed_matches(words: &[String], seed: &[String]) -> bool {
    let words = strip_launchers(words);
    if words.len() >= seed.len() && words[..seed.len()] == *seed {
        return true;
    }
    let norm = |w: &str| w.trim_start_matches("./").to_string();
    match seed
        .iter()
        .skip(1)
        .find(|w| !w.starts_with('-') && w.contains('.'))
    {
        Some(file) => words.first().is_some_and(|w| norm(w) == norm(file)),
        None => false,
    }
}

/// `words` without leading package-manager launchers and their options (`npx --yes`,
/// `pnpm exec`, `yarn dlx`).
fn strip_launchers(words: &[String]) -> &[String] {
    let mut i = 0;
    while i < words.len() {
        let name = basename(&words[i]);
        if LAUNCHERS.contains(&name.as_str()) {
            i += 1;
        } else if words[i].starts_with('-') && i > 0 {
            i += if VALUED_OPTIONS.contains(&words[i].as_str()) {
                2
            } else {
                1
            };
        } else {
            break;
        }
    }
    &words[i.min(words.len())..]
}

/// Whether the short-option cluster `word` (`-c`, `-1c`, `-Fc` is not) sets `flag`, for
/// pg_restore, whose options after a value-taking letter are that value.
fn short_flag(word: &str, flag: char) -> bool {
    const TAKES_VALUE: &str = "dfFIjLnNPStThpU";
    let Some(cluster) = word.strip_prefix('-').filter(|c| !c.starts_with('-')) else {
        return false;
    };
    for c in cluster.chars() {
        if c == flag {
            return true;
        }
        if TAKES_VALUE.contains(c) {
            return false;
        }
    }
    false
}

/// Leading `VAR=value` words removed, and the database an inline `DATABASE_URL=` names.
fn strip_assignments(words: &[String]) -> (&[String], Option<String>) {
    let mut database = None;
    let mut i = 0;
    while i < words.len() && is_assignment(&words[i]) {
        if let Some(url) = words[i].strip_prefix("DATABASE_URL=") {
            database = crate::config::DbUrl::new(url).database_name();
        }
        i += 1;
    }
    (&words[i..], database)
}

/// `Some(database)` when `word` is SQL that says `DROP DATABASE` (`Some(None)` when the
/// name cannot be read), else `None`.
fn drop_database_in(word: &str) -> Option<Option<String>> {
    let lower = word.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let mentions = words
        .windows(2)
        .any(|w| w[0].ends_with("drop") && w[1].starts_with("database"));
    mentions.then(|| dropped_database(word))
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

/// The operations SQL text performs (`DROP DATABASE x` → drop-database of `x`); SQL
/// that only mentions `DROP DATABASE` where the parser cannot read it counts, with the
/// database unknown.
pub fn sql_operations(sql: &str) -> Vec<(Operation, Option<String>)> {
    match drop_database_in(sql) {
        Some(name) => vec![(Operation::DropDatabase, name)],
        None => Vec::new(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn ops(line: &str) -> Vec<&'static str> {
        detect(line, &none)
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
            ("pg_restore -Fc -d shop_copy backup.dump", &[]),
            ("pg_restore -1c -d shop backup.dump", &["restore-in-place"]),
        ];
        for (line, expected) in cases {
            assert_eq!(&ops(line), expected, "{line}");
        }
    }

    #[test]
    fn databases_named_by_the_command() {
        let d = detect(
            "DATABASE_URL=postgres://u:p@h:5432/app_e2e npx prisma migrate reset",
            &none,
        );
        assert_eq!(d[0].database.as_deref(), Some("app_e2e"));
        let d = detect("dropdb --if-exists -U postgres scratch_1", &none);
        assert_eq!(d[0].database.as_deref(), Some("scratch_1"));
        let d = detect("npx prisma migrate dev", &none);
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

    /// package.json of the usual Prisma seed setup, and scripts that chain.
    fn project() -> PackageScripts {
        let scripts = [
            ("db:seed", "tsx prisma/seed.ts"),
            ("seed:prod", "NODE_ENV=production pnpm db:seed"),
            ("reset", "npm run db:reset"),
            ("db:reset", "prisma migrate reset --force"),
            ("setup", "pnpm build && pnpm run db:seed"),
            ("build", "tsc"),
            ("x", "prisma db push"),
            ("all", "run-s build db:*"),
            ("both", "concurrently \"npm:build\" \"dropdb shop\""),
            ("loop", "npm run loop"),
            ("predeploy", "prisma migrate deploy"),
            ("deploy", "echo done"),
        ];
        PackageScripts::new(
            scripts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            vec!["tsx prisma/seed.ts".to_string()],
        )
    }

    #[test]
    fn fails_closed_on_what_it_recognises_anywhere() {
        let p = project();
        let ops = |line: &str| -> Vec<&'static str> {
            let mut names: Vec<&'static str> = Vec::new();
            for d in detect(line, &p) {
                if !names.contains(&d.operation.name()) {
                    names.push(d.operation.name());
                }
            }
            names
        };
        let cases: &[(&str, &[&str])] = &[
            ("migrate reset", &["migrate-reset", "seed"]),
            ("migrate dev", &["migrate-dev"]),
            ("db push", &["db-push"]),
            ("db seed", &["seed"]),
            (
                "prisma db push --accept-data-loss",
                &["db-push", "db-push-accept-data-loss"],
            ),
            (
                "prisma --schema db/schema.prisma migrate reset --skip-seed",
                &["migrate-reset"],
            ),
            ("pnpm db:seed", &["seed"]),
            ("npm run seed:prod", &["seed"]),
            ("npm run reset", &["migrate-reset", "seed"]),
            ("yarn x", &["db-push"]),
            ("bun run x", &["db-push"]),
            ("pnpm setup", &["seed"]),
            ("pnpm --filter api run db:seed", &["seed"]),
            ("npm run all", &["migrate-reset", "seed"]),
            ("npm run both", &["drop-database"]),
            ("npm run loop", &[]),
            ("npm run deploy", &["deploy"]),
            ("tsx prisma/seed.ts", &["seed"]),
            ("npx tsx ./prisma/seed.ts", &["seed"]),
            ("pnpm build && migrate reset", &["migrate-reset", "seed"]),
            ("pnpm build; db push", &["db-push"]),
            ("false || npx prisma migrate dev", &["migrate-dev"]),
            ("npx prisma generate&&npx prisma db push", &["db-push"]),
            (
                "sh -c 'npx prisma migrate reset --force --skip-seed'",
                &["migrate-reset"],
            ),
            ("docker compose exec -T app npx prisma db seed", &["seed"]),
            (
                "dotenv -e .env.prod -- prisma migrate dev",
                &["migrate-dev"],
            ),
            ("sudo -u postgres dropdb shop", &["drop-database"]),
            ("echo 'DROP DATABASE shop' | psql", &["drop-database"]),
            ("echo prisma migrate reset | sh", &["migrate-reset", "seed"]),
            ("pnpm db:wipe-and-seed", &["seed"]),
            ("npm run reset-db", &["migrate-reset"]),
            ("echo prisma migrate reset", &[]),
            ("pnpm build", &[]),
            ("npm test", &[]),
            ("ls -la", &[]),
            ("grep -rn 'DROP DATABASE' prisma/migrations && exit 1", &[]),
            (
                "grep -l 'prisma migrate reset' ci.sh | xargs sh",
                &["migrate-reset", "seed"],
            ),
        ];
        let mut wrong = Vec::new();
        for (line, expected) in cases {
            let got = ops(line);
            if got != *expected {
                wrong.push(format!("{line}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let d = detect("pnpm db:seed", &p);
        assert_eq!(d[0].via_script.as_deref(), Some("db:seed"));
    }

    #[test]
    fn the_seed_command_comes_from_package_json_and_prisma_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{ "scripts": { "db:seed": "tsx prisma/seed.ts" }, "prisma": { "seed": "tsx prisma/seed.ts" } }"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("prisma.config.ts"),
            "export default defineConfig({\n  migrations: {\n    path: 'prisma/migrations',\n    seed: 'node scripts/load-fixtures.mjs',\n  },\n})\n",
        )
        .unwrap();
        let scripts = package_scripts(dir.path());
        assert_eq!(
            scripts.seed_commands(),
            ["tsx prisma/seed.ts", "node scripts/load-fixtures.mjs"]
        );
        let ops = |line: &str| -> Vec<Operation> {
            detect(line, &scripts)
                .into_iter()
                .map(|d| d.operation)
                .collect()
        };
        assert_eq!(ops("pnpm db:seed"), [Operation::Seed]);
        assert_eq!(
            ops("node scripts/load-fixtures.mjs --all"),
            [Operation::Seed]
        );
        assert_eq!(ops("node scripts/other.mjs"), []);

        // The project's shell scripts are read like the line that runs them.
        std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
        std::fs::write(
            dir.path().join("scripts/reset.sh"),
            "#!/usr/bin/env bash\nset -e\n# wipe and reload\nnpx prisma migrate reset --force --skip-seed\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("scripts/loop.sh"), "./scripts/loop.sh\n").unwrap();
        let scripts = package_scripts(dir.path());
        let ops = |line: &str| -> Vec<Operation> {
            detect(line, &scripts)
                .into_iter()
                .map(|d| d.operation)
                .collect()
        };
        assert_eq!(ops("./scripts/reset.sh"), [Operation::MigrateReset]);
        assert_eq!(
            ops("bash scripts/reset.sh --yes"),
            [Operation::MigrateReset]
        );
        assert_eq!(ops("./scripts/loop.sh"), []);
        std::fs::write(
            dir.path().join("scripts/fresh.sql"),
            "-- start over\nDROP DATABASE IF EXISTS shop;\nCREATE DATABASE shop;\n",
        )
        .unwrap();
        assert_eq!(
            ops("psql -f scripts/fresh.sql postgres"),
            [Operation::DropDatabase]
        );
        assert_eq!(
            ops("psql postgres < scripts/fresh.sql"),
            [Operation::DropDatabase]
        );
        assert_eq!(
            detect("psql -f scripts/fresh.sql", &scripts)[0]
                .database
                .as_deref(),
            Some("shop")
        );
        assert_eq!(ops("cat /etc/passwd"), []);
    }

    #[test]
    fn hostile_depth_blocks_instead_of_reading_forever() {
        let deep = |name: &str| -> Option<String> {
            let n: usize = name.trim_start_matches('s').parse().ok()?;
            Some(format!("npm run s{} && npm run s{}", n + 1, n + 2))
        };
        let found = detect("npm run s0", &deep);
        assert_eq!(found.len(), 1);
        assert!(found[0].command.contains("too many nested scripts"));
    }
}
