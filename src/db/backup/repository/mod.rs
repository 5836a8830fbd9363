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
pub mod directory;
pub mod object;
pub mod parts;

use crate::config::interpolate::{interpolate, Unresolved, Vars};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use std::sync::Arc;

pub use crate::config::repository::{Cloud, Location};

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
    /// The folder behind a folder repository opened through the object-store API
    /// ([`open_any`]): what is written there is made private to its owner (backups hold
    /// customer data; the local store writes with the process umask).
    pub local: Option<std::path::PathBuf>,
    /// How many files of a directory-format backup move at once, and how many jobs
    /// `pg_restore` runs on them: `backups.jobs` of the environment (2 by default).
    pub jobs: u32,
}

/// Parallel transfers when no environment's `backups.jobs` applies.
pub const DEFAULT_JOBS: u32 = 2;

impl Remote {
    /// The key `<prefix>/<parts…>`. A part holding `/` is several segments: the backups
    /// of a fleet target (environment `production/acme`) live under
    /// `<prefix>/production/acme/`, not under one escaped segment. Each segment is
    /// escaped as before (`..`, control characters); empty ones are skipped.
    pub fn key(&self, parts: &[&str]) -> ObjectPath {
        let mut key = self.prefix.clone();
        for segment in parts
            .iter()
            .flat_map(|part| part.split('/'))
            .filter(|s| !s.is_empty())
        {
            key = key.join(segment);
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
            crate::redact::register_secret(value);
        }
    }
    let shown = location.display();
    let fail = |e: object_store::Error| {
        crate::redact::redact(&format!("cannot open repository {shown}: {e}"))
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
        local: None,
        jobs: DEFAULT_JOBS,
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
        Some(location @ Location::Object { .. }) => open(&location, vars).map(|mut remote| {
            remote.jobs = project.backup_settings(env).jobs.max(1);
            Some(remote)
        }),
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
                local: Some(path.clone()),
                jobs: DEFAULT_JOBS,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

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
        let text = crate::redact::redact("AKIAEXAMPLEKEYID42 wJalrXUtnFEMI-K7MDENG-example");
        assert!(!text.contains("AKIAEXAMPLEKEYID42"), "{text}");
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
    }

    #[test]
    fn a_fleet_target_environment_is_a_path_of_segments_each_escaped() {
        let vars = Vars::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ALLOW_HTTP", "true"),
        ]);
        let remote = open(&parse("s3://bucket/prefix").unwrap(), &vars).unwrap();
        // Fleet target backups live under `<env>/<target>/`, not `production%2Facme/`.
        assert_eq!(
            remote
                .key(&["production/acme", "id", "manifest.json"])
                .as_ref(),
            "prefix/production/acme/id/manifest.json"
        );
        // Each segment is still escaped as one: no climbing out of the prefix.
        assert_eq!(
            remote.key(&["production/../x", "id"]).as_ref(),
            "prefix/production/%2E%2E/x/id"
        );
        assert_eq!(remote.key(&["a//b/", "id"]).as_ref(), "prefix/a/b/id");
    }
}
