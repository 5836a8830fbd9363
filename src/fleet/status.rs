//! `dbflow migrate status` over a fleet: every target's history read at once (a few
//! connections at a time), summed up as a version matrix — how many targets stand at
//! each migration head, and which ones are not clean (pending, failed, modified,
//! missing locally, drifted, unreachable).

use super::{instance, Target};
use crate::config::{Project, ResolvedEnv};
use crate::db::migrate::{self, State};
use futures_util::StreamExt;
use indexmap::IndexMap;
use serde::Serialize;

/// One target's status, summed up.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The target.
    pub target: String,
    /// The newest applied migration (`None`: nothing applied).
    pub head: Option<String>,
    /// Migrations not applied yet.
    pub pending: usize,
    /// Migrations started and not finished.
    pub failed: Vec<String>,
    /// Applied migrations whose file changed since.
    pub modified: Vec<String>,
    /// Applied migrations missing from the folder.
    pub missing: Vec<String>,
    /// Schema changes made outside migrations.
    pub drift: Vec<String>,
    /// Why the status could not be read.
    pub error: Option<String>,
}

impl Row {
    /// Clean: up to date, nothing failed, changed, missing or drifted.
    pub fn clean(&self) -> bool {
        self.error.is_none()
            && self.pending == 0
            && self.failed.is_empty()
            && self.modified.is_empty()
            && self.missing.is_empty()
            && self.drift.is_empty()
    }

    /// What is wrong, in one line.
    pub fn problems(&self) -> String {
        if let Some(e) = &self.error {
            return format!("unreachable: {e}");
        }
        let mut out = Vec::new();
        if self.pending > 0 {
            out.push(format!("{} pending", self.pending));
        }
        for (what, list) in [
            ("failed", &self.failed),
            ("modified", &self.modified),
            ("missing locally", &self.missing),
        ] {
            if !list.is_empty() {
                out.push(format!("{what}: {}", list.join(", ")));
            }
        }
        if !self.drift.is_empty() {
            out.push(format!("drift: {}", self.drift.join("; ")));
        }
        out.join(" · ")
    }
}

/// Reads every target's status, `concurrency` at a time, in listing order.
pub fn read(
    project: &Project,
    env: &ResolvedEnv,
    targets: &[Target],
    concurrency: usize,
) -> Result<Vec<Row>, String> {
    let first = targets.first().map(|t| instance(env, t));
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let base = crate::db::target::Target::for_env(project, &first);
    let store = std::sync::Arc::new(base.store().map_err(|e| e.to_string())?);
    let table = base.table.clone();
    let rows = crate::engine::context::runtime().block_on(async {
        futures_util::stream::iter(targets.iter().map(|t| {
            let url = crate::db::target::Target::for_env(project, &instance(env, t)).url;
            let store = store.clone();
            let table = table.clone();
            let name = t.name.clone();
            async move {
                let mut row = Row {
                    target: name,
                    head: None,
                    pending: 0,
                    failed: Vec::new(),
                    modified: Vec::new(),
                    missing: Vec::new(),
                    drift: Vec::new(),
                    error: None,
                };
                let status = match crate::db::conn::Conn::connect(&url).await {
                    Ok(mut conn) => {
                        let status = migrate::status(&mut conn, &store, &table).await;
                        conn.close().await;
                        status
                    }
                    Err(e) => Err(e),
                };
                match status {
                    Err(e) => {
                        row.error =
                            Some(e.to_string().lines().next().unwrap_or_default().to_string())
                    }
                    Ok(status) => {
                        for e in &status.entries {
                            match e.state {
                                State::Applied | State::Modified => row.head = Some(e.name.clone()),
                                _ => {}
                            }
                            match e.state {
                                State::Pending | State::RolledBack => row.pending += 1,
                                State::Failed => row.failed.push(e.name.clone()),
                                State::Modified => row.modified.push(e.name.clone()),
                                State::MissingLocally => row.missing.push(e.name.clone()),
                                State::Applied => {}
                            }
                        }
                        row.drift = status.drift;
                    }
                }
                row
            }
        }))
        .buffered(concurrency.max(1))
        .collect::<Vec<Row>>()
        .await
    });
    Ok(rows)
}

/// The matrix: targets per head (newest head first), then the targets not clean.
pub fn render(env: &str, rows: &[Row]) -> String {
    let mut heads: IndexMap<String, usize> = IndexMap::new();
    for r in rows.iter().filter(|r| r.error.is_none()) {
        *heads
            .entry(r.head.clone().unwrap_or_else(|| "(nothing applied)".into()))
            .or_default() += 1;
    }
    heads.sort_by(|a, _, b, _| b.cmp(a));
    let width = heads.keys().map(String::len).max().unwrap_or(4).max(4);
    let mut out = format!("Migration heads of `{env}` ({} targets):\n", rows.len());
    for (head, n) in &heads {
        out.push_str(&format!(
            "  {head:<width$}  {n} target{}\n",
            if *n == 1 { "" } else { "s" }
        ));
    }
    let dirty: Vec<&Row> = rows.iter().filter(|r| !r.clean()).collect();
    if dirty.is_empty() {
        out.push_str("Every target is clean.");
    } else {
        out.push_str(&format!("Not clean ({}):\n", dirty.len()));
        let w = dirty.iter().map(|r| r.target.len()).max().unwrap_or(0);
        for r in dirty {
            out.push_str(&format!("  {:<w$}  {}\n", r.target, r.problems()));
        }
        out.pop();
    }
    out
}
