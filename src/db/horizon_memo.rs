//! What `status` learnt about a database's catalog the last time it read it in full: "at
//! commit horizon H of server S, the catalog change token was T" (see
//! [`super::schema::live_horizon_sql`]). A later `status` whose own statement sees the same
//! horizon on the same server sees the same committed catalog rows, so the token is T
//! without reading one catalog row again.
//!
//! Kept per project in `.dbflow/catalog-horizons`, a few lines, newest first; it holds no
//! URL and no secret (a server is named by its start time and the database's oid). A
//! file that cannot be read, or any line that is not exactly what dbflow writes, ignores
//! the whole file; failing to write it only costs the next `status` a catalog read. It
//! is as trusted as the migration hash cache next to it: both only skip re-reading what
//! did not change, and an edit to either by hand can only make dbflow re-read.

use super::hash_cache::{open_regular, write_atomically};
use std::path::Path;

/// First line of the file; another one (another format) ignores the file.
const HEADER: &str = "dbflow catalog horizons v1";

/// Servers remembered at most (one line each; environments of one project).
const KEEP: usize = 8;

/// Longest horizon remembered: a horizon lists the transactions running at that moment,
/// and a busy server's changes at once anyway.
const MAX_HORIZON: usize = 512;

/// One remembered fact: on `server`, at `horizon`, the catalog token was `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The server and database (start time and database oid, see [`server_sql`]).
    pub server: String,
    /// The commit horizon the token was read at.
    pub horizon: String,
    /// The catalog change token read then.
    pub token: String,
}

/// SQL naming the server and database a memo line belongs to: the postmaster's start
/// time (a restart, a restore or another cluster gives another) and the database's oid
/// (databases of one cluster share horizons). Readable by any role.
pub fn server_sql() -> &'static str {
    "pg_postmaster_start_time()::text || '/' || (SELECT oid FROM pg_database WHERE datname = current_database())::text"
}

/// The remembered facts at `path`, newest first; empty when there are none or the file
/// is not exactly what [`remember`] writes.
pub fn load(path: &Path) -> Vec<Seen> {
    read_small(path)
        .and_then(|text| parse(&text))
        .unwrap_or_default()
}

/// The file's text when it is a regular file of at most [`MAX_FILE`] bytes of UTF-8 (a
/// bigger one, or a FIFO or device, was not written by dbflow: it is not read, nor waited on).
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    open_regular(path)
        .ok()?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_FILE).then_some(text)
}

/// The largest memo dbflow writes is [`KEEP`] lines of at most ~600 bytes.
const MAX_FILE: u64 = 16 * 1024;

fn parse(text: &str) -> Option<Vec<Seen>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut seen = Vec::new();
    for line in lines {
        let mut fields = line.split('\t');
        let (server, horizon, token) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || seen.len() >= KEEP {
            return None;
        }
        let entry = Seen {
            server: server.to_string(),
            horizon: horizon.to_string(),
            token: token.to_string(),
        };
        if !entry.is_plain() || seen.iter().any(|s: &Seen| s.server == entry.server) {
            return None;
        }
        seen.push(entry);
    }
    Some(seen)
}

impl Seen {
    /// Only the characters PostgreSQL's own output has here (digits, `:`, `,`, `-`, `+`,
    /// `.`, `/`, space): anything else was not written by dbflow.
    fn is_plain(&self) -> bool {
        let ok = |s: &str, extra: &[u8]| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || extra.contains(&b))
        };
        ok(&self.server, b":-+./ ")
            && ok(&self.horizon, b":,")
            && ok(&self.token, b":-")
            && self.horizon.len() <= MAX_HORIZON
    }
}

/// Remembers `seen` at `path` (replacing what was remembered for its server), keeping the
/// newest [`KEEP`]; written atomically, errors ignored (it is only an optimisation).
pub fn remember(path: &Path, seen: Seen) {
    if !seen.is_plain() {
        return;
    }
    let mut all = load(path);
    all.retain(|s| s.server != seen.server);
    all.insert(0, seen);
    all.truncate(KEEP);
    let mut text = format!("{HEADER}\n");
    for s in &all {
        text.push_str(&format!("{}\t{}\t{}\n", s.server, s.horizon, s.token));
    }
    let _ = write_atomically(path, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(server: &str, horizon: &str) -> Seen {
        Seen {
            server: server.into(),
            horizon: horizon.into(),
            token: "90154:1:3450419511:132412006942593".into(),
        }
    }

    #[test]
    fn remembered_facts_read_back_newest_first_one_per_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".dbflow/catalog-horizons");
        remember(&path, seen("2026-11-30 21:00:00.1+00/16384", "40834:"));
        remember(&path, seen("2026-11-30 21:00:00.1+00/16390", "40840:40833"));
        remember(&path, seen("2026-11-30 21:00:00.1+00/16384", "40850:"));
        let all = load(&path);
        assert_eq!(
            all,
            vec![
                seen("2026-11-30 21:00:00.1+00/16384", "40850:"),
                seen("2026-11-30 21:00:00.1+00/16390", "40840:40833"),
            ]
        );
    }

    #[test]
    fn at_most_keep_servers_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        for i in 0..KEEP + 3 {
            remember(&path, seen(&format!("2026-11-30 21:00:00+00/{i}"), "1:"));
        }
        let all = load(&path);
        assert_eq!(all.len(), KEEP);
        assert_eq!(
            all[0].server,
            format!("2026-11-30 21:00:00+00/{}", KEEP + 2)
        );
    }

    #[test]
    fn a_file_with_anything_dbflow_did_not_write_is_ignored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let good = format!("{HEADER}\n2026-11-30 21:00:00+00/1\t5:\t1:0:2:3\n");
        std::fs::write(&path, &good).unwrap();
        assert_eq!(load(&path).len(), 1);
        for bad in [
            "dbflow catalog horizons v0\n2026-11-30 21:00:00+00/1\t5:\t1:0:2:3\n".to_string(),
            format!("{HEADER}\n2026-11-30 21:00:00+00/1\t5:'; DROP TABLE x; --\t1:0:2:3\n"),
            format!("{HEADER}\n2026-11-30 21:00:00+00/1\t5:\n"),
            format!("{HEADER}\n2026-11-30 21:00:00+00/1\t5:\t1:0:2:3\textra\n"),
            format!("{HEADER}\n2026-11-30 21:00:00+00/1\t\t1:0:2:3\n"),
            format!(
                "{HEADER}\n2026-11-30 21:00:00+00/1\t{}:\t1:0:2:3\n",
                "9".repeat(600)
            ),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(load(&path), Vec::new(), "{bad}");
        }
        std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(load(&path), Vec::new());
        // Longer than dbflow ever writes: not read whole, ignored.
        let long = format!("{HEADER}\n{}\t5:\t1:0:2:3\n", "1".repeat(MAX_FILE as usize));
        std::fs::write(&path, long).unwrap();
        assert_eq!(load(&path), Vec::new());
    }

    #[test]
    fn nothing_that_is_not_plain_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        remember(
            &path,
            Seen {
                server: "x'y".into(),
                horizon: "1:".into(),
                token: "1".into(),
            },
        );
        assert!(!path.exists());
    }
}
