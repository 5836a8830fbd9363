//! Small readers over pg_query's parse tree, shared by the lock analysis and the rules.

use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, CreateStmt,
    Node, RangeVar,
};

/// A table as a statement names it. Unquoted names arrive folded to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// Schema, empty when not written.
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl TableRef {
    /// The identity used to match names across statements (no schema = `public`).
    pub fn key(&self) -> super::context::Key {
        // `public` borrowed: a run over 20,000 migrations keeps ~40,000 keys.
        let schema = if self.schema.is_empty() {
            std::borrow::Cow::Borrowed("public")
        } else {
            std::borrow::Cow::Owned(self.schema.clone())
        };
        (schema, self.name.clone())
    }

    /// The name as SQL would write it: quoted when it has to be.
    pub fn display(&self) -> String {
        if self.schema.is_empty() {
            quote(&self.name)
        } else {
            format!("{}.{}", quote(&self.schema), quote(&self.name))
        }
    }
}

impl From<&RangeVar> for TableRef {
    fn from(rv: &RangeVar) -> Self {
        TableRef {
            schema: rv.schemaname.clone(),
            name: rv.relname.clone(),
        }
    }
}

/// Quotes an identifier unless it is a plain lower-case one.
pub fn quote(ident: &str) -> String {
    let plain = ident
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// The node inside a `Node` wrapper.
pub fn inner(node: &Node) -> Option<&NodeEnum> {
    node.node.as_ref()
}

/// A string node's value.
pub fn string(node: &Node) -> Option<&str> {
    match inner(node)? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The subcommands of an `ALTER TABLE`.
pub fn alter_cmds(stmt: &AlterTableStmt) -> impl Iterator<Item = &AlterTableCmd> {
    stmt.cmds.iter().filter_map(|c| match inner(c) {
        Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
        _ => None,
    })
}

/// The subcommand's kind.
pub fn subtype(cmd: &AlterTableCmd) -> AlterTableType {
    AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined)
}

/// The constraint an `ADD CONSTRAINT` subcommand adds.
pub fn constraint_of(cmd: &AlterTableCmd) -> Option<&Constraint> {
    match cmd.def.as_deref().and_then(inner) {
        Some(NodeEnum::Constraint(c)) => Some(c),
        _ => None,
    }
}

/// The column an `ADD COLUMN` subcommand adds.
pub fn column_def(cmd: &AlterTableCmd) -> Option<&ColumnDef> {
    match cmd.def.as_deref().and_then(inner) {
        Some(NodeEnum::ColumnDef(c)) => Some(c),
        _ => None,
    }
}

/// The constraint's kind.
pub fn contype(c: &Constraint) -> ConstrType {
    ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined)
}

/// Constraints written on a column definition.
pub fn column_constraints(col: &ColumnDef) -> impl Iterator<Item = &Constraint> {
    col.constraints.iter().filter_map(|c| match inner(c) {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

/// The table a foreign key added by this subcommand references (as a table constraint or
/// inline on a new column).
pub fn added_foreign_key_target(cmd: &AlterTableCmd) -> Option<TableRef> {
    match subtype(cmd) {
        AlterTableType::AtAddConstraint => constraint_of(cmd)
            .filter(|c| contype(c) == ConstrType::ConstrForeign)
            .and_then(|c| c.pktable.as_ref())
            .map(TableRef::from),
        AlterTableType::AtAddColumn => column_def(cmd).and_then(|col| {
            column_constraints(col)
                .find(|c| contype(c) == ConstrType::ConstrForeign)
                .and_then(|c| c.pktable.as_ref())
                .map(TableRef::from)
        }),
        _ => None,
    }
}

/// Tables referenced by foreign keys in a `CREATE TABLE`.
pub fn create_table_references(stmt: &CreateStmt) -> Vec<TableRef> {
    let mut out = Vec::new();
    let mut push = |c: &Constraint| {
        if contype(c) == ConstrType::ConstrForeign {
            if let Some(pk) = c.pktable.as_ref() {
                out.push(TableRef::from(pk));
            }
        }
    };
    for element in stmt.table_elts.iter().chain(&stmt.constraints) {
        match inner(element) {
            Some(NodeEnum::Constraint(c)) => push(c),
            Some(NodeEnum::ColumnDef(col)) => column_constraints(col).for_each(&mut push),
            _ => {}
        }
    }
    out
}

/// Names in a `DROP` statement's object list (`a`, `s.b`).
pub fn object_names(objects: &[Node]) -> Vec<TableRef> {
    objects
        .iter()
        .filter_map(|o| match inner(o) {
            Some(NodeEnum::List(list)) => {
                let parts: Vec<&str> = list.items.iter().filter_map(string).collect();
                match parts.as_slice() {
                    [name] => Some(TableRef {
                        schema: String::new(),
                        name: name.to_string(),
                    }),
                    [.., schema, name] => Some(TableRef {
                        schema: schema.to_string(),
                        name: name.to_string(),
                    }),
                    [] => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// Whether a `(option, …)` list such as `VACUUM (FULL)` or `REINDEX (CONCURRENTLY)` has
/// `name` switched on.
pub fn has_option(options: &[Node], name: &str) -> bool {
    options.iter().any(|o| match inner(o) {
        Some(NodeEnum::DefElem(d)) => {
            d.defname == name
                && !matches!(d.arg.as_deref().and_then(inner), Some(NodeEnum::Boolean(b)) if !b.boolval)
        }
        _ => false,
    })
}

/// The default written for a new column, if any.
pub fn column_default(col: &ColumnDef) -> Option<&Node> {
    col.raw_default.as_deref().or_else(|| {
        column_constraints(col)
            .find(|c| contype(c) == ConstrType::ConstrDefault)
            .and_then(|c| c.raw_expr.as_deref())
    })
}

/// Whether a column definition says NOT NULL.
pub fn column_not_null(col: &ColumnDef) -> bool {
    col.is_not_null
        || column_constraints(col).any(|c| {
            matches!(
                contype(c),
                ConstrType::ConstrNotnull | ConstrType::ConstrPrimary
            )
        })
}

/// The type name's last part in lower case (`bigserial`, `int4`, `Role`).
pub fn type_name(col: &ColumnDef) -> String {
    col.type_name
        .as_ref()
        .and_then(|t| t.names.last())
        .and_then(string)
        .unwrap_or_default()
        .to_string()
}

/// Functions whose result changes per row: a default using one must be computed for every
/// existing row, so adding the column rewrites the table.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "gen_random_bytes",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];

/// Functions known to be stable or immutable: a default using them is evaluated once.
const NON_VOLATILE_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_setting",
    "lower",
    "upper",
    "concat",
    "to_jsonb",
    "to_json",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "array_fill",
    "make_interval",
    "make_date",
    "md5",
];

/// Why adding this column rewrites the table, when it does.
pub fn add_column_rewrites(col: &ColumnDef) -> Option<String> {
    let type_name = type_name(col);
    if matches!(
        type_name.as_str(),
        "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
    ) {
        return Some(format!(
            "a `{type_name}` column gets `nextval()` as its default, computed for every existing row"
        ));
    }
    for c in column_constraints(col) {
        match contype(c) {
            ConstrType::ConstrIdentity => {
                return Some(
                    "an identity column is filled from its sequence for every existing row".into(),
                )
            }
            ConstrType::ConstrGenerated => {
                return Some(
                    "a stored generated column is computed and written for every existing row"
                        .into(),
                )
            }
            _ => {}
        }
    }
    let default = column_default(col)?;
    volatile_call(default).map(|f| {
        format!(
            "the default `{f}()` is volatile, so it is computed and written for every existing row"
        )
    })
}

/// The first function call in `node` that is (or may be) volatile.
pub fn volatile_call(node: &Node) -> Option<String> {
    let mut found = None;
    walk(node, &mut |n| {
        if found.is_some() {
            return;
        }
        if let NodeEnum::FuncCall(call) = n {
            let name = call
                .funcname
                .last()
                .and_then(string)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if VOLATILE_FUNCTIONS.contains(&name.as_str())
                || !NON_VOLATILE_FUNCTIONS.contains(&name.as_str())
            {
                found = Some(name);
            }
        }
    });
    found
}

/// Visits the expression nodes a column default can contain.
fn walk(node: &Node, visit: &mut dyn FnMut(&NodeEnum)) {
    let Some(n) = inner(node) else {
        return;
    };
    visit(n);
    match n {
        NodeEnum::FuncCall(call) => call.args.iter().for_each(|a| walk(a, visit)),
        NodeEnum::TypeCast(cast) => {
            if let Some(arg) = cast.arg.as_deref() {
                walk(arg, visit);
            }
        }
        NodeEnum::AExpr(expr) => {
            for side in [expr.lexpr.as_deref(), expr.rexpr.as_deref()]
                .into_iter()
                .flatten()
            {
                walk(side, visit);
            }
        }
        NodeEnum::CoalesceExpr(c) => c.args.iter().for_each(|a| walk(a, visit)),
        NodeEnum::AArrayExpr(a) => a.elements.iter().for_each(|e| walk(e, visit)),
        NodeEnum::BoolExpr(b) => b.args.iter().for_each(|a| walk(a, visit)),
        NodeEnum::CaseExpr(c) => {
            c.args.iter().for_each(|a| walk(a, visit));
            if let Some(d) = c.defresult.as_deref() {
                walk(d, visit);
            }
        }
        NodeEnum::CaseWhen(w) => {
            for part in [w.expr.as_deref(), w.result.as_deref()]
                .into_iter()
                .flatten()
            {
                walk(part, visit);
            }
        }
        _ => {}
    }
}

/// The column a `col IS NOT NULL` check tests, if that is what the expression is.
pub fn is_not_null_check(expr: &Node) -> Option<String> {
    match inner(expr)? {
        NodeEnum::NullTest(test) if test.nulltesttype == 2 => {
            match test.arg.as_deref().and_then(inner)? {
                NodeEnum::ColumnRef(col) => col.fields.last().and_then(string).map(str::to_string),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The first line of a statement, shortened, for one-line summaries.
pub fn summary(sql: &str) -> String {
    let first = sql.lines().next().unwrap_or("").trim_end();
    let more = sql.lines().nth(1).is_some();
    let mut out: String = first.chars().take(100).collect();
    if first.chars().count() > 100 || more {
        out.push_str(" …");
    }
    out
}
