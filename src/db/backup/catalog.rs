//! The catalog: `<backups.dir>/<env>/<id>/manifest.json`, newest first. A folder without
//! a readable manifest is not a backup; `.partial-*` folders are backups being written
//! (or interrupted ones, swept once their process is gone).

use super::manifest::{Archive, Manifest, VerifyState};
use crate::config::Project;
use crate::engine::journal;
use crate::error::{Error, Result};
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

    /// Age at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.manifest.created_at
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
        let root = project.root.join(&project.backups_dir);
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

    /// The newest backup that passed verification.
    pub fn newest_verified(&self) -> Option<Entry> {
        self.scan().entries.into_iter().find(Entry::verified)
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
                if key == "backup_id" {
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
