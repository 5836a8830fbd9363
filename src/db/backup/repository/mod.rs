//! Where backups live: `backups.repository`, a folder on this machine (today's
//! behaviour and the default) or an object-storage bucket shared by every runner
//! (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`).
//!
//! Object storage goes through the `object_store` crate (one API for S3, GCS, Azure and
//! the local file system). Credentials and endpoints come from each cloud's standard
//! environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`, from the process or `.env`);
//! their values are registered with the redaction layer before any client is built, so
//! no error message can show them.

pub mod crypt;
pub mod object;

use crate::config::interpolate::{interpolate, Unresolved, Vars};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    fn env_prefix(self) -> &'static str {
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
            Location::Folder(path) => crate::ui::redact::redact(&path.display().to_string()),
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
                crate::ui::redact::redact(&url)
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
            None => crate::ui::redact::redact(no_query),
        },
        None => crate::ui::redact::redact(no_query),
    }
}

/// The repository configured for `env` (its `backups.repository`, else the project's),
/// interpolated; `None` when none is set (the `backups.dir` folder).
pub fn configured(
    project: &crate::config::Project,
    env: &str,
    vars: &Vars,
) -> Result<Option<Location>, String> {
    let Some(raw) = project.backup_settings(env).repository else {
        return Ok(None);
    };
    let text = interpolate(&raw, vars).map_err(|why| match why {
        Unresolved::Missing { name } => {
            format!("backups.repository of `{env}` needs the variable {name}, which is not set")
        }
        Unresolved::Unterminated { offset } => {
            format!("backups.repository of `{env}`: `${{` at byte {offset} is never closed")
        }
    })?;
    Location::parse(&text, &project.root).map(Some)
}

/// An open object-storage repository.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The client.
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix every object of this repository lives under.
    pub prefix: ObjectPath,
    /// How the repository is shown (redacted URL).
    pub shown: String,
}

impl Remote {
    /// The key `<prefix>/<parts…>`.
    pub fn key(&self, parts: &[&str]) -> ObjectPath {
        let mut key = self.prefix.clone();
        for part in parts {
            key = key.clone().join(*part);
        }
        key
    }
}

/// Builds the client of an object-storage location from the cloud's environment
/// variables in `vars` (process environment, then `.env`). Every value is registered
/// as a secret first: the access key id, the secret, a session token, a SAS token.
pub fn open(location: &Location, vars: &Vars) -> Result<Remote, String> {
    let Location::Object {
        cloud,
        bucket,
        prefix,
    } = location
    else {
        return Err("a folder repository is not object storage".into());
    };
    let settings: Vec<(String, String)> = vars
        .iter()
        .filter(|(name, _)| name.starts_with(cloud.env_prefix()))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
        .collect();
    for (name, value) in &settings {
        if is_credential(name) {
            crate::ui::redact::register_secret(value);
        }
    }
    let shown = location.display();
    let fail = |e: object_store::Error| {
        crate::ui::redact::redact(&format!("cannot open repository {shown}: {e}"))
    };
    let store: Arc<dyn ObjectStore> = match cloud {
        Cloud::S3 => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut builder = AmazonS3Builder::new()
                .with_retry(retry())
                .with_bucket_name(bucket);
            for (name, value) in &settings {
                if let Ok(key) = name.parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            Arc::new(builder.build().map_err(fail)?)
        }
        Cloud::Gcs => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            let mut builder = GoogleCloudStorageBuilder::new()
                .with_retry(retry())
                .with_bucket_name(bucket);
            for (name, value) in &settings {
                if let Ok(key) = name.parse::<GoogleConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            Arc::new(builder.build().map_err(fail)?)
        }
        Cloud::Azure => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            let mut builder = MicrosoftAzureBuilder::new()
                .with_retry(retry())
                .with_container_name(bucket);
            for (name, value) in &settings {
                if let Ok(key) = name.parse::<AzureConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            Arc::new(builder.build().map_err(fail)?)
        }
    };
    let prefix = ObjectPath::parse(prefix).map_err(|e| format!("repository {shown}: {e}"))?;
    Ok(Remote {
        store,
        prefix,
        shown,
    })
}

/// Transient errors (a throttled request, a dropped connection) are retried a few
/// times; a server that stays unreachable fails the backup within about a minute
/// instead of the client's default of three.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(60),
    }
}

/// Whether a cloud setting (lower-cased variable name) holds a credential: access key
/// ids count too, since with the secret they name an account.
fn is_credential(name: &str) -> bool {
    ["key", "secret", "token", "credential", "sas", "password"]
        .iter()
        .any(|needle| name.contains(needle))
}

/// The object-storage repository of `env`, opened; `None` when its backups live in a
/// folder (the catalog of [`crate::db::backup::Catalog`]).
pub fn remote_for(
    project: &crate::config::Project,
    env: &str,
    vars: &Vars,
) -> Result<Option<Remote>, String> {
    match configured(project, env, vars)? {
        Some(location @ Location::Object { .. }) => open(&location, vars).map(Some),
        _ => Ok(None),
    }
}

/// Opens any location through the object-store API: a folder as the local file
/// system (the same `<env>/<id>/…` layout the folder catalog reads), used where a
/// folder and a bucket are handled alike (`backup copy`).
pub fn open_any(location: &Location, vars: &Vars) -> Result<Remote, String> {
    match location {
        Location::Object { .. } => open(location, vars),
        Location::Folder(path) => {
            crate::db::backup::manifest::create_private_dir_all(path)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            Ok(Remote {
                store: Arc::new(store),
                prefix: ObjectPath::default(),
                shown: location.display(),
            })
        }
    }
}

/// Refuses `what` when `env` keeps its backups in object storage and `what` does not
/// read that catalog yet: acting on the local folder instead would be acting on the
/// wrong backups.
pub fn folder_only(
    project: &crate::config::Project,
    env: &str,
    vars: &Vars,
    what: &str,
) -> Result<(), String> {
    match configured(project, env, vars)? {
        Some(location @ Location::Object { .. }) => Err(format!(
            "{what} does not read object-storage repositories yet, and `{env}` keeps its backups in {}: nothing was done (use `dbflow backup list|verify` and `dbflow restore`, which do)",
            location.display()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Location, String> {
        Location::parse(raw, Path::new("/project"))
    }

    #[test]
    fn a_plain_path_is_a_folder_relative_to_the_project() {
        assert_eq!(
            parse("backups").unwrap(),
            Location::Folder(PathBuf::from("/project/backups"))
        );
        assert_eq!(
            parse("/var/backups").unwrap(),
            Location::Folder(PathBuf::from("/var/backups"))
        );
        assert_eq!(
            parse("file:///var/db%20backups").unwrap(),
            Location::Folder(PathBuf::from("/var/db backups"))
        );
        assert!(parse("file://relative").is_err());
    }

    #[test]
    fn buckets_and_prefixes_are_read_from_cloud_urls() {
        assert_eq!(
            parse("s3://acme-backups/db/prod/").unwrap(),
            Location::Object {
                cloud: Cloud::S3,
                bucket: "acme-backups".into(),
                prefix: "db/prod".into()
            }
        );
        assert_eq!(
            parse("gs://b").unwrap(),
            Location::Object {
                cloud: Cloud::Gcs,
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        let az = parse("az://container/x").unwrap();
        assert_eq!(az.display(), "az://container/x");
        assert!(az.is_object());
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_echoed() {
        let err = parse("s3://AKIAXX:hunter2secret@bucket/p").unwrap_err();
        assert!(!err.contains("hunter2secret"), "{err}");
        assert!(err.contains("environment"), "{err}");
        let err = parse("s3://bucket/p?secret=hunter2secret").unwrap_err();
        assert!(!err.contains("hunter2secret"), "{err}");
        assert!(parse("ftp://host/x")
            .unwrap_err()
            .contains("unknown repository scheme"));
        assert!(parse("s3:///prefix").is_err());
        assert!(parse("s3://b/../x").is_err());
    }

    #[test]
    fn cloud_credentials_are_registered_as_secrets_when_the_client_is_built() {
        let vars = Vars::from_pairs([
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID42"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-K7MDENG-example"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ALLOW_HTTP", "true"),
        ]);
        let remote = open(&parse("s3://bucket/prefix").unwrap(), &vars).unwrap();
        assert_eq!(remote.shown, "s3://bucket/prefix");
        assert_eq!(
            remote.key(&["prod", "id", "manifest.json"]).as_ref(),
            "prefix/prod/id/manifest.json"
        );
        let text = crate::ui::redact::redact("AKIAEXAMPLEKEYID42 wJalrXUtnFEMI-K7MDENG-example");
        assert!(!text.contains("AKIAEXAMPLEKEYID42"), "{text}");
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
    }
}
