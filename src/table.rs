//! Output table schemas, shared by the flattener (which infers them) and the
//! sinks (which create tables and files from them).
//!
//! A run's rows travel between the two as Parquet files ([`crate::rows`]).
//! The row format here, BigQuery's JSON load format (one object per line),
//! is the readable one: `etl test`'s expected rows, `etl preview`'s rows,
//! the warehouse contract's suite, and the reference the typed path is
//! held to:
//! - `INT64` as a JSON number (its text is exact, whatever its size);
//! - `FLOAT64` as a JSON number (NaN and infinities never appear: they are
//!   written as null);
//! - `NUMERIC`/`BIGNUMERIC` as a JSON string of the exact decimal;
//! - `TIMESTAMP` as `"2020-06-01T12:00:00.123000Z"` (microseconds, UTC);
//! - `DATE` as `"2020-06-01"`;
//! - `BYTES` as standard base64 in a JSON string;
//! - `JSON` as a JSON string holding the JSON text;
//! - `RECORD` as a JSON object of its fields, each in its own type's form;
//! - a REPEATED column as a JSON array of its type's values (never null);
//! - `STRING` and `BOOL` as themselves; a missing key means NULL.

use crate::spec::ColumnType;

/// One column of an output table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Column name, valid for BigQuery.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// REPEATED (an array of `kind`) rather than NULLABLE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    /// A RECORD's fields, in order; empty for every other type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Column>,
}

impl Column {
    /// The same column, REPEATED when `repeated`.
    pub fn repeated(mut self, repeated: bool) -> Self {
        self.repeated = repeated;
        self
    }

    /// The type as people read it: `STRING`, `REPEATED INT64`,
    /// `REPEATED RECORD<at TIMESTAMP, price FLOAT64>`.
    pub fn type_label(&self) -> String {
        let mut s = String::new();
        if self.repeated {
            s.push_str("REPEATED ");
        }
        s.push_str(self.kind.bigquery_name());
        if self.kind == ColumnType::Record {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|f| format!("{} {}", f.name, f.type_label()))
                .collect();
            s.push('<');
            s.push_str(&fields.join(", "));
            s.push('>');
        }
        s
    }

    /// A NULLABLE column of a scalar type.
    pub fn new(name: impl Into<String>, kind: ColumnType) -> Self {
        Column {
            name: name.into(),
            kind,
            repeated: false,
            fields: Vec::new(),
        }
    }
}

/// A row in the format above, read back: a JSON object, NULLs left out.
pub type JsonRow = serde_json::Map<String, serde_json::Value>;

/// The columns of an output table, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSchema {
    /// The columns.
    pub columns: Vec<Column>,
}

/// A column as `(name, type)` or `(name, type, repeated)`, for
/// [`TableSchema::of`].
impl From<(&str, ColumnType)> for Column {
    fn from((name, kind): (&str, ColumnType)) -> Self {
        Column::new(name, kind)
    }
}

impl From<(&str, ColumnType, bool)> for Column {
    fn from((name, kind, repeated): (&str, ColumnType, bool)) -> Self {
        Column::new(name, kind).repeated(repeated)
    }
}

impl TableSchema {
    /// A schema of columns given as `(name, type)` or
    /// `(name, type, repeated)`: `TableSchema::of(&[("id", ColumnType::Int64)])`.
    pub fn of<C: Into<Column> + Copy>(columns: &[C]) -> Self {
        Self {
            columns: columns.iter().map(|&c| c.into()).collect(),
        }
    }

    /// The column named `name`.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The DATE column every row carries: the partition day in the pipeline's
/// timezone. Tables are partitioned on it, so a document lands in the
/// partition of its day whatever the timezone or the partition field's kind.
pub const DS_COLUMN: &str = "_ds";

impl ColumnType {
    /// The BigQuery type name.
    pub fn bigquery_name(self) -> &'static str {
        match self {
            ColumnType::String => "STRING",
            ColumnType::Int64 => "INT64",
            ColumnType::Float64 => "FLOAT64",
            ColumnType::Numeric => "NUMERIC",
            ColumnType::Bignumeric => "BIGNUMERIC",
            ColumnType::Bool => "BOOL",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Date => "DATE",
            ColumnType::Bytes => "BYTES",
            ColumnType::Json => "JSON",
            ColumnType::Record => "RECORD",
        }
    }
}
