//! [`TableSchema`] to BigQuery fields and back, and the checks of an
//! existing table against the rows: missing columns, retypes, partitioning.

use serde_json::{json, Value};

use super::{BigQueryError, Target};
use crate::spec::ColumnType;
use crate::table::{Column, TableSchema};

/// BigQuery's `schema` object for `schema`.
pub(super) fn schema_json(schema: &TableSchema) -> Value {
    json!({ "fields": schema.columns.iter().map(field_json).collect::<Vec<_>>() })
}

/// One column as a BigQuery field; a RECORD with its fields.
fn field_json(c: &Column) -> Value {
    let mut f = json!({"name": c.name, "type": c.kind.bigquery_name(), "mode": if c.repeated { "REPEATED" } else { "NULLABLE" }});
    if c.kind == ColumnType::Record {
        f["fields"] = Value::Array(c.fields.iter().map(field_json).collect());
    }
    f
}

/// A BigQuery field as a column; None when etl has no such type.
pub(super) fn parse_column(f: &Value) -> Option<Column> {
    let (name, kind, repeated) = parse_field(f);
    let kind = kind?;
    let fields = match kind {
        ColumnType::Record => f["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parse_column)
            .collect::<Option<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Some(Column {
        name,
        kind,
        repeated,
        fields,
    })
}

/// A type name as BigQuery returns it (legacy or standard spelling).
fn parse_type(name: &str) -> Option<ColumnType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "STRING" => ColumnType::String,
        "INTEGER" | "INT64" => ColumnType::Int64,
        "FLOAT" | "FLOAT64" => ColumnType::Float64,
        "NUMERIC" | "DECIMAL" => ColumnType::Numeric,
        "BIGNUMERIC" | "BIGDECIMAL" => ColumnType::Bignumeric,
        "BOOLEAN" | "BOOL" => ColumnType::Bool,
        "TIMESTAMP" => ColumnType::Timestamp,
        "DATE" => ColumnType::Date,
        "BYTES" => ColumnType::Bytes,
        "JSON" => ColumnType::Json,
        "RECORD" | "STRUCT" => ColumnType::Record,
        _ => return None,
    })
}

/// Name, type (None when etl has no such type) and REPEATED of a field.
fn parse_field(f: &Value) -> (String, Option<ColumnType>, bool) {
    let name = f["name"].as_str().unwrap_or_default().to_owned();
    let kind = f["type"].as_str().and_then(parse_type);
    let repeated = f["mode"]
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case("REPEATED"));
    (name, kind, repeated)
}

fn type_label(kind: Option<ColumnType>, raw: &str, repeated: bool) -> String {
    let name = kind.map(ColumnType::bigquery_name).unwrap_or(raw);
    if repeated {
        format!("REPEATED {name}")
    } else {
        name.to_owned()
    }
}

/// The fields of `schema` that `existing` lacks, or the first column whose
/// type differs. Names compare case-insensitively, as in BigQuery.
pub(super) fn missing_fields(
    target: &Target,
    existing: &[Value],
    schema: &TableSchema,
) -> Result<Vec<Value>, BigQueryError> {
    let mut added = Vec::new();
    let wanted = schema_json(schema);
    for (col, field) in schema
        .columns
        .iter()
        .zip(wanted["fields"].as_array().expect("fields"))
    {
        let found = existing.iter().find(|f| {
            f["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&col.name))
        });
        match found {
            None => added.push(field.clone()),
            Some(f) => {
                let (_, kind, repeated) = parse_field(f);
                if kind == Some(ColumnType::Record)
                    && col.kind == ColumnType::Record
                    && repeated == col.repeated
                {
                    // New fields inside a RECORD: the field is sent again,
                    // whole, with them appended.
                    let have = f["fields"].as_array().cloned().unwrap_or_default();
                    let inner = TableSchema {
                        columns: col.fields.clone(),
                    };
                    let more = missing_fields(target, &have, &inner)?;
                    if !more.is_empty() {
                        let mut grown = f.clone();
                        grown["fields"] = Value::Array(have.into_iter().chain(more).collect());
                        added.push(grown);
                    }
                    continue;
                }
                if kind != Some(col.kind) || repeated != col.repeated {
                    return Err(BigQueryError::Retype {
                        target: target.boxed(),
                        column: col.name.clone(),
                        existing: type_label(kind, f["type"].as_str().unwrap_or("?"), repeated),
                        wanted: type_label(Some(col.kind), "", col.repeated),
                    });
                }
            }
        }
    }
    Ok(added)
}

pub(super) fn check_partitioning(
    target: &Target,
    table: &Value,
    column: &str,
) -> Result<(), BigQueryError> {
    let layout = TableLayout::of(table);
    if layout.partitioned_on(column) {
        return Ok(());
    }
    Err(BigQueryError::Partitioning {
        target: target.boxed(),
        found: layout.partitioning(),
        expected: column.to_owned(),
    })
}

/// An existing table as its `tables.get` resource describes it: what
/// `etl validate --connect` compares with the spec and the schema lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    /// Time partitioning: its type (`DAY`, `HOUR`, ...) and its column,
    /// None for ingestion time; None when the table has none.
    pub time_partitioning: Option<(String, Option<String>)>,
    /// Partitioned by integer range instead.
    pub range_partitioned: bool,
    /// Clustering columns, in order.
    pub clustering: Vec<String>,
    /// The columns, in the table's order.
    pub columns: Vec<LayoutColumn>,
}

/// One column of a [`TableLayout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutColumn {
    /// Its name.
    pub name: String,
    /// The column as etl reads it; None for a type etl does not write
    /// (`TIME`, `GEOGRAPHY`, ...).
    pub column: Option<Column>,
    /// Its type as BigQuery names it, for people: `INT64`,
    /// `REPEATED STRING`.
    pub label: String,
}

impl TableLayout {
    /// The layout of a `tables.get` resource.
    pub fn of(table: &Value) -> Self {
        let tp = &table["timePartitioning"];
        let time_partitioning = tp["type"]
            .as_str()
            .map(|k| (k.to_owned(), tp["field"].as_str().map(str::to_owned)));
        let columns = table["schema"]["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let (name, kind, repeated) = parse_field(f);
                let column = parse_column(f);
                let label = match &column {
                    Some(c) => c.type_label(),
                    None => type_label(kind, f["type"].as_str().unwrap_or("?"), repeated),
                };
                LayoutColumn {
                    name,
                    column,
                    label,
                }
            })
            .collect();
        Self {
            time_partitioning,
            range_partitioned: table.get("rangePartitioning").is_some_and(|r| !r.is_null()),
            clustering: table["clustering"]["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            columns,
        }
    }

    /// Whether the table is DAY-partitioned on `column`, as etl makes it.
    pub fn partitioned_on(&self, column: &str) -> bool {
        matches!(&self.time_partitioning, Some((k, Some(f))) if k == "DAY" && f == column)
    }

    /// The partitioning as people read it: ``DAY on `_ds` ``, `not at
    /// all`, `DAY by ingestion time`, `by integer range`.
    pub fn partitioning(&self) -> String {
        match &self.time_partitioning {
            None if self.range_partitioned => "by integer range".to_owned(),
            None => "not at all".to_owned(),
            Some((k, None)) => format!("{k} by ingestion time"),
            Some((k, Some(f))) => format!("{k} on `{f}`"),
        }
    }

    /// The column named `name`, compared case-insensitively as BigQuery
    /// does.
    pub fn column(&self, name: &str) -> Option<&LayoutColumn> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// The partition column must be a DATE column of the schema, and every
/// column name must be safe in SQL.
pub(super) fn check_schema(
    target: &Target,
    schema: &TableSchema,
    partition_column: &str,
) -> Result<(), BigQueryError> {
    for c in &schema.columns {
        if !crate::spec::names::is_column_name(&c.name) {
            return Err(BigQueryError::InvalidName {
                what: "column name",
                name: c.name.clone(),
                expected: "letters, digits and `_`, not starting with a digit",
            });
        }
    }
    match schema.get(partition_column) {
        Some(c) if c.kind == ColumnType::Date && !c.repeated => Ok(()),
        Some(c) => Err(BigQueryError::Schema {
            target: target.boxed(),
            message: format!(
                "partition column `{partition_column}` is {}, expected DATE",
                type_label(Some(c.kind), "", c.repeated)
            ),
        }),
        None => Err(BigQueryError::Schema {
            target: target.boxed(),
            message: format!("partition column `{partition_column}` is not in the schema"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::target;
    use super::*;

    #[test]
    fn an_existing_table_gets_only_missing_columns_and_never_a_retype() {
        let existing = vec![
            json!({"name": "_ds", "type": "DATE", "mode": "NULLABLE", "description": "kept"}),
            json!({"name": "n", "type": "INTEGER"}),
            json!({"name": "tags", "type": "STRING", "mode": "REPEATED"}),
        ];
        let wanted = TableSchema::of(&[
            ("_ds", ColumnType::Date, false),
            ("n", ColumnType::Int64, false),
            ("tags", ColumnType::String, true),
            ("new", ColumnType::Json, false),
        ]);
        assert_eq!(
            missing_fields(&target(), &existing, &wanted).unwrap(),
            vec![json!({"name": "new", "type": "JSON", "mode": "NULLABLE"})]
        );

        let retyped = TableSchema::of(&[("n", ColumnType::String, false)]);
        let e = missing_fields(&target(), &existing, &retyped).unwrap_err();
        assert_eq!(
            e.to_string(),
            "column `n` of `p.d.t` day 2020-06-01 is INT64, the rows need STRING: BigQuery cannot change a column's type in place"
        );
        let unrepeated = TableSchema::of(&[("tags", ColumnType::String, false)]);
        assert!(matches!(
            missing_fields(&target(), &existing, &unrepeated),
            Err(BigQueryError::Retype { existing, wanted, .. }) if existing == "REPEATED STRING" && wanted == "STRING"
        ));
    }

    #[test]
    fn partitioning_must_be_day_on_the_column() {
        let t = target();
        assert!(check_partitioning(
            &t,
            &json!({"timePartitioning": {"type": "DAY", "field": "_ds"}}),
            "_ds"
        )
        .is_ok());
        let e = check_partitioning(&t, &json!({"timePartitioning": {"type": "DAY"}}), "_ds")
            .unwrap_err();
        assert_eq!(e.to_string(), "`p.d.t` day 2020-06-01 is partitioned DAY by ingestion time, expected DAY partitioning on `_ds`");
        let e = check_partitioning(&t, &json!({}), "_ds").unwrap_err();
        assert!(e.to_string().contains("partitioned not at all"), "{e}");
    }

    #[test]
    fn column_names_must_be_safe_in_sql_and_hold_the_partition() {
        let bad = TableSchema::of(&[
            ("_ds", ColumnType::Date, false),
            ("a`b", ColumnType::String, false),
        ]);
        assert!(matches!(
            check_schema(&target(), &bad, "_ds"),
            Err(BigQueryError::InvalidName { .. })
        ));
        let no_ds = TableSchema::of(&[("a", ColumnType::String, false)]);
        assert_eq!(
            check_schema(&target(), &no_ds, "_ds")
                .unwrap_err()
                .to_string(),
            "`p.d.t` day 2020-06-01: partition column `_ds` is not in the schema"
        );
    }

    #[test]
    fn legacy_type_names_read_back() {
        for (name, kind) in [
            ("INTEGER", ColumnType::Int64),
            ("FLOAT", ColumnType::Float64),
            ("BOOLEAN", ColumnType::Bool),
            ("BIGNUMERIC", ColumnType::Bignumeric),
            ("STRUCT", ColumnType::Record),
        ] {
            assert_eq!(parse_type(name), Some(kind));
        }
        assert_eq!(parse_type("GEOGRAPHY"), None);
    }
}
