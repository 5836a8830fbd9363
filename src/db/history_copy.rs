//! A copy of the history table as the last `status` read it, so that a `status` on a
//! database where nothing completed since does not have it sent again (5,000 rows are
//! most of what a plain status costs the server, the network and the parser).
//!
//! The copy is used only when the history statement's own snapshot has the same commit
//! horizon (see [`super::schema::live_horizon_sql`]) on the same server and database, for
//! the same table and role, as the snapshot the copy was read in: two snapshots with one
//! horizon see the same committed rows, so the table holds exactly the copied rows. The
//! statement decides that itself and then returns only the rows with `logs` (which the
//! copy never holds: a failed migration's error output can quote data, and nothing of the
//! database's contents is written to the project folder); any other horizon returns every
//! row, and the copy is replaced.
//!
//! Kept per project in `.dbflow/history-copy` (one database's copy: the last one read). It
//! holds no URL and no secret: the server is named by its start time and the database's
//! oid, the table and role by their oids. A file that cannot be read, does not parse or
//! fails its check word is ignored whole; failing to write it only costs the next status
//! the full read. It is as trusted as the hash cache next to it.
//!
//! # Format (v1)
//!
//! Binary, little-endian:
//!
//! ```text
//! "dbflow history copy v1\n"
//! u16 length + bytes, three times     server, table and role oids, horizon
//! u32 rows left out (they have logs)
//! u32 row count, then per row:
//!   u16 length + checksum, migration name, started_at   (RFC 3339 UTC, as status shows)
//!   u16 length + finished_at, rolled_back_at            (0xFFFF: NULL)
//!   i64 applied_steps_count
//! u64 check word over everything before it
//! ```

use super::hash_cache::{check_word, read_bounded, write_atomically};
use super::history::HistoryRow;
use std::path::Path;

/// First bytes of the file; anything else (another format) ignores the copy.
const HEADER: &[u8] = b"dbflow history copy v1\n";

/// The snapshot a copy is keyed on, as text: `xmin:xmax:running,ids` (see
/// [`super::schema::live_horizon_sql`] for why equal ones see the same committed rows; the
/// `xmin` follows from the others).
pub const SNAPSHOT_SQL: &str = "txid_current_snapshot()::text";

/// The file's name, next to the hash cache.
pub const FILE: &str = "history-copy";

/// A copy larger than this is not read (20,000 rows take about 3 MB).
const LIMIT: u64 = 32 << 20;

/// A NULL timestamp's length.
const NULL: u16 = u16::MAX;

/// Which snapshot a copy was read in: server and database, table and role, horizon.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    /// The server and database (see [`super::horizon_memo::server_sql`]).
    pub server: String,
    /// The table's oid and the role reading it (see [`relation_sql`]).
    pub relation: String,
    /// The snapshot the rows were read in ([`SNAPSHOT_SQL`]).
    pub horizon: String,
}

/// The rows of a history table without `logs`, and how many rows with `logs` it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The snapshot the rows were read in.
    pub key: Key,
    /// Every row whose `logs` is NULL, in the order they were saved.
    pub rows: Vec<HistoryRow>,
    /// How many rows were left out because they have `logs`.
    pub with_logs: u32,
}

/// SQL naming the table `table_literal` (a literal of its quoted name) and the role that
/// reads it by their oids (`table/role`): another table (a changed `search_path` or
/// `table` setting) or another role (row security could show it other rows) is another
/// key.
pub fn relation_sql(table_literal: &str) -> String {
    format!(
        "{table_literal}::regclass::oid::text || '/' || quote_ident(current_user)::regrole::oid::text"
    )
}

/// The copy at `path`; `None` when there is none or it is not exactly what [`save`] writes.
pub fn load(path: &Path) -> Option<Copy> {
    let stored = open(path)?;
    Some(Copy {
        key: stored.key.clone(),
        with_logs: stored.with_logs,
        rows: stored.rows()?,
    })
}

/// The copy at `path` with its key read (only the first bytes of the file), its rows not
/// yet read: a status whose snapshot is another one (every status on a busy server) neither
/// holds the file nor makes rows it will not use. The rest, and the check word over the
/// whole file, are read by [`Stored::rows`].
pub fn open(path: &Path) -> Option<Stored> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEAD);
    super::hash_cache::open_regular(path)
        .ok()?
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .ok()?;
    let (key, with_logs, count, rows_at) = parse_head(&head)?;
    Some(Stored {
        path: path.to_path_buf(),
        key,
        with_logs,
        count,
        rows_at,
    })
}

/// Bytes read by [`open`]; [`save`] writes no copy whose key does not fit (a snapshot with
/// over a thousand running transactions changes at once anyway).
const HEAD: usize = 16 * 1024;

/// The key, the count of rows with logs, the row count and where the rows start.
fn parse_head(bytes: &[u8]) -> Option<(Key, u32, usize, usize)> {
    let mut r = Reader {
        bytes: bytes.strip_prefix(HEADER)?,
    };
    let key = Key {
        server: r.text()?.to_string(),
        relation: r.text()?.to_string(),
        horizon: r.text()?.to_string(),
    };
    let with_logs = r.u32()?;
    let count = r.u32()? as usize;
    Some((key, with_logs, count, bytes.len() - r.bytes.len()))
}

/// A copy read by [`open`].
#[derive(Debug)]
pub struct Stored {
    /// The snapshot the rows were read in.
    pub key: Key,
    /// How many rows were left out because they have `logs`.
    pub with_logs: u32,
    path: std::path::PathBuf,
    count: usize,
    rows_at: usize,
}

impl Stored {
    /// Starts decoding its rows on a thread of their own, to be taken with
    /// [`Decoding::rows`]: the decoding (1.5 ms at 5,000 rows) then overlaps the server's
    /// answer instead of following it. Where no thread can be started, they are decoded
    /// when taken.
    pub fn decode_meanwhile(self) -> Decoding {
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(self)));
        let (theirs, stop) = (
            std::sync::Arc::clone(&shared),
            std::sync::Arc::clone(&cancel),
        );
        let thread = std::thread::Builder::new()
            .name("history copy".into())
            .spawn(move || theirs.lock().ok()?.take()?.rows_unless(&stop));
        let work = match thread {
            Ok(thread) => Work::Thread(thread),
            Err(_) => Work::Later(shared.lock().ok().and_then(|mut s| s.take())),
        };
        Decoding {
            work: Some(work),
            cancel,
        }
    }

    /// Its rows, in the order they were saved; `None` when they are not exactly what
    /// [`save`] writes.
    pub fn rows(self) -> Option<Vec<HistoryRow>> {
        self.rows_unless(&std::sync::atomic::AtomicBool::new(false))
    }

    /// [`Stored::rows`], giving up (`None`) once `cancel` is set: rows nobody will use are
    /// not made, and those made so far are freed at once.
    fn rows_unless(self, cancel: &std::sync::atomic::AtomicBool) -> Option<Vec<HistoryRow>> {
        let bytes = read_bounded(&self.path, LIMIT).ok()?;
        let body = bytes.get(..bytes.len().checked_sub(8)?)?;
        if check_word(body).to_le_bytes() != bytes[body.len()..] {
            return None;
        }
        // Replaced since it was opened: another copy than the one the statement matched.
        let (key, with_logs, count, rows_at) = parse_head(body)?;
        if (&key, with_logs, count, rows_at)
            != (&self.key, self.with_logs, self.count, self.rows_at)
        {
            return None;
        }
        let mut r = Reader {
            bytes: &body[rows_at..],
        };
        // Each row takes at least 18 bytes: a count larger than that was not written here.
        let mut rows = Vec::with_capacity(self.count.min(r.bytes.len() / 18));
        for i in 0..self.count {
            if i % 256 == 0 && cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            rows.push(HistoryRow {
                id: String::new(),
                checksum: r.text()?.to_string(),
                migration_name: r.text()?.to_string(),
                started_at: r.text()?.to_string(),
                finished_at: r.nullable()?.map(str::to_string),
                rolled_back_at: r.nullable()?.map(str::to_string),
                logs: None,
                applied_steps_count: i64::from_le_bytes(r.take(8)?.try_into().ok()?),
            });
        }
        r.bytes.is_empty().then_some(rows)
    }
}

/// Saves `rows` (those without `logs`) as read at `key`; errors are ignored (it is only an
/// optimisation, and the next status reads in full).
pub fn save(path: &Path, key: &Key, rows: &[HistoryRow]) {
    if let Some(bytes) = encode(key, rows) {
        let _ = write_atomically(path, &bytes);
    }
}

/// The file [`save`] writes; `None` when a value does not fit the format (it is not saved).
fn encode(key: &Key, rows: &[HistoryRow]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER.len() + 64 + rows.len() * 140);
    out.extend_from_slice(HEADER);
    for text in [&key.server, &key.relation, &key.horizon] {
        put(&mut out, Some(text))?;
    }
    if out.len() + 8 > HEAD {
        return None;
    }
    let with_logs = rows.iter().filter(|r| r.logs.is_some()).count();
    out.extend_from_slice(&u32::try_from(with_logs).ok()?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(rows.len() - with_logs).ok()?.to_le_bytes());
    for row in rows.iter().filter(|r| r.logs.is_none()) {
        put(&mut out, Some(&row.checksum))?;
        put(&mut out, Some(&row.migration_name))?;
        put(&mut out, Some(&row.started_at))?;
        put(&mut out, row.finished_at.as_deref())?;
        put(&mut out, row.rolled_back_at.as_deref())?;
        out.extend_from_slice(&row.applied_steps_count.to_le_bytes());
    }
    let check = check_word(&out);
    out.extend_from_slice(&check.to_le_bytes());
    Some(out)
}

/// Appends `text` with its length (`None`: the NULL length); `None` when it is too long.
fn put(out: &mut Vec<u8>, text: Option<&str>) -> Option<()> {
    match text {
        Some(text) => {
            let len = u16::try_from(text.len()).ok().filter(|&l| l != NULL)?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        None => out.extend_from_slice(&NULL.to_le_bytes()),
    }
    Some(())
}

/// A copy's rows being decoded (see [`Stored::decode_meanwhile`]); dropped untaken, the
/// decoding stops.
#[derive(Debug)]
pub struct Decoding {
    work: Option<Work>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
enum Work {
    /// On their own thread.
    Thread(std::thread::JoinHandle<Option<Vec<HistoryRow>>>),
    /// When taken (no thread could be started).
    Later(Option<Stored>),
}

impl Decoding {
    /// The rows, as [`Stored::rows`] gives them; `None` also when the thread failed.
    pub fn rows(mut self) -> Option<Vec<HistoryRow>> {
        match self.work.take()? {
            Work::Thread(thread) => thread.join().ok().flatten(),
            Work::Later(stored) => stored?.rows(),
        }
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        self.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A cursor over a copy's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn nullable(&mut self) -> Option<Option<&'a str>> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        if len == NULL {
            return Some(None);
        }
        std::str::from_utf8(self.take(usize::from(len))?)
            .ok()
            .map(Some)
    }

    fn text(&mut self) -> Option<&'a str> {
        self.nullable()?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, logs: Option<&str>) -> HistoryRow {
        HistoryRow {
            id: String::new(),
            checksum: format!("{name:0>64}"),
            migration_name: name.into(),
            started_at: "2024-01-01T00:00:00.000Z".into(),
            finished_at: logs.is_none().then(|| "2024-01-01T00:00:01.000Z".into()),
            rolled_back_at: None,
            logs: logs.map(str::to_string),
            applied_steps_count: 1,
        }
    }

    fn key() -> Key {
        Key {
            server: "2026-12-01 01:00:00.1+00/16384".into(),
            relation: "16390/10".into(),
            horizon: "40834:40833".into(),
        }
    }

    #[test]
    fn a_saved_copy_reads_back_without_the_rows_that_have_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".dbflow").join(FILE);
        let rows = vec![
            row("1_a", None),
            row("2_b", Some("ERROR: duplicate key (email)=(x@example.com)")),
            row("3_c", None),
        ];
        save(&path, &key(), &rows);
        let copy = load(&path).unwrap();
        assert_eq!(copy.key, key());
        assert_eq!(copy.with_logs, 1);
        assert_eq!(copy.rows, vec![rows[0].clone(), rows[2].clone()]);
        // The error output (which can quote data) is not in the file.
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"example"));
    }

    #[test]
    fn rows_decoded_meanwhile_are_the_rows_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let rows: Vec<HistoryRow> = (0..3000).map(|i| row(&format!("{i}_m"), None)).collect();
        save(&path, &key(), &rows);
        let stored = open(&path).unwrap();
        assert_eq!(stored.key, key());
        assert_eq!(stored.decode_meanwhile().rows().unwrap(), rows);
    }

    #[test]
    fn a_decoding_dropped_untaken_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let rows: Vec<HistoryRow> = (0..3000).map(|i| row(&format!("{i}_m"), None)).collect();
        save(&path, &key(), &rows);
        let cancel = std::sync::atomic::AtomicBool::new(true);
        assert!(open(&path).unwrap().rows_unless(&cancel).is_none());
        drop(open(&path).unwrap().decode_meanwhile());
    }

    #[test]
    fn a_copy_replaced_after_it_was_opened_gives_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        save(&path, &key(), &[row("1_a", None)]);
        let stored = open(&path).unwrap();
        let mut other = key();
        other.horizon = "40900:".into();
        save(&path, &other, &[row("1_a", None), row("2_b", None)]);
        assert!(stored.rows().is_none());
        assert_eq!(load(&path).unwrap().rows.len(), 2);
    }

    #[test]
    fn a_key_too_long_to_open_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut long = key();
        long.horizon = format!("1:{}", "12345,".repeat(3000));
        save(&path, &long, &[row("1_a", None)]);
        assert!(!path.exists());
    }

    #[test]
    fn a_damaged_truncated_or_foreign_file_is_ignored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        save(&path, &key(), &[row("1_a", None), row("2_b", None)]);
        let good = std::fs::read(&path).unwrap();
        assert!(load(&path).is_some());
        for bad in [
            good[..good.len() - 1].to_vec(),
            good[..good.len() / 2].to_vec(),
            [b"dbflow history copy v0\n", &good[HEADER.len()..]].concat(),
            Vec::new(),
            vec![0xff; 40],
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(load(&path).is_none(), "{bad:?}");
        }
        // One flipped byte in a row: the check word fails.
        let mut flipped = good.clone();
        let at = good.len() - 20;
        flipped[at] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(load(&path).is_none());
    }

    #[test]
    fn a_row_count_larger_than_the_file_is_refused_without_reserving_it() {
        let mut body = HEADER.to_vec();
        for t in ["s", "r", "1:"] {
            put(&mut body, Some(t)).unwrap();
        }
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let check = check_word(&body);
        body.extend_from_slice(&check.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, &body).unwrap();
        assert!(open(&path).is_some(), "the key reads");
        assert!(load(&path).is_none(), "the rows do not");
        assert!(open(&path).unwrap().decode_meanwhile().rows().is_none());
    }

    #[test]
    fn a_fifo_in_its_place_is_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success());
        assert!(load(&path).is_none());
    }
}
