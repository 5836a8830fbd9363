//! The status model: each migration's state from the history rows and the folder. Pure
//! (no database): the observing and the comparing are kept apart so this can be tested.

use crate::db::history::HistoryRow;
use crate::db::store::{Migration, Store};
use serde::Serialize;

/// The state of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied and unchanged.
    Applied,
    /// On disk, not applied.
    Pending,
    /// Started, not finished, not rolled back.
    Failed,
    /// Applied, but the file changed since (checksum differs).
    Modified,
    /// In the history table, not on disk.
    #[serde(rename = "missing")]
    MissingLocally,
    /// Only rolled-back attempts recorded: it will be applied again.
    RolledBack,
}

impl State {
    /// The name used in `fail_on` and output.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Failed => "failed",
            State::Modified => "modified",
            State::MissingLocally => "missing",
            State::RolledBack => "rolled_back",
        }
    }
}

/// One line of the status.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Migration name.
    pub name: String,
    /// Its state.
    pub state: State,
    /// When it finished (applied) or started (failed).
    pub at: Option<String>,
    /// Extra information: the failure log's first line, the checksums that differ, …
    pub note: Option<String>,
}

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// One entry per migration, in name order (missing-locally ones included).
    pub entries: Vec<Entry>,
    /// Schema changes made outside migrations since the last deploy.
    pub drift: Vec<String>,
    /// Whether drift was checked (a recorded state existed and the catalog was readable).
    pub drift_checked: bool,
    /// Whether the drift check read the catalog (PostgreSQL). False when the statement's
    /// commit horizon showed that no transaction completed since the catalog token was
    /// last read (by the deploy that recorded it, or by an earlier status; see
    /// `db::horizon_memo`): the same committed catalog rows, the same token.
    pub catalog_read: bool,
    /// Whether a deploy by dbflow recorded the schema state.
    pub schema_recorded: bool,
    /// Why drift was not checked, when it was not.
    pub drift_note: Option<String>,
    /// Why the recorded schema cannot be trusted: migrations were applied after dbflow
    /// recorded it (by another tool, such as `prisma migrate deploy`). Drift is then not
    /// compared with it (that would name the other tool's changes as drift).
    pub schema_stale: Option<String>,
    /// What drift was compared with when not the recorded schema (a scratch database
    /// built from the migrations, see `db::shadow`).
    pub drift_basis: Option<String>,
    /// The live catalog listing read for the drift check (reused by deploy).
    #[serde(skip)]
    pub live_schema: Option<Vec<String>>,
    /// Whether the history table exists.
    pub history_table_exists: bool,
    /// Folder entries that are not migrations, with why.
    pub ignored: Vec<(String, String)>,
}

impl Status {
    /// Migrations in a given state.
    pub fn with_state(&self, state: State) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.state == state)
    }

    /// The problems among the `fail_on` categories, for people: each migration in a
    /// category asked for (a rolled-back one counts as pending), then the drift.
    pub fn problems_in(&self, fail_on: &[Category]) -> Vec<String> {
        let mut out = Vec::new();
        for entry in &self.entries {
            let Some(category) = Category::of(entry.state) else {
                continue;
            };
            if fail_on.contains(&category) {
                out.push(format!(
                    "{} is {}",
                    entry.name,
                    entry.state.as_str().replace('_', " ")
                ));
            }
        }
        if fail_on.contains(&Category::Drift) {
            out.extend(self.drift.iter().cloned());
        }
        out
    }

    /// [`Status::problems_in`] for categories named in text (`pending`, `failed`,
    /// `modified`, `missing`, `drift`); names that are none of these are ignored.
    pub fn problems(&self, fail_on: &[String]) -> Vec<String> {
        let fail_on: Vec<Category> = fail_on.iter().filter_map(|f| Category::parse(f)).collect();
        self.problems_in(&fail_on)
    }

    /// How many migrations are in each state, every state present (zero included), plus
    /// `total` and `drift` (schema changes found), for `migrate status --json`.
    pub fn counts(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut counts = serde_json::Map::new();
        for state in [
            State::Applied,
            State::Pending,
            State::Failed,
            State::Modified,
            State::MissingLocally,
            State::RolledBack,
        ] {
            counts.insert(state.as_str().into(), self.with_state(state).count().into());
        }
        counts.insert("total".into(), self.entries.len().into());
        counts.insert("drift".into(), self.drift.len().into());
        counts
    }

    /// The newest applied migration.
    pub fn head(&self) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.state == State::Applied || e.state == State::Modified)
            .map(|e| e.name.as_str())
    }
}

/// A kind of problem a status can have, as `fail_on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Pending or rolled-back migrations (not applied yet).
    Pending,
    /// Failed migrations.
    Failed,
    /// Applied migrations whose file changed.
    Modified,
    /// Applied migrations missing from the folder.
    Missing,
    /// Schema changes made outside migrations.
    Drift,
}

impl Category {
    /// Every category, in the order they are listed.
    pub const ALL: [Category; 5] = [
        Category::Pending,
        Category::Failed,
        Category::Modified,
        Category::Missing,
        Category::Drift,
    ];

    /// The name `fail_on` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pending => "pending",
            Category::Failed => "failed",
            Category::Modified => "modified",
            Category::Missing => "missing",
            Category::Drift => "drift",
        }
    }

    /// The category a name stands for.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The category a migration in `state` falls in (none for an applied one).
    pub fn of(state: State) -> Option<Category> {
        match state {
            State::Applied => None,
            State::Pending | State::RolledBack => Some(Category::Pending),
            State::Failed => Some(Category::Failed),
            State::Modified => Some(Category::Modified),
            State::MissingLocally => Some(Category::Missing),
        }
    }
}

/// Every category `fail_on` knows, by name ([`Category::ALL`]'s names).
pub const ALL_CATEGORIES: &[&str] = &["pending", "failed", "modified", "missing", "drift"];

/// Every migration's state from the history rows (oldest first), plus the rows of
/// migrations that are not on disk. The rows are sorted by name once (stably: each
/// migration's own rows stay oldest first) and walked beside the folder's migrations,
/// which [`Store::read`] gives in name order: no map, and no allocation per migration
/// beyond its entry.
pub(super) fn entries_from(store: &Store, rows: &[HistoryRow]) -> Vec<Entry> {
    let mut by_name: Vec<&HistoryRow> = rows.iter().collect();
    by_name.sort_by(|a, b| a.migration_name.cmp(&b.migration_name));
    let mut migrations: Vec<&Migration> = store.migrations.iter().collect();
    // A store built otherwise than by `Store::read` may not be sorted.
    migrations.sort_by(|a, b| a.name.cmp(&b.name));
    let mut entries = Vec::with_capacity(migrations.len());
    let mut rest = &by_name[..];
    let mut mine: &[&HistoryRow] = &[];
    for (i, migration) in migrations.iter().enumerate() {
        let repeated = i > 0 && migrations[i - 1].name == migration.name;
        if !repeated {
            while let Some(first) = rest.first() {
                if first.migration_name.as_str() >= migration.name.as_str() {
                    break;
                }
                rest = push_missing(&mut entries, rest);
            }
            let len = rest
                .iter()
                .take_while(|r| r.migration_name == migration.name)
                .count();
            (mine, rest) = rest.split_at(len);
        }
        entries.push(entry_for(migration, mine));
    }
    while !rest.is_empty() {
        rest = push_missing(&mut entries, rest);
    }
    entries
}

/// Reports the migration of the first of `rows` (sorted by name) as missing from the
/// folder, unless all its rows were rolled back; returns the rows after its own.
fn push_missing<'r>(entries: &mut Vec<Entry>, rows: &'r [&'r HistoryRow]) -> &'r [&'r HistoryRow] {
    let name = &rows[0].migration_name;
    let len = rows
        .iter()
        .take_while(|r| &r.migration_name == name)
        .count();
    let (own, rest) = rows.split_at(len);
    if let Some(row) = own.iter().find(|r| r.rolled_back_at.is_none()) {
        entries.push(Entry {
            name: row.migration_name.clone(),
            state: State::MissingLocally,
            at: row
                .finished_at
                .clone()
                .or_else(|| Some(row.started_at.clone())),
            note: Some(
                "recorded in the history table but not found in the migrations folder".into(),
            ),
        });
    }
    rest
}

/// `mine`: the migration's own history rows, oldest first.
fn entry_for(migration: &Migration, mine: &[&HistoryRow]) -> Entry {
    let mut active = mine.iter().filter(|r| r.rolled_back_at.is_none());
    let entry = |state, at: Option<String>, note: Option<String>| Entry {
        name: migration.name.clone(),
        state,
        at,
        note,
    };
    if let Some(failed) = active.clone().find(|r| r.finished_at.is_none()) {
        let log = failed
            .logs
            .as_deref()
            .and_then(|l| l.lines().next())
            .map(str::to_string);
        return entry(State::Failed, Some(failed.started_at.clone()), log);
    }
    if let Some(applied) = active.next_back() {
        if applied.checksum.eq_ignore_ascii_case(&migration.checksum)
            || migration.matches_checksum(&applied.checksum)
        {
            return entry(State::Applied, applied.finished_at.clone(), None);
        }
        return entry(
            State::Modified,
            applied.finished_at.clone(),
            Some(format!(
                "applied checksum {}…, file now {}…",
                short(&applied.checksum),
                short(&migration.checksum)
            )),
        );
    }
    if let Some(attempt) = mine.last() {
        let log = attempt
            .logs
            .as_deref()
            .and_then(|l| l.lines().next())
            .map(|l| format!("last attempt rolled back: {l}"));
        return entry(State::RolledBack, attempt.rolled_back_at.clone(), log);
    }
    entry(State::Pending, None, None)
}

fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::checksum::sha256_hex;
    use std::path::PathBuf;

    /// A migration whose file does not exist: only its recorded checksum can match.
    fn migration(name: &str, checksum: &str) -> Migration {
        Migration {
            name: name.into(),
            path: PathBuf::from(format!("/nonexistent/{name}/migration.sql")),
            len: 0,
            checksum: checksum.into(),
        }
    }

    fn store(migrations: Vec<Migration>) -> Store {
        Store {
            migrations,
            ..Store::default()
        }
    }

    fn row(name: &str, checksum: &str, started: &str) -> HistoryRow {
        HistoryRow {
            id: format!("id-{name}-{started}"),
            checksum: checksum.into(),
            migration_name: name.into(),
            started_at: started.into(),
            finished_at: None,
            rolled_back_at: None,
            logs: None,
            applied_steps_count: 0,
        }
    }

    fn finished(mut r: HistoryRow, at: &str) -> HistoryRow {
        r.finished_at = Some(at.into());
        r.applied_steps_count = 1;
        r
    }

    fn rolled_back(mut r: HistoryRow, at: &str, logs: &str) -> HistoryRow {
        r.rolled_back_at = Some(at.into());
        r.logs = Some(logs.into());
        r
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn only(store: &Store, rows: &[HistoryRow]) -> Entry {
        let entries = entries_from(store, rows);
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.into_iter().next().unwrap()
    }

    #[test]
    fn a_migration_without_rows_is_pending() {
        let e = only(&store(vec![migration("1_init", A)]), &[]);
        assert_eq!(
            (e.name.as_str(), e.state, e.at, e.note),
            ("1_init", State::Pending, None, None)
        );
    }

    #[test]
    fn a_finished_row_with_the_same_checksum_is_applied_at_its_finish() {
        let rows = [finished(row("1_init", A, "t1"), "t2")];
        let e = only(&store(vec![migration("1_init", A)]), &rows);
        assert_eq!((e.state, e.at.as_deref()), (State::Applied, Some("t2")));
        assert_eq!(e.note, None);
    }

    #[test]
    fn checksums_compare_without_regard_to_case() {
        let rows = [finished(row("1_init", &A.to_uppercase(), "t1"), "t2")];
        let e = only(&store(vec![migration("1_init", A)]), &rows);
        assert_eq!(e.state, State::Applied);
    }

    #[test]
    fn a_changed_file_is_modified_with_both_checksums_shortened() {
        let rows = [finished(row("1_init", A, "t1"), "t2")];
        let e = only(&store(vec![migration("1_init", B)]), &rows);
        assert_eq!((e.state, e.at.as_deref()), (State::Modified, Some("t2")));
        assert_eq!(
            e.note.as_deref(),
            Some("applied checksum aaaaaaaaaaaa…, file now bbbbbbbbbbbb…")
        );
    }

    #[test]
    fn a_file_whose_line_endings_changed_is_still_applied() {
        // Prisma tolerates CRLF↔LF: the recorded checksum is of the LF text, the file
        // on disk now has CRLF (a checkout on Windows).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migration.sql");
        let crlf = b"CREATE TABLE a (id int);\r\n";
        std::fs::write(&path, crlf).unwrap();
        let m = Migration {
            name: "1_init".into(),
            path,
            len: crlf.len() as u64,
            checksum: sha256_hex(crlf),
        };
        let recorded = sha256_hex(b"CREATE TABLE a (id int);\n");
        let rows = [finished(row("1_init", &recorded, "t1"), "t2")];
        assert_eq!(only(&store(vec![m.clone()]), &rows).state, State::Applied);
        // A real change to the text is not excused.
        let other = sha256_hex(b"CREATE TABLE a (id bigint);\n");
        let rows = [finished(row("1_init", &other, "t1"), "t2")];
        assert_eq!(only(&store(vec![m]), &rows).state, State::Modified);
    }

    #[test]
    fn an_unfinished_row_is_failed_with_the_first_line_of_its_log() {
        let mut r = row("1_init", A, "t1");
        r.logs = Some("relation \"x\" does not exist\nat line 3".into());
        let e = only(&store(vec![migration("1_init", A)]), &[r]);
        assert_eq!(e.state, State::Failed);
        assert_eq!(e.at.as_deref(), Some("t1"));
        assert_eq!(e.note.as_deref(), Some("relation \"x\" does not exist"));
    }

    #[test]
    fn failed_wins_over_an_earlier_applied_row() {
        let rows = [
            finished(row("1_init", A, "t1"), "t2"),
            row("1_init", A, "t3"),
        ];
        let e = only(&store(vec![migration("1_init", A)]), &rows);
        assert_eq!((e.state, e.at.as_deref()), (State::Failed, Some("t3")));
    }

    #[test]
    fn only_rolled_back_attempts_read_as_rolled_back_with_the_last_log() {
        let rows = [
            rolled_back(row("1_init", A, "t1"), "t2", "first error"),
            rolled_back(row("1_init", A, "t3"), "t4", "lock timeout\nmore"),
        ];
        let e = only(&store(vec![migration("1_init", A)]), &rows);
        assert_eq!((e.state, e.at.as_deref()), (State::RolledBack, Some("t4")));
        assert_eq!(
            e.note.as_deref(),
            Some("last attempt rolled back: lock timeout")
        );
    }

    #[test]
    fn a_rolled_back_attempt_then_a_success_is_applied() {
        let rows = [
            rolled_back(row("1_init", A, "t1"), "t2", "boom"),
            finished(row("1_init", A, "t3"), "t4"),
        ];
        let e = only(&store(vec![migration("1_init", A)]), &rows);
        assert_eq!((e.state, e.at.as_deref()), (State::Applied, Some("t4")));
    }

    #[test]
    fn the_newest_active_row_decides_between_applied_and_modified() {
        // Re-applied after a resolve: the newest finished row carries the current checksum.
        let rows = [
            finished(row("1_init", B, "t1"), "t2"),
            finished(row("1_init", A, "t3"), "t4"),
        ];
        let e = only(&store(vec![migration("1_init", A)]), &rows);
        assert_eq!((e.state, e.at.as_deref()), (State::Applied, Some("t4")));
    }

    #[test]
    fn rows_without_a_folder_are_missing_once_and_sorted_in_by_name() {
        let rows = [
            finished(row("1_init", A, "t1"), "t2"),
            finished(row("2_gone", A, "t3"), "t4"),
            finished(row("2_gone", A, "t5"), "t6"),
            row("4_gone_unfinished", A, "t7"),
            rolled_back(row("5_gone_rolled_back", A, "t8"), "t9", "x"),
        ];
        let s = store(vec![migration("1_init", A), migration("3_next", A)]);
        let entries = entries_from(&s, &rows);
        let seen: Vec<(&str, State, Option<&str>)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.state, e.at.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("1_init", State::Applied, Some("t2")),
                ("2_gone", State::MissingLocally, Some("t4")),
                ("3_next", State::Pending, None),
                ("4_gone_unfinished", State::MissingLocally, Some("t7")),
            ]
        );
        assert_eq!(
            entries[1].note.as_deref(),
            Some("recorded in the history table but not found in the migrations folder")
        );
    }

    #[test]
    fn entries_follow_name_order_not_row_order() {
        let rows = [
            finished(row("2_b", A, "t1"), "t2"),
            finished(row("1_a", A, "t3"), "t4"),
        ];
        let s = store(vec![
            migration("1_a", A),
            migration("2_b", A),
            migration("3_c", A),
        ]);
        let names: Vec<String> = entries_from(&s, &rows)
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["1_a", "2_b", "3_c"]);
    }

    fn status_of(entries: Vec<Entry>, drift: Vec<String>) -> Status {
        Status {
            entries,
            drift,
            drift_checked: true,
            catalog_read: true,
            schema_recorded: true,
            drift_note: None,
            schema_stale: None,
            drift_basis: None,
            live_schema: None,
            history_table_exists: true,
            ignored: Vec::new(),
        }
    }

    fn entry(name: &str, state: State) -> Entry {
        Entry {
            name: name.into(),
            state,
            at: None,
            note: None,
        }
    }

    #[test]
    fn problems_name_only_the_categories_asked_for_and_rolled_back_counts_as_pending() {
        let s = status_of(
            vec![
                entry("1_a", State::Applied),
                entry("2_b", State::Modified),
                entry("3_c", State::RolledBack),
                entry("4_d", State::Pending),
                entry("5_e", State::MissingLocally),
            ],
            vec!["table `t` added".into()],
        );
        let ask = |c: &[&str]| s.problems(&c.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        assert_eq!(ask(&["pending"]), ["3_c is rolled back", "4_d is pending"]);
        assert_eq!(
            ask(&["modified", "missing", "drift"]),
            ["2_b is modified", "5_e is missing", "table `t` added"]
        );
        assert!(ask(&["failed"]).is_empty());
    }

    #[test]
    fn counts_list_every_state_and_head_is_the_newest_applied_or_modified() {
        let s = status_of(
            vec![
                entry("1_a", State::Applied),
                entry("2_b", State::Modified),
                entry("3_c", State::Pending),
            ],
            Vec::new(),
        );
        let counts = serde_json::Value::Object(s.counts());
        assert_eq!(
            counts,
            serde_json::json!({"applied": 1, "pending": 1, "failed": 0, "modified": 1,
                "missing": 0, "rolled_back": 0, "total": 3, "drift": 0})
        );
        assert_eq!(s.head(), Some("2_b"));
        assert_eq!(
            status_of(vec![entry("1_a", State::Pending)], Vec::new()).head(),
            None
        );
    }

    #[test]
    fn categories_are_named_as_fail_on_writes_them() {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ALL_CATEGORIES);
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        assert_eq!(Category::parse("rolled_back"), None);
    }

    #[test]
    fn state_names_are_the_ones_output_and_fail_on_use() {
        for (state, name) in [
            (State::Applied, "applied"),
            (State::Pending, "pending"),
            (State::Failed, "failed"),
            (State::Modified, "modified"),
            (State::MissingLocally, "missing"),
            (State::RolledBack, "rolled_back"),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(serde_json::to_value(state).unwrap(), name);
        }
    }

    /// The comparison as it was written first (a map of rows by name, then a sort): the
    /// oracle for the merge walk of [`entries_from`].
    fn entries_by_map(store: &Store, rows: &[HistoryRow]) -> Vec<Entry> {
        use std::collections::{HashMap, HashSet};
        let mut by_name: HashMap<&str, Vec<&HistoryRow>> = HashMap::new();
        for row in rows {
            by_name
                .entry(row.migration_name.as_str())
                .or_default()
                .push(row);
        }
        let mut entries: Vec<Entry> = store
            .migrations
            .iter()
            .map(|m| {
                entry_for(
                    m,
                    by_name.get(m.name.as_str()).map_or(&[][..], Vec::as_slice),
                )
            })
            .collect();
        let on_disk: HashSet<&str> = store.migrations.iter().map(|m| m.name.as_str()).collect();
        let mut reported = HashSet::new();
        for row in rows.iter().filter(|r| {
            r.rolled_back_at.is_none()
                && !on_disk.contains(r.migration_name.as_str())
                && reported.insert(r.migration_name.as_str())
        }) {
            entries.push(Entry {
                name: row.migration_name.clone(),
                state: State::MissingLocally,
                at: row
                    .finished_at
                    .clone()
                    .or_else(|| Some(row.started_at.clone())),
                note: Some(
                    "recorded in the history table but not found in the migrations folder".into(),
                ),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    fn seen(entries: &[Entry]) -> Vec<(String, State, Option<String>, Option<String>)> {
        entries
            .iter()
            .map(|e| (e.name.clone(), e.state, e.at.clone(), e.note.clone()))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Any folder (in any order, names repeated or not) against any history (rows of
        /// migrations on disk or not, finished, failed, rolled back, checksums equal or
        /// not) reads the same as the map-based comparison.
        #[test]
        fn the_merge_walk_reads_like_the_map(
            on_disk in proptest::collection::vec((0u8..12, proptest::bool::ANY), 0..10),
            history in proptest::collection::vec((0u8..14, 0u8..4, proptest::bool::ANY), 0..24),
        ) {
            let name = |i: u8| format!("{i:02}_m");
            let s = store(
                on_disk
                    .iter()
                    .map(|&(i, a)| migration(&name(i), if a { A } else { B }))
                    .collect(),
            );
            let rows: Vec<HistoryRow> = history
                .iter()
                .enumerate()
                .map(|(n, &(i, kind, a))| {
                    let r = row(&name(i), if a { A } else { B }, &format!("t{n:02}"));
                    match kind {
                        0 => r,
                        1 => rolled_back(r, &format!("r{n:02}"), "boom\nmore"),
                        _ => finished(r, &format!("f{n:02}")),
                    }
                })
                .collect();
            proptest::prop_assert_eq!(seen(&entries_from(&s, &rows)), seen(&entries_by_map(&s, &rows)));
        }
    }
}
