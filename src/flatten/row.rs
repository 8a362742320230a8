//! Pass 2: one NDJSON row per document, conforming to a table schema.
//!
//! The schema arrives as a plain [`TableSchema`], possibly merged with the
//! warehouse table's (wider types, more columns). A [`RowWriter`] resolves
//! it once: each column's `,"name":` prefix, and a path trie that maps
//! document paths to schema columns, filled as new paths show up. Rows are
//! then written straight into the caller's buffer, with no allocation per
//! value.

use std::cell::RefCell;
use std::collections::HashMap;

use bson::raw::RawDocument;
use chrono::NaiveDate;
use jsonpath_rust::parser::model::JpQuery;

use crate::extjson::{self, same_key, Value};
use crate::spec::{ColumnType, NewFieldPolicy, TypeConflictPolicy};
use crate::table::TableSchema;

use super::conflict;
use super::naming::Naming;
use super::out::RowOut;
use super::riding::{Both, Recorded};
use super::rules::{ExplicitColumn, Lookup};
use super::schema::{PathTrie, NONE};
use super::value::{natural_kind, write_as, Leaf};
use super::walk::{Stop, Visitor};
use super::{FlattenError, Flattener, SchemaBuilder};

/// Pass 1 riding along a row's walk: its table's builder, and the row's log
/// (see the `riding` module).
type Ride<'r, 'd> = (&'r mut SchemaBuilder, &'r mut Vec<Recorded<'d>>);

/// A value pass 2 could not write in its column's type, so that its row
/// has NULL (or, in an array, no element) there. The engine counts each
/// and records it beside the day's rejects: no value becomes NULL
/// unnoticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconverted {
    /// The column.
    pub column: Box<str>,
    /// What the document held, as a message says it: `a STRING value`.
    pub found: String,
    /// The column's type.
    pub expected: &'static str,
}

/// What `value`, which `kind` could not take, was; None for a missing
/// value (null), the one NULL that needs no count.
fn unconverted(column: &str, kind: ColumnType, value: Value<'_>) -> Option<Unconverted> {
    if matches!(value, Value::Null) || kind == ColumnType::Record {
        return None;
    }
    Some(Unconverted {
        column: column.into(),
        found: conflict::unrepresentable(value)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if super::value::too_long_for(value, kind) {
                    format!(
                        "a number with more digits than {} holds",
                        kind.bigquery_name()
                    )
                } else {
                    conflict::describe(natural_kind(value))
                }
            }),
        expected: kind.bigquery_name(),
    })
}

/// A trie slot for a path whose column the schema lacks.
const MISSING: u32 = u32::MAX - 1;

/// Schemas resolved per thread and flattener, so [`Flattener::write_row`]
/// resolves a schema once per partition rather than once per row. A hit
/// costs one comparison of the schema's columns.
const CACHED_SCHEMAS: usize = 4;

thread_local! {
    static RESOLVED: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

struct Cached {
    flattener: u64,
    schema: TableSchema,
    resolved: Resolved,
}

/// Pass 2 for one schema: resolves the schema once, then writes rows.
///
/// [`Flattener::write_row`] keeps one of these per thread and schema;
/// holding one directly skips the per-row check that the schema is the same.
#[derive(Debug)]
pub struct RowWriter<'f> {
    flattener: &'f Flattener,
    resolved: Resolved,
}

impl<'f> RowWriter<'f> {
    /// Appends one NDJSON row (plus `\n`) for `doc`; see
    /// [`Flattener::write_row`].
    pub fn write_row(
        &mut self,
        doc: &RawDocument,
        ds: NaiveDate,
        out: &mut Vec<u8>,
    ) -> Result<(), FlattenError> {
        self.write_row_to(doc, ds, out)
    }

    /// [`Self::write_row`] into any row format: NDJSON text or typed
    /// values (`crate::rows`). On error `out` is rolled back.
    pub(crate) fn write_row_to<O: RowOut>(
        &mut self,
        doc: &RawDocument,
        ds: NaiveDate,
        out: &mut O,
    ) -> Result<(), FlattenError> {
        self.flattener
            .write_resolved(&mut self.resolved, doc, ds, out, None)
            .map(|_| ())
    }

    /// [`Self::write_row_to`], with pass 1 riding along: each value the
    /// walk meets is also logged in `log` for `schema`. False when the row
    /// was walked twice (it repeats a key): `log` is then incomplete, and
    /// pass 1 must read the row on its own.
    pub(crate) fn write_row_riding<'d, O: RowOut>(
        &mut self,
        doc: &'d RawDocument,
        ds: NaiveDate,
        out: &mut O,
        schema: &mut SchemaBuilder,
        log: &mut Vec<Recorded<'d>>,
    ) -> Result<bool, FlattenError>
    where
        'f: 'd,
    {
        let flattener: &'f Flattener = self.flattener;
        flattener.write_resolved(&mut self.resolved, doc, ds, out, Some((schema, log)))
    }

    /// The values of the last row [`Self::write_row`] wrote that did not
    /// convert to their columns' types.
    pub fn unconverted(&self) -> &[Unconverted] {
        &self.resolved.unconverted
    }
}

/// A schema as pass 2 needs it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    columns: Vec<OutColumn>,
    by_name: HashMap<String, u32>,
    by_lowercase: HashMap<String, u32>,
    trie: PathTrie,
    /// The schema column of each explicit column.
    explicit: Vec<u32>,
    /// The `_ds` column, by its exact name.
    ds: Option<u32>,
    /// The current row's values that did not convert ([`Unconverted`]).
    unconverted: Vec<Unconverted>,
}

/// A schema column as pass 2 writes it.
#[derive(Debug, Clone)]
pub(crate) struct OutColumn {
    /// `,"name":`
    pub prefix: Box<[u8]>,
    pub name: Box<str>,
    pub kind: ColumnType,
    pub repeated: bool,
    /// A RECORD's fields.
    pub fields: Vec<OutField>,
    /// The column `<name>__ts` of `object_id_timestamps`, or NONE.
    ts: u32,
}

/// A RECORD's field as pass 2 writes it.
#[derive(Debug, Clone)]
pub(crate) struct OutField {
    pub name: Box<str>,
    /// `"name":`
    pub prefix: Box<[u8]>,
    pub kind: ColumnType,
}

impl Resolved {
    fn new(flattener: &Flattener, schema: &TableSchema) -> Result<Self, FlattenError> {
        let mut columns = Vec::with_capacity(schema.columns.len());
        let mut by_name = HashMap::with_capacity(schema.columns.len());
        let mut by_lowercase = HashMap::with_capacity(schema.columns.len());
        for (i, c) in schema.columns.iter().enumerate() {
            let mut prefix = vec![b','];
            extjson::write_json_string(&c.name, &mut prefix);
            prefix.push(b':');
            columns.push(OutColumn {
                prefix: prefix.into_boxed_slice(),
                name: c.name.as_str().into(),
                kind: c.kind,
                repeated: c.repeated,
                fields: c
                    .fields
                    .iter()
                    .map(|f| {
                        let mut prefix = Vec::new();
                        extjson::write_json_string(&f.name, &mut prefix);
                        prefix.push(b':');
                        OutField {
                            name: f.name.as_str().into(),
                            prefix: prefix.into_boxed_slice(),
                            kind: f.kind,
                        }
                    })
                    .collect(),
                ts: NONE,
            });
            by_name.entry(c.name.clone()).or_insert(i as u32);
            by_lowercase
                .entry(c.name.to_ascii_lowercase())
                .or_insert(i as u32);
        }
        if flattener.object_id_timestamps {
            for c in &mut columns {
                if let Some(&ts) = by_name.get(&format!("{}{}", c.name, super::schema::TS_SUFFIX)) {
                    c.ts = ts;
                }
            }
        }
        let ds = by_name.get(crate::table::DS_COLUMN).copied();
        let mut resolved = Resolved {
            ds,
            columns,
            by_name,
            by_lowercase,
            trie: PathTrie::new(),
            explicit: Vec::new(),
            unconverted: Vec::new(),
        };
        for c in &flattener.rules.explicit {
            let at = resolved
                .lookup(&c.name)
                .ok_or_else(|| FlattenError::UnknownColumn {
                    path: c.path.clone(),
                    column: c.name.clone(),
                })?;
            resolved.explicit.push(at);
        }
        Ok(resolved)
    }

    /// A column by name; BigQuery compares names without case.
    fn lookup(&self, name: &str) -> Option<u32> {
        self.by_name
            .get(name)
            .or_else(|| self.by_lowercase.get(&name.to_ascii_lowercase()))
            .copied()
    }

    /// The column name `node`'s path resolves to.
    fn column_name(&self, naming: &Naming, node: u32) -> String {
        let base = naming.base(&self.trie.keys(node));
        naming.resolve(&base, |n| self.lookup(n).is_some())
    }

    #[cold]
    fn resolve(&mut self, naming: &Naming, node: u32) -> u32 {
        let name = self.column_name(naming, node);
        let slot = self.lookup(&name).unwrap_or(MISSING);
        self.trie.set_slot(node, slot);
        slot
    }
}

struct RowVisitor<'a, O> {
    conflict: TypeConflictPolicy,
    bignumeric: bool,
    skip_missing: bool,
    naming: &'a Naming,
    resolved: &'a mut Resolved,
    out: &'a mut O,
}

impl<'d, O: RowOut> Visitor<'d> for RowVisitor<'_, O> {
    type Node = u32;
    type Guess = usize;

    #[inline]
    fn enter(&mut self, parent: u32, key: &str, guess: &mut usize) -> u32 {
        self.resolved.trie.find_or_insert(parent, key, guess)
    }

    #[inline]
    fn leaf(&mut self, node: u32, leaf: Leaf<'_>) -> Result<(), FlattenError> {
        let Some(mut slot) = self.slot(node)? else {
            return Ok(());
        };
        let repeated = self.resolved.columns[slot as usize].repeated;
        if self.conflict == TypeConflictPolicy::Reject
            || (self.conflict == TypeConflictPolicy::Variant && !repeated)
        {
            slot = self.conflicting(slot, leaf)?;
        }
        let column = &self.resolved.columns[slot as usize];
        let mut lost = None;
        if column.repeated {
            // A lone value in a REPEATED column: an array of one.
            let mark = self.out.mark();
            self.out.list_start(slot, column);
            if !self.out.list_item(column.kind, leaf, true)? {
                self.out.rollback(mark);
                let lost = unconverted(&column.name, column.kind, leaf.value);
                return self.lose(lost);
            }
            self.out.list_end();
        } else if !self.out.value(slot, column, leaf)? {
            lost = unconverted(&column.name, column.kind, leaf.value);
        }
        if column.ts != NONE {
            if let Value::ObjectId(oid) = leaf.value {
                let ts = &self.resolved.columns[column.ts as usize];
                self.out.timestamp(
                    column.ts,
                    ts,
                    oid.timestamp().timestamp_millis() / 1000 * 1_000_000,
                );
            }
        }
        // Tested here, not in the cold `lose`: most values convert, and a
        // call for each of them cost more than the test.
        match lost {
            None => Ok(()),
            lost => self.lose(lost),
        }
    }

    // Kept out of the recursive walk's frame, which must stay small.
    #[inline(never)]
    fn repeated(&mut self, node: u32, array: &RawDocument) -> Result<(), FlattenError> {
        let Some(slot) = self.slot(node)? else {
            return Ok(());
        };
        let column = &self.resolved.columns[slot as usize];
        if !column.repeated {
            // The table has this path as a plain column: the array's JSON
            // text, as the `json` policy writes it.
            return self.leaf(node, Leaf::new(Value::Array(array)));
        }
        let mark = self.out.mark();
        self.out.list_start(slot, column);
        if column.kind == ColumnType::Record {
            return self.write_records(slot, array, mark);
        }
        let mut first = true;
        for item in extjson::elements(array) {
            let (_, value) = item?;
            let leaf = Leaf::new(value);
            if self.conflict == TypeConflictPolicy::Reject {
                self.conflicting(slot, leaf)?;
            }
            // BigQuery arrays hold no NULL: null elements are left out.
            if self.out.list_item(column.kind, leaf, first)? {
                first = false;
            } else if let Some(lost) = unconverted(&column.name, column.kind, value) {
                self.resolved.unconverted.push(lost);
            }
        }
        if first {
            // No element: BigQuery reads a missing REPEATED field as [].
            self.out.rollback(mark);
        } else {
            self.out.list_end();
        }
        Ok(())
    }
}

impl<O: RowOut> RowVisitor<'_, O> {
    /// A value that did not convert: the document's reject under
    /// `reject`, else counted ([`Unconverted`]).
    #[cold]
    fn lose(&mut self, lost: Option<Unconverted>) -> Result<(), FlattenError> {
        let Some(lost) = lost else {
            return Ok(());
        };
        if self.conflict == TypeConflictPolicy::Reject {
            return Err(FlattenError::Conflict {
                path: "$".to_owned(),
                column: lost.column.into(),
                found: lost.found,
                expected: lost.expected,
            });
        }
        self.resolved.unconverted.push(lost);
        Ok(())
    }

    /// The schema column of `node`'s path; None when the schema lacks it
    /// and `on_new_field: ignore` skips it. A path seen before has its
    /// column in the trie: that look-up is inlined into every value's
    /// write, the rest is out of line.
    #[inline(always)]
    fn slot(&mut self, node: u32) -> Result<Option<u32>, FlattenError> {
        let slot = self.resolved.trie.slot(node);
        if slot != NONE && slot != MISSING {
            return Ok(Some(slot));
        }
        self.slot_missed(node, slot)
    }

    /// [`Self::slot`] when the trie holds no column for `node`: `slot` is
    /// what it holds, NONE (not resolved yet) or MISSING.
    #[inline(never)]
    fn slot_missed(&mut self, node: u32, mut slot: u32) -> Result<Option<u32>, FlattenError> {
        if slot == NONE {
            slot = self.resolved.resolve(self.naming, node);
        }
        if slot != MISSING {
            return Ok(Some(slot));
        }
        if self.skip_missing {
            return Ok(None);
        }
        Err(FlattenError::UnknownColumn {
            path: "$".to_owned(),
            column: self.resolved.column_name(self.naming, node),
        })
    }

    /// The elements of a REPEATED RECORD column, after its `[`.
    fn write_records(
        &mut self,
        slot: u32,
        array: &RawDocument,
        mark: O::Mark,
    ) -> Result<(), FlattenError> {
        let column = &self.resolved.columns[slot as usize];
        let mut first = true;
        let mut written = Vec::with_capacity(column.fields.len());
        for item in extjson::elements(array) {
            let doc = match item? {
                (_, Value::Null) => continue,
                (_, Value::Document(d)) => d,
                (_, other) => {
                    self.out.rollback(mark);
                    return Err(FlattenError::Conflict {
                        path: "$".to_owned(),
                        column: column.name.to_string(),
                        found: conflict::describe(natural_kind(other)),
                        expected: "REPEATED RECORD",
                    });
                }
            };
            self.out.record_start(first);
            first = false;
            written.clear();
            for item in extjson::elements(doc) {
                let (key, value) = item?;
                let name = self.naming.base(&[key]).name;
                let Some(at) = column.fields.iter().position(|f| *f.name == *name) else {
                    self.out.rollback(mark);
                    return Err(FlattenError::UnknownColumn {
                        path: format!("$[*].{key}"),
                        column: format!("{}.{name}", column.name),
                    });
                };
                // A key repeated inside an element: the first is kept.
                if written.contains(&at) {
                    continue;
                }
                let field = &column.fields[at];
                if self
                    .out
                    .record_field(at, field, Leaf::new(value), written.is_empty())?
                {
                    written.push(at);
                } else {
                    let name = format!("{}.{}", column.name, field.name);
                    if let Some(lost) = unconverted(&name, field.kind, value) {
                        self.resolved.unconverted.push(lost);
                    }
                }
            }
            self.out.record_end();
        }
        if first {
            self.out.rollback(mark);
        } else {
            self.out.list_end();
        }
        Ok(())
    }

    /// Under `variant` and `reject`: the column a value goes to, or the
    /// conflict.
    #[cold]
    fn conflicting(&self, slot: u32, leaf: Leaf<'_>) -> Result<u32, FlattenError> {
        let column = &self.resolved.columns[slot as usize];
        let conflict = |found: String| FlattenError::Conflict {
            path: "$".to_owned(),
            column: column.name.to_string(),
            found,
            expected: column.kind.bigquery_name(),
        };
        if let Some(why) = conflict::unrepresentable(leaf.value) {
            // Text holds it; any other type would lose it.
            if self.conflict == TypeConflictPolicy::Reject
                && !matches!(column.kind, ColumnType::String | ColumnType::Json)
            {
                return Err(conflict(why.to_owned()));
            }
        }
        let Some(kind) = super::kind_of(self.bignumeric, leaf.value) else {
            return Ok(slot);
        };
        if conflict::fits(kind, column.kind) {
            return Ok(slot);
        }
        match self.conflict {
            TypeConflictPolicy::Reject => Err(conflict(conflict::describe(Some(kind)))),
            _ => self
                .resolved
                .lookup(&conflict::variant_name(&column.name, kind))
                .ok_or_else(|| FlattenError::UnknownColumn {
                    path: "$".to_owned(),
                    column: conflict::variant_name(&column.name, kind),
                }),
        }
    }
}

impl Flattener {
    /// Resolves `schema` for pass 2; see [`RowWriter`].
    pub fn row_writer(&self, schema: &TableSchema) -> Result<RowWriter<'_>, FlattenError> {
        Ok(RowWriter {
            flattener: self,
            resolved: Resolved::new(self, schema)?,
        })
    }

    pub(super) fn write_row_cached(
        &self,
        doc: &RawDocument,
        ds: NaiveDate,
        schema: &TableSchema,
        out: &mut Vec<u8>,
    ) -> Result<(), FlattenError> {
        RESOLVED.with_borrow_mut(|cache| {
            let at = match cache
                .iter()
                .position(|c| c.flattener == self.id && c.schema == *schema)
            {
                Some(at) => at,
                None => {
                    if cache.len() == CACHED_SCHEMAS {
                        cache.remove(0);
                    }
                    cache.push(Cached {
                        flattener: self.id,
                        schema: schema.clone(),
                        resolved: Resolved::new(self, schema)?,
                    });
                    cache.len() - 1
                }
            };
            self.write_resolved(&mut cache[at].resolved, doc, ds, out, None)
                .map(|_| ())
        })
    }

    /// One row; with `ride`, pass 1's log of it too. True when the row was
    /// walked once: a row that repeats a key is walked again,
    /// deduplicated, and without the ride.
    fn write_resolved<'d, O: RowOut>(
        &'d self,
        resolved: &mut Resolved,
        doc: &'d RawDocument,
        ds: NaiveDate,
        out: &mut O,
        ride: Option<Ride<'_, 'd>>,
    ) -> Result<bool, FlattenError> {
        let start = out.mark();
        let result = match self.write_once(resolved, doc, ds, out, ride) {
            Err(Stop::Duplicate) => {
                out.rollback(start);
                let doc = super::deduplicated(doc)?;
                self.write_once(resolved, &doc, ds, out, None)
                    .map(|()| false)
            }
            other => other.map(|()| true),
        };
        result.map_err(|stop| {
            out.rollback(start);
            super::failure(stop)
        })
    }

    fn write_once<'d, O: RowOut>(
        &'d self,
        resolved: &mut Resolved,
        doc: &'d RawDocument,
        ds: NaiveDate,
        out: &mut O,
        ride: Option<Ride<'_, 'd>>,
    ) -> Result<(), Stop> {
        resolved.unconverted.clear();
        out.start_row(ds, resolved.ds);

        let mut relaxed = None;
        // Scanned at the first simple path, where each column's own
        // lookup used to scan: an error comes at the same point.
        let mut top = TopLevel::new(doc);
        for (j, (c, &at)) in self
            .rules
            .explicit
            .iter()
            .zip(&resolved.explicit)
            .enumerate()
        {
            let column = &resolved.columns[at as usize];
            let found = match &c.lookup {
                Lookup::Keys(keys) if j < TOP_LEVEL_COLUMNS => {
                    Found::Value(top.lookup(&self.rules.explicit, j, keys)?)
                }
                Lookup::Keys(keys) => Found::Value(lookup_keys(doc, keys)?),
                Lookup::Query(query) => Found::Query(query),
            };
            let mut match_lost = None;
            let written = write_explicit(
                c,
                at,
                column,
                doc,
                found,
                &mut relaxed,
                &mut match_lost,
                out,
            )?;
            if !written {
                let lost = match match_lost {
                    Some(lost) => Some(lost),
                    None => explicit_unconverted(c, column.kind, doc)?,
                };
                if let Some(lost) = lost {
                    if self.conflict == TypeConflictPolicy::Variant
                        && write_explicit_variant(c, self.bignumeric, resolved, doc, out)?
                    {
                        continue;
                    }
                    if self.conflict == TypeConflictPolicy::Reject {
                        return Err(FlattenError::Conflict {
                            path: c.path.clone(),
                            column: c.name.clone(),
                            found: lost.found,
                            expected: lost.expected,
                        }
                        .into());
                    }
                    resolved.unconverted.push(lost);
                }
            }
        }

        if self.auto_columns {
            let mut rows = RowVisitor {
                conflict: self.conflict,
                bignumeric: self.bignumeric,
                skip_missing: self.new_field == NewFieldPolicy::Ignore,
                naming: &self.rules.naming,
                resolved,
                out,
            };
            let root = self.rules.root.as_ref();
            match ride {
                None => self.walk(doc, 1, root, PathTrie::ROOT, &mut rows)?,
                Some((schema, log)) => {
                    let mut both = Both { rows, schema, log };
                    self.walk(doc, 1, root, (PathTrie::ROOT, PathTrie::ROOT), &mut both)?
                }
            }
        }
        out.end_row();
        Ok(())
    }
}

/// An explicit column of a simple path came out NULL: what the document
/// held there, when it held a value that did not convert. (A JSONPath's
/// match that did not convert is found as it is written:
/// [`write_explicit`].)
#[cold]
fn explicit_unconverted(
    c: &ExplicitColumn,
    kind: ColumnType,
    doc: &RawDocument,
) -> Result<Option<Unconverted>, FlattenError> {
    let Lookup::Keys(keys) = &c.lookup else {
        return Ok(None);
    };
    Ok(lookup_keys(doc, keys)?.and_then(|v| unconverted(&c.name, kind, v)))
}

/// Pass 1 under `variant`: a declared column's value that does not convert
/// to its type asks for the column's variant of the value's own type, as an
/// automatic column's odd value does. Only simple paths: a JSONPath's
/// matches are JSON already.
pub(super) fn explicit_variants(
    f: &Flattener,
    doc: &RawDocument,
    schema: &mut super::SchemaBuilder,
) -> Result<(), FlattenError> {
    let mut scratch = Vec::new();
    for c in &f.rules.explicit {
        let Lookup::Keys(keys) = &c.lookup else {
            continue;
        };
        let Some(v) = lookup_keys(doc, keys)? else {
            continue;
        };
        scratch.clear();
        if write_as(Leaf::new(v), c.kind, &mut scratch)? {
            continue;
        }
        if let Some(kind) = super::kind_of(f.bignumeric, v).filter(|k| *k != c.kind) {
            schema.explicit_variant(&c.name, kind);
        }
    }
    Ok(())
}

/// Pass 2 under `variant`: writes a declared column's value that did not
/// convert into its variant column; false when the schema has none (the
/// value is then counted, see [`Unconverted`]).
fn write_explicit_variant<O: RowOut>(
    c: &ExplicitColumn,
    bignumeric: bool,
    resolved: &Resolved,
    doc: &RawDocument,
    out: &mut O,
) -> Result<bool, FlattenError> {
    let Lookup::Keys(keys) = &c.lookup else {
        return Ok(false);
    };
    let Some(v) = lookup_keys(doc, keys)? else {
        return Ok(false);
    };
    let Some(at) = super::kind_of(bignumeric, v)
        .and_then(|k| resolved.lookup(&conflict::variant_name(&c.name, k)))
    else {
        return Ok(false);
    };
    let column = &resolved.columns[at as usize];
    Ok(out.value(at, column, Leaf::new(v))?)
}

/// What an explicit column's path found in a document.
enum Found<'a, 'q> {
    /// A simple path's value, if any.
    Value(Option<Value<'a>>),
    /// A JSONPath: its query has yet to run.
    Query(&'q JpQuery),
}

/// Explicit columns whose simple path's first key [`TopLevel`] finds; any
/// further ones are looked up alone.
const TOP_LEVEL_COLUMNS: usize = 16;

/// The values at the first key of the explicit columns' simple paths, from
/// one scan of a document's top level rather than one per column (a child
/// table's row has three explicit columns, `_root_id`, `_idx` and its own),
/// made at the first look-up.
struct TopLevel<'a> {
    doc: &'a RawDocument,
    scanned: bool,
    /// Per explicit column, what its first key holds: the last of a
    /// repeated key, as [`lookup_keys`] reads it.
    values: [Option<Value<'a>>; TOP_LEVEL_COLUMNS],
}

impl<'a> TopLevel<'a> {
    fn new(doc: &'a RawDocument) -> Self {
        Self {
            doc,
            scanned: false,
            values: [None; TOP_LEVEL_COLUMNS],
        }
    }

    /// Fills `self.values` from one scan of the top level. In place, not
    /// returned: the array is copied otherwise, once for every row.
    #[inline(never)]
    fn scan(&mut self, explicit: &[ExplicitColumn]) -> Result<(), FlattenError> {
        let columns = &explicit[..explicit.len().min(TOP_LEVEL_COLUMNS)];
        for item in extjson::elements(self.doc) {
            let (key, value) = item?;
            for (j, c) in columns.iter().enumerate() {
                if let Lookup::Keys(keys) = &c.lookup {
                    if keys.first().is_some_and(|first| same_key(first, key)) {
                        self.values[j] = Some(value);
                    }
                }
            }
        }
        self.scanned = true;
        Ok(())
    }

    /// Explicit column `j` (of `explicit`)'s value at `keys`, its simple
    /// path: what [`lookup_keys`] finds.
    fn lookup(
        &mut self,
        explicit: &[ExplicitColumn],
        j: usize,
        keys: &[String],
    ) -> Result<Option<Value<'a>>, FlattenError> {
        if !self.scanned {
            self.scan(explicit)?;
        }
        match (self.values[j], keys.len()) {
            (_, 0) => Ok(None),
            (value, 1) => Ok(value),
            (Some(Value::Document(d)), _) => lookup_keys(d, &keys[1..]),
            _ => Ok(None),
        }
    }
}

/// Writes an explicit column's value (or its default) into column `slot`;
/// false for NULL. A JSONPath match that is not null but did not convert
/// is left in `lost`.
#[allow(clippy::too_many_arguments)]
fn write_explicit<O: RowOut>(
    c: &ExplicitColumn,
    slot: u32,
    column: &OutColumn,
    doc: &RawDocument,
    found: Found<'_, '_>,
    relaxed: &mut Option<serde_json::Value>,
    lost: &mut Option<Unconverted>,
    out: &mut O,
) -> Result<bool, FlattenError> {
    let written = match found {
        Found::Value(Some(v)) => return Ok(out.value(slot, column, Leaf::new(v))?),
        Found::Value(None) => None,
        Found::Query(query) => {
            let value = match relaxed {
                Some(v) => v,
                None => relaxed.insert(extjson::to_relaxed_value(doc)?),
            };
            let found = jsonpath_rust::query::js_path_process(query, value).map_err(|e| {
                FlattenError::Query {
                    column: c.name.clone(),
                    path: c.path.clone(),
                    message: e.to_string(),
                }
            })?;
            match found.as_slice() {
                [] => None,
                [one] => Some(write_json_match(one.val, slot, column, lost, out)?),
                many => {
                    let all =
                        serde_json::Value::Array(many.iter().map(|r| r.val.clone()).collect());
                    Some(write_json_match(&all, slot, column, lost, out)?)
                }
            }
        }
    };
    match (written, &c.default) {
        (Some(w), _) => Ok(w),
        (None, Some(default)) => {
            Ok(out.value(slot, column, Leaf::new(default.as_raw_bson_ref().into()))?)
        }
        (None, None) => Ok(false),
    }
}

/// The value at a simple path. Like JSONPath, a name never matches inside
/// an array. A repeated key gives its last value, as `bson::Document` and
/// the JSONPath route read it.
fn lookup_keys<'a>(
    doc: &'a RawDocument,
    keys: &[String],
) -> Result<Option<Value<'a>>, FlattenError> {
    let mut at = doc;
    for (i, key) in keys.iter().enumerate() {
        let mut found = None;
        for item in extjson::elements(at) {
            let (k, v) = item?;
            if k == key {
                found = Some(v);
            }
        }
        match found {
            Some(v) if i + 1 == keys.len() => return Ok(Some(v)),
            Some(Value::Document(d)) => at = d,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// A JSONPath match (relaxed Extended JSON) in a `kind` column: read back
/// as BSON, so `{"$date": ...}` is a date again, then converted like any
/// value. Text that is not valid Extended JSON stays JSON text. A match
/// that is not null but does not convert is left in `lost`.
fn write_json_match<O: RowOut>(
    value: &serde_json::Value,
    slot: u32,
    column: &OutColumn,
    lost: &mut Option<Unconverted>,
    out: &mut O,
) -> Result<bool, FlattenError> {
    if value.is_null() {
        return Ok(false);
    }
    let raw = bson::Bson::try_from(value.clone())
        .ok()
        .and_then(|b| bson::RawBson::try_from(b).ok());
    match raw {
        Some(raw) => {
            let leaf = Leaf::new(raw.as_raw_bson_ref().into());
            let written = out.value(slot, column, leaf)?;
            if !written {
                *lost = unconverted(&column.name, column.kind, leaf.value);
            }
            Ok(written)
        }
        None if matches!(column.kind, ColumnType::Json | ColumnType::String) => {
            out.json_text(slot, column, value);
            Ok(true)
        }
        None => {
            *lost = Some(Unconverted {
                column: column.name.clone(),
                found: "a JSON value".to_owned(),
                expected: column.kind.bigquery_name(),
            });
            Ok(false)
        }
    }
}
