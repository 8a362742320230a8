//! Every output table of a pipeline: the root table, and one child table per
//! `explode` rule, recursively.
//!
//! A child table has one row per element of its array. Its rows are built as
//! small documents and flattened by the child's own [`Flattener`], so child
//! tables get every rule a root table has (columns, excludes, depth, their
//! own arrays). Each child document holds the element's keys (or the
//! element under `value` when it is not an object), then the keys that tie
//! the row to its parent, read by explicit columns that come first in the
//! table:
//!
//! - `_root_id` (STRING): the root document's `_id`, as text;
//! - `_parent_key` (STRING, only below the first level): the parent row's
//!   position in the root document, its ancestors' `_idx` joined with `.`
//!   (`"3"` for a row of `orders__items__discounts` under item 3; `"3.1"`
//!   one level further down), so (`_root_id`, `_parent_key`, `_idx`) is a
//!   row's key at any depth;
//! - `_idx` (INT64): the element's position in its array, from 0.
//!
//! Every row also gets `_ds` like any row, so child tables are partitioned
//! and replaced per day like their parent. An element's own keys named like
//! these are replaced by them.
//!
//! The parent table has no column for an exploded array. A value at an
//! exploded path that is not an array (a drifted document) stays in the
//! parent, as any value would.

use bson::raw::{RawDocument, RawDocumentBuf};
use chrono::NaiveDate;

use crate::extjson::{elements, get, ExtJsonError, Value};
use crate::spec::{ArrayPolicy, ColumnSpec, ColumnType, FlattenSpec, TypeConflictPolicy};
use crate::table::TableSchema;

use super::riding::Ridden;
use super::{FlattenError, Flattener, RowOut, RowWriter, SchemaBuilder};

/// The root document's `_id`, in every child row.
pub const ROOT_ID_COLUMN: &str = "_root_id";
/// The parent row's position, in rows of tables nested two levels or more.
pub const PARENT_KEY_COLUMN: &str = "_parent_key";
/// The element's position in its array.
pub const INDEX_COLUMN: &str = "_idx";
/// The element itself, when it is not an object.
pub const VALUE_KEY: &str = "value";

/// One output table.
#[derive(Debug)]
pub struct Table {
    /// `""` for the root table; `<separator><path>` (or the rule's `table`)
    /// for a child, appended to the parent's name.
    pub suffix: String,
    /// The rules for this table's rows.
    pub flattener: Flattener,
    /// JSONPath of the array in the root document's terms (`$.items`,
    /// `$.items[*].discounts`), `$` for the root.
    pub path: String,
    parent: Option<usize>,
    /// The array's keys in the parent's row document.
    keys: Vec<String>,
    /// 0 for the root table.
    level: u32,
    children: Vec<usize>,
    /// A rule's `table`: the child's whole name, not a suffix.
    full_name: Option<String>,
}

impl Table {
    /// The table's name, given the root table's.
    pub fn name(&self, root: &str, tables: &Tables) -> String {
        if let Some(name) = &self.full_name {
            return name.clone();
        }
        match self.parent {
            None => root.to_owned(),
            Some(p) => tables.tables[p].name(root, tables) + &self.suffix,
        }
    }

    /// 0 for the root table, 1 for its children, and so on.
    pub fn level(&self) -> u32 {
        self.level
    }
}

/// The tables of one flatten spec, root first, each child after its parent.
#[derive(Debug)]
pub struct Tables {
    tables: Vec<Table>,
}

impl Tables {
    /// Compiles the root rules and every `explode` rule's child rules.
    pub fn new(spec: &FlattenSpec) -> Result<Self, FlattenError> {
        let mut tables = Tables { tables: Vec::new() };
        tables.add(spec, None, Vec::new(), "$".to_owned(), String::new(), None)?;
        // Names are known before any document: two arrays that would make
        // one table are an error, not a rename.
        let names = tables.names("t");
        for (i, name) in names.iter().enumerate() {
            if let Some(j) = names[..i].iter().position(|n| n.eq_ignore_ascii_case(name)) {
                return Err(FlattenError::DuplicateTable {
                    table: name.clone(),
                    first: tables.tables[j].path.clone(),
                    second: tables.tables[i].path.clone(),
                });
            }
        }
        Ok(tables)
    }

    fn add(
        &mut self,
        spec: &FlattenSpec,
        parent: Option<usize>,
        keys: Vec<String>,
        path: String,
        suffix: String,
        full_name: Option<String>,
    ) -> Result<usize, FlattenError> {
        let level = parent.map_or(0, |p| self.tables[p].level + 1);
        if spec.arrays.default == ArrayPolicy::Explode {
            return Err(FlattenError::ExplodeDefault { table_path: path });
        }
        let explode: Vec<_> = spec
            .arrays
            .rules
            .iter()
            .filter(|r| r.policy == ArrayPolicy::Explode)
            .collect();
        let mut own = spec.clone();
        if level > 0 {
            let structural = structural_columns(level);
            if let Some(c) = own.columns.iter().find(|c| {
                structural
                    .iter()
                    .any(|s| s.name.eq_ignore_ascii_case(&c.name))
            }) {
                return Err(FlattenError::ReservedColumn {
                    column: c.name.clone(),
                    table_path: path,
                });
            }
            own.columns.splice(0..0, structural);
        }
        let flattener = Flattener::new(&own)?;
        // Paths inside an exploded array belong to the child's rules.
        let mut child_keys = Vec::with_capacity(explode.len());
        for rule in &explode {
            let keys = crate::spec::names::simple_path(&rule.path).ok_or_else(|| {
                FlattenError::InvalidPath {
                    field: "arrays.rules",
                    path: rule.path.clone(),
                }
            })?;
            let inner = spec
                .exclude
                .iter()
                .chain(spec.arrays.rules.iter().map(|r| &r.path))
                .chain(spec.objects.iter().map(|r| &r.path))
                .chain(spec.columns.iter().map(|c| &c.path))
                .find(|p| {
                    crate::spec::names::simple_path(p)
                        .is_some_and(|k| k.len() > keys.len() && k.starts_with(&keys))
                });
            if let Some(inner) = inner {
                return Err(FlattenError::InsideExplode {
                    path: inner.clone(),
                    array: rule.path.clone(),
                });
            }
            child_keys.push(keys);
        }
        let at = self.tables.len();
        self.tables.push(Table {
            suffix,
            flattener,
            path: path.clone(),
            parent,
            keys,
            level,
            children: Vec::new(),
            full_name,
        });
        for (rule, keys) in explode.into_iter().zip(child_keys) {
            let child_spec = match &rule.flatten {
                Some(f) => (**f).clone(),
                None => FlattenSpec {
                    separator: spec.separator.clone(),
                    max_depth: spec.max_depth,
                    on_new_field: spec.on_new_field,
                    on_type_conflict: spec.on_type_conflict,
                    decimal: spec.decimal,
                    object_id_timestamps: spec.object_id_timestamps,
                    ..FlattenSpec::default()
                },
            };
            let suffix = format!("{}{}", spec.separator, keys.join(&spec.separator));
            let child_path = if path == "$" {
                rule.path.clone()
            } else {
                format!("{path}[*]{}", &rule.path[1..])
            };
            let child = self.add(
                &child_spec,
                Some(at),
                keys,
                child_path,
                suffix,
                rule.table.clone(),
            )?;
            self.tables[at].children.push(child);
        }
        Ok(at)
    }

    /// The tables, root first.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// The number of tables; 1 without `explode` rules.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Never true: there is always a root table.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The root table's rules.
    pub fn root(&self) -> &Flattener {
        &self.tables[0].flattener
    }

    /// The tables' names, given the root table's.
    pub fn names(&self, root: &str) -> Vec<String> {
        self.tables.iter().map(|t| t.name(root, self)).collect()
    }

    /// The columns that order table `i`'s rows as a run loads them: `_id`
    /// for the root table, whose documents are read in `_id` order; the
    /// row key (`_root_id`, `_parent_key` below the first level, `_idx`)
    /// for a child table.
    pub fn key_columns(&self, i: usize) -> Vec<&'static str> {
        match self.tables[i].level {
            0 => vec!["_id"],
            1 => vec![ROOT_ID_COLUMN, INDEX_COLUMN],
            _ => vec![ROOT_ID_COLUMN, PARENT_KEY_COLUMN, INDEX_COLUMN],
        }
    }

    /// One schema builder per table, seeded with its explicit columns.
    pub fn schema_builders(&self) -> Vec<SchemaBuilder> {
        self.tables
            .iter()
            .map(|t| t.flattener.schema_builder())
            .collect()
    }

    /// Calls `f` with each row document `doc` makes, with its table: the
    /// document itself for the root table, then, depth first, each element
    /// of each exploded array.
    pub fn each_row(
        &self,
        doc: &RawDocument,
        f: &mut dyn FnMut(usize, &RawDocument) -> Result<(), FlattenError>,
    ) -> Result<(), FlattenError> {
        f(0, doc)?;
        if self.tables[0].children.is_empty() {
            return Ok(());
        }
        let root_id = root_id(doc)?;
        self.children_of(0, doc, root_id.as_deref(), "", f)
    }

    fn children_of(
        &self,
        table: usize,
        row: &RawDocument,
        root_id: Option<&str>,
        key: &str,
        f: &mut dyn FnMut(usize, &RawDocument) -> Result<(), FlattenError>,
    ) -> Result<(), FlattenError> {
        for &c in &self.tables[table].children {
            let child = &self.tables[c];
            let Some(array) = array_at(row, &child.keys)? else {
                continue;
            };
            let mut bytes = Vec::new();
            for (i, element) in elements(array).enumerate() {
                let (_, element) = element.map_err(|e| match e {
                    ExtJsonError::Malformed { source, .. } => bson_error(&child.path, source),
                    other => other.into(),
                })?;
                let parent_key = (child.level >= 2).then_some(key);
                let doc = child_document(element, root_id, parent_key, i as i64, &mut bytes)
                    .map_err(|e| bson_error(&child.path, e))?;
                f(c, doc)?;
                if !child.children.is_empty() {
                    let own_key = if key.is_empty() {
                        i.to_string()
                    } else {
                        format!("{key}.{i}")
                    };
                    self.children_of(c, doc, root_id, &own_key, f)?;
                }
            }
        }
        Ok(())
    }

    /// Pass 1 for every table: see [`Flattener::infer`]. `builders` comes
    /// from [`Tables::schema_builders`].
    pub fn infer(
        &self,
        doc: &RawDocument,
        builders: &mut [SchemaBuilder],
    ) -> Result<(), FlattenError> {
        self.infer_from(doc, builders, 0)
    }

    /// Pass 1 for the rows of `doc` from the `first` on, in
    /// [`Tables::each_row`]'s order.
    fn infer_from(
        &self,
        doc: &RawDocument,
        builders: &mut [SchemaBuilder],
        first: usize,
    ) -> Result<(), FlattenError> {
        let mut at = 0;
        self.each_row(doc, &mut |t, row| {
            at += 1;
            if at <= first {
                return Ok(());
            }
            self.tables[t].flattener.infer(row, &mut builders[t])
        })
    }

    /// [`Tables::write_rows_into`] with pass 1 riding along: one walk per
    /// row both writes it and logs its values for `builders`, which end
    /// exactly as [`Tables::infer`] over `doc` leaves them, whatever pass 2
    /// makes of the document (see the `riding` module). Returns pass 2's
    /// result, then pass 1's.
    pub(crate) fn write_rows_inferring<O: RowOut>(
        &self,
        doc: &RawDocument,
        ds: NaiveDate,
        writers: &mut [RowWriter<'_>],
        outs: &mut [O],
        builders: &mut [SchemaBuilder],
        ridden: &mut Ridden,
    ) -> (Result<(), RowError>, Result<(), FlattenError>) {
        let mut inferred = Ok(());
        // Rows whose pass 1 is done (or, after its error, not wanted).
        let mut settled = 0;
        let written = self.write_each(doc, outs, &mut |t, row, out| {
            let f = &self.tables[t].flattener;
            let schema = &mut builders[t];
            let ride = inferred.is_ok() && {
                // What `Flattener::infer` does before its walk.
                schema.seed(f);
                if f.conflict == TypeConflictPolicy::Variant {
                    inferred = super::row::explicit_variants(f, row, schema);
                }
                inferred.is_ok() && f.auto_columns
            };
            if !ride {
                writers[t].write_row_to(row, ds, out)?;
                settled += 1;
                return Ok(());
            }
            let mut log = ridden.log();
            let once = writers[t].write_row_riding(row, ds, out, schema, &mut log);
            if let Ok(true) = once {
                inferred = super::riding::apply(&mut log, schema);
            }
            ridden.give_back(log);
            if !once? {
                // Walked twice, deduplicated: the log missed the first walk.
                inferred = f.infer(row, schema);
            }
            settled += 1;
            Ok(())
        });
        if written.is_err() && inferred.is_ok() {
            // Pass 2 stopped at a row: pass 1 reads it and the rest alone.
            inferred = self.infer_from(doc, builders, settled);
        }
        (written, inferred)
    }

    /// Pass 2 for every table: appends each row to its table's buffer. On
    /// error every buffer is left as it was, so a document is written whole
    /// or not at all; the error says which table's row failed.
    pub fn write_rows(
        &self,
        doc: &RawDocument,
        ds: NaiveDate,
        schemas: &[TableSchema],
        outs: &mut [Vec<u8>],
    ) -> Result<(), RowError> {
        self.write_each(doc, outs, &mut |t, row, out| {
            self.tables[t]
                .flattener
                .write_row(row, ds, &schemas[t], out)
        })
    }

    /// Pass 2's writers for `schemas`, one per table, each schema resolved
    /// once: for a whole partition's documents, where [`Tables::write_rows`]
    /// would compare the schema with its cached one on every row.
    pub fn row_writers(&self, schemas: &[TableSchema]) -> Result<Vec<RowWriter<'_>>, RowError> {
        self.tables
            .iter()
            .zip(schemas)
            .enumerate()
            .map(|(table, (t, schema))| {
                t.flattener
                    .row_writer(schema)
                    .map_err(|source| RowError { table, source })
            })
            .collect()
    }

    /// [`Tables::write_rows`] with writers from [`Tables::row_writers`].
    pub fn write_rows_with(
        &self,
        doc: &RawDocument,
        ds: NaiveDate,
        writers: &mut [RowWriter<'_>],
        outs: &mut [Vec<u8>],
    ) -> Result<(), RowError> {
        self.write_each(doc, outs, &mut |t, row, out| {
            writers[t].write_row(row, ds, out)
        })
    }

    /// [`Tables::write_rows_with`] into any row format: NDJSON text or
    /// typed values (`crate::rows`). On error every output is rolled back.
    pub(crate) fn write_rows_into<O: RowOut>(
        &self,
        doc: &RawDocument,
        ds: NaiveDate,
        writers: &mut [RowWriter<'_>],
        outs: &mut [O],
    ) -> Result<(), RowError> {
        self.write_each(doc, outs, &mut |t, row, out| {
            writers[t].write_row_to(row, ds, out)
        })
    }

    /// Each row of `doc` through `write`, into its table's output; on
    /// error every output is rolled back, as [`Tables::write_rows`] says.
    fn write_each<O: RowOut>(
        &self,
        doc: &RawDocument,
        outs: &mut [O],
        write: &mut WriteRow<'_, O>,
    ) -> Result<(), RowError> {
        let marks: Vec<O::Mark> = outs.iter().map(RowOut::mark).collect();
        let mut failed = 0;
        let result = self.each_row(doc, &mut |t, row| {
            failed = t;
            write(t, row, &mut outs[t])
        });
        result.map_err(|source| {
            for (out, mark) in outs.iter_mut().zip(marks) {
                out.rollback(mark);
            }
            RowError {
                table: failed,
                source,
            }
        })
    }
}

/// Writes a row document of table `usize` into that table's output.
type WriteRow<'w, O> = dyn FnMut(usize, &RawDocument, &mut O) -> Result<(), FlattenError> + 'w;

/// What [`Tables::flatten_all`] makes of some documents, per table.
#[derive(Debug, Clone)]
pub struct Flattened {
    /// The table's schema, from pass 1 over every document.
    pub schema: TableSchema,
    /// Paths renamed to stay apart: `(JSONPath, column)`.
    pub renames: Vec<(String, String)>,
    /// The NDJSON rows.
    pub rows: Vec<u8>,
}

/// A row that failed in [`Tables::write_rows`].
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct RowError {
    /// The index of its table in [`Tables::tables`].
    pub table: usize,
    /// Why.
    #[source]
    pub source: FlattenError,
}

/// A document that failed to flatten, by its position.
#[derive(Debug, thiserror::Error)]
#[error("documents[{index}]: {source}")]
pub struct DocumentError {
    /// Its position in the input.
    pub index: usize,
    /// Why.
    #[source]
    pub source: FlattenError,
}

/// A document sent to `_rejects` under `on_type_conflict: reject`.
#[derive(Debug)]
pub struct Rejected {
    /// Its position in the input.
    pub index: usize,
    /// The index of the table whose row conflicted.
    pub table: usize,
    /// Why: a [`FlattenError::Conflict`], with the path in that table's row.
    pub source: FlattenError,
}

impl Tables {
    /// Both passes over documents held in memory, as the engine runs them
    /// over a spooled partition: for `etl test`, fixtures and benchmarks.
    /// A type conflict under `on_type_conflict: reject` is an error here;
    /// [`Tables::flatten_all_rejecting`] sets such documents aside instead.
    pub fn flatten_all(
        &self,
        docs: &[RawDocumentBuf],
        ds: NaiveDate,
    ) -> Result<Vec<Flattened>, DocumentError> {
        let (tables, rejected) = self.flatten_all_rejecting(docs, ds)?;
        match rejected.into_iter().next() {
            None => Ok(tables),
            Some(r) => Err(DocumentError {
                index: r.index,
                source: r.source,
            }),
        }
    }

    /// [`Tables::flatten_all`], with the documents a type conflict rejects
    /// left out of every table and listed, as the engine quarantines them.
    pub fn flatten_all_rejecting(
        &self,
        docs: &[RawDocumentBuf],
        ds: NaiveDate,
    ) -> Result<(Vec<Flattened>, Vec<Rejected>), DocumentError> {
        self.flatten_all_locked(docs, ds, &[])
    }

    /// [`Tables::flatten_all_rejecting`] against a schema lock, as a run
    /// applies it: `locked[i]` is table `i`'s locked schema (none for a
    /// table the lock lacks, or past the slice's end).
    pub fn flatten_all_locked(
        &self,
        docs: &[RawDocumentBuf],
        ds: NaiveDate,
        locked: &[Option<&TableSchema>],
    ) -> Result<(Vec<Flattened>, Vec<Rejected>), DocumentError> {
        let mut builders = self.schema_builders();
        for (index, doc) in docs.iter().enumerate() {
            self.infer(doc, &mut builders)
                .map_err(|source| DocumentError { index, source })?;
        }
        let mut renames = Vec::with_capacity(builders.len());
        let schemas: Vec<TableSchema> = builders
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                renames.push(b.renames().to_vec());
                let lock = locked.get(i).copied().flatten();
                let null_only: Vec<String> = b.null_only().map(str::to_owned).collect();
                let mut schema = b.finish_against(lock);
                if let Some(lock) = lock {
                    super::adopt_locked_types(&mut schema, lock, &null_only);
                }
                schema
            })
            .collect();
        let mut outs = vec![Vec::new(); schemas.len()];
        let mut rejected = Vec::new();
        for (index, doc) in docs.iter().enumerate() {
            match self.write_rows(doc, ds, &schemas, &mut outs) {
                Ok(()) => {}
                Err(RowError {
                    table,
                    source: source @ FlattenError::Conflict { .. },
                }) => rejected.push(Rejected {
                    index,
                    table,
                    source,
                }),
                Err(e) => {
                    return Err(DocumentError {
                        index,
                        source: e.source,
                    })
                }
            }
        }
        let tables = schemas
            .into_iter()
            .zip(renames)
            .zip(outs)
            .map(|((schema, renames), rows)| Flattened {
                schema,
                renames,
                rows,
            })
            .collect();
        Ok((tables, rejected))
    }
}

/// The row document of one array element: the element's keys (or the
/// element under `value`), then `_root_id`, `_parent_key` and `_idx`. An
/// object element's bytes are copied whole and the keys appended; should
/// the element have keys of those names, the walk reads the document as
/// `bson::Document` does (the last value wins), so these win.
fn child_document<'b>(
    element: Value<'_>,
    root_id: Option<&str>,
    parent_key: Option<&str>,
    idx: i64,
    bytes: &'b mut Vec<u8>,
) -> Result<&'b RawDocument, bson::raw::Error> {
    bytes.clear();
    match element {
        Value::Document(d) => {
            let b = d.as_bytes();
            bytes.extend_from_slice(&b[..b.len() - 1]);
        }
        Value::Array(a) => {
            // As `RawDocumentBuf::append_ref` writes an array (a
            // `RawArray` cannot be built outside the bson crate); the
            // length is written last.
            bytes.extend_from_slice(&[0; 4]);
            bytes.push(0x04);
            bytes.extend_from_slice(VALUE_KEY.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(a.as_bytes());
        }
        other => {
            let mut one = RawDocumentBuf::new();
            let value = other
                .to_raw_ref()
                .expect("documents and arrays are matched above");
            one.append_ref(VALUE_KEY, value);
            let b = one.as_bytes();
            bytes.extend_from_slice(&b[..b.len() - 1]);
        }
    }
    let push_string = |bytes: &mut Vec<u8>, key: &str, value: &str| {
        bytes.push(0x02);
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(value.len() as i32 + 1).to_le_bytes());
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    };
    if let Some(id) = root_id {
        push_string(bytes, ROOT_ID_COLUMN, id);
    }
    if let Some(key) = parent_key {
        push_string(bytes, PARENT_KEY_COLUMN, key);
    }
    bytes.push(0x12);
    bytes.extend_from_slice(INDEX_COLUMN.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&idx.to_le_bytes());
    bytes.push(0);
    let len = bytes.len() as i32;
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    RawDocument::from_bytes(bytes)
}

/// The explicit columns that start every child table at `level`.
fn structural_columns(level: u32) -> Vec<ColumnSpec> {
    let column = |name: &str, kind| ColumnSpec {
        name: name.to_owned(),
        path: format!("$.{name}"),
        kind,
        default: None,
    };
    let mut columns = vec![column(ROOT_ID_COLUMN, ColumnType::String)];
    if level >= 2 {
        columns.push(column(PARENT_KEY_COLUMN, ColumnType::String));
    }
    columns.push(column(INDEX_COLUMN, ColumnType::Int64));
    columns
}

/// The root document's `_id` as the text a STRING column holds.
fn root_id(doc: &RawDocument) -> Result<Option<String>, FlattenError> {
    let Some(id) = get(doc, "_id").map_err(|e| bson_error("$._id", e))? else {
        return Ok(None);
    };
    // The STRING value's text as typed columns get it: what the NDJSON
    // path writes, without the JSON quotes and escapes to read back.
    let mut text = Vec::new();
    let converted =
        super::value::convert(super::value::Leaf::new(id), ColumnType::String, &mut text)?;
    Ok(converted.map(|_| String::from_utf8(text).expect("a STRING value's text is UTF-8")))
}

/// The array at `keys` in `row`, if that is an array: its document, keyed
/// `0`, `1`, ...
fn array_at<'a>(
    row: &'a RawDocument,
    keys: &[String],
) -> Result<Option<&'a RawDocument>, FlattenError> {
    let mut at = row;
    for (i, key) in keys.iter().enumerate() {
        let value = get(at, key).map_err(|e| bson_error(key, e))?;
        match value {
            Some(Value::Array(a)) if i + 1 == keys.len() => return Ok(Some(a)),
            Some(Value::Document(d)) if i + 1 < keys.len() => at = d,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

fn bson_error(path: &str, source: bson::raw::Error) -> FlattenError {
    FlattenError::Bson {
        path: path.to_owned(),
        source,
    }
}
