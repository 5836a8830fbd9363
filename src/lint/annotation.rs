//! `-- dbflow:allow <rule>[, <rule>…] reason: <why>` annotations in migration SQL.
//!
//! An annotation belongs to the statement it is written in, or the one on whose last
//! line it trails (`DROP TABLE t; -- dbflow:allow …`), or else the next statement.
//! Comments are found with PostgreSQL's scanner, so the words inside a string or a
//! dollar-quoted body are never mistaken for one.

use super::migration::Migration;
use regex::Regex;
use std::sync::OnceLock;

/// The marker that starts an annotation.
pub const MARKER: &str = "dbflow:allow";

/// A parsed annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Rule ids it allows.
    pub rules: Vec<String>,
    /// The reason written.
    pub reason: String,
    /// 1-based line of the comment.
    pub line: usize,
    /// Index of the statement it belongs to (`None` when no statement follows it).
    pub statement: Option<usize>,
}

/// An annotation that could not be used, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAnnotation {
    /// 1-based line of the comment.
    pub line: usize,
    /// The comment.
    pub text: String,
    /// What is wrong.
    pub problem: String,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?s)dbflow:allow\s+([A-Za-z0-9_-]+(?:\s*,\s*[A-Za-z0-9_-]+)*)\s+reason:\s*(.*)",
        )
        .unwrap()
    })
}

/// Parses the text of one comment (`--` or `/* */` included).
pub fn parse_comment(comment: &str) -> Option<Result<(Vec<String>, String), String>> {
    let body = comment
        .trim()
        .trim_start_matches("--")
        .trim_start_matches("/*")
        .trim_end_matches("*/");
    body.find(MARKER)?;
    let Some(caps) = pattern().captures(body) else {
        return Some(Err(format!(
            "write `{MARKER} <rule> reason: <why>` (rules separated by commas)"
        )));
    };
    let rules = caps[1]
        .split(',')
        .map(|r| r.trim().to_string())
        .collect::<Vec<_>>();
    let reason = caps[2].split_whitespace().collect::<Vec<_>>().join(" ");
    if reason.is_empty() {
        return Some(Err("the reason is empty: say why this is safe".into()));
    }
    Some(Ok((rules, reason)))
}

/// Finds every annotation in the migration and attaches it to its statement.
pub fn collect(migration: &Migration<'_>) -> (Vec<Annotation>, Vec<BadAnnotation>) {
    let text = migration.text;
    if !text.contains(MARKER) {
        return (Vec::new(), Vec::new());
    }
    let Ok(tokens) = pg_query::scan_tokens(text) else {
        return (Vec::new(), Vec::new());
    };
    let comment_kinds = [
        pg_query::protobuf::Token::SqlComment as i32,
        pg_query::protobuf::Token::CComment as i32,
    ];
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for token in tokens.iter().filter(|t| comment_kinds.contains(&t.token)) {
        let (start, end) = (token.start as usize, token.end as usize);
        let comment = &text[start..end];
        let Some(parsed) = parse_comment(comment) else {
            continue;
        };
        let line = migration.lines.line(start);
        match parsed {
            Ok((rules, reason)) => good.push(Annotation {
                rules,
                reason,
                line,
                statement: owner(migration, start, line),
            }),
            Err(problem) => bad.push(BadAnnotation {
                line,
                text: comment.trim().to_string(),
                problem,
            }),
        }
    }
    (good, bad)
}

/// The statement a comment at `offset` (on `line`) belongs to.
fn owner(migration: &Migration<'_>, offset: usize, line: usize) -> Option<usize> {
    let statements = &migration.statements;
    let next = statements.partition_point(|s| s.start <= offset);
    if next > 0 {
        let previous = &statements[next - 1];
        if offset < previous.end {
            return Some(previous.index);
        }
        if migration.lines.line(previous.end.saturating_sub(1)) == line {
            return Some(previous.index);
        }
    }
    statements.get(next).map(|s| s.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_reason() {
        assert_eq!(
            parse_comment("-- dbflow:allow drop-column reason: unused since v2.3"),
            Some(Ok((vec!["drop-column".into()], "unused since v2.3".into())))
        );
        assert_eq!(
            parse_comment("/* dbflow:allow drop-column, rename-column reason:\n   both gone */"),
            Some(Ok((
                vec!["drop-column".into(), "rename-column".into()],
                "both gone".into()
            )))
        );
        assert!(matches!(
            parse_comment("-- dbflow:allow drop-column"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_comment("-- dbflow:allow drop-column reason:   "),
            Some(Err(_))
        ));
        assert_eq!(parse_comment("-- nothing to see"), None);
    }

    #[test]
    fn annotations_attach_to_the_right_statement() {
        let sql = "\
-- dbflow:allow drop-table reason: before
DROP TABLE a;
DROP TABLE b; -- dbflow:allow drop-table reason: trailing
DROP TABLE c;
ALTER TABLE d
  -- dbflow:allow drop-column reason: inside
  DROP COLUMN e;
SELECT '-- dbflow:allow drop-table reason: in a string';
-- dbflow:allow truncate reason: dangling
";
        let m = Migration::parse(sql, false);
        let (good, bad) = collect(&m);
        assert!(bad.is_empty());
        let owners: Vec<(usize, Option<usize>)> =
            good.iter().map(|a| (a.line, a.statement)).collect();
        assert_eq!(
            owners,
            [(1, Some(0)), (3, Some(1)), (6, Some(3)), (9, None)]
        );
    }
}
