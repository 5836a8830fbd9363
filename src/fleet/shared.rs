//! Fleet journal parts in the backup repository (`backups.repository` of the fleet's
//! environment, a folder or object storage every runner shares): each machine uploads
//! its part when its fleet run ends, under `fleets/<run-id>/<part>.jsonl`, so
//! `dbflow fleet summary RUN_ID` on any machine can merge every shard's part.

use crate::config::{Project, Vars};
use crate::db::backup::repository::{configured, open_any, Remote};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use std::path::Path;

fn remote(project: &Project, env: &str, vars: &Vars) -> Result<Option<Remote>, String> {
    match configured(project, env, vars)? {
        Some(location) => open_any(&location, vars).map(Some),
        None => Ok(None),
    }
}

/// Uploads `file` as part `part` of fleet run `run_id`; `Ok(None)` when the environment
/// has no backup repository, else where it went.
pub fn upload(
    project: &Project,
    env: &str,
    vars: &Vars,
    run_id: &str,
    part: &str,
    file: &Path,
) -> Result<Option<String>, String> {
    let Some(remote) = remote(project, env, vars)? else {
        return Ok(None);
    };
    let bytes = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let key = remote.key(&["fleets", run_id, &format!("{part}.jsonl")]);
    crate::engine::context::runtime()
        .block_on(remote.store.put(&key, bytes.into()))
        .map_err(|e| format!("uploading the fleet journal to {}: {e}", remote.shown))?;
    Ok(Some(format!(
        "{}/{key}",
        remote.shown.trim_end_matches('/')
    )))
}

/// Downloads every part of fleet run `run_id` into `into`; how many there were
/// (`Ok(0)` without a backup repository).
pub fn download(
    project: &Project,
    env: &str,
    vars: &Vars,
    run_id: &str,
    into: &Path,
) -> Result<usize, String> {
    let Some(remote) = remote(project, env, vars)? else {
        return Ok(0);
    };
    let under = remote.key(&["fleets", run_id]);
    crate::engine::context::runtime().block_on(async {
        let mut keys = Vec::new();
        let mut listing = remote.store.list(Some(&under));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| format!("listing {under} in {}: {e}", remote.shown))?;
            keys.push(meta.location);
        }
        let mut n = 0;
        for key in keys {
            let Some(name) = key.filename().filter(|f| f.ends_with(".jsonl")) else {
                continue;
            };
            let bytes = remote
                .store
                .get(&key)
                .await
                .map_err(|e| format!("reading {key}: {e}"))?
                .bytes()
                .await
                .map_err(|e| format!("reading {key}: {e}"))?;
            std::fs::write(into.join(name), &bytes)
                .map_err(|e| format!("writing {}: {e}", into.join(name).display()))?;
            n += 1;
        }
        Ok(n)
    })
}
