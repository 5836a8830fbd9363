//! Client-side encryption of dumps with `age` (`backups.encryption.recipients`): the
//! dump is encrypted on this machine as pg_dump produces it, so the repository only
//! ever holds ciphertext. Restores and verifications decrypt with an identity in the
//! format `age-keygen` writes, from the file named by `DBFLOW_BACKUP_IDENTITY_FILE` or
//! inline in `DBFLOW_BACKUP_IDENTITY`. Identities are never printed nor journaled.

use crate::config::interpolate::Vars;
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// The variable naming the identity file.
pub const IDENTITY_FILE_VAR: &str = "DBFLOW_BACKUP_IDENTITY_FILE";
/// The variable holding identities inline.
pub const IDENTITY_VAR: &str = "DBFLOW_BACKUP_IDENTITY";

/// An identity that can decrypt.
pub type Identity = Box<dyn age::Identity + Send + Sync>;

pub use crate::config::repository::recipient;

/// Reads the identities from `DBFLOW_BACKUP_IDENTITY_FILE` or `DBFLOW_BACKUP_IDENTITY`.
/// Missing or unreadable: bad input (exit 2), naming what is needed.
pub fn identities(vars: &Vars, id: &str, recipients: &[String]) -> Result<Vec<Identity>> {
    let text = if let Some(path) = vars.non_empty(IDENTITY_FILE_VAR) {
        std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read {IDENTITY_FILE_VAR} ({path}): {e}; backup {id} is encrypted and cannot be read without it"
            ))
        })?
    } else if let Some(inline) = vars.non_empty(IDENTITY_VAR) {
        inline.to_string()
    } else {
        return Err(Error::Usage(format!(
            "backup {id} is encrypted (age, to {}): set {IDENTITY_FILE_VAR} to the identity file `age-keygen` wrote (or {IDENTITY_VAR} to its contents); nothing was restored",
            recipients.join(", ")
        )));
    };
    for line in text.lines() {
        crate::redact::register_secret(line);
    }
    let file = age::IdentityFile::from_buffer(std::io::BufReader::new(text.as_bytes()))
        .map_err(|_| Error::Usage(format!("{IDENTITY_FILE_VAR} / {IDENTITY_VAR} do not hold age identities (AGE-SECRET-KEY-1…)")))?;
    let identities = file.into_identities().map_err(|_| {
        Error::Usage(format!(
            "{IDENTITY_FILE_VAR} / {IDENTITY_VAR} do not hold usable age identities (AGE-SECRET-KEY-1…)"
        ))
    })?;
    if identities.is_empty() {
        return Err(Error::Usage(format!(
            "{IDENTITY_FILE_VAR} / {IDENTITY_VAR} hold no age identity (AGE-SECRET-KEY-1…)"
        )));
    }
    Ok(identities)
}

/// Where the encryptor writes: drained by the uploader after every chunk.
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

impl Shared {
    /// Takes what was written so far.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An encryptor to `recipients` writing into a [`Shared`] buffer.
pub fn encryptor(recipients: &[String]) -> Result<(age::stream::StreamWriter<Shared>, Shared)> {
    let parsed: Vec<age::x25519::Recipient> = recipients
        .iter()
        .map(|r| recipient(r).map_err(Error::Usage))
        .collect::<Result<_>>()?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::Usage(format!("cannot encrypt to the recipients: {e}")))?;
    let out = Shared::default();
    let writer = encryptor
        .wrap_output(out.clone())
        .map_err(|e| Error::io("starting the encryption", e))?;
    Ok((writer, out))
}

/// Opens the decryption of `input` with `identities`: fails (bad input) before any
/// plaintext is produced when none of them can.
pub fn decryptor<R: Read>(
    input: R,
    identities: &[Identity],
    id: &str,
) -> Result<age::stream::StreamReader<R>> {
    let decryptor = age::Decryptor::new(input)
        .map_err(|e| Error::failed(format!("backup {id} is not a readable age file: {e}")))?;
    decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|_| {
            Error::Usage(format!(
                "none of the identities given ({IDENTITY_FILE_VAR} / {IDENTITY_VAR}) can decrypt backup {id}: wrong identity (or a damaged header); nothing was restored"
            ))
        })
}

/// Generates an age identity into the new file `path` (0600, refused when it exists, so
/// a key is never overwritten), in the format `age-keygen` writes; returns its public
/// key (the recipient for `backups.encryption.recipients`). The secret key is only ever
/// in that file: never printed.
pub fn keygen(path: &std::path::Path) -> Result<String> {
    use age::secrecy::ExposeSecret;
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    let text = format!(
        "# created: {}\n# public key: {public}\n{}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        key.to_string().expose_secret()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "{} already exists: an identity is never overwritten (backups encrypted to it would be lost); choose another file",
                path.display()
            ))
        } else {
            Error::io(format!("writing {}", path.display()), e)
        }
    };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_identity_that_decrypts_what_its_recipient_encrypts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let public = keygen(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (mut w, out) = encryptor(std::slice::from_ref(&public)).unwrap();
        w.write_all(b"PGDMP").unwrap();
        w.finish().unwrap();
        let vars = Vars::from_pairs([(IDENTITY_FILE_VAR, path.to_str().unwrap())]);
        let ids = identities(&vars, "x", &[]).unwrap();
        let mut plain = String::new();
        decryptor(&out.take()[..], &ids, "x")
            .unwrap()
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, "PGDMP");
        let err = keygen(&path).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::ExitCode::BadInput);
    }

    #[test]
    fn a_secret_key_is_refused_as_a_recipient_without_being_echoed() {
        let key = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let secret = key.to_string().expose_secret().to_string();
        let err = recipient(&secret).unwrap_err();
        assert!(!err.contains(&secret[20..]), "{err}");
        assert!(recipient(&key.to_public().to_string()).is_ok());
        assert!(recipient("age1nope").is_err());
    }

    #[test]
    fn round_trip_and_wrong_identity() {
        let key = age::x25519::Identity::generate();
        let (mut w, out) = encryptor(&[key.to_public().to_string()]).unwrap();
        w.write_all(b"PGDMP and more").unwrap();
        w.finish().unwrap();
        let cipher = out.take();
        let right: Vec<Identity> = vec![Box::new(key)];
        let mut plain = String::new();
        decryptor(&cipher[..], &right, "x")
            .unwrap()
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, "PGDMP and more");
        let wrong: Vec<Identity> = vec![Box::new(age::x25519::Identity::generate())];
        let err = decryptor(&cipher[..], &wrong, "x").err().unwrap();
        assert_eq!(err.exit_code(), crate::error::ExitCode::BadInput);
    }
}
