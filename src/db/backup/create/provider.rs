//! Cataloging a snapshot taken by a Lua provider (`via: provider`).

use super::*;

/// Catalogs a snapshot a Lua provider took (and its `wait` confirmed): a folder with only
/// the manifest, written under a temporary name and renamed like any backup.
#[allow(clippy::too_many_arguments)]
pub fn record_provider_snapshot(
    catalog: &Catalog,
    url: &DbUrl,
    provider: &str,
    snapshot_id: &str,
    label: Option<&str>,
    run_id: Option<&str>,
    migration_head: Option<String>,
    started: chrono::DateTime<Utc>,
) -> Result<Entry> {
    if let Some(label) = label {
        check_label(label)?;
    }
    create_private_dir_all(&catalog.dir)
        .map_err(|e| Error::io(format!("creating {}", catalog.dir.display()), e))?;
    let id = unique_id(catalog, started, label);
    let now = Utc::now();
    let mut manifest = unverified_manifest(catalog, &id, url, started, run_id, label);
    manifest.duration_ms = (now - started).num_milliseconds().max(0) as u64;
    manifest.format = Archive::Provider;
    manifest.migration_head = migration_head;
    manifest.verification = Verification {
        state: VerifyState::Verified,
        checked_at: now,
        detail: format!("provider `{provider}` reported snapshot {snapshot_id} available"),
    };
    manifest.provider = Some(crate::db::backup::manifest::ProviderSnapshot {
        name: provider.to_string(),
        snapshot_id: snapshot_id.to_string(),
    });
    let partial = catalog
        .dir
        .join(format!("{PARTIAL_PREFIX}{id}-{}", std::process::id()));
    create_private_dir(&partial)
        .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
    manifest.write(&partial)?;
    let dir = catalog.dir.join(&id);
    std::fs::rename(&partial, &dir).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", partial.display(), dir.display()),
            e,
        )
    })?;
    Ok(Entry { dir, manifest })
}
