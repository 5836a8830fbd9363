//! The databases dbflow made beside an environment's database and left there: restored
//! copies (`<db>_restore_<ts>`), the databases an in-place restore kept aside
//! (`<db>_pre_restore_<ts>`), kept drill and rehearsal databases. `dbflow restore list`
//! shows them and `dbflow restore drop` removes them (through the guard's own-copy
//! permit), so they do not pile up on the server unseen.

use crate::config::DbUrl;
use crate::db::Conn;
use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};

/// Suffixes of the databases dbflow names itself beside an environment's database
/// (`<db>_<suffix>_<YYYYMMDD_HHMMSS>`, see `db::backup::restore::default_name`).
/// `shadow`: the scratch database `migrate status --shadow` builds the migrations in,
/// dropped at once; one left behind (a killed run) is listed and dropped like the others.
pub const OWN_COPY_KINDS: &[&str] = &[
    "restore",
    "restore_drill",
    "rehearsal",
    "pre_restore",
    "shadow",
];

/// Whether `name` has the shape of a database dbflow made beside another one.
pub fn is_own_copy_name(name: &str) -> bool {
    // `_<kind>_YYYYMMDD_HHMMSS` at the end: 8 digits, `_`, 6 digits.
    let Some((head, time)) = name.rsplit_once('_') else {
        return false;
    };
    let Some((head, date)) = head.rsplit_once('_') else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    digits(time, 6)
        && digits(date, 8)
        && OWN_COPY_KINDS
            .iter()
            .any(|kind| head.ends_with(&format!("_{kind}")))
}

/// One database dbflow made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copy {
    /// Its name (SQLite: the file's stem).
    pub name: String,
    /// `restore`, `pre_restore`, `restore_drill`, `rehearsal` or `shadow`.
    pub kind: String,
    /// When it was made (from its name, UTC: dbflow names copies by the clock of the
    /// machine that ran it).
    pub created_at: DateTime<Utc>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Its URL (PostgreSQL) or file (SQLite).
    #[serde(skip)]
    pub url: DbUrl,
}

/// `(kind, created_at)` of an own-copy name made beside `database`, if it is one.
pub fn parse_name(database: &str, name: &str) -> Option<(String, DateTime<Utc>)> {
    if !is_own_copy_name(name) || name == database {
        return None;
    }
    let stamp = &name[name.len() - 15..];
    let created = NaiveDateTime::parse_from_str(stamp, "%Y%m%d_%H%M%S")
        .ok()?
        .and_utc();
    let head = &name[..name.len() - 16];
    // Longest kind first: `restore_drill` and `pre_restore` end like `restore`.
    let mut kinds: Vec<&str> = OWN_COPY_KINDS.to_vec();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let kind = kinds
        .into_iter()
        .find(|k| head.ends_with(&format!("_{k}")))?;
    let base = &head[..head.len() - kind.len() - 1];
    // Names are shortened to 63 bytes by cutting the database part.
    (!base.is_empty() && database.starts_with(base)).then(|| (kind.to_string(), created))
}

/// The copies beside the database at `url`, newest first.
pub fn list(url: &DbUrl, rt: &tokio::runtime::Runtime) -> Result<Vec<Copy>> {
    let database = url.database_name().unwrap_or_default();
    let mut copies = Vec::new();
    if url.is_sqlite() {
        let path = super::sqlite_path(url);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(copies);
        };
        for entry in entries.flatten() {
            let file = entry.path();
            let Some(stem) = file.file_stem().map(|s| s.to_string_lossy().to_string()) else {
                continue;
            };
            if file.extension() != path.extension() {
                continue;
            }
            if let Some((kind, created_at)) = parse_name(&database, &stem) {
                let target = super::restore::target_url(url, &file.to_string_lossy());
                copies.push(Copy {
                    name: stem,
                    kind,
                    created_at,
                    size: entry.metadata().ok().map(|m| m.len()),
                    url: target,
                });
            }
        }
    } else {
        let rows = rt.block_on(async {
            let mut conn = Conn::connect(url)
                .await
                .map_err(|e| crate::db::target::connect_error(url, e))?;
            let rows = conn
                .text_rows(
                    "SELECT datname::text, pg_database_size(oid)::text FROM pg_database WHERE NOT datistemplate ORDER BY datname",
                )
                .await;
            conn.close().await;
            rows.map_err(|e| Error::failed(format!("listing databases: {e}")))
        })?;
        for row in rows {
            let name = row.first().cloned().flatten().unwrap_or_default();
            if let Some((kind, created_at)) = parse_name(&database, &name) {
                copies.push(Copy {
                    url: url.with_database(&name),
                    size: row.get(1).cloned().flatten().and_then(|s| s.parse().ok()),
                    name,
                    kind,
                    created_at,
                });
            }
        }
    }
    copies.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.name.cmp(&b.name)));
    Ok(copies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_copies_are_recognised_by_their_shape_only() {
        assert!(is_own_copy_name("shop_restore_20240704_020000"));
        assert!(is_own_copy_name("shop_restore_drill_20240704_020000"));
        assert!(is_own_copy_name("shop_pre_restore_20240704_020000"));
        assert!(is_own_copy_name("a_b_rehearsal_20240704_020000"));
        assert!(!is_own_copy_name("shop"));
        assert!(!is_own_copy_name("shop_restore"));
        assert!(!is_own_copy_name("shop_backup_20240704_020000"));
        assert!(!is_own_copy_name("shop_restore_2024070_020000"));
        assert!(!is_own_copy_name("_restore_20240704_02000x"));
    }

    #[test]
    fn names_are_parsed_with_their_kind_and_time() {
        let (kind, at) = parse_name("shop", "shop_restore_drill_20240704_020000").unwrap();
        assert_eq!(kind, "restore_drill");
        assert_eq!(at.to_rfc3339(), "2024-07-04T02:00:00+00:00");
        assert_eq!(
            parse_name("shop", "shop_pre_restore_20240704_020000")
                .unwrap()
                .0,
            "pre_restore"
        );
        assert_eq!(
            parse_name("shop", "shop_restore_20240704_020000")
                .unwrap()
                .0,
            "restore"
        );
        assert!(parse_name("shop", "other_restore_20240704_020000").is_none());
        assert!(parse_name("shop", "shop").is_none());
        // Shortened database part (63-byte names).
        let long = "x".repeat(60);
        let name = format!("{}_restore_20240704_020000", &long[..47]);
        assert!(parse_name(&long, &name).is_some());
    }
}
