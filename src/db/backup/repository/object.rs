//! Backups in object storage: `<prefix>/<env>/<id>/{dump.pgdump, manifest.json}` (custom
//! format), or `<prefix>/<env>/<id>/{dump/<file>…, manifest.json}` (directory format,
//! one object per file: [`super::directory`]).
//!
//! The dump is hashed and uploaded while pg_dump produces it (multipart, a bounded
//! number of parts in flight: memory stays flat whatever the database size); the
//! manifest is written last, with a create-only put. A backup without a manifest is not
//! in the catalog: an interrupted upload is aborted (its parts deleted), and a dump left
//! without a manifest by a killed process is swept by the next backup.

use super::parts::Parts;
use super::Remote;
use crate::config::raw::DumpFormat;
use crate::db::backup::catalog::Entry;
use crate::db::backup::create::{lock_wait_arg, CreateOptions};
use crate::db::backup::manifest::{Archive, Manifest, Verification, VerifyState, HOST_CLOCK};
use crate::db::backup::{restore, source, verify, Event};
use crate::db::pgtools::{tool_failure, PgConn, PgTools};
use crate::db::Conn;
use crate::error::{Error, Result};
use chrono::Utc;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Name of the manifest object.
pub const MANIFEST: &str = "manifest.json";
/// Name of the dump object (custom format).
pub const DUMP: &str = "dump.pgdump";
/// How old a dump without a manifest must be before the sweep deletes it: a backup
/// still being written by another runner has its dump completed only moments before its
/// manifest, never hours.
const ORPHAN_AGE: chrono::Duration = chrono::Duration::hours(6);

pub(super) fn storage_error(remote: &Remote, what: &str, e: impl std::fmt::Display) -> Error {
    Error::failed(crate::redact::redact(&format!(
        "{what} in repository {}: {e}",
        remote.shown
    )))
}

/// The catalog entry of a remote backup: its `dir` is the backup's URL (shown, never
/// opened as a folder).
fn entry(remote: &Remote, manifest: Manifest) -> Entry {
    Entry {
        dir: PathBuf::from(format!(
            "{}/{}/{}",
            remote.shown, manifest.environment, manifest.id
        )),
        manifest,
    }
}

/// Every backup of `env`, newest first; objects that do not parse as a manifest are
/// returned beside them with why.
pub async fn list(remote: &Remote, env: &str) -> Result<(Vec<Entry>, Vec<(String, String)>)> {
    let under = remote.key(&[env]);
    let mut objects = remote.store.list(Some(&under));
    let mut keys = Vec::new();
    while let Some(meta) = objects.next().await {
        let meta = meta.map_err(|e| storage_error(remote, "listing the backups", e))?;
        // `<env>/<id>/manifest.json` only: a fleet target's backups
        // (`<env>/<target>/<id>/…`) belong to that target, not to `env`.
        let depth = meta.location.prefix_match(&under).map(|p| p.count());
        if meta.location.filename() == Some(MANIFEST) && depth == Some(2) {
            keys.push(meta.location);
        }
    }
    let mut entries = Vec::new();
    let mut unreadable = Vec::new();
    for key in keys {
        match read_manifest(remote, &key).await {
            Ok(m) => entries.push(entry(remote, m)),
            Err(e) => unreadable.push((key.to_string(), e.to_string())),
        }
    }
    entries.sort_by(|a, b| {
        b.manifest
            .created_at
            .cmp(&a.manifest.created_at)
            .then_with(|| b.id().cmp(a.id()))
    });
    Ok((entries, unreadable))
}

async fn read_manifest(remote: &Remote, key: &ObjectPath) -> Result<Manifest> {
    let bytes = remote
        .store
        .get(key)
        .await
        .map_err(|e| storage_error(remote, &format!("reading {key}"), e))?
        .bytes()
        .await
        .map_err(|e| storage_error(remote, &format!("reading {key}"), e))?;
    let mut manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::failed(format!("{key}: not a dbflow manifest: {e}")))?;
    // Where it is stored says which backup it is: the text was redacted when written, and
    // a credential that happens to equal an environment name (an access key id `prod`)
    // would otherwise send every later read to `****/…`.
    // The environment may span several segments (a fleet target's `production/acme`).
    let parts: Vec<String> = key
        .parts()
        .skip(remote.prefix.parts().count())
        .map(|p| p.as_ref().to_string())
        .collect();
    if let [env @ .., id, _] = parts.as_slice() {
        if !env.is_empty() {
            manifest.environment = env.join("/");
        }
        manifest.id = id.clone();
    }
    if manifest.format_version > crate::db::backup::manifest::FORMAT_VERSION {
        return Err(Error::failed(format!(
            "{key}: written by a newer dbflow (manifest format {}); upgrade dbflow",
            manifest.format_version
        )));
    }
    Ok(manifest)
}

/// The backup `id` of `env` (`latest`: the newest verified one).
pub async fn get(remote: &Remote, env: &str, id: &str) -> Result<Entry> {
    if id == "latest" {
        let now = Utc::now();
        let (entries, _) = list(remote, env).await?;
        return entries.into_iter().find(|e| e.usable(now)).ok_or_else(|| {
            Error::failed(format!(
                "no verified backup of `{env}` in repository {}",
                remote.shown
            ))
        });
    }
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(Error::Usage(format!("`{id}` is not a backup id")));
    }
    match read_manifest(remote, &remote.key(&[env, id, MANIFEST])).await {
        Ok(m) => Ok(entry(remote, m)),
        Err(_) => Err(Error::failed(format!(
            "no backup `{id}` of `{env}` in repository {} (`dbflow backup list --env {env}`)",
            remote.shown
        ))),
    }
}

/// Deletes dumps whose manifest never came (a process killed between the two): only
/// those older than [`ORPHAN_AGE`], so a concurrent runner's backup is never touched.
/// Unfinished multipart uploads are aborted by the process that started them; a bucket
/// lifecycle rule (`AbortIncompleteMultipartUpload`) catches those of killed processes.
pub async fn sweep_orphans(remote: &Remote, env: &str) -> Result<Vec<String>> {
    let under = remote.key(&[env]);
    let mut objects = remote.store.list(Some(&under));
    let mut by_backup: std::collections::BTreeMap<String, (bool, Vec<object_store::ObjectMeta>)> =
        Default::default();
    while let Some(meta) = objects.next().await {
        let meta = meta.map_err(|e| storage_error(remote, "listing the backups", e))?;
        let parts: Vec<_> = meta
            .location
            .prefix_match(&under)
            .into_iter()
            .flatten()
            .collect();
        let Some(id) = parts.first().map(|p| p.as_ref().to_string()) else {
            continue;
        };
        // `.drills/`, `.prune-lease`: dbflow's own records beside the backups.
        if id.starts_with('.') {
            continue;
        }
        let slot = by_backup.entry(id).or_default();
        let rest: Vec<&str> = parts[1..].iter().map(|p| p.as_ref()).collect();
        match rest.as_slice() {
            [MANIFEST] => slot.0 = true,
            [DUMP] | [super::directory::DUMP_DIR, _] => slot.1.push(meta),
            // Not the shape of a backup (a fleet target's folder, `<env>/<target>/…`):
            // never swept from here.
            _ => slot.0 = true,
        }
    }
    let now = Utc::now();
    let mut removed = Vec::new();
    for (id, (has_manifest, objects)) in by_backup {
        if has_manifest || objects.iter().any(|o| now - o.last_modified < ORPHAN_AGE) {
            continue;
        }
        for object in objects {
            remote
                .store
                .delete(&object.location)
                .await
                .map_err(|e| storage_error(remote, "removing an interrupted backup", e))?;
        }
        removed.push(id);
    }
    Ok(removed)
}

/// Takes a backup of the PostgreSQL database of `options` straight into `remote`
/// (custom format: streamed; directory format: through a private temporary folder, one
/// object per file), and catalogs it there by writing its manifest last.
pub fn create(
    remote: &Remote,
    env: &str,
    options: &CreateOptions<'_>,
    recipients: &[String],
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<Entry> {
    let url = options.url;
    if !url.is_postgres() {
        return Err(Error::Usage(format!(
            "object-storage repositories hold PostgreSQL backups; back up {} into a folder repository",
            url.redacted()
        )));
    }
    if let Some(label) = options.label {
        crate::db::backup::create::check_label(label)?;
    }
    let _scope = crate::interrupt::scope();
    for id in rt.block_on(sweep_orphans(remote, env))? {
        on_event(Event::Note(format!(
            "removed the dump of {id}, left without a manifest by an interrupted backup"
        )));
    }
    let started = Instant::now();
    let created_at = Utc::now();
    let id = rt.block_on(unique_id(remote, env, created_at, options.label))?;
    let mut manifest = new_manifest(env, &id, options, created_at);

    let (mut conn, info) = rt.block_on(async {
        let mut conn = Conn::connect(url)
            .await
            .map_err(|e| crate::db::target::connect_error(url, e))?;
        match source::read_postgres(
            &mut conn,
            options.key_tables,
            options.history_table,
            options.lock_wait_timeout,
        )
        .await
        {
            Ok(info) => Ok((conn, info)),
            Err(e) => {
                conn.close().await;
                Err(Error::failed(format!("reading {}: {e}", url.redacted())))
            }
        }
    })?;
    let dumped = (|| {
        let tools = PgTools::locate(info.server_major)?;
        on_event(Event::Note(format!("using {}", tools.describe())));
        let pg = PgConn::from_url(url)?;
        manifest.tool_version = Some(tools.version.text.clone());
        if options.format == DumpFormat::Directory {
            return dump_directory(
                remote,
                env,
                &id,
                options,
                &tools,
                &pg,
                info.snapshot.as_deref(),
                recipients,
                rt,
                on_event,
            );
        }
        let mut args = vec![
            "--format=custom".to_string(),
            lock_wait_arg(options.lock_wait_timeout),
            format!("--dbname={}", pg.uri()),
        ];
        if let Some(snapshot) = &info.snapshot {
            args.push(format!("--snapshot={snapshot}"));
        }
        on_event(Event::Phase(format!(
            "pg_dump --format=custom {} → {}/{env}/{id}/{DUMP}",
            pg.uri(),
            remote.shown
        )));
        let reader = tools
            .command("pg_dump", Some(&pg), &args)
            .stdin_null()
            .reader()
            .map_err(|e| Error::failed(format!("cannot start pg_dump: {e}")))?;
        let _children = crate::interrupt::children_of(reader.pids());
        let key = remote.key(&[env, &id, DUMP]);
        let encryption = if recipients.is_empty() {
            None
        } else {
            Some(super::crypt::encryptor(recipients)?)
        };
        let uploaded = rt.block_on(upload(remote, &key, &reader, encryption, on_event));
        let (size, sha256) = match uploaded {
            Ok(done) => done,
            Err(e) => {
                let _ = reader.kill();
                return Err(e);
            }
        };
        let output = reader
            .try_wait()
            .map_err(|e| Error::failed(format!("waiting for pg_dump: {e}")))?
            .cloned()
            .ok_or_else(|| Error::failed("pg_dump did not finish"))?;
        if !output.status.success() {
            rt.block_on(async {
                let _ = remote.store.delete(&key).await;
            });
            return Err(Error::failed(tool_failure(
                "pg_dump",
                &output.status,
                &output.stderr,
            )));
        }
        Ok((size, sha256, Vec::new()))
    })();
    rt.block_on(async {
        source::end_snapshot(&mut conn).await;
        conn.close().await;
    });
    let (size, sha256, files) = dumped?;
    if let Some(signal) = crate::interrupt::received() {
        return Err(Error::interrupted(
            signal,
            format!(
                "interrupted by {}: the upload was aborted; nothing was added to the catalog",
                crate::interrupt::name(signal)
            ),
        ));
    }
    manifest.server_version = info.server_version.clone();
    manifest.server_time = info.clock.map(|c| c.server);
    manifest.locale = info.locale.clone();
    manifest.migration_head = info.migration_head.clone();
    manifest.tables = info.tables.clone();
    manifest.row_counts = info.row_counts.clone();
    let directory = !files.is_empty();
    if directory {
        manifest.format = Archive::Directory;
        manifest.dump = super::directory::DUMP_DIR.into();
    } else {
        manifest.format = Archive::Custom;
        manifest.dump = DUMP.into();
    }
    manifest.size = size;
    manifest.sha256 = sha256;
    manifest.files = files;
    if !recipients.is_empty() {
        manifest.encryption = Some(crate::db::backup::manifest::Encryption {
            format: "age".into(),
            recipients: recipients.to_vec(),
        });
    }
    // The repository's own account of the object: a short upload is caught here
    // (each file of a directory-format dump was checked as it was uploaded).
    if !directory {
        let stored = rt
            .block_on(remote.store.head(&remote.key(&[env, &id, DUMP])))
            .map_err(|e| storage_error(remote, "checking the uploaded dump", e))?;
        if stored.size != size {
            return Err(Error::failed(format!(
                "the repository holds {} bytes of the dump, {size} were sent: not cataloged",
                stored.size
            )));
        }
    }
    manifest.verification = Verification {
        state: VerifyState::Verified,
        checked_at: Utc::now(),
        detail: if directory {
            format!(
                "sha256 of each of the {} files recorded while uploading; the repository holds all {size} bytes",
                manifest.files.len()
            )
        } else {
            format!("sha256 recorded while uploading; the repository holds all {size} bytes")
        },
    };
    manifest.duration_ms = started.elapsed().as_millis() as u64;
    rt.block_on(write_manifest(remote, &manifest, PutMode::Create))?;
    Ok(entry(remote, manifest))
}

/// `pg_dump --format=directory --jobs=N` into a private temporary folder (removed
/// afterwards, whatever happens), then every file uploaded: returns the total stored
/// size, the listing's sha256 and the files.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn dump_directory(
    remote: &Remote,
    env: &str,
    id: &str,
    options: &CreateOptions<'_>,
    tools: &PgTools,
    pg: &PgConn,
    snapshot: Option<&str>,
    recipients: &[String],
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<(u64, String, Vec<crate::db::backup::manifest::FileSum>)> {
    let folder = super::directory::TempFolder::new("dump")?;
    let dir = folder.path().join(super::directory::DUMP_DIR);
    let jobs = options.jobs.max(1);
    let mut args = vec![
        "--format=directory".to_string(),
        format!("--jobs={jobs}"),
        format!("--file={}", dir.display()),
        lock_wait_arg(options.lock_wait_timeout),
        format!("--dbname={}", pg.uri()),
    ];
    if let Some(snapshot) = snapshot {
        args.push(format!("--snapshot={snapshot}"));
    }
    on_event(Event::Phase(format!(
        "pg_dump --format=directory --jobs={jobs} {} → a private temporary folder",
        pg.uri()
    )));
    let handle = tools
        .command("pg_dump", Some(pg), &args)
        .stdin_null()
        .stdout_null()
        .start()
        .map_err(|e| Error::failed(format!("cannot start pg_dump: {e}")))?;
    let _children = crate::interrupt::children_of(handle.pids());
    let output = handle
        .wait()
        .map_err(|e| Error::failed(format!("waiting for pg_dump: {e}")))?
        .clone();
    if let Some(signal) = crate::interrupt::received() {
        return Err(Error::interrupted(
            signal,
            format!(
                "interrupted by {}: pg_dump was stopped; nothing was added to the catalog",
                crate::interrupt::name(signal)
            ),
        ));
    }
    if !output.status.success() {
        return Err(Error::failed(tool_failure(
            "pg_dump",
            &output.status,
            &output.stderr,
        )));
    }
    let files = super::directory::upload_folder(remote, env, id, &dir, recipients, rt, on_event)?;
    drop(folder);
    let size = files.iter().map(|f| f.size).sum();
    let sha256 = crate::db::backup::hashing::listing_sha256(&files);
    Ok((size, sha256, files))
}

async fn write_manifest(remote: &Remote, manifest: &Manifest, mode: PutMode) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest).expect("a manifest serializes");
    let text = crate::redact::redact(&text);
    let key = remote.key(&[&manifest.environment, &manifest.id, MANIFEST]);
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    remote
        .store
        .put_opts(&key, PutPayload::from(text.into_bytes()), options)
        .await
        .map_err(|e| storage_error(remote, &format!("writing {key}"), e))?;
    Ok(())
}

/// Streams `reader` into the object `key`, hashing it; the multipart upload is aborted
/// on any error (its parts are deleted by the server).
async fn upload(
    remote: &Remote,
    key: &ObjectPath,
    reader: &duct::ReaderHandle,
    mut encryption: Option<(
        age::stream::StreamWriter<super::crypt::Shared>,
        super::crypt::Shared,
    )>,
    on_event: &mut dyn FnMut(Event),
) -> Result<(u64, String)> {
    let multipart = remote
        .store
        .put_multipart(key)
        .await
        .map_err(|e| storage_error(remote, "starting the upload", e))?;
    let mut writer = Parts::new(multipart);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    let mut reader = reader;
    let failure = loop {
        // pg_dump's pipe is read on this thread: parts already handed to the writer
        // upload meanwhile on the runtime's other workers.
        let n = match tokio::task::block_in_place(|| reader.read(&mut buffer)) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(Error::failed(format!("reading pg_dump's output: {e}"))),
        };
        // What is stored (and hashed) is the ciphertext when encrypting.
        match &mut encryption {
            Some((encrypting, out)) => {
                if let Err(e) = encrypting.write_all(&buffer[..n]) {
                    break Some(Error::io("encrypting the dump", e));
                }
                let sealed = out.take();
                hasher.update(&sealed);
                total += sealed.len() as u64;
                writer.put(sealed.into());
            }
            None => {
                hasher.update(&buffer[..n]);
                writer.write(&buffer[..n]);
                total += n as u64;
            }
        }
        on_event(Event::Bytes(total));
        if let Err(e) = writer.wait_for_capacity().await {
            break Some(storage_error(remote, "uploading the dump", e));
        }
    };
    if let Some(e) = failure {
        let _ = writer.abort().await;
        return Err(e);
    }
    if crate::interrupt::received().is_some() {
        let _ = writer.abort().await;
        return Err(Error::failed("interrupted: the upload was aborted"));
    }
    if let Some((encrypting, out)) = encryption {
        if let Err(e) = encrypting.finish() {
            let _ = writer.abort().await;
            return Err(Error::io("encrypting the dump", e));
        }
        let sealed = out.take();
        hasher.update(&sealed);
        total += sealed.len() as u64;
        writer.put(sealed.into());
    }
    writer
        .finish()
        .await
        .map_err(|e| storage_error(remote, "completing the upload", e))?;
    Ok((total, hex::encode(hasher.finalize())))
}

async fn unique_id(
    remote: &Remote,
    env: &str,
    at: chrono::DateTime<Utc>,
    label: Option<&str>,
) -> Result<String> {
    let base = match label {
        Some(l) => format!("{}_{l}", at.format("%Y%m%d_%H%M%S")),
        None => at.format("%Y%m%d_%H%M%S").to_string(),
    };
    let taken = |id: String| async move {
        let listing = remote
            .store
            .list_with_delimiter(Some(&remote.key(&[env, &id])))
            .await;
        !matches!(listing, Ok(l) if l.objects.is_empty() && l.common_prefixes.is_empty())
    };
    if !taken(base.clone()).await {
        return Ok(base);
    }
    for n in 2.. {
        let id = format!("{base}-{n}");
        if !taken(id.clone()).await {
            return Ok(id);
        }
    }
    unreachable!("some suffix is free")
}

fn new_manifest(
    env: &str,
    id: &str,
    options: &CreateOptions<'_>,
    created_at: chrono::DateTime<Utc>,
) -> Manifest {
    let url = options.url;
    Manifest {
        format_version: crate::db::backup::manifest::FORMAT_VERSION,
        id: id.to_string(),
        environment: env.to_string(),
        engine: "postgresql".into(),
        database: url.database_name().unwrap_or_else(|| "database".into()),
        url: url.redacted(),
        created_at,
        clock: Some(HOST_CLOCK.into()),
        server_time: None,
        host: Some(crate::db::backup::catalog::host_name()),
        duration_ms: 0,
        format: Archive::Custom,
        dump: DUMP.into(),
        size: 0,
        sha256: String::new(),
        files: Vec::new(),
        tool_version: None,
        server_version: None,
        locale: None,
        migration_head: None,
        run_id: options.run_id.map(str::to_string),
        label: options.label.map(str::to_string),
        tables: Vec::new(),
        row_counts: Default::default(),
        verification: Verification {
            state: VerifyState::Failed,
            checked_at: created_at,
            detail: "not verified yet".into(),
        },
        provider: None,
        pinned: None,
        encryption: None,
    }
}

/// Streams the dump of `entry` back into `to`, returning its size and sha256.
async fn stream_dump(
    remote: &Remote,
    entry: &Entry,
    to: &mut (dyn Write + Send),
    on_event: &mut dyn FnMut(Event),
) -> Result<std::result::Result<(u64, String), std::io::Error>> {
    let m = &entry.manifest;
    let key = remote.key(&[&m.environment, &m.id, &m.dump]);
    let mut stream = remote
        .store
        .get(&key)
        .await
        .map_err(|e| storage_error(remote, &format!("reading {key}"), e))?
        .into_stream();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| storage_error(remote, &format!("reading {key}"), e))?;
        hasher.update(&chunk);
        total += chunk.len() as u64;
        on_event(Event::Bytes(total));
        if let Err(e) = tokio::task::block_in_place(|| to.write_all(&chunk)) {
            return Ok(Err(e));
        }
    }
    Ok(Ok((total, hex::encode(hasher.finalize()))))
}

/// Why a stream read back does not match its manifest, if it does not.
fn mismatch(m: &Manifest, size: u64, sha256: &str) -> Option<String> {
    if size != m.size {
        Some(format!(
            "the stored dump has {size} bytes, the manifest says {}",
            m.size
        ))
    } else if sha256 != m.sha256 {
        Some(format!(
            "sha256 mismatch: the stored dump hashes to {}…, the manifest says {}…",
            &sha256[..12],
            &m.sha256[..m.sha256.len().min(12)]
        ))
    } else {
        None
    }
}

/// Re-hashes the stored dump by streaming it back, and records the outcome in its
/// manifest (a failed backup is never offered for restore).
pub fn verify(
    remote: &Remote,
    entry: &Entry,
    rt: &tokio::runtime::Runtime,
    identities: Option<&[super::crypt::Identity]>,
) -> Result<Entry> {
    if entry.manifest.format == Archive::Directory {
        let found = super::directory::verify(remote, entry, rt, identities)?;
        let files = entry.manifest.files.len();
        return record_verification(remote, entry, rt, identities.is_some(), found, files);
    }
    let (size, sha256, decrypt_error) = match identities {
        None => {
            let (size, sha256) = rt
                .block_on(stream_dump(
                    remote,
                    entry,
                    &mut std::io::sink(),
                    &mut |_| {},
                ))?
                .map_err(|e| Error::io("hashing the dump", e))?;
            (size, sha256, None)
        }
        Some(ids) => {
            let (input, hashed) = download(remote, entry, rt);
            let mut plain = super::crypt::decryptor(input, ids, entry.id())?;
            let copied = std::io::copy(&mut plain, &mut std::io::sink());
            drop(plain);
            let (size, sha256) = downloaded(&hashed);
            (size, sha256, copied.err())
        }
    };
    let found = mismatch(&entry.manifest, size, &sha256)
        .or_else(|| decrypt_error.map(|e| format!("the encrypted dump does not decrypt: {e}")));
    record_verification(remote, entry, rt, identities.is_some(), found, 0)
}

/// Writes the outcome of a verification into the backup's manifest. `files`: how many
/// files of a directory-format dump were checked (0 for one dump object).
fn record_verification(
    remote: &Remote,
    entry: &Entry,
    rt: &tokio::runtime::Runtime,
    decrypted: bool,
    found: Option<String>,
    files: usize,
) -> Result<Entry> {
    let mut manifest = entry.manifest.clone();
    let size = manifest.size;
    let what = if files > 0 {
        format!("sha256 of each of the {files} stored files ({size} bytes) matches")
    } else {
        format!("sha256 of the {size} stored bytes matches")
    };
    manifest.verification = match found {
        None => Verification {
            state: VerifyState::Verified,
            checked_at: Utc::now(),
            detail: format!(
                "{what}{} (streamed back from {})",
                if decrypted { ", and they decrypt" } else { "" },
                remote.shown
            ),
        },
        Some(why) => Verification {
            state: VerifyState::Failed,
            checked_at: Utc::now(),
            detail: why,
        },
    };
    rt.block_on(write_manifest(remote, &manifest, PutMode::Overwrite))?;
    Ok(self::entry(remote, manifest))
}

/// Restores `entry` into the new database `name` on the server of `source`, streaming
/// the dump from the repository into `pg_restore` through stdin while hashing it. A
/// dump that does not hash to its manifest, or a failed pg_restore, leaves no database
/// behind.
pub fn restore_into_new(
    remote: &Remote,
    entry: &Entry,
    source: &crate::config::DbUrl,
    name: &str,
    rt: &tokio::runtime::Runtime,
    identities: Option<&[super::crypt::Identity]>,
    on_event: &mut dyn FnMut(Event),
) -> Result<restore::RestoreReport> {
    if !source.is_postgres() {
        return Err(Error::Usage(
            "object-storage repositories hold PostgreSQL backups only".into(),
        ));
    }
    if !entry.verified() {
        let v = &entry.manifest.verification;
        return Err(Error::failed(format!(
            "backup `{}` failed verification ({}, {}); it is never restored",
            entry.id(),
            v.detail,
            v.checked_at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    let target = restore::new_target(source, name, rt)?;
    let started = Instant::now();
    let _scope = crate::interrupt::scope();
    if entry.manifest.format == Archive::Directory {
        // Every file downloaded (decrypted) and checked before a database exists; the
        // private folder goes when this returns, whatever happened.
        let folder = super::directory::TempFolder::new("restore")?;
        let dir = folder.path().join(super::directory::DUMP_DIR);
        super::directory::download_folder(remote, entry, &dir, rt, identities, on_event)?;
        let tools = PgTools::locate(verify::archive_major(&entry.manifest))?;
        on_event(Event::Note(format!("using {}", tools.describe())));
        let server = PgConn::from_url(source)?;
        let shown = format!("{}/{}", entry.dir.display(), entry.manifest.dump);
        restore::into_new_database(&tools, &server, name, entry, on_event, |into, on_event| {
            restore::pg_restore_folder(&tools, into, &dir, &shown, remote.jobs, on_event)
        })?;
        drop(folder);
        return Ok(restore::RestoreReport {
            database: restore::display_name(&target),
            url: target,
            duration: started.elapsed(),
            kept_aside: None,
        });
    }
    // An encrypted dump is opened (the identity tried) before any database exists.
    let decrypted = match identities {
        Some(ids) => {
            let (input, hashed) = download(remote, entry, rt);
            Some((super::crypt::decryptor(input, ids, entry.id())?, hashed))
        }
        None => None,
    };
    let tools = PgTools::locate(verify::archive_major(&entry.manifest))?;
    on_event(Event::Note(format!("using {}", tools.describe())));
    let server = PgConn::from_url(source)?;
    restore::into_new_database(&tools, &server, name, entry, on_event, |into, on_event| {
        feed_pg_restore(remote, entry, &tools, into, rt, decrypted, on_event)
    })?;
    Ok(restore::RestoreReport {
        database: restore::display_name(&target),
        url: target,
        duration: started.elapsed(),
        kept_aside: None,
    })
}

fn feed_pg_restore(
    remote: &Remote,
    entry: &Entry,
    tools: &PgTools,
    into: &PgConn,
    rt: &tokio::runtime::Runtime,
    decrypted: Option<(age::stream::StreamReader<Download>, Hashed)>,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let args = vec![
        "--no-owner".to_string(),
        "--exit-on-error".to_string(),
        format!("--dbname={}", into.uri()),
    ];
    on_event(Event::Phase(format!(
        "pg_restore --no-owner < {}/{}",
        entry.dir.display(),
        entry.manifest.dump
    )));
    on_event(Event::Total(entry.manifest.size));
    let (read_end, mut write_end) = std::io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
    let expression = tools
        .command("pg_restore", Some(into), &args)
        .stdin_file(read_end)
        .stdout_null();
    let handle = expression
        .start()
        .map_err(|e| Error::failed(format!("cannot start pg_restore: {e}")))?;
    let _children = crate::interrupt::children_of(handle.pids());
    drop(expression);
    let streamed = match decrypted {
        None => rt.block_on(stream_dump(remote, entry, &mut write_end, on_event)),
        Some((mut plain, hashed)) => {
            let copied = std::io::copy(&mut plain, &mut write_end);
            drop(plain);
            let (size, sha256) = downloaded(&hashed);
            on_event(Event::Bytes(size));
            Ok(copied.map(|_| (size, sha256)))
        }
    };
    drop(write_end);
    let output = handle
        .wait()
        .map_err(|e| Error::failed(format!("waiting for pg_restore: {e}")))?
        .clone();
    if let Some(signal) = crate::interrupt::received() {
        return Err(Error::interrupted(
            signal,
            format!(
                "interrupted by {}: pg_restore was stopped",
                crate::interrupt::name(signal)
            ),
        ));
    }
    let streamed = streamed?;
    if !output.status.success() {
        return Err(Error::failed(tool_failure(
            "pg_restore",
            &output.status,
            &output.stderr,
        )));
    }
    let (size, sha256) = streamed.map_err(|e| Error::io("feeding pg_restore", e))?;
    if let Some(why) = mismatch(&entry.manifest, size, &sha256) {
        return Err(Error::failed(format!(
            "backup {} does not match its manifest ({why}): the restore is void",
            entry.id()
        )));
    }
    Ok(())
}

/// Runtime for repository work: uploads proceed on a worker while pg_dump's pipe is
/// read on another.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))
}

/// The running sha256 and byte count of a download.
pub(super) type Hashed = Arc<Mutex<(Sha256, u64)>>;

/// The stored bytes of a dump as a blocking reader (downloaded on the runtime's
/// workers, a few chunks ahead), counting and hashing what passes.
pub(super) struct Download {
    chunks: std::sync::mpsc::Receiver<std::result::Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
    hashed: Hashed,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    let mut h = self.hashed.lock().unwrap_or_else(|e| e.into_inner());
                    h.0.update(&chunk);
                    h.1 += chunk.len() as u64;
                    self.current = chunk;
                }
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

fn download(remote: &Remote, entry: &Entry, rt: &tokio::runtime::Runtime) -> (Download, Hashed) {
    let m = &entry.manifest;
    download_key(remote, remote.key(&[&m.environment, &m.id, &m.dump]), rt)
}

/// The stored bytes of object `key` as a blocking [`Download`].
pub(super) fn download_key(
    remote: &Remote,
    key: ObjectPath,
    rt: &tokio::runtime::Runtime,
) -> (Download, Hashed) {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let store = remote.store.clone();
    let shown = remote.shown.clone();
    rt.spawn(async move {
        let fail = |e: object_store::Error| {
            crate::redact::redact(&format!("reading {key} in repository {shown}: {e}"))
        };
        let mut stream = match store.get(&key).await {
            Ok(got) => got.into_stream(),
            Err(e) => {
                let _ = tx.send(Err(fail(e)));
                return;
            }
        };
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(fail);
            let stop = item.is_err();
            if tokio::task::block_in_place(|| tx.send(item)).is_err() || stop {
                return;
            }
        }
    });
    let hashed = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    (
        Download {
            chunks: rx,
            current: bytes::Bytes::new(),
            hashed: hashed.clone(),
        },
        hashed,
    )
}

/// Size and sha256 of what a [`Download`] let through.
pub(super) fn downloaded(hashed: &Hashed) -> (u64, String) {
    let h = hashed.lock().unwrap_or_else(|e| e.into_inner());
    (h.1, hex::encode(h.0.clone().finalize()))
}

/// The identities an encrypted backup needs (none for a plain one).
pub fn identities_for(
    entry: &Entry,
    vars: &crate::config::interpolate::Vars,
) -> Result<Option<Vec<super::crypt::Identity>>> {
    match &entry.manifest.encryption {
        None => Ok(None),
        Some(e) => super::crypt::identities(vars, entry.id(), &e.recipients).map(Some),
    }
}

/// Folder (under `<prefix>/<env>/`) holding one object per drill report: every runner's
/// drills in one place, beside the backups they restored.
pub const DRILLS: &str = ".drills";

/// Stores a drill report as the new objects `<prefix>/<env>/.drills/<name>.json` and
/// `.md` (object storage cannot append: one object per drill, named so they sort by
/// date). Returns the JSON object's URL as shown.
pub async fn put_drill_report(
    remote: &Remote,
    env: &str,
    name: &str,
    json: &str,
    markdown: &str,
) -> Result<String> {
    for (ext, text) in [("json", json), ("md", markdown)] {
        let key = remote.key(&[env, DRILLS, &format!("{name}.{ext}")]);
        let body = crate::redact::redact(text).into_bytes();
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        remote
            .store
            .put_opts(&key, PutPayload::from(body), create)
            .await
            .map_err(|e| storage_error(remote, &format!("writing {key}"), e))?;
    }
    Ok(format!("{}/{env}/{DRILLS}/{name}.json", remote.shown))
}

/// Name of the lease object that serialises prunes of one environment.
pub const PRUNE_LEASE: &str = ".prune-lease";
/// A lease older than this was left by a prune that died: it may be taken over.
const LEASE_EXPIRY: chrono::Duration = chrono::Duration::minutes(15);

/// A held prune lease; released with [`Lease::release`].
pub struct Lease {
    key: ObjectPath,
}

impl Lease {
    /// Deletes the lease object.
    pub async fn release(self, remote: &Remote) {
        let _ = remote.store.delete(&self.key).await;
    }
}

/// Takes the prune lease of `env`: a create-only put, so of two runners only one
/// gets it; the other waits (up to `wait`) and then plans on what the first left. A
/// lease older than [`LEASE_EXPIRY`] (its holder died) is replaced, conditionally on
/// its version, so two runners cannot both take it over.
pub async fn take_lease(remote: &Remote, env: &str, wait: std::time::Duration) -> Result<Lease> {
    let key = remote.key(&[env, PRUNE_LEASE]);
    let body = serde_json::json!({
        "holder": format!("{}:{}", crate::db::backup::catalog::host_name(), std::process::id()),
        "since": Utc::now(),
    })
    .to_string();
    let deadline = Instant::now() + wait;
    loop {
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match remote
            .store
            .put_opts(&key, PutPayload::from(body.clone().into_bytes()), create)
            .await
        {
            Ok(_) => return Ok(Lease { key }),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(storage_error(remote, "taking the prune lease", e)),
        }
        if let Ok(meta) = remote.store.head(&key).await {
            if Utc::now() - meta.last_modified > LEASE_EXPIRY {
                let replace = PutOptions {
                    mode: PutMode::Update(object_store::UpdateVersion {
                        e_tag: meta.e_tag.clone(),
                        version: meta.version.clone(),
                    }),
                    ..PutOptions::default()
                };
                if remote
                    .store
                    .put_opts(&key, PutPayload::from(body.clone().into_bytes()), replace)
                    .await
                    .is_ok()
                {
                    return Ok(Lease { key });
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "another runner is pruning the backups of `{env}` in {} (lease {}); nothing was deleted: try again when it is done",
                remote.shown, key
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Deletes a backup: its manifest first (it leaves the catalog at once, atomically),
/// then its dump.
pub async fn delete(remote: &Remote, entry: &Entry) -> Result<()> {
    let m = &entry.manifest;
    let mut keys = vec![remote.key(&[&m.environment, &m.id, MANIFEST])];
    if m.format == Archive::Directory {
        keys.extend(super::directory::keys(remote, entry));
    } else {
        keys.push(remote.key(&[&m.environment, &m.id, &m.dump]));
    }
    for key in keys {
        match remote.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage_error(remote, &format!("deleting {key}"), e)),
        }
    }
    Ok(())
}

/// Copies backup `entry` from `from` to `to` with its manifest: the dump is streamed
/// across, hashed on the way and checked against the manifest before the manifest is
/// written (create-only) at the destination. A copy that fails is aborted and never
/// cataloged there.
pub async fn copy(from: &Remote, to: &Remote, entry: &Entry) -> Result<Entry> {
    let m = &entry.manifest;
    if m.format == Archive::Directory || m.provider.is_some() {
        return Err(Error::Usage(format!(
            "backup {} is a {} archive: `backup copy` copies single-file backups (custom format, SQLite) for now",
            m.id,
            m.format.as_str()
        )));
    }
    if !entry.verified() {
        return Err(Error::failed(format!(
            "backup {} failed verification ({}): it is not copied",
            m.id, m.verification.detail
        )));
    }
    let manifest_key = to.key(&[&m.environment, &m.id, MANIFEST]);
    if to.store.head(&manifest_key).await.is_ok() {
        return Err(Error::failed(format!(
            "{} already holds backup {}: nothing was copied",
            to.shown, m.id
        )));
    }
    let source = from.key(&[&m.environment, &m.id, &m.dump]);
    let mut stream = from
        .store
        .get(&source)
        .await
        .map_err(|e| storage_error(from, &format!("reading {source}"), e))?
        .into_stream();
    // In a folder repository the backup's folder is made private (0700) before a byte
    // lands in it, so the dump is never readable by others, not even while it is written.
    let private = match &to.local {
        Some(root) => {
            let dir = root.join(&m.environment).join(&m.id);
            crate::db::backup::manifest::create_private_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            Some(dir)
        }
        None => None,
    };
    let dest = to.key(&[&m.environment, &m.id, &m.dump]);
    let upload = to
        .store
        .put_multipart(&dest)
        .await
        .map_err(|e| storage_error(to, "starting the upload", e))?;
    let mut writer = Parts::new(upload);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let failure = loop {
        match stream.next().await {
            None => break None,
            Some(Err(e)) => break Some(storage_error(from, &format!("reading {source}"), e)),
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                size += chunk.len() as u64;
                writer.put(chunk);
                if let Err(e) = writer.wait_for_capacity().await {
                    break Some(storage_error(to, "uploading the dump", e));
                }
            }
        }
    };
    let failure = failure.or_else(|| {
        mismatch(m, size, &hex::encode(hasher.finalize())).map(|why| {
            Error::failed(format!(
                "backup {} in {}: {why}; not copied",
                m.id, from.shown
            ))
        })
    });
    if let Some(e) = failure {
        let _ = writer.abort().await;
        if let Some(dir) = &private {
            // Only when empty: nothing of another backup is ever removed.
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e);
    }
    writer
        .finish()
        .await
        .map_err(|e| storage_error(to, "completing the upload", e))?;
    let mut manifest = m.clone();
    manifest.verification = Verification {
        state: VerifyState::Verified,
        checked_at: Utc::now(),
        detail: format!(
            "copied from {}: sha256 of the {size} bytes matched its manifest on the way",
            from.shown
        ),
    };
    write_manifest(to, &manifest, PutMode::Create).await?;
    if let Some(dir) = private {
        crate::db::backup::manifest::make_private(&dir)
            .map_err(|e| Error::io(format!("making {} private", dir.display()), e))?;
    }
    Ok(self::entry(to, manifest))
}

/// The freshness gate of `deploy` (`max_backup_age`) on an object-storage repository:
/// the newest verified backup there, if younger than `max_age`. `Err`: why the deploy is
/// blocked (a repository that cannot be read blocks it too).
pub fn require_fresh(
    remote: &Remote,
    env: &str,
    max_age: std::time::Duration,
    as_written: &str,
) -> std::result::Result<Entry, String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    let (entries, _) = rt
        .block_on(list(remote, env))
        .map_err(|e| format!("{e}: the freshness of the backups cannot be told"))?;
    let now = Utc::now();
    let limit = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    match entries.into_iter().find(|e| e.usable(now)) {
        None => Err(format!(
            "no verified backup of `{env}` in {} and max_backup_age is {as_written}: take one first (`dbflow backup create --env {env}`, or a `backup` step before `deploy`)",
            remote.shown
        )),
        Some(entry) if entry.age(now) > limit => Err(format!(
            "the newest verified backup of `{env}` in {} is `{}`, taken {} ago: older than max_backup_age {as_written}; take a fresh one first",
            remote.shown,
            entry.id(),
            crate::db::backup::human_age(entry.age(now))
        )),
        Some(entry) => Ok(entry),
    }
}

/// Pins (`Some`) or unpins (`None`) backup `id`: its manifest is rewritten in the
/// repository, so every runner's `prune` sees the pin. Returns the entry and the pin it
/// had.
pub async fn set_pin(
    remote: &Remote,
    env: &str,
    id: &str,
    pin: Option<crate::db::backup::manifest::Pin>,
) -> Result<(Entry, Option<crate::db::backup::manifest::Pin>)> {
    let entry = get(remote, env, id).await?;
    let mut manifest = entry.manifest.clone();
    let had = std::mem::replace(&mut manifest.pinned, pin);
    if had.is_some() || manifest.pinned.is_some() {
        write_manifest(remote, &manifest, PutMode::Overwrite).await?;
    }
    Ok((self::entry(remote, manifest), had))
}
