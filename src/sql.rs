//! Splitting a PostgreSQL migration into statements with PostgreSQL's own grammar
//! (pg_query), and finding the statements that cannot run inside a transaction block.

use pg_query::protobuf::node::Node as NodeEnum;

/// One statement of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text (without the trailing semicolon).
    pub sql: String,
    /// Byte offset in the file.
    pub offset: usize,
    /// 1-based line in the file where it starts.
    pub line: usize,
    /// Why it must run outside a transaction, if it must.
    pub non_transactional: Option<&'static str>,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, … written in the migration itself.
    pub transaction_control: bool,
}

/// Byte offsets of line starts, to turn many offsets of one text into lines quickly.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|start| *start <= offset).max(1)
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parses `sql` into statements. `Err` carries PostgreSQL's syntax error message.
pub fn split(sql: &str) -> Result<Vec<Statement>, String> {
    let parsed =
        pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| e.to_string())?;
    let lines = LineIndex::new(sql);
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let start = raw.stmt_location.max(0) as usize;
        let len = if raw.stmt_len > 0 {
            raw.stmt_len as usize
        } else {
            sql.len().saturating_sub(start)
        };
        let text = &sql[start..(start + len).min(sql.len())];
        // stmt_location includes leading whitespace and comments; point at the code.
        let leading = text.len() - trim_leading(text).len();
        let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
        out.push(Statement {
            sql: trim_leading(text).trim_end().to_string(),
            offset: start + leading,
            line: lines.line(start + leading),
            non_transactional: node.and_then(non_transactional_reason),
            transaction_control: matches!(node, Some(NodeEnum::TransactionStmt(_))),
        });
    }
    Ok(out)
}

/// Skips whitespace and `--` / `/* */` comments at the start of a statement.
pub fn trim_leading(mut text: &str) -> &str {
    loop {
        let trimmed = text.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            text = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(rest) = trimmed.strip_prefix("/*") {
            text = rest.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            return trimmed;
        }
    }
}

/// Why a statement cannot run inside a transaction block, if it cannot.
pub fn non_transactional_reason(node: &NodeEnum) -> Option<&'static str> {
    match node {
        NodeEnum::IndexStmt(index) if index.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(drop) if drop.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(reindex)
            if reindex.params.iter().any(
                |p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"),
            ) =>
        {
            Some("REINDEX CONCURRENTLY")
        }
        NodeEnum::VacuumStmt(vacuum) if vacuum.is_vacuumcmd => Some("VACUUM"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_lines_and_flags() {
        let sql = "-- create things\nCREATE TABLE a (id int);\n\n/* idx */\nCREATE INDEX CONCURRENTLY a_id ON a (id);\nSELECT 'x; y';\nDO $$ BEGIN PERFORM 1; END $$;\n";
        let stmts = split(sql).unwrap();
        assert_eq!(stmts.len(), 4);
        assert_eq!(stmts[0].line, 2);
        assert_eq!(stmts[0].sql, "CREATE TABLE a (id int)");
        assert_eq!(stmts[1].line, 5);
        assert_eq!(
            stmts[1].non_transactional,
            Some("CREATE INDEX CONCURRENTLY")
        );
        assert_eq!(stmts[2].sql, "SELECT 'x; y'");
        assert_eq!(stmts[3].non_transactional, None);
        assert!(!stmts[3].transaction_control);
        assert!(split("BEGIN; SELECT 1; COMMIT;").unwrap()[0].transaction_control);
        assert!(split("VACUUM ANALYZE a;").unwrap()[0]
            .non_transactional
            .is_some());
        assert!(split("ANALYZE a;").unwrap()[0].non_transactional.is_none());
        assert!(split("CREATE TABLE (;").is_err());
    }

    #[test]
    fn line_index_matches_line_of() {
        let text = "a\nbb\n\nccc\n";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() {
            assert_eq!(index.line(offset), line_of(text, offset), "offset {offset}");
        }
    }
}
