//! Schema lock files: `schemas/tables/<pipeline>.json`, the reviewed
//! columns and types of each output table of a pipeline.
//!
//! A run reads the lock: a column it lacks is a new field, handled by
//! `on_new_field` (`add`, `ignore`, `fail`), and its types are the ones
//! `variant` and `reject` keep. `etl schema lock` writes it: the tables the
//! spec makes, their columns from the spec, from its `tests` documents, and
//! from partitions read in MongoDB when a range is given, merged with what
//! the lock already holds. `etl schema lock --check` fails when that would
//! change the file, so CI catches an unreviewed schema change; `etl plan`
//! shows the same difference.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::ColumnType;
use crate::table::{Column, TableSchema};

/// The format version.
pub const VERSION: u32 = 1;

/// One pipeline's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaLock {
    /// The format version, `1`.
    pub version: u32,
    /// The pipeline.
    pub pipeline: String,
    /// Each output table by name (the root table is the pipeline's name;
    /// child tables as `explode` names them), in name order.
    pub tables: BTreeMap<String, TableSchema>,
}

/// Why a lock file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a lock.
    #[error("{path}: not a valid schema lock: {message}; regenerate it with `etl schema lock`")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl SchemaLock {
    /// The lock file of `pipeline` in the project at `project_dir`.
    pub fn path(project_dir: &Path, pipeline: &str) -> PathBuf {
        project_dir
            .join("schemas")
            .join("tables")
            .join(format!("{pipeline}.json"))
    }

    /// The lock at `path`; None when there is no file.
    pub fn read(path: &Path) -> Result<Option<SchemaLock>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let lock: SchemaLock = serde_json::from_str(&text).map_err(|e| LockError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if lock.version != VERSION {
            return Err(LockError::Invalid {
                path: path.display().to_string(),
                message: format!("version {}, expected {VERSION}", lock.version),
            });
        }
        Ok(Some(lock))
    }

    /// The file's bytes: pretty JSON with a final newline, the same for the
    /// same lock.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a lock serializes");
        out.push(b'\n');
        out
    }

    /// Writes the file, creating its folder.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, self.to_bytes()).map_err(io)
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }

    /// Adds `found` to table `name`: new columns are appended (RECORD
    /// fields too). With `widen` (the `coerce` policy), a column seen with
    /// another type takes the type both fit (INT64 and FLOAT64 make
    /// FLOAT64, any other mix STRING); without, the lock's type stays, as
    /// `variant` and `reject` keep it.
    pub fn absorb(&mut self, name: &str, found: &TableSchema, widen: bool) {
        let table = self.tables.entry(name.to_owned()).or_default();
        absorb_columns(&mut table.columns, &found.columns, widen);
    }

    /// The lock as the spec now makes it, offline: `existing`'s tables that
    /// the spec still makes, plus each table's columns from the spec itself
    /// and from its `tests` documents. Columns only data can show come from
    /// [`SchemaLock::absorb`] over partitions (`etl schema lock --start`).
    pub fn offline(
        spec: &crate::spec::PipelineSpec,
        pipeline: &str,
        existing: Option<&SchemaLock>,
    ) -> Result<SchemaLock, String> {
        let tables = crate::flatten::Tables::new(&spec.flatten).map_err(|e| e.to_string())?;
        let names = tables.names(pipeline);
        let mut lock = SchemaLock {
            version: VERSION,
            pipeline: pipeline.to_owned(),
            tables: BTreeMap::new(),
        };
        for name in &names {
            let old = existing.and_then(|e| e.table(name));
            lock.tables
                .insert(name.clone(), old.cloned().unwrap_or_default());
        }
        let mut builders = tables.schema_builders();
        for case in &spec.tests {
            let docs = crate::extjson::parse_documents(&case.documents)
                .map_err(|e| format!("tests `{}`: {e}", case.name))?;
            for doc in &docs {
                tables
                    .infer(doc, &mut builders)
                    .map_err(|e| format!("tests `{}`: {e}", case.name))?;
            }
        }
        lock.absorb_builders(&tables, &names, builders);
        Ok(lock)
    }

    /// Absorbs what pass 1 found, table by table, each with its policy.
    pub fn absorb_builders(
        &mut self,
        tables: &crate::flatten::Tables,
        names: &[String],
        builders: Vec<crate::flatten::SchemaBuilder>,
    ) {
        for ((name, builder), table) in names.iter().zip(builders).zip(tables.tables()) {
            let widen =
                table.flattener.conflict_policy() == crate::spec::TypeConflictPolicy::Coerce;
            let found = builder.finish_against(self.table(name));
            self.absorb(name, &found, widen);
        }
    }

    /// What changes from `self` (the file) to `next`.
    pub fn diff(&self, next: &SchemaLock) -> Vec<Change> {
        let mut changes = Vec::new();
        for (name, table) in &next.tables {
            match self.tables.get(name) {
                None => changes.push(Change::TableAdded(name.clone())),
                Some(old) => diff_columns(name, &old.columns, &table.columns, &mut changes),
            }
        }
        for name in self.tables.keys() {
            if !next.tables.contains_key(name) {
                changes.push(Change::TableRemoved(name.clone()));
            }
        }
        changes
    }
}

fn absorb_columns(have: &mut Vec<Column>, found: &[Column], widen: bool) {
    for col in found {
        match have
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(&col.name))
        {
            None => have.push(col.clone()),
            Some(c) if c.kind == ColumnType::Record && col.kind == ColumnType::Record => {
                absorb_columns(&mut c.fields, &col.fields, widen);
            }
            Some(c) => {
                if widen && c.kind != col.kind {
                    c.kind = crate::flatten::widen(c.kind, col.kind);
                    c.fields.clear();
                }
                c.repeated |= col.repeated;
            }
        }
    }
}

fn diff_columns(table: &str, old: &[Column], new: &[Column], out: &mut Vec<Change>) {
    for c in new {
        match old.iter().find(|o| o.name == c.name) {
            None => out.push(Change::ColumnAdded {
                table: table.to_owned(),
                column: c.name.clone(),
                kind: type_label(c),
            }),
            Some(o) if type_label(o) != type_label(c) => out.push(Change::ColumnRetyped {
                table: table.to_owned(),
                column: c.name.clone(),
                from: type_label(o),
                to: type_label(c),
            }),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|c| c.name == o.name) {
            out.push(Change::ColumnRemoved {
                table: table.to_owned(),
                column: o.name.clone(),
                kind: type_label(o),
            });
        }
    }
}

fn type_label(c: &Column) -> String {
    c.type_label()
}

/// One difference between a lock and what it would now be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A table the lock lacks.
    TableAdded(String),
    /// A table the spec no longer makes.
    TableRemoved(String),
    /// A column the lock lacks.
    ColumnAdded {
        /// Its table.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        kind: String,
    },
    /// A column no longer produced.
    ColumnRemoved {
        /// Its table.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        kind: String,
    },
    /// A column whose type changes.
    ColumnRetyped {
        /// Its table.
        table: String,
        /// The column.
        column: String,
        /// The lock's type.
        from: String,
        /// The new type.
        to: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::TableAdded(t) => write!(f, "+ table {t}"),
            Change::TableRemoved(t) => write!(f, "- table {t}"),
            Change::ColumnAdded {
                table,
                column,
                kind,
            } => write!(f, "+ {table}.{column} {kind}"),
            Change::ColumnRemoved {
                table,
                column,
                kind,
            } => write!(f, "- {table}.{column} {kind}"),
            Change::ColumnRetyped {
                table,
                column,
                from,
                to,
            } => write!(f, "~ {table}.{column} {from} -> {to}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cols: &[(&str, ColumnType)]) -> TableSchema {
        TableSchema {
            columns: cols.iter().map(|(n, k)| Column::new(*n, *k)).collect(),
        }
    }

    #[test]
    fn absorbing_appends_and_widens_and_the_diff_says_so() {
        let mut lock = SchemaLock {
            version: VERSION,
            pipeline: "p".into(),
            tables: BTreeMap::new(),
        };
        lock.absorb("p", &table(&[("a", ColumnType::Int64)]), true);
        let before = lock.clone();
        lock.absorb(
            "p",
            &table(&[("a", ColumnType::Float64), ("b", ColumnType::String)]),
            true,
        );
        lock.absorb("p__items", &table(&[("_idx", ColumnType::Int64)]), true);
        // Under variant and reject the lock's type holds.
        let mut kept = lock.clone();
        kept.absorb("p", &table(&[("a", ColumnType::String)]), false);
        assert_eq!(kept, lock);
        let changes: Vec<String> = before.diff(&lock).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            changes,
            ["~ p.a INT64 -> FLOAT64", "+ p.b STRING", "+ table p__items"]
        );
        assert!(lock.diff(&lock).is_empty());
    }

    #[test]
    fn locks_round_trip_byte_for_byte_and_bad_files_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = SchemaLock::path(dir.path(), "p");
        assert!(SchemaLock::read(&path).unwrap().is_none());
        let mut lock = SchemaLock {
            version: VERSION,
            pipeline: "p".into(),
            tables: BTreeMap::new(),
        };
        lock.absorb("p", &table(&[("a", ColumnType::Int64)]), true);
        lock.write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let back = SchemaLock::read(&path).unwrap().unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.to_bytes(), bytes);
        std::fs::write(&path, "{}").unwrap();
        let err = SchemaLock::read(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("regenerate it with `etl schema lock`"),
            "{err}"
        );
    }
}
