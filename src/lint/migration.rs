//! One migration file parsed with PostgreSQL's grammar, and the facts the rules need
//! about it: where each statement is, which locks it takes, which tables the migration
//! itself created, where `lock_timeout` is set and which statements sit inside an
//! explicit transaction block.

use super::ast::{self, TableRef};
use super::context::{self, Created, Key, Scope};
use super::lock::{self, Lock, Target};
use crate::sql::{trim_leading, LineIndex};
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, TransactionStmtKind, VariableSetKind};
use std::collections::HashMap;

/// One parsed statement.
#[derive(Debug)]
pub struct Statement {
    /// Position in the file (0-based, statements that failed to parse excluded).
    pub index: usize,
    /// The parse tree.
    pub node: NodeEnum,
    /// Byte range of the statement's code (leading comments and the `;` excluded).
    pub start: usize,
    /// End of the code (exclusive).
    pub end: usize,
    /// 1-based line of the code's start.
    pub line: usize,
    /// Locks it takes.
    pub locks: Vec<Lock>,
}

/// A statement PostgreSQL's parser rejected.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// 1-based line of the statement.
    pub line: usize,
    /// The statement's text.
    pub sql: String,
    /// PostgreSQL's message.
    pub message: String,
}

/// A parsed migration file and its facts.
#[derive(Debug)]
pub struct Migration<'t> {
    /// The file's text.
    pub text: &'t str,
    /// Line lookup for the text.
    pub lines: LineIndex,
    /// Statements that parsed, in order.
    pub statements: Vec<Statement>,
    /// Statements that did not.
    pub syntax_errors: Vec<SyntaxError>,
    /// Table key → indexes of the statements creating it.
    created: HashMap<Key, Vec<usize>>,
    /// Index key → its table and the statement creating it.
    created_indexes: HashMap<Key, (TableRef, usize)>,
    /// Columns added NOT NULL with a default to a table that is not new: (table, column)
    /// and the statement adding it.
    not_null_defaults: Vec<((Key, String), usize)>,
    /// Tables renamed: (old name, new name, statement).
    renames: Vec<(TableRef, TableRef, usize)>,
    /// The run this file belongs to: earlier files' objects and the live catalog.
    scope: Scope,
    /// Per statement: a non-zero `lock_timeout` is in effect when it runs.
    lock_timeout: Vec<bool>,
    /// Per statement: it runs inside an explicit `BEGIN … COMMIT`.
    in_transaction_block: Vec<bool>,
    /// Whoever applies the migration sets a `lock_timeout` itself (dbflow's deploy).
    pub applied_with_lock_timeout: bool,
}

impl<'t> Migration<'t> {
    /// Parses `text` and works out the facts.
    pub fn parse(text: &'t str, applied_with_lock_timeout: bool) -> Self {
        let mut migration = Self::parse_unscoped(text, applied_with_lock_timeout);
        migration.compute_locks();
        migration
    }

    /// Parses without working out the locks: [`Migration::set_scope`] does, once the
    /// file's place in its run is known.
    pub fn parse_unscoped(text: &'t str, applied_with_lock_timeout: bool) -> Self {
        let lines = LineIndex::new(text);
        let (raw, syntax_errors) = parse_statements(text, &lines);
        let mut migration = Migration {
            text,
            lines,
            statements: Vec::with_capacity(raw.len()),
            syntax_errors,
            created: HashMap::new(),
            created_indexes: HashMap::new(),
            not_null_defaults: Vec::new(),
            renames: Vec::new(),
            scope: Scope::default(),
            lock_timeout: Vec::with_capacity(raw.len()),
            in_transaction_block: Vec::with_capacity(raw.len()),
            applied_with_lock_timeout,
        };
        // `SET LOCAL` lasts until the end of the transaction, `SET` for the session.
        let mut session_timeout = false;
        let mut local_timeout: Option<bool> = None;
        let mut in_block = false;
        for (index, (node, start, end)) in raw.into_iter().enumerate() {
            for table in created_tables(&node) {
                migration
                    .created
                    .entry(table.key())
                    .or_default()
                    .push(index);
            }
            if let Some(rename) = table_rename(&node) {
                migration.renames.push((rename.0, rename.1, index));
            }
            if let Some(new_name) = renamed_new_table(&migration, &node, index) {
                migration
                    .created
                    .entry(new_name.key())
                    .or_default()
                    .push(index);
            }
            migration
                .lock_timeout
                .push(local_timeout.unwrap_or(session_timeout));
            if let Some((set, local)) = lock_timeout_change(&node) {
                if local {
                    local_timeout = Some(set);
                } else {
                    session_timeout = set;
                    local_timeout = None;
                }
            }
            if let NodeEnum::TransactionStmt(t) = &node {
                let kind =
                    TransactionStmtKind::try_from(t.kind).unwrap_or(TransactionStmtKind::Undefined);
                match kind {
                    TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => {
                        in_block = true
                    }
                    TransactionStmtKind::TransStmtCommit
                    | TransactionStmtKind::TransStmtRollback
                    | TransactionStmtKind::TransStmtPrepare => {
                        in_block = false;
                        local_timeout = None;
                    }
                    _ => {}
                }
            }
            migration.in_transaction_block.push(in_block);
            let line = migration.lines.line(start);
            migration.statements.push(Statement {
                index,
                node,
                start,
                end,
                line,
                locks: Vec::new(),
            });
        }
        for s in &migration.statements {
            if let NodeEnum::IndexStmt(idx) = &s.node {
                if let (Some(rel), false) = (idx.relation.as_ref(), idx.idxname.is_empty()) {
                    let table = TableRef::from(rel);
                    let index = TableRef {
                        schema: table.schema.clone(),
                        name: idx.idxname.clone(),
                    };
                    migration
                        .created_indexes
                        .entry(context::index_key(&index))
                        .or_insert((table, s.index));
                }
            }
        }
        for i in 0..migration.statements.len() {
            let NodeEnum::AlterTableStmt(alter) = &migration.statements[i].node else {
                continue;
            };
            let Some(table) = alter.relation.as_ref().map(TableRef::from) else {
                continue;
            };
            if migration.created_here(&table, i) {
                continue;
            }
            for cmd in ast::alter_cmds(alter) {
                if ast::subtype(cmd) != AlterTableType::AtAddColumn {
                    continue;
                }
                if let Some(col) = ast::column_def(cmd) {
                    if ast::column_not_null(col) && ast::column_default(col).is_some() {
                        migration
                            .not_null_defaults
                            .push(((table.key(), col.colname.clone()), i));
                    }
                }
            }
        }
        migration
    }

    /// Places the file in a run (earlier files' objects, the live catalog) and works out
    /// its locks again with that knowledge.
    pub fn set_scope(&mut self, scope: Scope) {
        self.scope = scope;
        self.compute_locks();
    }

    /// The run this file belongs to.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// What this file creates, for the files after it in a run.
    pub fn created(&self) -> Created {
        Created {
            tables: self.created.keys().cloned().collect(),
            renames: self
                .renames
                .iter()
                .map(|(old, new, i)| (new.key(), self.origin(old, *i)))
                .collect(),
            indexes: self
                .created_indexes
                .iter()
                .map(|(k, (t, _))| (k.clone(), t.clone()))
                .collect(),
            not_null_defaults: self
                .not_null_defaults
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    fn compute_locks(&mut self) {
        for i in 0..self.statements.len() {
            let locks = lock::locks_of(&self.statements[i].node)
                .into_iter()
                .map(|raw| {
                    let table = match &raw.target {
                        Target::Table(t) => Some(t.clone()),
                        Target::Index(index) => self.index_table(index, i),
                    };
                    let (shown, new_table, size) = match &table {
                        Some(t) => {
                            let new = self.is_new(t, i);
                            let size = if new {
                                None
                            } else {
                                self.scope.context.size(&self.origin(t, i), self.scope.file)
                            };
                            (t.display(), new, size)
                        }
                        None => match &raw.target {
                            Target::Index(index) => (
                                format!("the table of index {}", index.display()),
                                false,
                                None,
                            ),
                            Target::Table(t) => (t.display(), false, None),
                        },
                    };
                    Lock {
                        mode: raw.mode,
                        table: shown,
                        rewrite: raw.rewrite,
                        new_table,
                        size,
                    }
                })
                .collect();
            self.statements[i].locks = locks;
        }
    }

    /// The table of `index` at statement `at`: created earlier in this file, by an
    /// earlier file of the run, or known to the live catalog.
    pub fn index_table(&self, index: &TableRef, at: usize) -> Option<TableRef> {
        if let Some((table, created_at)) = self.created_indexes.get(&context::index_key(index)) {
            if *created_at < at {
                return Some(table.clone());
            }
        }
        self.scope.context.index_table(index, self.scope.file)
    }

    /// Whether `column` was added to `table` as NOT NULL with a default before statement
    /// `at`, in this file or an earlier file of the run (same release).
    pub fn not_null_default_added(
        &self,
        table: &TableRef,
        column: &str,
        at: usize,
    ) -> Option<usize> {
        let key = (table.key(), column.to_string());
        if let Some((_, line_at)) = self
            .not_null_defaults
            .iter()
            .find(|(k, i)| *k == key && *i < at)
        {
            return Some(self.statements[*line_at].line);
        }
        self.scope
            .context
            .not_null_default_before(table, column, self.scope.file)
            .then_some(0)
    }

    /// The statement's code.
    pub fn sql(&self, statement: &Statement) -> &'t str {
        &self.text[statement.start..statement.end]
    }

    /// Whether `table` is new at statement `index`: created by this migration at or
    /// before it, or new for the run (created by an earlier file of the run, or absent
    /// from the live database).
    pub fn is_new(&self, table: &TableRef, index: usize) -> bool {
        self.created_here(table, index)
            || self
                .scope
                .context
                .is_new_before(&self.origin(table, index), self.scope.file)
    }

    /// The name `table` had when the file started: renames before statement `index`
    /// followed backwards (a renamed table keeps its rows and its size).
    pub fn origin(&self, table: &TableRef, index: usize) -> TableRef {
        if self.renames.is_empty() {
            return table.clone();
        }
        let mut current = table.clone();
        let mut before = index;
        while let Some((old, _, at)) = self
            .renames
            .iter()
            .rev()
            .find(|(_, new, at)| *at < before && new.key() == current.key())
        {
            current = old.clone();
            before = *at;
        }
        current
    }

    /// Whether `table` was created by this migration at or before statement `index`.
    pub fn created_here(&self, table: &TableRef, index: usize) -> bool {
        self.created
            .get(&table.key())
            .is_some_and(|at| at.iter().any(|i| *i <= index))
    }

    /// Whether a `lock_timeout` protects statement `index` (set earlier in the file, or
    /// by whoever applies the migration).
    pub fn lock_timeout_at(&self, index: usize) -> bool {
        self.applied_with_lock_timeout || self.lock_timeout.get(index).copied().unwrap_or(false)
    }

    /// Whether statement `index` runs inside an explicit transaction block.
    pub fn in_transaction_block(&self, index: usize) -> bool {
        self.in_transaction_block
            .get(index)
            .copied()
            .unwrap_or(false)
    }

    /// The lock a statement takes on an existing table (strongest first), if any.
    pub fn existing_table_lock<'s>(&self, statement: &'s Statement) -> Option<&'s Lock> {
        statement
            .locks
            .iter()
            .filter(|l| !l.new_table)
            .max_by_key(|l| l.mode)
    }

    /// The lock taken on `table` by `statement`.
    pub fn lock_on<'s>(&self, statement: &'s Statement, table: &TableRef) -> Option<&'s Lock> {
        let name = table.display();
        statement.locks.iter().find(|l| l.table == name)
    }
}

/// What a statement does to `lock_timeout`: `Some((true, local))` when it sets a
/// non-zero value, `Some((false, local))` when it resets or disables it.
fn lock_timeout_change(node: &NodeEnum) -> Option<(bool, bool)> {
    let NodeEnum::VariableSetStmt(set) = node else {
        return None;
    };
    let kind = VariableSetKind::try_from(set.kind).unwrap_or(VariableSetKind::Undefined);
    match kind {
        VariableSetKind::VarResetAll => Some((false, false)),
        _ if set.name != "lock_timeout" => None,
        VariableSetKind::VarSetValue => {
            let value = set.args.first().and_then(ast::inner);
            let zero = match value {
                Some(NodeEnum::AConst(c)) => match &c.val {
                    Some(pg_query::protobuf::a_const::Val::Ival(i)) => i.ival == 0,
                    Some(pg_query::protobuf::a_const::Val::Sval(s)) => {
                        let digits: String = s
                            .sval
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.')
                            .collect();
                        digits.parse::<f64>().map(|v| v == 0.0).unwrap_or(false)
                    }
                    _ => false,
                },
                _ => false,
            };
            Some((!zero, set.is_local))
        }
        _ => Some((false, set.is_local)),
    }
}

/// `ALTER TABLE old RENAME TO new`: (old, new), the new name in the old one's schema.
fn table_rename(node: &NodeEnum) -> Option<(TableRef, TableRef)> {
    let NodeEnum::RenameStmt(stmt) = node else {
        return None;
    };
    if ObjectType::try_from(stmt.rename_type) != Ok(ObjectType::ObjectTable) {
        return None;
    }
    let old = TableRef::from(stmt.relation.as_ref()?);
    let new = TableRef {
        schema: old.schema.clone(),
        name: stmt.newname.clone(),
    };
    Some((old, new))
}

/// The new name of a table this migration created and then renamed.
fn renamed_new_table(migration: &Migration<'_>, node: &NodeEnum, index: usize) -> Option<TableRef> {
    let NodeEnum::RenameStmt(stmt) = node else {
        return None;
    };
    if ObjectType::try_from(stmt.rename_type) != Ok(ObjectType::ObjectTable) {
        return None;
    }
    let old = TableRef::from(stmt.relation.as_ref()?);
    migration.is_new(&old, index).then(|| TableRef {
        schema: old.schema.clone(),
        name: stmt.newname.clone(),
    })
}

/// Tables a statement creates (or renames a new table to).
fn created_tables(node: &NodeEnum) -> Vec<TableRef> {
    match node {
        NodeEnum::CreateStmt(stmt) => stmt.relation.iter().map(TableRef::from).collect(),
        NodeEnum::CreateTableAsStmt(stmt) => stmt
            .into
            .as_ref()
            .and_then(|i| i.rel.as_ref())
            .map(TableRef::from)
            .into_iter()
            .collect(),
        NodeEnum::SelectStmt(stmt) => stmt
            .into_clause
            .as_ref()
            .and_then(|i| i.rel.as_ref())
            .map(TableRef::from)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// Splits and parses `text`. The whole file is parsed at once; when that fails, it is
/// split at top-level semicolons with PostgreSQL's scanner and each piece is parsed on
/// its own, so a syntax error names its statement and the rest is still linted.
fn parse_statements(
    text: &str,
    lines: &LineIndex,
) -> (Vec<(NodeEnum, usize, usize)>, Vec<SyntaxError>) {
    match parse_piece(text, 0) {
        Ok(statements) => (statements, Vec::new()),
        Err(message) => {
            let (pieces, unscannable) = match split_pieces(text) {
                Ok(pieces) => (pieces, None),
                Err(scan_message) => {
                    // The scanner gave up (an unterminated string or comment): lint what
                    // comes before the statement it gave up in, report that statement.
                    let good = scannable_prefix(text);
                    let mut pieces = split_pieces(&text[..good]).unwrap_or_default();
                    let rest = match pieces.last() {
                        Some(&(start, end)) if end == good => {
                            pieces.pop();
                            start
                        }
                        _ => pieces.last().map(|&(_, end)| end + 1).unwrap_or(0),
                    };
                    (
                        pieces,
                        Some((rest.min(text.len()), scan_message.unwrap_or(message))),
                    )
                }
            };
            let mut statements = Vec::new();
            let mut errors = Vec::new();
            for (start, end) in pieces {
                match parse_piece(&text[start..end], start) {
                    Ok(mut parsed) => statements.append(&mut parsed),
                    Err(message) => {
                        let piece = &text[start..end];
                        let code = trim_leading(piece);
                        let code_start = start + piece.len() - code.len();
                        errors.push(SyntaxError {
                            line: lines.line(code_start),
                            sql: code.trim_end().to_string(),
                            message,
                        });
                    }
                }
            }
            if let Some((start, message)) = unscannable {
                let piece = &text[start..];
                let code = trim_leading(piece);
                let code_start = start + piece.len() - code.len();
                errors.push(SyntaxError {
                    line: lines.line(code_start),
                    sql: code.trim_end().to_string(),
                    message,
                });
            }
            (statements, errors)
        }
    }
}

/// The longest prefix of `text`, ending at a line end, that PostgreSQL's scanner accepts
/// (the text before an unterminated string or comment).
fn scannable_prefix(text: &str) -> usize {
    let ends: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| *c == '\n')
        .map(|(i, _)| i + 1)
        .collect();
    // Scanning every prefix is quadratic; a file this broken and this long is reported
    // from its start instead.
    if ends.len() > 5000 {
        return 0;
    }
    ends.into_iter()
        .rev()
        .find(|&end| pg_query::scan_tokens(&text[..end]).is_ok())
        .unwrap_or(0)
}

/// Parses one piece of text; offsets are shifted by `base`.
fn parse_piece(text: &str, base: usize) -> Result<Vec<(NodeEnum, usize, usize)>, String> {
    let parsed = pg_query::parse(text, pg_query::ParserOptions::DEFAULT).map_err(|e| match e {
        pg_query::Error::Parse(message) => one_line(&message),
        other => one_line(&other.to_string()),
    })?;
    let mut out = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in parsed.protobuf.stmts {
        let start = raw.stmt_location.max(0) as usize;
        let len = if raw.stmt_len > 0 {
            raw.stmt_len as usize
        } else {
            text.len().saturating_sub(start)
        };
        let end = (start + len).min(text.len());
        let piece = &text[start..end];
        let code = trim_leading(piece);
        let code_start = start + piece.len() - code.len();
        let code_end = code_start + code.trim_end().len();
        if let Some(node) = raw.stmt.and_then(|s| s.node) {
            out.push((node, base + code_start, base + code_end));
        }
    }
    Ok(out)
}

/// PostgreSQL quotes the text near an error, newlines included: keep messages on one line.
fn one_line(message: &str) -> String {
    message.replace('\r', "\\r").replace('\n', "\\n")
}

/// Byte ranges between top-level semicolons, found with PostgreSQL's scanner (so
/// semicolons inside strings, dollar-quoted bodies and comments do not split).
/// `Err(Some(message))` when the scanner itself fails (an unterminated string).
fn split_pieces(text: &str) -> Result<Vec<(usize, usize)>, Option<String>> {
    let tokens = pg_query::scan_tokens(text).map_err(|e| match e {
        pg_query::Error::Scan(message) => Some(one_line(&message)),
        _ => None,
    })?;
    let semicolon = pg_query::protobuf::Token::Ascii59 as i32;
    let mut pieces = Vec::new();
    let mut start = 0;
    for token in tokens {
        if token.token == semicolon {
            pieces.push((start, token.start as usize));
            start = token.end as usize;
        }
    }
    if trim_leading(&text[start..]).trim().is_empty() {
        return Ok(pieces);
    }
    pieces.push((start, text.len()));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_know_their_lines_and_new_tables() {
        let sql = "-- init\nCREATE TABLE a (id int);\n\nCREATE INDEX i ON a (id);\nCREATE INDEX j ON b (id);\n";
        let m = Migration::parse(sql, false);
        assert_eq!(m.statements.len(), 3);
        assert_eq!(
            m.statements.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 4, 5]
        );
        assert_eq!(m.sql(&m.statements[1]), "CREATE INDEX i ON a (id)");
        assert!(m.statements[1].locks[0].new_table);
        assert!(!m.statements[2].locks[0].new_table);
    }

    #[test]
    fn syntax_errors_name_their_statement_and_the_rest_still_parses() {
        let sql = "CREATE TABLE a (id int);\n-- typo below\nALTER TABLE a ADD COLUM b int;\nDROP TABLE a;\n";
        let m = Migration::parse(sql, false);
        assert_eq!(m.syntax_errors.len(), 1);
        assert_eq!(m.syntax_errors[0].line, 3);
        assert_eq!(m.syntax_errors[0].sql, "ALTER TABLE a ADD COLUM b int");
        assert!(
            m.syntax_errors[0]
                .message
                .contains("syntax error at or near"),
            "{}",
            m.syntax_errors[0].message
        );
        assert_eq!(m.statements.len(), 2);
        assert_eq!(m.statements[1].line, 4);
    }

    #[test]
    fn unterminated_strings_are_reported() {
        let m = Migration::parse("SELECT 1;\nSELECT 'oops;\n", false);
        assert_eq!(m.syntax_errors.len(), 1);
        assert!(
            m.syntax_errors[0].message.contains("unterminated"),
            "{:?}",
            m.syntax_errors
        );
    }

    #[test]
    fn lock_timeout_and_transaction_blocks_are_tracked() {
        let sql = "ALTER TABLE t ADD c int;\nSET lock_timeout = '2s';\nALTER TABLE t ADD d int;\nBEGIN;\nALTER TABLE t ADD e int;\nCOMMIT;\nSET lock_timeout = 0;\nALTER TABLE t ADD f int;\n";
        let m = Migration::parse(sql, false);
        let timeouts: Vec<bool> = (0..m.statements.len())
            .map(|i| m.lock_timeout_at(i))
            .collect();
        assert_eq!(
            timeouts,
            [false, false, true, true, true, true, true, false]
        );
        let blocks: Vec<bool> = (0..m.statements.len())
            .map(|i| m.in_transaction_block(i))
            .collect();
        assert_eq!(
            blocks,
            [false, false, false, true, true, false, false, false]
        );
        assert!(Migration::parse(sql, true).lock_timeout_at(0));
    }
}
