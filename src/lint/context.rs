//! What a lint run knows beyond one file: the tables, indexes and columns that earlier
//! files of the same run create (the migrations of one deploy, or of one `dbflow lint`
//! run, in migration order), and the live catalog when the database could be read.
//!
//! A table created by an earlier file of the run is new and empty when the later file
//! runs: nobody uses it yet, so its locks do not matter. The catalog, when there is one,
//! has the last word on tables it knows: a table it lists exists (applied long ago) and
//! is as risky as its size says; a table it does not list does not exist yet.

use super::ast::TableRef;
use super::catalog::{Catalog, TableSize};
use std::collections::HashMap;
use std::sync::Arc;

/// A `(schema, name)` key; no schema means `public` (as [`TableRef::key`]).
pub type Key = (std::borrow::Cow<'static, str>, String);

/// What one file of a run contributes for the files after it.
#[derive(Debug, Clone, Default)]
pub struct Created {
    /// Tables it creates (or renames a new table to).
    pub tables: Vec<Key>,
    /// Indexes it creates, with their table.
    pub indexes: Vec<(Key, TableRef)>,
    /// Columns it adds as `NOT NULL DEFAULT …` to an existing table: (table, column).
    pub not_null_defaults: Vec<(Key, String)>,
    /// Tables it renames: new name → the name the table had before the file.
    pub renames: Vec<(Key, TableRef)>,
}

/// The run-wide knowledge, shared by every file of the run.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Table → the first file (position in the run) that creates it.
    tables: HashMap<Key, usize>,
    /// Index → its table and the first file that creates it.
    indexes: HashMap<Key, (TableRef, usize)>,
    /// New table name → the name before the rename, and the file renaming it.
    renames: HashMap<Key, (TableRef, usize)>,
    /// (table, column) → the first file that adds it NOT NULL with a default.
    not_null_defaults: HashMap<(Key, String), usize>,
    /// The live database, when it could be read.
    catalog: Option<Arc<Catalog>>,
}

impl Context {
    /// A context with the live catalog (or none: static linting).
    pub fn new(catalog: Option<Arc<Catalog>>) -> Self {
        Context {
            catalog,
            ..Context::default()
        }
    }

    /// Records what file `file` of the run creates (call in run order).
    pub fn add(&mut self, file: usize, created: &Created) {
        for t in &created.tables {
            self.tables.entry(t.clone()).or_insert(file);
        }
        for (i, table) in &created.indexes {
            self.indexes
                .entry(i.clone())
                .or_insert_with(|| (table.clone(), file));
        }
        for (new, old) in &created.renames {
            self.renames.insert(new.clone(), (old.clone(), file));
        }
        for (t, c) in &created.not_null_defaults {
            self.not_null_defaults
                .entry((t.clone(), c.clone()))
                .or_insert(file);
        }
    }

    /// Whether the live catalog was read.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_deref()
    }

    /// Whether `table` is new (does not exist yet, or is created by an earlier file of
    /// the run) when file `file` runs.
    pub fn is_new_before(&self, table: &TableRef, file: usize) -> bool {
        if self.catalog.is_none() && self.tables.is_empty() {
            return false;
        }
        let (origin, created_in_run) = self.origin(table, file);
        match &self.catalog {
            Some(catalog) => catalog.table(&origin).is_none(),
            None => created_in_run,
        }
    }

    /// The name `table` had before the run (renames by earlier files followed back),
    /// and whether an earlier file of the run created it under one of its names.
    fn origin(&self, table: &TableRef, file: usize) -> (TableRef, bool) {
        let mut current = table.clone();
        let mut created = false;
        let mut before = file;
        // Bounded: a rename chain longer than the run is a cycle.
        for _ in 0..=self.renames.len() {
            created |= self.tables.get(&current.key()).is_some_and(|f| *f < before);
            match self.renames.get(&current.key()) {
                Some((old, at)) if *at < before => {
                    current = old.clone();
                    before = *at + 1;
                }
                _ => break,
            }
        }
        (current, created)
    }

    /// The size of an existing table, when the catalog knows it (renames by earlier
    /// files of the run followed back).
    pub fn size(&self, table: &TableRef, file: usize) -> Option<TableSize> {
        self.catalog.as_ref()?.table(&self.origin(table, file).0)
    }

    /// The table of an index created by an earlier file of the run, or known to the
    /// catalog.
    pub fn index_table(&self, index: &TableRef, file: usize) -> Option<TableRef> {
        let key = index_key(index);
        if let Some((table, at)) = self.indexes.get(&key) {
            if *at < file {
                return Some(table.clone());
            }
        }
        self.catalog.as_ref()?.index_table(index)
    }

    /// Whether an earlier file of the run adds `column` to `table` as NOT NULL with a
    /// default.
    pub fn not_null_default_before(&self, table: &TableRef, column: &str, file: usize) -> bool {
        self.not_null_defaults
            .get(&(table.key(), column.to_string()))
            .is_some_and(|f| *f < file)
    }
}

/// The key of an index named in a statement (indexes live in their table's schema).
pub fn index_key(index: &TableRef) -> Key {
    index.key()
}

/// One file's place in a run: the shared context and the file's position.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The run's knowledge.
    pub context: Arc<Context>,
    /// Position of the file in the run (files before it count as already applied).
    pub file: usize,
}
