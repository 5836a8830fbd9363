//! SQLite: a consistent copy of the file.

use super::*;

/// SQLite: `VACUUM INTO` a consistent copy (readers and writers go on meanwhile).
pub(super) fn dump_sqlite(
    partial: &Path,
    options: &CreateOptions<'_>,
    manifest: &mut Manifest,
    rt: &tokio::runtime::Runtime,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let url = options.url;
    let source = crate::db::backup::sqlite_path(url);
    if !source.is_file() {
        return Err(Error::failed(format!(
            "cannot back up {}: {} does not exist",
            url.redacted(),
            source.display()
        )));
    }
    let copy = partial.join("database.sqlite");
    on_event(Event::Phase(format!("VACUUM INTO {}", copy.display())));
    let info = rt.block_on(async {
        let mut conn = Conn::connect(url)
            .await
            .map_err(|e| crate::db::target::connect_error(url, e))?;
        let result = async {
            let version = conn.string("SELECT sqlite_version()").await?;
            let head = source::migration_head(&mut conn, options.history_table).await?;
            conn.batch(&format!(
                "VACUUM INTO {}",
                crate::db::conn::quote_literal(&copy.to_string_lossy())
            ))
            .await?;
            Ok::<_, crate::db::DbError>((version, head))
        }
        .await;
        conn.close().await;
        let (version, head) = result.map_err(|e| db_error(url, e))?;
        // Tables and counts come from the copy: exactly what the backup holds.
        let mut copy_conn = crate::db::backup::open_sqlite_readonly(&copy)
            .await
            .map_err(|e| db_error(url, e))?;
        let tables = source::tables(&mut copy_conn).await;
        let counts = source::row_counts(&mut copy_conn, options.key_tables).await;
        copy_conn.close().await;
        Ok::<_, Error>(SourceInfo {
            server_version: version,
            migration_head: head,
            tables: tables.map_err(|e| db_error(url, e))?,
            row_counts: counts.map_err(|e| db_error(url, e))?,
            ..SourceInfo::default()
        })
    })?;
    record_source(manifest, &info);
    manifest.tool_version = info.server_version.clone().map(|v| format!("SQLite {v}"));
    let (size, sha256) = hash_file(&copy)?;
    on_event(Event::Bytes(size));
    manifest.format = Archive::Sqlite;
    manifest.dump = "database.sqlite".into();
    manifest.size = size;
    manifest.sha256 = sha256;
    Ok(())
}
