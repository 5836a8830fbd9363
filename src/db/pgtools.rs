//! The PostgreSQL client tools (`pg_dump`, `pg_restore`, `createdb`, `dropdb`, `psql`)
//! run through duct: where they are found, their versions, and the connection handed to
//! them without a password on any command line (it travels in `PGPASSWORD`).

use crate::config::DbUrl;
use crate::guard::Permit;
use std::path::{Path, PathBuf};

/// Results of finding and running the client tools.
pub type Result<T, E = PgToolsError> = std::result::Result<T, E>;

/// Why a client tool could not be found or run, or why dbflow refused to run it.
/// `From<PgToolsError> for crate::error::Error` maps it to an exit code: 2 for a name
/// no database may have, 3 for a database the guard's permit does not cover, 1 for
/// the rest. Errors hold their cause in the message (no `source()`, printed once).
#[derive(Debug, thiserror::Error)]
pub enum PgToolsError {
    /// No installation has the tools, or none recent enough for the server.
    #[error("{0}")]
    NotFound(String),
    /// The program could not be started.
    #[error("cannot run {}: {error}", .program.display())]
    Spawn {
        /// The tool's full path.
        program: PathBuf,
        /// Why it did not start.
        error: std::io::Error,
    },
    /// The tool ran and exited unsuccessfully ([`tool_failure`]'s message).
    #[error("{0}")]
    Failed(String),
    /// The URL could not be parsed (shown redacted).
    #[error("{url} is not a valid URL: {error}")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// The parser's error.
        error: url::ParseError,
    },
    /// A database name dbflow refuses to pass to a tool.
    #[error("`{}` cannot name a database: {why}", .name.escape_debug())]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The guard's permit does not cover the database a drop was asked for.
    #[error("{0}")]
    NotPermitted(String),
}

/// Where installed PostgreSQL versions live side by side (Debian/Ubuntu layout).
pub const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// The tools dbflow needs from one installation.
const REQUIRED: &[&str] = &["pg_dump", "pg_restore", "createdb", "dropdb"];

/// libpq connection parameters that may appear in a URI's query. Anything else (Prisma's
/// `schema`, `connection_limit`, `pgbouncer`, …) would make libpq refuse the URI.
const LIBPQ_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// A tool version such as `15.6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major version (`15`; `9` for 9.6).
    pub major: u32,
    /// As printed by `--version` (`15.6`).
    pub text: String,
}

impl Version {
    /// Parses `pg_dump (PostgreSQL) 15.6 (Debian 15.6-0+deb12u1)` and the like.
    pub fn parse(output: &str) -> Option<Version> {
        let word = output
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
        let text: String = word
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let text = text.trim_end_matches('.').to_string();
        let major = text.split('.').next()?.parse().ok()?;
        Some(Version { major, text })
    }

    /// The major version of a server from `server_version_num` (150006 → 15, 90624 → 9).
    pub fn server_major(version_num: u32) -> u32 {
        // Both numbering schemes divide the same way: 150006 (15.6) and 90624 (9.6.24).
        version_num / 10_000
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// One installation's client tools.
#[derive(Debug, Clone)]
pub struct PgTools {
    /// The folder holding them.
    pub dir: PathBuf,
    /// `pg_dump --version`.
    pub version: Version,
    /// How the folder was chosen, for people.
    pub chosen_because: String,
}

impl PgTools {
    /// Finds the tools: the first `PATH` folder that has them, unless it is older than
    /// the server (`pg_dump` refuses to dump a newer server), else the newest
    /// `/usr/lib/postgresql/<version>/bin` that is recent enough.
    pub fn locate(server_major: Option<u32>) -> Result<PgTools> {
        let on_path = path_dir();
        let installed = installed_dirs(Path::new(INSTALL_ROOT));
        choose(on_path, installed, server_major)
    }

    /// `pg_dump 15.6 from /usr/lib/postgresql/15/bin (newest installed)`.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL client tools {} from {} ({})",
            self.version,
            self.dir.display(),
            self.chosen_because
        )
    }

    /// The full path of a tool.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    }

    /// A duct expression for `tool args…` connected to `conn` (password in the
    /// environment), stderr captured, exit status left to the caller. Stdin is the
    /// caller's to set (duct gives an inner redirection precedence over an outer one).
    pub fn command(&self, tool: &str, conn: Option<&PgConn>, args: &[String]) -> duct::Expression {
        let mut expr = duct::cmd(self.program(tool), args)
            .stderr_capture()
            .unchecked();
        if let Some(conn) = conn {
            expr = conn.apply(expr);
        }
        if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
            // An unreachable server should fail the backup, not hang it.
            expr = expr.env("PGCONNECT_TIMEOUT", "15");
        }
        expr
    }

    /// Runs a tool to completion and returns its stdout; a failure carries the tail of
    /// its stderr.
    pub fn run(&self, tool: &str, conn: Option<&PgConn>, args: &[String]) -> Result<String> {
        let output = self
            .command(tool, conn, args)
            .stdin_null()
            .stdout_capture()
            .run()
            .map_err(|error| PgToolsError::Spawn {
                program: self.program(tool),
                error,
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(PgToolsError::Failed(tool_failure(
            tool,
            &output.status,
            &output.stderr,
        )))
    }

    /// `createdb` a fresh database from `template0` (so nothing from `template1` collides
    /// with the restored objects), with the source's encoding and locale when known.
    pub fn createdb(&self, server: &PgConn, name: &str, locale: Option<&DbLocale>) -> Result<()> {
        let mut args = vec![
            format!("--maintenance-db={}", server.maintenance_uri()),
            "--template=template0".to_string(),
        ];
        if let Some(l) = locale {
            args.push(format!("--encoding={}", l.encoding));
            args.push(format!("--lc-collate={}", l.collate));
            args.push(format!("--lc-ctype={}", l.ctype));
        }
        check_database_name(name)?;
        args.push("--".into());
        args.push(name.to_string());
        self.run("createdb", Some(server), &args).map(|_| ())
    }

    /// `dropdb --force` (PostgreSQL 13+ terminates other sessions first), for the one
    /// database the guard's permit covers.
    pub fn dropdb(&self, server: &PgConn, name: &str, permit: &Permit) -> Result<()> {
        permit.covers(name).map_err(PgToolsError::NotPermitted)?;
        check_database_name(name)?;
        let mut args = vec![format!("--maintenance-db={}", server.maintenance_uri())];
        if self.version.major >= 13 {
            args.push("--force".into());
        }
        args.push("--if-exists".into());
        // `--`: whatever the name, it is never read as an option.
        args.push("--".into());
        args.push(name.to_string());
        self.run("dropdb", Some(server), &args).map(|_| ())
    }
}

/// PostgreSQL truncates longer identifiers silently (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER: usize = 63;

/// Refuses a name no database of dbflow's may have: empty, longer than PostgreSQL keeps,
/// starting with `-` (a command would read it as an option), holding a path separator,
/// a control character or a NUL. Names are validated, never passed through.
pub fn check_database_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_IDENTIFIER {
        Some(format!(
            "it is {} bytes long and PostgreSQL keeps {MAX_IDENTIFIER}",
            name.len()
        ))
    } else if name.starts_with('-') {
        Some("it starts with `-`, which commands read as an option".to_string())
    } else if name.contains(['/', '\\']) {
        Some("it holds a path separator".to_string())
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(PgToolsError::BadName {
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// A database's encoding and locale, recorded at backup time so a restore gets the same.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbLocale {
    /// `UTF8`, …
    pub encoding: String,
    /// `LC_COLLATE`.
    pub collate: String,
    /// `LC_CTYPE`.
    pub ctype: String,
}

/// The message for a tool that exited unsuccessfully: its status and the last lines of
/// its stderr.
pub fn tool_failure(tool: &str, status: &std::process::ExitStatus, stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
    let how = match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                format!("was killed by signal {}", status.signal().unwrap_or(0))
            }
            #[cfg(not(unix))]
            {
                "was killed".to_string()
            }
        }
    };
    if tail.is_empty() {
        format!("{tool} {how}")
    } else {
        format!("{tool} {how}:\n  {tail}")
    }
}

/// A connection as the tools get it: a libpq URI without the password (safe to show in
/// `ps`), the password separately for `PGPASSWORD`.
#[derive(Clone)]
pub struct PgConn {
    url: url::Url,
    password: Option<String>,
    /// Query parameters removed because libpq does not know them.
    pub dropped: Vec<String>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgConn({})", self.url)
    }
}

impl PgConn {
    /// Splits a `postgres://` URL.
    pub fn from_url(db: &DbUrl) -> Result<PgConn> {
        let mut url = url::Url::parse(db.expose()).map_err(|error| PgToolsError::BadUrl {
            url: db.redacted(),
            error,
        })?;
        let mut password = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        let _ = url.set_password(None);
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for (key, value) in url.query_pairs() {
            if key == "password" {
                password = Some(value.into_owned());
            } else if LIBPQ_PARAMS.contains(&key.as_ref()) {
                kept.push((key.into_owned(), value.into_owned()));
            } else {
                dropped.push(key.into_owned());
            }
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        if url.scheme() == "postgres" {
            // libpq accepts both; one spelling keeps displayed commands uniform.
            let text = url.as_str().replacen("postgres://", "postgresql://", 1);
            url = url::Url::parse(&text).expect("still a URL");
        }
        Ok(PgConn {
            url,
            password,
            dropped,
        })
    }

    /// The URI (no password) of this connection's database.
    pub fn uri(&self) -> String {
        self.url.to_string()
    }

    /// The database name.
    pub fn database(&self) -> String {
        let path = self.url.path().trim_start_matches('/');
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// The same server, another database.
    pub fn with_database(&self, name: &str) -> PgConn {
        let mut other = self.clone();
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'_')
            .remove(b'-')
            .remove(b'.');
        let encoded = percent_encoding::utf8_percent_encode(name, SEGMENT).to_string();
        other.url.set_path(&format!("/{encoded}"));
        other
    }

    /// The URI of the maintenance database (`postgres`) that `createdb`/`dropdb` connect to.
    pub fn maintenance_uri(&self) -> String {
        self.with_database("postgres").uri()
    }

    fn apply(&self, expr: duct::Expression) -> duct::Expression {
        match &self.password {
            Some(password) => expr.env("PGPASSWORD", password),
            None => expr,
        }
    }
}

fn tool_dir_complete(dir: &Path) -> bool {
    REQUIRED.iter().all(|t| {
        dir.join(format!("{t}{}", std::env::consts::EXE_SUFFIX))
            .is_file()
    })
}

fn version_of(dir: &Path) -> Option<Version> {
    let output = duct::cmd(
        dir.join(format!("pg_dump{}", std::env::consts::EXE_SUFFIX)),
        ["--version"],
    )
    .stdin_null()
    .stderr_null()
    .read()
    .ok()?;
    Version::parse(&output)
}

/// The first `PATH` folder holding the tools, with its version.
fn path_dir() -> Option<(PathBuf, Version)> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|d| tool_dir_complete(d))
        .and_then(|d| version_of(&d).map(|v| (d, v)))
}

/// Every `<root>/<version>/bin` holding the tools, newest first.
fn installed_dirs(root: &Path) -> Vec<(PathBuf, Version)> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            tool_dir_complete(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.reverse();
    found
        .into_iter()
        .filter_map(|(_, dir)| version_of(&dir).map(|v| (dir, v)))
        .collect()
}

fn choose(
    on_path: Option<(PathBuf, Version)>,
    installed: Vec<(PathBuf, Version)>,
    server_major: Option<u32>,
) -> Result<PgTools> {
    let recent_enough = |v: &Version| server_major.is_none_or(|s| v.major >= s);
    if let Some((dir, version)) = &on_path {
        if recent_enough(version) {
            return Ok(PgTools {
                dir: dir.clone(),
                version: version.clone(),
                chosen_because: "first on PATH".into(),
            });
        }
    }
    if let Some((dir, version)) = installed.iter().find(|(_, v)| recent_enough(v)) {
        let why = match (&on_path, server_major) {
            (Some((_, old)), Some(server)) => {
                format!("the one on PATH is {old}, older than the PostgreSQL {server} server")
            }
            _ => "none on PATH; newest installed".into(),
        };
        return Ok(PgTools {
            dir: dir.clone(),
            version: version.clone(),
            chosen_because: why,
        });
    }
    let server = server_major
        .map(|s| format!(" for a PostgreSQL {s} server"))
        .unwrap_or_default();
    let seen: Vec<String> = on_path
        .iter()
        .chain(installed.iter())
        .map(|(d, v)| format!("{v} in {}", d.display()))
        .collect();
    Err(PgToolsError::NotFound(if seen.is_empty() {
        format!(
            "no PostgreSQL client tools (pg_dump, pg_restore, createdb, dropdb) on PATH or under {INSTALL_ROOT}/*/bin{server}; install postgresql-client"
        )
    } else {
        format!(
            "no PostgreSQL client tools recent enough{server} (found {}); pg_dump cannot dump a newer server: install a matching postgresql-client",
            seen.join(", ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = Version::parse("pg_dump (PostgreSQL) 15.6 (Debian 15.6-0+deb12u1)").unwrap();
        assert_eq!((v.major, v.text.as_str()), (15, "15.6"));
        assert_eq!(
            Version::parse("pg_dump (PostgreSQL) 9.6.24").unwrap().major,
            9
        );
        assert_eq!(
            Version::parse("pg_dump (PostgreSQL) 17beta1").unwrap().text,
            "17"
        );
        assert_eq!(Version::server_major(150006), 15);
        assert_eq!(Version::server_major(90624), 9);
    }

    fn v(major: u32) -> Version {
        Version {
            major,
            text: format!("{major}.1"),
        }
    }

    #[test]
    fn prefers_path_unless_older_than_the_server() {
        let path = Some((PathBuf::from("/usr/bin"), v(14)));
        let installed = vec![
            (PathBuf::from("/usr/lib/postgresql/16/bin"), v(16)),
            (PathBuf::from("/usr/lib/postgresql/14/bin"), v(14)),
        ];
        let tools = choose(path.clone(), installed.clone(), Some(14)).unwrap();
        assert_eq!(tools.dir, PathBuf::from("/usr/bin"));
        let tools = choose(path.clone(), installed.clone(), Some(15)).unwrap();
        assert_eq!(tools.dir, PathBuf::from("/usr/lib/postgresql/16/bin"));
        assert!(tools
            .chosen_because
            .contains("older than the PostgreSQL 15"));
        let err = choose(path, installed, Some(17)).unwrap_err().to_string();
        assert!(
            err.contains("recent enough for a PostgreSQL 17 server"),
            "{err}"
        );
        let tools = choose(None, vec![(PathBuf::from("/x"), v(15))], None).unwrap();
        assert_eq!(tools.chosen_because, "none on PATH; newest installed");
    }

    #[test]
    fn keeps_the_password_off_the_uri_and_drops_prisma_parameters() {
        let url = DbUrl::new(
            "postgres://app:p%40ss@db:5432/shop?schema=public&sslmode=require&connection_limit=5",
        );
        let conn = PgConn::from_url(&url).unwrap();
        assert_eq!(conn.uri(), "postgresql://app@db:5432/shop?sslmode=require");
        assert_eq!(conn.password.as_deref(), Some("p@ss"));
        assert_eq!(conn.dropped, ["schema", "connection_limit"]);
        assert_eq!(conn.database(), "shop");
        assert_eq!(
            conn.with_database("shop_restore_1").uri(),
            "postgresql://app@db:5432/shop_restore_1?sslmode=require"
        );
        assert_eq!(
            conn.maintenance_uri(),
            "postgresql://app@db:5432/postgres?sslmode=require"
        );
    }
}
