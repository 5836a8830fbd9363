//! Directory-format backups (`backups.format: directory`) in object storage.
//!
//! `pg_dump --format=directory --jobs=N` writes into a private temporary folder (0700,
//! removed afterwards whatever happens); every file is then uploaded as its own object
//! `<prefix>/<env>/<id>/dump/<file>`, a few at once, hashed (and encrypted, one age
//! stream per file) as it streams. The manifest, written last by the caller, lists every
//! file with its stored size and sha256. Restores download the files in parallel into a
//! private temporary folder (decrypting), and every hash is checked before pg_restore
//! runs. Memory stays bounded: files move in chunks, never whole (small files excepted,
//! up to one part).

use super::object::{download_key, downloaded, storage_error};
use super::parts::{Parts, BASE_PART};
use super::Remote;
use crate::db::backup::catalog::Entry;
use crate::db::backup::hashing::listing_sha256;
use crate::db::backup::manifest::{create_private_dir, private_file, FileSum};
use crate::db::backup::Event;
use crate::error::{Error, Result};
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The folder (object-name prefix) the files of a directory-format dump live under.
pub const DUMP_DIR: &str = "dump";

/// Files moving at once, whatever `backups.jobs` says: each holds up to two parts
/// (8 MiB filling, 8 MiB uploading), so three stay within dbflow's 64 MiB.
pub const MAX_TRANSFERS: usize = 3;

/// A private (0700) temporary folder, removed with everything in it when dropped: on
/// success, on error, and on Ctrl-C (signals inside an interrupt scope end the work
/// through ordinary returns, so this drop runs).
pub struct TempFolder {
    path: PathBuf,
}

impl TempFolder {
    /// Creates `dbflow-<what>-<pid>-<n>` in the system's temporary folder (`TMPDIR`).
    pub fn new(what: &str) -> Result<TempFolder> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0..100u32 {
            let path = base.join(format!(
                "dbflow-{what}-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match create_private_dir(&path) {
                Ok(()) => return Ok(TempFolder { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
            }
        }
        Err(Error::failed(format!(
            "cannot create a temporary folder in {}",
            base.display()
        )))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The object key of file `name` of backup `id`.
fn file_key(remote: &Remote, env: &str, id: &str, name: &str) -> object_store::path::Path {
    remote.key(&[env, id, DUMP_DIR, name])
}

/// Every object key of a directory-format backup's files.
pub fn keys(remote: &Remote, entry: &Entry) -> Vec<object_store::path::Path> {
    let m = &entry.manifest;
    m.files
        .iter()
        .map(|f| file_key(remote, &m.environment, &m.id, &f.path))
        .collect()
}

/// Runs `work` on every item, at most `workers` at once on their own threads, while
/// this thread reports the bytes moved so far (`moved`). The first failure stops the
/// rest (items not started are skipped; `work` is handed the flag that says so, to
/// stop the file it is moving); results come back in item order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    moved: &AtomicU64,
    on_event: &mut dyn FnMut(Event),
    work: impl Fn(&T, &AtomicBool) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.clamp(1, items.len().max(1)))
            .map(|_| {
                scope.spawn(|| loop {
                    if failed.load(Ordering::SeqCst) || crate::interrupt::received().is_some() {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(index) else {
                        return;
                    };
                    match work(item, &failed) {
                        Ok(r) => results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(r),
                        Err(e) => {
                            // Recorded before the others are told to stop, so their
                            // "stopped" never takes its place.
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            failed.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            on_event(Event::Bytes(moved.load(Ordering::Relaxed)));
            std::thread::sleep(Duration::from_millis(100));
        }
        on_event(Event::Bytes(moved.load(Ordering::Relaxed)));
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    if let Some(signal) = crate::interrupt::received() {
        return Err(Error::interrupted(
            signal,
            format!(
                "interrupted by {}: the transfer was stopped",
                crate::interrupt::name(signal)
            ),
        ));
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(results.into_iter().flatten().collect())
}

/// The files under `dir` (sorted, relative, `/`-separated) with their sizes.
fn local_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let read =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
        // pg_dump's directory format is flat: toc.dat and one file per table.
        if meta.is_file() {
            out.push((entry.file_name().to_string_lossy().to_string(), meta.len()));
        } else {
            return Err(Error::failed(format!(
                "{} is not a file: not a pg_dump directory-format dump",
                entry.path().display()
            )));
        }
    }
    out.sort();
    Ok(out)
}

/// Uploads every file of the dump folder `dir` as `<env>/<id>/dump/<file>`, encrypted to
/// `recipients` when there are any; returns each file's stored size and sha256. On
/// failure the files already stored are deleted again (best effort: the next backup's
/// sweep removes what is left).
pub fn upload_folder(
    remote: &Remote,
    env: &str,
    id: &str,
    dir: &Path,
    recipients: &[String],
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<FileSum>> {
    let files = local_files(dir)?;
    let workers = (remote.jobs as usize).clamp(1, MAX_TRANSFERS);
    on_event(Event::Phase(format!(
        "uploading {} files, {workers} at once → {}/{env}/{id}/{DUMP_DIR}/",
        files.len(),
        remote.shown
    )));
    on_event(Event::Total(files.iter().map(|f| f.1).sum()));
    let moved = AtomicU64::new(0);
    let stored: Mutex<Vec<object_store::path::Path>> = Mutex::new(Vec::new());
    let uploaded = in_parallel(&files, workers, &moved, on_event, |(name, _), stop| {
        let key = file_key(remote, env, id, name);
        let sum = upload_file(remote, rt, &key, &dir.join(name), recipients, &moved, stop)?;
        stored.lock().unwrap_or_else(|e| e.into_inner()).push(key);
        Ok(FileSum {
            path: name.clone(),
            size: sum.0,
            sha256: sum.1,
        })
    });
    if uploaded.is_err() {
        let stored = stored.into_inner().unwrap_or_else(|e| e.into_inner());
        rt.block_on(async {
            for key in stored {
                let _ = remote.store.delete(&key).await;
            }
        });
    }
    uploaded
}

/// Streams one file into object `key` (one put when it fits a part, else a multipart
/// upload with one part in flight), returning the stored size and sha256; checks the
/// repository holds every byte sent.
fn upload_file(
    remote: &Remote,
    rt: &tokio::runtime::Runtime,
    key: &object_store::path::Path,
    path: &Path,
    recipients: &[String],
    moved: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(u64, String)> {
    let io = |e: std::io::Error| Error::io(format!("reading {}", path.display()), e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let plain_size = file.metadata().map_err(io)?.len();
    let mut encryption = if recipients.is_empty() {
        None
    } else {
        Some(super::crypt::encryptor(recipients)?)
    };
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    if plain_size <= BASE_PART as u64 {
        let mut plain = Vec::with_capacity(plain_size as usize);
        file.read_to_end(&mut plain).map_err(io)?;
        let body = match encryption {
            Some((mut sealing, out)) => {
                sealing
                    .write_all(&plain)
                    .and_then(|_| sealing.finish().map(|_| ()))
                    .map_err(|e| Error::io("encrypting the dump", e))?;
                out.take()
            }
            None => plain,
        };
        hasher.update(&body);
        total = body.len() as u64;
        rt.block_on(remote.store.put(key, PutPayload::from(body)))
            .map_err(|e| storage_error(remote, &format!("writing {key}"), e))?;
        moved.fetch_add(plain_size, Ordering::Relaxed);
    } else {
        let upload = rt
            .block_on(remote.store.put_multipart(key))
            .map_err(|e| storage_error(remote, "starting the upload", e))?;
        let mut writer = Parts::new(upload).in_flight_at_most(1);
        let mut buffer = vec![0u8; 1 << 20];
        let failure = loop {
            if let Some(signal) = crate::interrupt::received() {
                break Some(Error::interrupted(
                    signal,
                    "interrupted: the upload was aborted",
                ));
            }
            if stop.load(Ordering::SeqCst) {
                break Some(Error::failed("another file failed: the upload was aborted"));
            }
            let n = match file.read(&mut buffer) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(io(e)),
            };
            let chunk = match &mut encryption {
                Some((sealing, out)) => {
                    if let Err(e) = sealing.write_all(&buffer[..n]) {
                        break Some(Error::io("encrypting the dump", e));
                    }
                    out.take()
                }
                None => buffer[..n].to_vec(),
            };
            hasher.update(&chunk);
            total += chunk.len() as u64;
            moved.fetch_add(n as u64, Ordering::Relaxed);
            let sent = rt.block_on(async {
                writer.put(chunk.into());
                writer.wait_for_capacity().await
            });
            if let Err(e) = sent {
                break Some(storage_error(remote, "uploading the dump", e));
            }
        };
        let failure = failure.or_else(|| {
            let (sealing, out) = encryption.take()?;
            match sealing.finish() {
                Err(e) => Some(Error::io("encrypting the dump", e)),
                Ok(_) => {
                    let last = out.take();
                    hasher.update(&last);
                    total += last.len() as u64;
                    rt.block_on(async { writer.put(last.into()) });
                    None
                }
            }
        });
        if let Some(e) = failure {
            let _ = rt.block_on(writer.abort());
            return Err(e);
        }
        rt.block_on(writer.finish())
            .map_err(|e| storage_error(remote, "completing the upload", e))?;
    }
    // The repository's own account of the object: a short upload is caught here.
    let stored = rt
        .block_on(remote.store.head(key))
        .map_err(|e| storage_error(remote, &format!("checking {key}"), e))?;
    if stored.size != total {
        return Err(Error::failed(format!(
            "the repository holds {} bytes of {key}, {total} were sent: not cataloged",
            stored.size
        )));
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Counts what passes into `moved`; fails once `stop` is set (another file failed).
struct Counting<'a, W> {
    inner: W,
    moved: &'a AtomicU64,
    stop: &'a AtomicBool,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("another file failed"));
        }
        let n = self.inner.write(buf)?;
        self.moved.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why the manifest's own list of files cannot be trusted, if it cannot.
fn listing_problem(entry: &Entry) -> Option<String> {
    let m = &entry.manifest;
    if m.files.is_empty() {
        return Some("the manifest lists no file of the dump".into());
    }
    if let Some(bad) = m
        .files
        .iter()
        .find(|f| f.path.is_empty() || f.path.contains('/') || f.path.starts_with('.'))
    {
        return Some(format!("the manifest names a file `{}`", bad.path));
    }
    if listing_sha256(&m.files) != m.sha256 {
        return Some("the manifest's list of files does not hash to its sha256".into());
    }
    None
}

/// Streams every file back (into `into`, decrypted, or nowhere), checking each against
/// the manifest. `Ok(Some(why))`: a file does not match (or does not decrypt);
/// `Err`: the repository could not be read, or no identity given can decrypt.
fn fetch_all(
    remote: &Remote,
    entry: &Entry,
    into: Option<&Path>,
    rt: &tokio::runtime::Runtime,
    identities: Option<&[super::crypt::Identity]>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Option<String>> {
    if let Some(why) = listing_problem(entry) {
        return Ok(Some(why));
    }
    let m = &entry.manifest;
    let workers = (remote.jobs as usize).clamp(1, MAX_TRANSFERS);
    let moved = AtomicU64::new(0);
    // A mismatch is an outcome, not an error: it stops the others through this.
    let found: Mutex<Option<String>> = Mutex::new(None);
    in_parallel(&m.files, workers, &moved, on_event, |expected, stop| {
        let key = file_key(remote, &m.environment, &m.id, &expected.path);
        let (input, hashed) = download_key(remote, key.clone(), rt);
        let sink: Box<dyn Write> = match into {
            Some(dir) => {
                let path = dir.join(&expected.path);
                let file = private_file(&path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
            }
            None => Box::new(std::io::sink()),
        };
        let mut out = Counting {
            inner: sink,
            moved: &moved,
            stop,
        };
        let copied = match identities {
            Some(ids) => {
                let mut plain = super::crypt::decryptor(input, ids, entry.id())?;
                let copied = std::io::copy(&mut plain, &mut out).and_then(|_| out.flush());
                drop(plain);
                copied
            }
            None => {
                let mut input = input;
                std::io::copy(&mut input, &mut out).and_then(|_| out.flush())
            }
        };
        if stop.load(Ordering::SeqCst) {
            // Stopped for another file's failure: that one is what is reported.
            return Err(Error::failed("stopped"));
        }
        let (size, sha256) = downloaded(&hashed);
        let why = if size != expected.size {
            Some(format!(
                "{}: the stored file has {size} bytes, the manifest says {}",
                expected.path, expected.size
            ))
        } else if sha256 != expected.sha256 {
            Some(format!(
                "{}: sha256 mismatch: the stored file hashes to {}…, the manifest says {}…",
                expected.path,
                &sha256[..12],
                &expected.sha256[..expected.sha256.len().min(12)]
            ))
        } else {
            match copied {
                Ok(_) => None,
                Err(e) if identities.is_some() && into.is_none() => Some(format!(
                    "{}: the encrypted file does not decrypt: {e}",
                    expected.path
                )),
                Err(e) => {
                    return Err(Error::failed(crate::redact::redact(&format!(
                        "reading {key} from {}: {e}",
                        remote.shown
                    ))))
                }
            }
        };
        match why {
            None => Ok(()),
            Some(why) => {
                found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(why);
                Err(Error::failed("mismatch"))
            }
        }
    })
    .map(|_| None)
    .or_else(
        |e| match found.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Ok(Some(why)),
            None => Err(e),
        },
    )
}

/// Re-hashes every stored file (decrypting when `identities` are given). `Ok(None)`:
/// all match.
pub fn verify(
    remote: &Remote,
    entry: &Entry,
    rt: &tokio::runtime::Runtime,
    identities: Option<&[super::crypt::Identity]>,
) -> Result<Option<String>> {
    fetch_all(remote, entry, None, rt, identities, &mut |_| {})
}

/// Downloads every file into the new folder `dir` (decrypting), each checked against
/// the manifest: a backup that does not match is refused before anything is restored.
pub fn download_folder(
    remote: &Remote,
    entry: &Entry,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
    identities: Option<&[super::crypt::Identity]>,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    create_private_dir(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let m = &entry.manifest;
    on_event(Event::Phase(format!(
        "downloading {} files of {}/{}/{}/{DUMP_DIR}/",
        m.files.len(),
        remote.shown,
        m.environment,
        m.id
    )));
    on_event(Event::Total(m.size));
    match fetch_all(remote, entry, Some(dir), rt, identities, on_event)? {
        None => Ok(()),
        Some(why) => Err(Error::failed(format!(
            "backup {} does not match its manifest ({why}): nothing was restored",
            entry.id()
        ))),
    }
}
