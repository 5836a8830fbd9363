//! What a read-only `dbflow.sql` may not run, beyond what PostgreSQL's READ ONLY
//! transaction already refuses: functions and statements that act on other sessions or
//! on the server (terminating or cancelling backends, reloading the configuration,
//! replication, notifications), that write files on the server, or that run SQL text
//! of their own where it cannot be checked (`DO`, `dblink`, `query_to_xml`).
//!
//! The check reads the statement with PostgreSQL's own parser. A function a project
//! defined itself is not looked into: it still runs inside the READ ONLY transaction.

/// Functions a read-only step may not call (any schema).
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_signal_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_log_backend_memory_contexts",
    "pg_notify",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_replication_slot_advance",
    "pg_logical_emit_message",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters",
    "pg_stat_reset_slru",
    "pg_stat_reset_replication_slot",
    "pg_stat_statements_reset",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "lo_export",
    "lo_import",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "dblink_open",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "set_config",
];

/// Why `sql` may not run in a read-only step, or `None` when it may.
pub fn refusal(sql: &str) -> Option<String> {
    let parsed = match pg_query::parse(sql, pg_query::ParserOptions::DEFAULT) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Some(format!(
                "the statement cannot be read, so a read-only step may not run it ({e})"
            ))
        }
    };
    for name in parsed.functions() {
        let bare = name
            .rsplit('.')
            .next()
            .unwrap_or(&name)
            .to_ascii_lowercase();
        if FORBIDDEN_FUNCTIONS.contains(&bare.as_str()) {
            return Some(format!(
                "`{bare}()` acts on other sessions or the server; a read-only step may not call it"
            ));
        }
    }
    use pg_query::protobuf::node::Node;
    for stmt in &parsed.protobuf.stmts {
        let Some(node) = stmt.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let what = match node {
            Node::DoStmt(_) => Some("`DO` runs code that cannot be checked"),
            Node::CallStmt(_) => Some("`CALL` runs a procedure that may commit on its own"),
            Node::NotifyStmt(_) | Node::ListenStmt(_) | Node::UnlistenStmt(_) => {
                Some("`NOTIFY`/`LISTEN` talk to other sessions")
            }
            Node::LoadStmt(_) => Some("`LOAD` loads code into the server"),
            Node::CheckPointStmt(_) => Some("`CHECKPOINT` acts on the whole server"),
            Node::CopyStmt(c) if c.is_program || !c.filename.is_empty() => {
                Some("`COPY` to or from a server file or program")
            }
            Node::VariableSetStmt(_) | Node::VariableShowStmt(_) => None,
            Node::TransactionStmt(_) => {
                Some("transaction control belongs to dbflow (it runs the statement READ ONLY)")
            }
            _ => None,
        };
        if let Some(what) = what {
            return Some(format!("{what}; a read-only step may not run it"));
        }
        if let Node::VariableSetStmt(_) = node {
            return Some(
                "`SET` changes the session dbflow keeps READ ONLY; a read-only step may not run it"
                    .to_string(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_sessions_are_out_of_reach() {
        for sql in [
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "select pg_catalog.PG_CANCEL_BACKEND(42)",
            "SELECT pg_reload_conf()",
            "SELECT * FROM dblink('dbname=x', 'DELETE FROM t') AS t(x int)",
            "SELECT query_to_xml('select pg_terminate_backend(1)', true, true, '')",
            "DO $$ BEGIN PERFORM 1; END $$",
            "NOTIFY deploys",
            "COPY t TO PROGRAM 'id'",
            "SET default_transaction_read_only = off",
            "COMMIT",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT (SELECT pg_terminate_backend(1))",
        ] {
            assert!(refusal(sql).is_some(), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "SELECT count(*) FROM \"User\" WHERE id = $1",
            "SELECT pid, state FROM pg_stat_activity",
            "SHOW server_version",
            "WITH x AS (SELECT now()) SELECT * FROM x",
        ] {
            assert_eq!(refusal(sql), None, "{sql}");
        }
    }
}
