//! The status model: each migration's state from the history rows and the folder. Pure
//! (no database): the observing and the comparing are kept apart so this can be tested.

use crate::db::history::HistoryRow;
use crate::db::store::{Migration, Store};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

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

    /// The problems among `fail_on` categories (`pending`, `failed`, `modified`,
    /// `missing`, `drift`), for people.
    pub fn problems(&self, fail_on: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for entry in &self.entries {
            let category = match entry.state {
                State::Applied => continue,
                State::RolledBack => "pending",
                other => other.as_str(),
            };
            if fail_on.iter().any(|f| f == category) {
                out.push(format!(
                    "{} is {}",
                    entry.name,
                    entry.state.as_str().replace('_', " ")
                ));
            }
        }
        if fail_on.iter().any(|f| f == "drift") {
            out.extend(self.drift.iter().cloned());
        }
        out
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

/// Every category `fail_on` knows.
pub const ALL_CATEGORIES: &[&str] = &["pending", "failed", "modified", "missing", "drift"];

/// Every migration's state from the history rows (oldest first), plus the rows of
/// migrations that are not on disk. Linear in rows + migrations: projects have hundreds.
pub(super) fn entries_from(store: &Store, rows: &[HistoryRow]) -> Vec<Entry> {
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
    let missing = rows.iter().filter(|r| {
        r.rolled_back_at.is_none()
            && !on_disk.contains(r.migration_name.as_str())
            && reported.insert(r.migration_name.as_str())
    });
    for row in missing {
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

/// `mine`: the migration's own history rows, oldest first.
fn entry_for(migration: &Migration, mine: &[&HistoryRow]) -> Entry {
    let active: Vec<&&HistoryRow> = mine.iter().filter(|r| r.rolled_back_at.is_none()).collect();
    let entry = |state, at: Option<String>, note: Option<String>| Entry {
        name: migration.name.clone(),
        state,
        at,
        note,
    };
    if let Some(failed) = active.iter().find(|r| r.finished_at.is_none()) {
        let log = failed
            .logs
            .as_deref()
            .and_then(|l| l.lines().next())
            .map(str::to_string);
        return entry(State::Failed, Some(failed.started_at.clone()), log);
    }
    if let Some(applied) = active.last() {
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
