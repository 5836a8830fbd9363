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

/// Scripts up to this size are split into statements to show the failing one in an
/// error; larger ones name the line only (the parse tree takes ~80× the script's size).
pub const SPLIT_FOR_ERRORS_LIMIT: usize = 4 * 1024 * 1024;

/// Text parsed at once by [`runs_outside_transaction`]: the parse tree of a slice this
/// size is tens of MB, whatever the script's size.
const PARSE_SLICE: usize = 512 * 1024;

/// Whether some statement must run outside a transaction block or is transaction control
/// (`BEGIN`, `COMMIT`, …), without holding the whole script's parse tree: the script is
/// cut into statements by PostgreSQL's scanner and parsed a slice of statements at a time
/// (the scanner itself takes ~2.5× the script's size). `None` when it does not parse.
pub fn runs_outside_transaction(sql: &str) -> Option<bool> {
    // Every statement that qualifies is written with one of these words; a script
    // without any (most data migrations) needs no parsing at all.
    static KEYWORDS: std::sync::OnceLock<regex::bytes::Regex> = std::sync::OnceLock::new();
    let keywords = KEYWORDS.get_or_init(|| {
        regex::bytes::Regex::new(
            r"(?i-u)\b(concurrently|vacuum|database|system|tablespace|begin|start|commit|end|rollback|abort|savepoint|release|prepare)\b",
        )
        .expect("static regex")
    });
    if !keywords.is_match(sql.as_bytes()) {
        return Some(false);
    }
    let pieces = pg_query::split_with_scanner(sql).ok()?;
    let base = sql.as_ptr() as usize;
    let mut start: Option<usize> = None;
    let mut end = 0;
    let check = |from: usize, to: usize| -> Option<bool> {
        let parsed = pg_query::parse(&sql[from..to], pg_query::ParserOptions::DEFAULT).ok()?;
        Some(parsed.protobuf.stmts.iter().any(|raw| {
            let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
            node.and_then(non_transactional_reason).is_some()
                || matches!(node, Some(NodeEnum::TransactionStmt(_)))
        }))
    };
    for piece in pieces {
        let from = piece.as_ptr() as usize - base;
        let first = *start.get_or_insert(from);
        end = from + piece.len();
        if end - first >= PARSE_SLICE {
            if check(first, end)? {
                return Some(true);
            }
            start = None;
        }
    }
    match start {
        Some(first) => check(first, end),
        None => Some(false),
    }
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
    fn outside_transaction_by_slices_agrees_with_the_whole_parse() {
        let inserts = "INSERT INTO t VALUES (1, 'x');\n".repeat(40_000);
        assert_eq!(runs_outside_transaction(&inserts), Some(false));
        let with_end = format!("{inserts}CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;\n{inserts}");
        assert_eq!(runs_outside_transaction(&with_end), Some(false));
        let concurrently = format!("{inserts}CREATE INDEX CONCURRENTLY i ON t (a);\n{inserts}");
        assert_eq!(runs_outside_transaction(&concurrently), Some(true));
        assert_eq!(runs_outside_transaction("COMMIT;"), Some(true));
    }

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
