//! `backups.repository` as written: a folder, or a bucket of an object-storage service.
//! Parsed here, at load time, so a bad repository is an error with its location before
//! anything runs; `db::backup::repository` opens it.

use std::path::{Path, PathBuf};

/// A parsed `backups.repository`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on this machine (a plain path, or `file:///path`).
    Folder(PathBuf),
    /// A bucket (container) and a key prefix in object storage.
    Object {
        /// Which cloud.
        cloud: Cloud,
        /// Bucket (S3, GCS) or container (Azure).
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

/// The object-storage services dbflow speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon S3 and S3-compatible servers (`s3://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`).
    Azure,
}

impl Cloud {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gs",
            Cloud::Azure => "az",
        }
    }

    /// The prefix of the environment variables that configure it.
    pub fn env_prefix(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_",
            Cloud::Gcs => "GOOGLE_",
            Cloud::Azure => "AZURE_",
        }
    }
}

impl Location {
    /// Parses a repository as written (already interpolated). A relative folder is
    /// taken relative to `root`, the project folder.
    pub fn parse(raw: &str, root: &Path) -> Result<Location, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(
                "`backups.repository` is empty: give a folder or a URL such as s3://bucket/prefix"
                    .into(),
            );
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Ok(Location::Folder(root.join(raw)));
        };
        let cloud = match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(format!(
                        "`{raw}`: a file:// repository needs an absolute path (file:///var/backups)"
                    ));
                }
                let decoded = percent_encoding::percent_decode_str(rest)
                    .decode_utf8()
                    .map_err(|_| format!("`{raw}`: the path is not UTF-8"))?;
                return Ok(Location::Folder(PathBuf::from(decoded.as_ref())));
            }
            "s3" | "s3a" => Cloud::S3,
            "gs" | "gcs" => Cloud::Gcs,
            "az" | "azure" | "abfs" | "abfss" => Cloud::Azure,
            other => {
                return Err(format!(
                    "`{}`: unknown repository scheme `{other}://`; use s3://, gs://, az://, file:// or a plain folder",
                    redact_location(raw)
                ))
            }
        };
        if rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "`{}`: credentials and options do not go in the repository URL; set them in the environment ({}…)",
                redact_location(raw),
                cloud.env_prefix()
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = !bucket.is_empty()
            && bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid_bucket {
            return Err(format!(
                "`{raw}`: `{bucket}` is not a bucket name (letters, digits, `-`, `.`, `_`)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(format!("`{raw}`: `.` and `..` cannot name a key prefix"));
        }
        Ok(Location::Object {
            cloud,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The repository as shown in output, journals and manifests: never a secret (the
    /// URL forms refuse userinfo and query strings, and the redaction layer masks any
    /// registered value that a folder name might contain).
    pub fn display(&self) -> String {
        match self {
            Location::Folder(path) => crate::redact::redact(&path.display().to_string()),
            Location::Object {
                cloud,
                bucket,
                prefix,
            } => {
                let url = if prefix.is_empty() {
                    format!("{}://{bucket}", cloud.scheme())
                } else {
                    format!("{}://{bucket}/{prefix}", cloud.scheme())
                };
                crate::redact::redact(&url)
            }
        }
    }

    /// True for object storage.
    pub fn is_object(&self) -> bool {
        matches!(self, Location::Object { .. })
    }
}

/// A repository URL with any userinfo and query string masked, for error messages about
/// a URL that was refused.
fn redact_location(raw: &str) -> String {
    let no_query = raw.split('?').next().unwrap_or(raw);
    match no_query.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => crate::redact::redact(no_query),
        },
        None => crate::redact::redact(no_query),
    }
}

/// Checks one `age1…` recipient of `backups.encryption`. A secret key given by mistake is
/// refused without being echoed (and registered as a secret, so nothing echoes it later).
pub fn recipient(text: &str) -> Result<age::x25519::Recipient, String> {
    use std::str::FromStr;
    let text = text.trim();
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        crate::redact::register_secret(text);
        return Err("this is an age identity (a secret key), not a recipient: it must never be in the Workflowfile; put its public key (age1…) here".into());
    }
    age::x25519::Recipient::from_str(text)
        .map_err(|e| format!("`{text}` is not an age recipient (age1…): {e}"))
}
