//! The relation names a set of SQL files could ask the live catalog about, read from
//! PostgreSQL's own lexer before linting: `lint --pending` and `--since` then read the
//! catalog rows of those names only, not of every table in the database.
//!
//! Every name the linter looks up (a table, an index, a rename's old or new name) comes
//! from an identifier or a keyword token of the file, so the set of those tokens, folded
//! and truncated as PostgreSQL does, is a superset of what the lint asks the catalog.

use super::Source;
use pg_query::protobuf::{KeywordKind, Token};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers are truncated to this many bytes.
const MAX_IDENT_BYTES: usize = 63;

/// Adds to `names` every identifier and keyword of `sql` as the catalog would spell it
/// (unquoted ones folded to lower case, quotes removed, truncated to 63 bytes). `false`
/// when the lexer cannot tell (a lexer error or a `U&"…"` identifier): the caller then
/// reads the whole catalog, as without a name list.
pub fn collect(sql: &str, names: &mut BTreeSet<String>) -> bool {
    let Ok(tokens) = pg_query::scan_tokens(sql) else {
        return false;
    };
    for t in tokens {
        let (Ok(start), Ok(end)) = (usize::try_from(t.start), usize::try_from(t.end)) else {
            return false;
        };
        let Some(text) = sql.get(start..end) else {
            return false;
        };
        if t.token == Token::Uident as i32 {
            return false;
        }
        let keyword = t.keyword_kind != KeywordKind::NoKeyword as i32;
        if t.token != Token::Ident as i32 && !keyword {
            continue;
        }
        let name = match text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            // PostgreSQL folds ASCII letters only (in UTF-8 databases).
            None => text.to_ascii_lowercase(),
        };
        names.insert(truncate(name));
    }
    true
}

/// The names of every file of `files` (see [`collect`]), or `None` when one cannot be
/// told (read the whole catalog then). A file that cannot be read is not linted either
/// (it is reported as unreadable), so it adds nothing.
pub fn of_files(files: &[(String, PathBuf)]) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for (shown, path) in files {
        if let Ok(source) = Source::read(shown, path) {
            if !collect(&source.text, &mut names) {
                return None;
            }
        }
    }
    Some(names)
}

/// `name` cut to 63 bytes on a character boundary, as PostgreSQL truncates identifiers.
fn truncate(mut name: String) -> String {
    if name.len() > MAX_IDENT_BYTES {
        let mut at = MAX_IDENT_BYTES;
        while !name.is_char_boundary(at) {
            at -= 1;
        }
        name.truncate(at);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Option<Vec<String>> {
        let mut set = BTreeSet::new();
        collect(sql, &mut set).then(|| set.into_iter().collect())
    }

    #[test]
    fn names_are_spelled_as_the_catalog_spells_them() {
        let found = names(
            "ALTER TABLE \"User\" RENAME TO Account; DROP INDEX app.\"Idx\"\"q\"; ALTER TABLE data ADD COLUMN x int; -- \"Hidden\"\nSELECT 'Lit';",
        )
        .unwrap();
        for n in ["User", "account", "app", "Idx\"q", "data", "x", "int"] {
            assert!(found.contains(&n.to_string()), "{n} in {found:?}");
        }
        assert!(!found.contains(&"Hidden".to_string()));
        assert!(!found.contains(&"Lit".to_string()));
        let long = "t".repeat(70);
        assert_eq!(
            names(&format!("DROP TABLE {long}")).unwrap(),
            vec!["drop".to_string(), "table".to_string(), "t".repeat(63)]
        );
    }

    #[test]
    fn what_the_lexer_cannot_read_means_every_table() {
        assert_eq!(names("SELECT 'unterminated"), None);
        assert_eq!(names("DROP TABLE U&\"d\\0061t\\+000061\""), None);
    }
}
