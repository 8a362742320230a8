//! Flattening: documents into warehouse rows. Pure and synchronous, no I/O.
//!
//! Two passes over a partition's documents:
//!
//! 1. [`Flattener::infer`] records, for every document, the columns it
//!    produces and their types in a [`SchemaBuilder`]; its
//!    [`finish`](SchemaBuilder::finish) is the partition's table schema.
//! 2. [`Flattener::write_row`] appends each document as one NDJSON row in
//!    the format of [`crate::table`], every value conformed to the schema's
//!    column type, so a load never fails on a drifted document. The same
//!    walk writes typed values instead for [`crate::rows`], through the
//!    row-format contract of the `out` submodule: both formats get the same
//!    value in the same column, or the same NULL.
//!
//! When the schemas can be told before the partition is read (the engine's
//! speculation), pass 1 rides along pass 2: one walk per row does both
//! ([`Tables::write_rows_inferring`], the `riding` submodule), and the
//! schema builders end as pass 1 alone leaves them.
//!
//! # Rules
//!
//! - Nested objects become columns named by their keys joined with
//!   `separator`, down to `max_depth` levels (1 = top-level keys); an object
//!   at the last level becomes one JSON column of its relaxed Extended JSON.
//!   An empty object produces no column.
//! - Arrays follow their policy (the rule naming their path, else
//!   `arrays.default`):
//!   - `json`: one JSON column of their relaxed Extended JSON (dates and
//!     other types kept);
//!   - `repeated`: one REPEATED column of the elements, typed like columns
//!     (null elements left out, since BigQuery arrays hold none; a lone
//!     value at the path is an array of one). Arrays of objects are
//!     REPEATED RECORD, one field per key (sanitized like a column name,
//!     typed and widened like a column; nested objects and arrays are JSON
//!     fields). Objects mixed with other values, or keys that make the same
//!     field name, fall back to REPEATED JSON (or STRING) text, so nothing
//!     is lost;
//!   - `explode`: a child table, see [`Tables`]; the parent has no column
//!     for the array.
//! - `exclude` removes automatic columns at and below a path, and the
//!   excluded keys from the JSON text of arrays and objects above it
//!   (arrays are transparent: `$.items.price` drops `price` from every
//!   element). Explicit columns may still read excluded paths: naming a
//!   path in `columns` is asking for it.
//! - Explicit `columns` always exist, with their declared type. A simple
//!   path is read straight from the BSON; any other JSONPath runs on the
//!   document's relaxed Extended JSON, several matches making one JSON
//!   array. A value that does not convert is NULL; `default` applies when
//!   the path matches nothing (a null is a match). An explicit column named
//!   like its own path's automatic column replaces it; any other automatic
//!   column keeps its own.
//! - Types and conversions: see the `value` submodule. A column that sees
//!   several types is widened by the `coerce` policy: INT64 with FLOAT64 is
//!   FLOAT64, NUMERIC with BIGNUMERIC is BIGNUMERIC, any other mix is
//!   STRING. Null values register a column without typing it; a column
//!   that only ever held null is STRING.
//! - Column names: keys joined with the separator, other characters turned
//!   into `_`, a `_` before a leading digit, at most 300 characters. When
//!   paths share a name (BigQuery ignores case), the one whose keys the name
//!   splits back into keeps it and the others get `<name>__<8 hex digits>`,
//!   hashed from the path, so `write_row` resolves them from the schema
//!   alone and a path keeps its column from day to day (see the `naming`
//!   submodule). [`SchemaBuilder::renames`] lists them.
//! - A document with a duplicate key is flattened as `bson::Document` (and
//!   so the lake's Extended JSON) reads it: the key once, at its first
//!   position, with its last value.
//! - `on_type_conflict` decides what a value that does not fit its column's
//!   type does. `coerce` widens the column as above. Under `variant` and
//!   `reject` a column keeps one type: its type in the `baseline` given to
//!   [`SchemaBuilder::finish_against`] (the schema lock's, or the table's),
//!   else the type most of its values have (the first seen on a tie).
//!   INT64 values fit FLOAT64 columns and NUMERIC fit BIGNUMERIC; nothing
//!   else fits another type. `variant` writes a value that does not fit to
//!   the column `<column>__v_<type>` (`price__v_string`), made next to its
//!   column; `reject` makes `write_row` fail with
//!   [`FlattenError::Conflict`], and the engine sends the document to the
//!   partition's `_rejects` object. Under `reject`, NaN and infinite
//!   numbers, dates outside BigQuery's range, and explicit columns' values
//!   that do not convert to the declared type are conflicts too; under
//!   `coerce` and `variant` they are NULL.
//! - `on_new_field` is applied by the engine against the schema lock;
//!   under `ignore`, `write_row` skips values whose column the schema lacks
//!   instead of failing.
//!
//! Rows are deterministic: the same documents in the same order give the
//! same bytes. Hash maps serve only lookups, never output order.

mod conflict;
mod naming;
mod out;
mod riding;
mod row;
mod rules;
mod schema;
mod tables;
mod value;

pub(crate) use out::RowOut;
pub(crate) use riding::Ridden;
pub(crate) use row::{OutColumn, OutField};
pub(crate) use value::{convert, write_timestamp_micros, Leaf, Scalar};
mod walk;

use std::sync::atomic::{AtomicU64, Ordering};

use bson::raw::RawDocument;
use chrono::NaiveDate;

use crate::extjson::ExtJsonError;
use crate::spec::{ArrayPolicy, FlattenSpec, NewFieldPolicy, TypeConflictPolicy};
use crate::table::TableSchema;

pub use row::{RowWriter, Unconverted};
pub use schema::{adopt_locked_types, SchemaBuilder};
pub use tables::{
    DocumentError, Flattened, Rejected, RowError, Table, Tables, INDEX_COLUMN, PARENT_KEY_COLUMN,
    ROOT_ID_COLUMN,
};

use rules::Rules;
use schema::PathTrie;
use walk::Stop;

/// Flatten rules compiled from a [`FlattenSpec`]: what turns one document
/// into one row. Cheap to share between threads.
#[derive(Debug)]
pub struct Flattener {
    /// Tells apart the schemas that pass 2 caches per thread.
    id: u64,
    max_depth: u32,
    auto_columns: bool,
    default_array: ArrayPolicy,
    conflict: TypeConflictPolicy,
    new_field: NewFieldPolicy,
    /// `decimal: bignumeric`: every Decimal128 is BIGNUMERIC.
    bignumeric: bool,
    object_id_timestamps: bool,
    rules: Rules,
}

/// Why rules could not compile or a document could not flatten.
#[derive(Debug, thiserror::Error)]
pub enum FlattenError {
    /// `separator` is empty or has characters a column name cannot hold.
    #[error("invalid separator `{0}`: expected letters, digits and `_`, such as `__`")]
    InvalidSeparator(String),
    /// `max_depth` is 0.
    #[error("invalid `max_depth` 0: expected at least 1")]
    ZeroDepth,
    /// An explicit column's name is not a BigQuery column name, or is `_ds`.
    #[error("invalid column name `{column}`: expected letters, digits and `_`, not starting with a digit, and not `_ds`")]
    InvalidColumnName {
        /// The name.
        column: String,
    },
    /// Two explicit columns share a name (BigQuery ignores case).
    #[error("column `{column}` is declared twice in `flatten.columns`")]
    DuplicateColumn {
        /// The name.
        column: String,
    },
    /// An explicit column's JSONPath does not parse.
    #[error("column `{column}`: invalid JSONPath `{path}`: {message}")]
    InvalidColumnPath {
        /// The column.
        column: String,
        /// The JSONPath.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// An explicit column's default does not convert to its type.
    #[error("column `{column}`: default {default} is not a valid {kind}")]
    InvalidDefault {
        /// The column.
        column: String,
        /// The default, as JSON.
        default: String,
        /// The column's BigQuery type.
        kind: &'static str,
    },
    /// An `exclude` or `arrays.rules` path is not a simple path.
    #[error(
        "invalid `{field}` path `{path}`: expected a plain path such as `$.a.b` or `$['odd key']`"
    )]
    InvalidPath {
        /// `exclude`, `arrays.rules` or `objects`.
        field: &'static str,
        /// The path.
        path: String,
    },
    /// `arrays.default: explode`: child tables need a path each.
    #[error("`arrays.default: explode` at `{table_path}`: child tables are made per path; name each array to explode in `arrays.rules`")]
    ExplodeDefault {
        /// The table's array path (`$` for the root table).
        table_path: String,
    },
    /// A child table's explicit column takes a name of the columns that
    /// tie rows to their parent.
    #[error("column `{column}` of the child table at `{table_path}` is reserved: child tables have `_root_id`, `_parent_key` and `_idx` of their own")]
    ReservedColumn {
        /// The column.
        column: String,
        /// The child table's array path.
        table_path: String,
    },
    /// Two exploded arrays would make tables of the same name.
    #[error("`{first}` and `{second}` both explode into table `{table}`: give one a `table:` name of its own")]
    DuplicateTable {
        /// The name (with the root table called `t`).
        table: String,
        /// The first array.
        first: String,
        /// The second.
        second: String,
    },
    /// A rule names a path inside an exploded array.
    #[error("`{path}` lies inside the exploded array `{array}`: rules for its elements go in that rule's `flatten`, with paths relative to the element")]
    InsideExplode {
        /// The path.
        path: String,
        /// The exploded array.
        array: String,
    },
    /// Under `on_type_conflict: reject`, a value that does not fit its
    /// column's type.
    #[error("`{path}` is {found}, but column `{column}` is {expected}")]
    Conflict {
        /// JSONPath of the value, in its table's row.
        path: String,
        /// The column.
        column: String,
        /// What the value is.
        found: String,
        /// The column's type.
        expected: &'static str,
    },
    /// The document is not valid BSON.
    #[error("malformed BSON at `{path}`: {source}")]
    Bson {
        /// JSONPath of the value.
        path: String,
        /// What the bson crate reported.
        #[source]
        source: bson::raw::Error,
    },
    /// The document nests deeper than the flattener follows.
    #[error("document nests deeper than {limit} levels at `{path}`")]
    TooDeep {
        /// JSONPath of the innermost value reached.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// Pass 2 met a path whose column the schema does not have.
    #[error("`{path}` belongs in column `{column}`, which the schema lacks: pass 2 must read the documents pass 1 inferred the schema from")]
    UnknownColumn {
        /// JSONPath of the value.
        path: String,
        /// The column it maps to.
        column: String,
    },
    /// An explicit column's JSONPath failed on a document.
    #[error("column `{column}`: JSONPath `{path}` failed: {message}")]
    Query {
        /// The column.
        column: String,
        /// The JSONPath.
        path: String,
        /// What jsonpath-rust reported.
        message: String,
    },
}

impl FlattenError {
    /// Prefixes the error's path with `key`, while it unwinds out of the
    /// document.
    fn under_key(mut self, key: &str) -> Self {
        if let FlattenError::Bson { path, .. }
        | FlattenError::TooDeep { path, .. }
        | FlattenError::UnknownColumn { path, .. }
        | FlattenError::Conflict { path, .. } = &mut self
        {
            let mut prefixed = String::from("$");
            crate::extjson::push_key_segment(&mut prefixed, key);
            prefixed.push_str(&path[1..]);
            *path = prefixed;
        }
        self
    }
}

impl From<ExtJsonError> for FlattenError {
    fn from(e: ExtJsonError) -> Self {
        match e {
            ExtJsonError::Malformed { path, source } => FlattenError::Bson { path, source },
            ExtJsonError::TooDeep { path } => FlattenError::TooDeep {
                path,
                limit: crate::extjson::MAX_NESTING,
            },
        }
    }
}

/// A value's column type, with `decimal: bignumeric` applied.
#[inline]
pub(crate) fn kind_of(
    bignumeric: bool,
    value: crate::extjson::Value<'_>,
) -> Option<crate::spec::ColumnType> {
    use crate::spec::ColumnType;
    match value::natural_kind(value) {
        Some(ColumnType::Numeric) if bignumeric => Some(ColumnType::Bignumeric),
        other => other,
    }
}

/// The type a column takes when it holds values of types `a` and `b`
/// under `coerce`: INT64 with FLOAT64 is FLOAT64, NUMERIC with BIGNUMERIC
/// is BIGNUMERIC, any other mix is STRING.
pub fn widen(a: crate::spec::ColumnType, b: crate::spec::ColumnType) -> crate::spec::ColumnType {
    value::merge_kinds(a, b)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Flattener {
    /// Compiles the rules. The partition day is not the flattener's
    /// business: `write_row` receives it.
    pub fn new(spec: &FlattenSpec) -> Result<Self, FlattenError> {
        Ok(Flattener {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            max_depth: spec.max_depth,
            auto_columns: spec.auto_columns,
            default_array: spec.arrays.default,
            conflict: spec.on_type_conflict,
            new_field: spec.on_new_field,
            bignumeric: spec.decimal == crate::spec::DecimalType::Bignumeric,
            object_id_timestamps: spec.object_id_timestamps,
            rules: Rules::compile(spec)?,
        })
    }

    /// The `on_type_conflict` policy.
    pub fn conflict_policy(&self) -> TypeConflictPolicy {
        self.conflict
    }

    /// The `on_new_field` policy.
    pub fn new_field_policy(&self) -> NewFieldPolicy {
        self.new_field
    }

    /// A builder that already holds the explicit columns, so that even a
    /// partition without documents gets them.
    pub fn schema_builder(&self) -> SchemaBuilder {
        let mut builder = SchemaBuilder::new();
        builder.seed(self);
        builder
    }

    /// Pass 1: records every column this document produces, with its type.
    pub fn infer(&self, doc: &RawDocument, schema: &mut SchemaBuilder) -> Result<(), FlattenError> {
        schema.seed(self);
        if self.conflict == TypeConflictPolicy::Variant {
            row::explicit_variants(self, doc, schema)?;
        }
        if !self.auto_columns {
            return Ok(());
        }
        let root = self.rules.root.as_ref();
        match self.walk(doc, 1, root, PathTrie::ROOT, schema) {
            Err(Stop::Duplicate) => {
                // Columns met before the repeat stay: they only widen the
                // schema, and the deduplicated document reads the same keys.
                let doc = deduplicated(doc)?;
                self.walk(&doc, 1, root, PathTrie::ROOT, schema)
                    .map_err(failure)
            }
            other => other.map_err(failure),
        }
    }

    /// Pass 2: appends one NDJSON row (plus `\n`) for `doc`, in the row
    /// format of [`crate::table`], conforming every value to `schema`: the
    /// result of pass 1 over the whole partition, possibly widened to an
    /// existing table's types. The first key is always `_ds`, the
    /// partition day. NULL values are left out. On error `out` is left as
    /// it was.
    ///
    /// The schema is resolved once per thread and kept while it stays the
    /// same (up to four schemas); [`Flattener::row_writer`] does the same
    /// without the per-row comparison.
    pub fn write_row(
        &self,
        doc: &RawDocument,
        ds: NaiveDate,
        schema: &TableSchema,
        out: &mut Vec<u8>,
    ) -> Result<(), FlattenError> {
        self.write_row_cached(doc, ds, schema, out)
    }
}

/// `doc` as `bson::Document` reads it: each key once, at its first
/// position, with its last value.
fn deduplicated(doc: &RawDocument) -> Result<bson::RawDocumentBuf, FlattenError> {
    let bson_error = |source| FlattenError::Bson {
        path: "$".to_owned(),
        source,
    };
    let doc = bson::Document::try_from(doc).map_err(bson_error)?;
    bson::RawDocumentBuf::from_document(&doc).map_err(bson_error)
}

fn failure(stop: Stop) -> FlattenError {
    match stop {
        Stop::Failed(e) => e,
        Stop::Duplicate => unreachable!("a deduplicated document has no repeated key"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
