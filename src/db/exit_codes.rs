//! How the db layer's own errors become the CLI's [`Error`] and its exit code: the one
//! place that decides it.
//!
//! `error` sits below `db` in the layer order (`src/lib.rs`), so `error` cannot name
//! these types; the `From` impls live here, at the top of `db`, and every command or
//! step that returns [`crate::error::Result`] converts with `?`. The db functions
//! themselves say only what went wrong.

use super::pgtools::PgToolsError;
use super::store::StoreError;
use super::target::ConnectError;
use crate::error::Error;

impl From<ConnectError> for Error {
    /// A database that cannot be reached failed the command (exit 1).
    fn from(e: ConnectError) -> Self {
        Error::failed(e.to_string())
    }
}

impl From<PgToolsError> for Error {
    fn from(e: PgToolsError) -> Self {
        match e {
            // A name no database may have: the input is wrong (exit 2).
            PgToolsError::BadName { .. } => Error::Usage(e.to_string()),
            // The guard's permit does not cover it: blocked (exit 3).
            PgToolsError::NotPermitted(why) => Error::blocked(why),
            // Missing tools, a tool that failed or would not start, a bad URL (exit 1).
            _ => Error::failed(e.to_string()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // Same message as before: "reading <path>: <io error>", exit 1.
            StoreError::Io { path, source } => {
                Error::io(format!("reading {}", path.display()), source)
            }
            // A script that changed under dbflow: a race, not bad input (exit 1).
            StoreError::Changed(_) => Error::failed(e.to_string()),
            // Anything dbflow refuses in the folder is for the user to fix (exit 2).
            e => {
                debug_assert!(e.is_bad_input());
                Error::Usage(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;
    use std::path::PathBuf;

    fn exit(e: impl Into<Error>) -> (i32, String) {
        let e: Error = e.into();
        (e.exit_code().code(), e.to_string())
    }

    #[test]
    fn store_errors_keep_their_messages_and_exit_codes() {
        let path = PathBuf::from("m/1_a/migration.sql");
        let (code, message) = exit(StoreError::NotUtf8 {
            path: path.clone(),
            offset: 18,
            line: 2,
        });
        assert_eq!(code, ExitCode::BadInput.code());
        assert_eq!(message, "m/1_a/migration.sql: not valid UTF-8 at byte 18 (line 2); PostgreSQL would be sent different text than the file holds. Re-save the file as UTF-8");
        let (code, message) = exit(StoreError::ProviderMismatch {
            dir: PathBuf::from("m"),
            provider: "mysql".into(),
            is_postgres: true,
        });
        assert_eq!(code, 2);
        assert_eq!(message, "m/migration_lock.toml says provider = \"mysql\" but the environment's database is PostgreSQL");
        for refused in [
            StoreError::OutsideFolder {
                path: path.clone(),
                dir: PathBuf::from("m"),
            },
            StoreError::NotRegularFile(path.clone()),
            StoreError::LockTooLarge {
                path: path.clone(),
                len: 1 << 20,
            },
            StoreError::LockInvalid {
                path: path.clone(),
                message: "bad".into(),
            },
        ] {
            assert!(refused.is_bad_input());
            assert_eq!(exit(refused).0, 2);
        }
        let (code, message) = exit(StoreError::Changed(path.clone()));
        assert_eq!(code, 1);
        assert_eq!(
            message,
            "m/1_a/migration.sql changed while dbflow was running; run the command again"
        );
        let io = StoreError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert!(!io.is_bad_input());
        let shown = io.to_string();
        let (code, message) = exit(io);
        assert_eq!(
            (code, message.as_str()),
            (1, "reading m/1_a/migration.sql: denied")
        );
        assert_eq!(shown, message);
    }

    #[test]
    fn a_failed_connection_is_exit_1_redacted_with_the_reopen_hint_on_55000() {
        let url = crate::config::DbUrl::new("postgres://app:s3cret@db:5432/shop");
        let refused = crate::db::DbError {
            message: "database \"shop\" is not currently accepting connections".into(),
            code: Some("55000".into()),
            position: None,
            detail: None,
        };
        let (code, message) = exit(crate::db::target::connect_error(&url, refused));
        assert_eq!(code, 1);
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.starts_with("cannot connect to postgres://app:"),
            "{message}"
        );
        assert!(
            message.contains(
                "(SQLSTATE 55000)\n  an in-place restore may be swapping this database right now"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("ALTER DATABASE \"shop\" WITH ALLOW_CONNECTIONS true'"),
            "{message}"
        );
        let (code, message) = exit(crate::db::target::connect_error(
            &url,
            crate::db::DbError::message("timed out"),
        ));
        assert_eq!(code, 1);
        assert!(message.ends_with("/shop: timed out"), "{message}");
    }

    #[test]
    fn pg_tools_errors_map_to_bad_input_blocked_and_failed() {
        use crate::db::pgtools::check_database_name;
        let (code, message) = exit(check_database_name("-x").unwrap_err());
        assert_eq!(code, 2);
        assert_eq!(
            message,
            "`-x` cannot name a database: it starts with `-`, which commands read as an option"
        );
        let (code, message) = exit(PgToolsError::NotPermitted("not shop".into()));
        assert_eq!((code, message.as_str()), (3, "not shop"));
        let (code, message) = exit(PgToolsError::Spawn {
            program: PathBuf::from("/nowhere/pg_dump"),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
        });
        assert_eq!(
            (code, message.as_str()),
            (1, "cannot run /nowhere/pg_dump: No such file")
        );
        let bad = crate::config::DbUrl::new("postgres://app:s3cret@[::1");
        let (code, message) = exit(crate::db::pgtools::PgConn::from_url(&bad).unwrap_err());
        assert_eq!(code, 1);
        assert!(message.contains("is not a valid URL"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
