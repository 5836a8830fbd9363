//! What the live database says about the tables a migration touches: whether each
//! exists, roughly how many rows it has and how big it is on disk. Read once per lint
//! run (one catalog query, see `guard::migrations::read_catalog`); the linter uses it to
//! tell a lock on an empty or tiny table from one on a table with millions of rows.

use super::ast::TableRef;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// How big a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TableSize {
    /// Rows: counted exactly for small tables, PostgreSQL's estimate (`reltuples`,
    /// scaled to the table's current size as the planner does) otherwise; `None` when
    /// PostgreSQL has no estimate yet (never vacuumed or analyzed).
    pub rows: Option<u64>,
    /// Whether `rows` was counted rather than estimated.
    pub exact: bool,
    /// `pg_total_relation_size`: heap, indexes and TOAST.
    pub bytes: u64,
}

impl TableSize {
    /// Whether the table certainly has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == Some(0)
    }
}

impl fmt::Display for TableSize {
    /// `~2.1 M rows, 480 MB`; `5 rows, 16 kB`; `row count unknown, 2.0 GB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rows, self.exact) {
            (Some(n), true) => write!(f, "{} row{}", n, if n == 1 { "" } else { "s" })?,
            (Some(n), false) => write!(f, "~{} rows", human_count(n))?,
            (None, _) => f.write_str("row count unknown (never analyzed)")?,
        }
        write!(f, ", {}", human_bytes(self.bytes))
    }
}

/// `2.1 M`, `48 k`, `950`.
fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{} k", (n + 500) / 1000),
        1_000_000..=999_999_999 => format!("{:.1} M", n as f64 / 1e6),
        _ => format!("{:.1} G", n as f64 / 1e9),
    }
}

/// `480 MB`, `16 kB`, `2.0 GB` (powers of 1024, PostgreSQL's `pg_size_pretty` units).
fn human_bytes(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * 10.0 {
        format!("{bytes} bytes")
    } else if b < K * K {
        format!("{:.0} kB", b / K)
    } else if b < K * K * K {
        format!("{:.0} MB", b / K / K)
    } else {
        format!("{:.1} GB", b / K / K / K)
    }
}

/// The tables (and indexes) of a database, as the linter needs them.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// (schema, table) → size.
    tables: HashMap<(String, String), TableSize>,
    /// (schema, index) → (schema, table).
    indexes: HashMap<(String, String), (String, String)>,
    /// Schemas an unqualified name is looked up in, in order (`current_schemas(false)`).
    search_path: Vec<String>,
    /// Tables in the database when only some of them were read (a lint of a few files
    /// reads the rows of the names they use, see [`super::names`]).
    total_tables: Option<usize>,
}

impl Catalog {
    /// An empty catalog searching `search_path` (`["public"]` when empty).
    pub fn new(search_path: Vec<String>) -> Self {
        Catalog {
            search_path: if search_path.is_empty() {
                vec!["public".into()]
            } else {
                search_path
            },
            ..Catalog::default()
        }
    }

    /// Records a table.
    pub fn add_table(&mut self, schema: &str, name: &str, size: TableSize) {
        self.tables
            .insert((schema.to_string(), name.to_string()), size);
    }

    /// Records an index of `table`.
    pub fn add_index(&mut self, schema: &str, index: &str, table: &str) {
        self.indexes.insert(
            (schema.to_string(), index.to_string()),
            (schema.to_string(), table.to_string()),
        );
    }

    /// Records how many tables the database holds when only some were read.
    pub fn set_table_count(&mut self, total: usize) {
        self.total_tables = Some(total);
    }

    /// Number of tables in the database (all of them, even when only some were read).
    pub fn table_count(&self) -> usize {
        self.total_tables.unwrap_or(self.tables.len())
    }

    /// The schemas `table` may live in: its own, or the search path.
    fn candidates<'a>(&'a self, table: &'a TableRef) -> Vec<&'a str> {
        if table.schema.is_empty() {
            self.search_path.iter().map(String::as_str).collect()
        } else {
            vec![table.schema.as_str()]
        }
    }

    /// The size of `table`, `None` when the database has no such table.
    pub fn table(&self, table: &TableRef) -> Option<TableSize> {
        self.candidates(table).into_iter().find_map(|schema| {
            self.tables
                .get(&(schema.to_string(), table.name.clone()))
                .copied()
        })
    }

    /// The table an index belongs to (schema-qualified), when the database has it.
    pub fn index_table(&self, index: &TableRef) -> Option<TableRef> {
        self.candidates(index).into_iter().find_map(|schema| {
            self.indexes
                .get(&(schema.to_string(), index.name.clone()))
                .map(|(s, t)| TableRef {
                    schema: s.clone(),
                    name: t.clone(),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        let big = TableSize {
            rows: Some(2_100_000),
            exact: false,
            bytes: 480 * 1024 * 1024,
        };
        assert_eq!(big.to_string(), "~2.1 M rows, 480 MB");
        let small = TableSize {
            rows: Some(5),
            exact: true,
            bytes: 16384,
        };
        assert_eq!(small.to_string(), "5 rows, 16 kB");
        let unknown = TableSize {
            rows: None,
            exact: false,
            bytes: 3 * 1024 * 1024 * 1024,
        };
        assert_eq!(
            unknown.to_string(),
            "row count unknown (never analyzed), 3.0 GB"
        );
        assert_eq!(human_count(48_200), "48 k");
    }

    #[test]
    fn unqualified_names_follow_the_search_path() {
        let mut c = Catalog::new(vec!["app".into(), "public".into()]);
        let size = TableSize {
            rows: Some(1),
            exact: true,
            bytes: 8192,
        };
        c.add_table("public", "User", size);
        c.add_index("public", "User_email_key", "User");
        let user = TableRef {
            schema: String::new(),
            name: "User".into(),
        };
        assert_eq!(c.table(&user), Some(size));
        assert_eq!(
            c.table(&TableRef {
                schema: "app".into(),
                name: "User".into()
            }),
            None
        );
        assert_eq!(
            c.index_table(&TableRef {
                schema: String::new(),
                name: "User_email_key".into()
            })
            .map(|t| t.display()),
            Some("public.\"User\"".to_string())
        );
    }
}
