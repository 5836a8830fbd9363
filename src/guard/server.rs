//! Which PostgreSQL server a URL reaches, told by the server itself rather than by how
//! its address is spelled (`localhost`, `127.0.0.1`, a DNS alias and a pooler can all
//! lead to the same one). A restore drill of a protected environment must run on
//! another server than the primary's ([`check_drill_server`]).

use crate::config::DbUrl;
use crate::db::Conn;
use std::time::Duration;

/// How long asking a server who it is may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);

/// A server's identity: the `system_identifier` initdb gave its cluster and when its
/// postmaster started. A physical copy (a replica, a provider's clone of a snapshot)
/// keeps the identifier but was started at another moment: it is another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// `system_identifier` from `pg_control_system()`.
    pub system_identifier: String,
    /// `pg_postmaster_start_time()`.
    pub started_at: String,
}

/// Asks the server at `url` who it is.
pub async fn identity(url: &DbUrl) -> Result<ServerIdentity, String> {
    let ask = async {
        let mut conn = Conn::connect(url)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", url.redacted()))?;
        let rows = conn
            .text_rows("SELECT system_identifier::text, pg_postmaster_start_time()::text FROM pg_control_system()")
            .await;
        conn.close().await;
        let rows = rows.map_err(|e| {
            format!(
                "cannot read the system identifier of {} ({e}); the user needs EXECUTE on pg_control_system()",
                url.redacted()
            )
        })?;
        let row = rows.into_iter().next().unwrap_or_default();
        match (
            row.first().cloned().flatten(),
            row.get(1).cloned().flatten(),
        ) {
            (Some(system_identifier), Some(started_at)) => Ok(ServerIdentity {
                system_identifier,
                started_at,
            }),
            _ => Err(format!(
                "{} did not say its system identifier",
                url.redacted()
            )),
        }
    };
    tokio::time::timeout(ASK_TIMEOUT, ask).await.map_err(|_| {
        format!(
            "no answer from {} within {}s",
            url.redacted(),
            ASK_TIMEOUT.as_secs()
        )
    })?
}

/// Refuses a drill server that is the primary's own server, or that cannot be told
/// apart from it (fail closed).
pub async fn check_drill_server(primary: &DbUrl, drill_server: &DbUrl) -> Result<(), String> {
    if !drill_server.is_postgres() {
        return Err(format!(
            "drill.server_url must be a postgres:// URL, not {}",
            drill_server.redacted()
        ));
    }
    let theirs = identity(drill_server).await?;
    let ours = identity(primary)
        .await
        .map_err(|e| format!("cannot tell the drill server from the primary's: {e}"))?;
    if theirs == ours {
        return Err(format!(
            "drill.server_url {} reaches the primary's own server (system identifier {}, started {}): a drill of a protected environment never restores there; point drill.server_url at another PostgreSQL server",
            drill_server.redacted(),
            ours.system_identifier,
            ours.started_at
        ));
    }
    Ok(())
}
