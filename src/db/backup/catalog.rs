//! The catalog: `<backups.dir>/<env>/<id>/manifest.json`, newest first. A folder without
//! a readable manifest is not a backup; `.partial-*` folders are backups being written
//! (or interrupted ones, swept once their process is gone).

use super::create::FUTURE_TOLERANCE;
use super::manifest::{Archive, Manifest, Pin, VerifyState};
use super::runs::{self, RunRecord};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::journal;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Prefix of the temporary folder a backup is written to before it is renamed.
pub const PARTIAL_PREFIX: &str = ".partial-";

/// The backups of one environment.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// `<backups.dir>` (drill reports live in its `drills/`).
    pub root: PathBuf,
    /// `<backups.dir>/<env>`.
    pub dir: PathBuf,
    /// The environment.
    pub env: String,
}

/// One backup.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Entry {
    /// The id (folder name).
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Whether the last verification passed.
    pub fn verified(&self) -> bool {
        self.manifest.verification.state == VerifyState::Verified
    }

    /// Age at `now` (both by this machine's clock, UTC; negative when dated in the
    /// future).
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.manifest.created_at
    }

    /// Dated more than [`FUTURE_TOLERANCE`] after `now`: taken by a machine whose clock
    /// was ahead. Never taken for the newest backup, nor reused, until that time passes.
    pub fn future_dated(&self, now: DateTime<Utc>) -> bool {
        self.manifest.created_at - now > FUTURE_TOLERANCE
    }

    /// Verified and not dated in the future: a backup "latest" and the freshness gates
    /// may choose.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.verified() && !self.future_dated(now)
    }

    /// Whether it was taken before `run` started: by the database server's clock when
    /// both sides read it, else by the host clocks. Returns the answer and the clock.
    pub fn taken_before(&self, run: &RunRecord) -> (bool, &'static str) {
        match (self.manifest.server_time, run.started_by_server()) {
            (Some(taken), Some(started)) => (taken < started, "the database server's clock"),
            _ => (
                self.manifest.created_at < run.started,
                "the host clocks (no server clock reading on both sides)",
            ),
        }
    }

    /// The dump file (or folder).
    pub fn dump_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.dump)
    }

    /// True for PostgreSQL archives.
    pub fn is_postgres(&self) -> bool {
        self.manifest.format != Archive::Sqlite
    }
}

/// The label of the backup the built-in `deploy` workflow takes before deploying.
pub const PRE_DEPLOY_LABEL: &str = "pre-deploy";

/// A deploy whose rollback point a backup is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRef {
    /// The deploy run.
    pub run_id: String,
    /// When it started (host clock).
    pub started: DateTime<Utc>,
    /// 0 for the environment's newest deploy that has a rollback point, 1 for the one
    /// before, …
    pub rank: usize,
}

/// The backup chosen for `rollback --run`, and why.
#[derive(Debug, Clone)]
pub struct RunBackup {
    /// The backup.
    pub entry: Entry,
    /// One line saying why this one.
    pub why: String,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Backups, newest first.
    pub entries: Vec<Entry>,
    /// Folders that look like backups but whose manifest cannot be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Temporary folders of backups in progress or interrupted.
    pub partial: Vec<PathBuf>,
}

impl Catalog {
    /// The catalog of `env` in `project` (paths relative to the project root).
    pub fn new(project: &Project, env: &str) -> Catalog {
        // A folder `backups.repository` (checked at load time) replaces `backups.dir`.
        let folder = project
            .backup_settings(env)
            .repository
            .and_then(|r| super::repository::Location::parse(&r, &project.root).ok())
            .and_then(|l| match l {
                super::repository::Location::Folder(path) => Some(path),
                super::repository::Location::Object { .. } => None,
            });
        let root = folder.unwrap_or_else(|| project.root.join(&project.backups_dir));
        Catalog {
            dir: root.join(env),
            root,
            env: env.to_string(),
        }
    }

    /// Reads every manifest.
    pub fn scan(&self) -> Listing {
        let mut listing = Listing::default();
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return listing;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(PARTIAL_PREFIX) {
                listing.partial.push(path);
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            match Manifest::read(&path) {
                Ok(manifest) if manifest.id == name => listing.entries.push(Entry {
                    dir: path,
                    manifest,
                }),
                Ok(manifest) => listing
                    .unreadable
                    .push((path, format!("its manifest names backup `{}`", manifest.id))),
                Err(e) => listing.unreadable.push((path, e.to_string())),
            }
        }
        listing.entries.sort_by(|a, b| {
            (b.manifest.created_at, &b.manifest.id).cmp(&(a.manifest.created_at, &a.manifest.id))
        });
        listing.partial.sort();
        listing
    }

    /// One backup by id (a unique prefix is enough).
    pub fn get(&self, id: &str) -> Result<Entry> {
        let listing = self.scan();
        if let Some(entry) = listing.entries.iter().find(|e| e.id() == id) {
            return Ok(entry.clone());
        }
        let matches: Vec<&Entry> = listing
            .entries
            .iter()
            .filter(|e| e.id().starts_with(id))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let mut message = format!(
                    "no backup `{id}` in {} (environment `{}`)",
                    self.dir.display(),
                    self.env
                );
                if let Some((_, why)) = listing
                    .unreadable
                    .iter()
                    .find(|(p, _)| p.file_name().is_some_and(|n| n == id))
                {
                    message.push_str(&format!(": its folder exists but {why}"));
                } else if let Some(help) = crate::config::diagnostic::did_you_mean(
                    id,
                    listing.entries.iter().map(Entry::id),
                ) {
                    message.push_str(&format!("; {help}"));
                } else if listing.entries.is_empty() {
                    message.push_str("; there are no backups yet (`dbflow backup create`)");
                } else {
                    message.push_str("; `dbflow backup list` shows them");
                }
                Err(Error::Usage(message))
            }
            many => Err(Error::Usage(format!(
                "`{id}` matches {} backups: {}",
                many.len(),
                many.iter().map(|e| e.id()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The newest backup that passed verification, leaving out backups dated in the
    /// future (their date says nothing about how recent they are).
    pub fn newest_verified(&self) -> Option<Entry> {
        let now = Utc::now();
        self.scan().entries.into_iter().find(|e| e.usable(now))
    }

    /// The backup `rollback --run RUN` restores: the one the run took (or reused)
    /// before its first deploy step, as its journal says, when it still exists and is
    /// verified; otherwise the newest verified backup taken before the run started (by
    /// the database server's clock). Never one taken after: that one may hold the bad
    /// deploy's damage.
    pub fn backup_for_run(&self, project_root: &Path, run: &str) -> Result<RunBackup> {
        let record = runs::find(project_root, run)?;
        let run = record.run_id.as_str();
        if record.env != self.env {
            return Err(Error::Usage(format!(
                "run `{run}` ran on environment `{}`, not `{}`: add --env {}",
                record.env, self.env, record.env
            )));
        }
        let listing = self.scan();
        let why_not;
        if let Some(id) = &record.rollback_point {
            match listing.entries.iter().find(|e| e.id() == id) {
                Some(entry) if entry.verified() => {
                    return Ok(RunBackup {
                        entry: entry.clone(),
                        why: format!(
                            "run {run} took backup {id} before its deploy step (from its journal)"
                        ),
                    })
                }
                Some(entry) => {
                    why_not = format!(
                        "backup {id}, which run {run} took before its deploy step, failed verification ({}); ",
                        entry.manifest.verification.detail
                    )
                }
                None => {
                    why_not = format!(
                        "backup {id}, which run {run} took before its deploy step, is no longer in {}; ",
                        self.dir.display()
                    )
                }
            }
        } else {
            why_not = format!("run {run} took no backup before deploying; ");
        }
        let now = Utc::now();
        for entry in listing.entries.iter().filter(|e| e.usable(now)) {
            let (before, clock) = entry.taken_before(&record);
            if before {
                return Ok(RunBackup {
                    entry: entry.clone(),
                    why: format!(
                        "{why_not}using {}, the newest verified backup taken before the run started (by {clock})",
                        entry.id()
                    ),
                });
            }
        }
        Err(Error::failed(format!(
            "{why_not}no verified backup of `{}` was taken before run {run} started, and a later one may hold what the run did: nothing safe to roll back to automatically; `dbflow backup list --env {}` shows the backups, `dbflow rollback --backup ID` restores one you know predates the damage",
            self.env, self.env
        )))
    }

    /// Pins a backup (`prune` then never removes it); returns it as pinned.
    pub fn pin(&self, id: &str, reason: Option<String>) -> Result<Entry> {
        let mut entry = self.get(id)?;
        entry.manifest.pinned = Some(Pin {
            reason,
            by: user_name(),
            at: Utc::now(),
        });
        entry.manifest.write(&entry.dir)?;
        Ok(entry)
    }

    /// Removes a backup's pin; returns it and the pin it had.
    pub fn unpin(&self, id: &str) -> Result<(Entry, Option<Pin>)> {
        let mut entry = self.get(id)?;
        let had = entry.manifest.pinned.take();
        if had.is_some() {
            entry.manifest.write(&entry.dir)?;
        }
        Ok((entry, had))
    }

    /// Each backup that is the rollback point of a deploy, with those deploys (newest
    /// first) and their rank among the environment's deploys that have one (0 = the
    /// newest). Deploys come from the run journals here (runs that reached a `deploy`
    /// step); a backup labelled `pre-deploy` whose run has no journal here (it ran on
    /// another machine sharing this repository) counts as its run's rollback point too.
    pub fn rollback_points(
        &self,
        project_root: &Path,
        entries: &[Entry],
    ) -> BTreeMap<String, Vec<DeployRef>> {
        let journaled = runs::of_env(project_root, &self.env);
        let mut deploys: Vec<(DateTime<Utc>, String, String)> = journaled
            .iter()
            .filter(|r| r.deployed)
            .filter_map(|r| {
                r.rollback_point
                    .clone()
                    .map(|id| (r.started, r.run_id.clone(), id))
            })
            .collect();
        for entry in entries {
            let m = &entry.manifest;
            if m.label.as_deref() != Some(PRE_DEPLOY_LABEL) {
                continue;
            }
            let run_id = m.run_id.clone().unwrap_or_else(|| "(unknown run)".into());
            let known = journaled.iter().any(|r| r.run_id == run_id)
                || deploys.iter().any(|(_, _, id)| id == entry.id());
            if !known {
                deploys.push((m.created_at, run_id, entry.id().to_string()));
            }
        }
        deploys.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let mut points: BTreeMap<String, Vec<DeployRef>> = BTreeMap::new();
        for (rank, (started, run_id, id)) in deploys.into_iter().enumerate() {
            points.entry(id).or_default().push(DeployRef {
                run_id,
                started,
                rank,
            });
        }
        points
    }

    /// Removes the temporary folders of interrupted backups (their process is gone);
    /// returns what was removed.
    pub fn sweep_partials(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for path in self.scan().partial {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let alive = name
                .rsplit('-')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(process_alive);
            if !alive && std::fs::remove_dir_all(&path).is_ok() {
                removed.push(path);
            }
        }
        removed
    }
}

/// Whether a process with this id runs on this machine. Without `/proc` nothing can be
/// known and the answer is yes (keeping something is the safe mistake).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// This machine's name, as journals record it.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Who runs dbflow, as journals record it.
pub fn user_name() -> String {
    crate::actor::actor()
}

/// How long a journal without a `run_end` and without a process to check still counts
/// as a run in progress.
const UNCHECKABLE_RUN_GRACE: chrono::Duration = chrono::Duration::hours(24);

/// Backups referenced by runs still in progress, by backup id → run id. A run is in
/// progress while its journal has no `run_end` and its process is alive (or, when it
/// ran on another host, for a day after it started).
pub fn pinned_by_runs(project_root: &Path, env: &str) -> BTreeMap<String, String> {
    let mut pinned = BTreeMap::new();
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let week_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7 * 86_400);
    for path in journal::list(project_root) {
        // A run that has not written a line for a week is not in progress.
        let recent = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= week_ago);
        if !recent {
            continue;
        }
        let Ok(events) = journal::read(&path) else {
            continue;
        };
        let Some(start) = events.iter().find(|e| e["event"] == "run_start") else {
            continue;
        };
        if start["env"] != env || events.iter().any(|e| e["event"] == "run_end") {
            continue;
        }
        let same_host = start["host"].as_str() == Some(host.as_str());
        let in_progress = match start["pid"].as_u64() {
            Some(pid) if same_host => process_alive(pid as u32),
            _ => start["ts"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| Utc::now() - t.with_timezone(&Utc) < UNCHECKABLE_RUN_GRACE),
        };
        if !in_progress {
            continue;
        }
        let run_id = start["run_id"].as_str().unwrap_or("?").to_string();
        for event in &events {
            collect_backup_ids(event, &mut |id| {
                pinned.insert(id.to_string(), run_id.clone());
            });
        }
    }
    pinned
}

/// Every `backup_id` value anywhere inside a journal event.
pub fn collect_backup_ids(value: &serde_json::Value, found: &mut dyn FnMut(&str)) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if key == crate::journal::BACKUP_ID {
                    if let Some(id) = v.as_str() {
                        found(id);
                    }
                }
                collect_backup_ids(v, found);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                collect_backup_ids(v, found);
            }
        }
        _ => {}
    }
}

/// `45s`, `12m`, `3h05m`, `2d4h`.
pub fn human_age(age: chrono::Duration) -> String {
    let secs = age.num_seconds().max(0);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600)
    }
}

/// An age as `backup list` shows it: [`human_age`], or `in 3h05m` for a backup dated
/// in the future.
pub fn age_text(age: chrono::Duration) -> String {
    if age < -chrono::Duration::seconds(1) {
        format!("in {}", human_age(-age))
    } else {
        human_age(age)
    }
}

/// `512 B`, `4.2 KiB`, `1.3 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_well() {
        assert_eq!(human_age(chrono::Duration::seconds(42)), "42s");
        assert_eq!(human_age(chrono::Duration::seconds(125)), "2m");
        assert_eq!(
            human_age(chrono::Duration::seconds(3 * 3600 + 300)),
            "3h05m"
        );
        assert_eq!(human_age(chrono::Duration::hours(52)), "2d4h");
        assert_eq!(
            age_text(chrono::Duration::seconds(-3 * 3600 + 300)),
            "in 2h55m"
        );
        assert_eq!(age_text(chrono::Duration::milliseconds(-300)), "0s");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(4300), "4.2 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn finds_backup_ids_anywhere_in_an_event() {
        let event = serde_json::json!({"event": "step_end", "outputs": {"backup_id": "a"}, "more": [{"backup_id": "b"}]});
        let mut found = Vec::new();
        collect_backup_ids(&event, &mut |id| found.push(id.to_string()));
        assert_eq!(found, ["a", "b"]);
    }
}
