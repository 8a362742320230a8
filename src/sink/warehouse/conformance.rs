//! The warehouse contract ([`super`]) as a suite any implementation runs:
//! `conformance::run(&warehouse, &table, scratch).await` panics, naming
//! the clause, at the first one it breaks. It runs in the Parquet unit
//! tests and in `tests/stack_bigquery.rs` against the emulator.
//!
//! The table is created with `_ds DATE, id INT64, name STRING`,
//! partitioned on `_ds`, and days 2020-06-01 and 2020-06-02 are written;
//! give it a table no one else uses.

use std::path::Path;

use chrono::NaiveDate;

use super::{DayRows, ReadRows, Table, Warehouse};
use crate::spec::ColumnType;
use crate::table::{Column, TableSchema};

/// The suite's table: `_ds`, `id`, `name`, and `note` when `widened`.
pub fn schema(widened: bool) -> TableSchema {
    let mut schema = TableSchema::of(&[
        ("_ds", ColumnType::Date),
        ("id", ColumnType::Int64),
        ("name", ColumnType::String),
    ]);
    if widened {
        schema.columns.push(Column::new("note", ColumnType::String));
    }
    schema
}

/// Writes `lines` (rows in the format of [`crate::table`]) as the Parquet
/// file `name` in `scratch`, for rows of `schema`; the rows it claims are
/// `claimed`, or the lines when None.
pub fn rows(
    scratch: &Path,
    name: &str,
    schema: &TableSchema,
    lines: &[String],
    claimed: Option<u64>,
) -> DayRows {
    let ndjson = scratch.join(format!("{name}.ndjson"));
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&ndjson, text).unwrap_or_else(|e| panic!("{}: {e}", ndjson.display()));
    let parquet = scratch.join(format!("{name}.parquet"));
    let day = "2020-06-01".parse().expect("a date");
    let encoded = crate::sink::parquet::write_local(&ndjson, schema, &parquet, day)
        .unwrap_or_else(|e| panic!("{}: {e}", ndjson.display()));
    assert_eq!(encoded, lines.len() as u64, "{name}: every line is a row");
    DayRows {
        parquet,
        rows: claimed.unwrap_or(encoded),
    }
}

fn users(day: NaiveDate, ids: &[i64]) -> Vec<String> {
    ids.iter()
        .map(|id| format!(r#"{{"_ds":"{day}","id":{id},"name":"user {id}"}}"#))
        .collect()
}

/// Clauses a stand-in for a warehouse cannot keep, so the suite leaves
/// them out; a real warehouse leaves out nothing ([`Skip::NOTHING`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Skip {
    /// Loading rows into a column that [`Warehouse::prepare`] added:
    /// bigquery-emulator's `tables.patch` changes the table's metadata
    /// only, so its SQL then finds no such column and loads fail unless
    /// they name the old columns alone (real BigQuery adds the column).
    pub loads_into_added_columns: bool,
}

impl Skip {
    /// Every clause runs.
    pub const NOTHING: Skip = Skip {
        loads_into_added_columns: false,
    };
}

/// Runs every clause of the contract against `warehouse`, but those
/// `skip` names.
pub async fn run(warehouse: &dyn Warehouse, table: &Table, scratch: &Path, skip: Skip) {
    let d1: NaiveDate = "2020-06-01".parse().expect("a date");
    let d2: NaiveDate = "2020-06-02".parse().expect("a date");
    let narrow = schema(false);

    for _ in 0..2 {
        warehouse
            .prepare(table, &narrow)
            .await
            .unwrap_or_else(|e| panic!("prepare must be idempotent: {e}"));
    }

    let three = rows(scratch, "three", &narrow, &users(d1, &[1, 2, 3]), None);
    let n = warehouse.replace_day(table, d1, &three, &narrow).await;
    assert_eq!(
        n.expect("replace 3 rows"),
        3,
        "replace_day returns the rows the day holds"
    );
    assert_eq!(
        count(warehouse, table, d1).await,
        3,
        "count_day after a replace"
    );

    let two = rows(scratch, "two", &narrow, &users(d1, &[4, 5]), None);
    for attempt in ["a replace", "a rerun of it"] {
        let n = warehouse.replace_day(table, d1, &two, &narrow).await;
        assert_eq!(
            n.expect("replace 2 rows"),
            2,
            "after {attempt}, the day holds the new rows only: replaced, not appended"
        );
    }

    assert!(
        read(warehouse, table, d2, 10).await.rows.is_empty(),
        "a day never loaded reads as no rows"
    );
    let back = read(warehouse, table, d1, 10).await;
    assert_eq!(
        back.columns,
        ["_ds", "id", "name"],
        "read_day gives the table's columns in order"
    );
    assert_eq!(
        back.rows,
        parsed(&users(d1, &[4, 5])),
        "read_day gives back the rows the replace loaded, as they were loaded"
    );
    assert_eq!(
        read(warehouse, table, d1, 1).await.rows,
        parsed(&users(d1, &[4])),
        "read_day stops at its limit, in the key order"
    );

    let other = rows(scratch, "other", &narrow, &users(d2, &[7]), None);
    let n = warehouse.replace_day(table, d2, &other, &narrow).await;
    assert_eq!(n.expect("replace another day"), 1);
    assert_eq!(
        count(warehouse, table, d1).await,
        2,
        "replacing a day leaves the others alone"
    );
    let wanted = ["4", "7", "99"].map(str::to_owned).into();
    let found = warehouse
        .days_holding(table, "id", &wanted)
        .await
        .unwrap_or_else(|e| panic!("days_holding: {e}"));
    if let Some(found) = found {
        assert_eq!(
            found,
            [("4".to_owned(), [d1].into()), ("7".to_owned(), [d2].into())].into(),
            "days_holding finds the day of each value the table holds, by its text, and no other"
        );
    }

    // A file whose `id` is text: written for another table, or by a bug.
    let text_ids = TableSchema::of(&[
        ("_ds", ColumnType::Date),
        ("id", ColumnType::String),
        ("name", ColumnType::String),
    ]);
    let broken = rows(
        scratch,
        "broken",
        &text_ids,
        &[format!(r#"{{"_ds":"{d1}","id":"eight","name":"user 8"}}"#)],
        None,
    );
    let e = warehouse
        .replace_day(table, d1, &broken, &narrow)
        .await
        .expect_err("rows whose values do not fit the columns are refused");
    assert!(!e.is_transient(), "bad rows are not worth a retry: {e}");
    assert_eq!(
        count(warehouse, table, d1).await,
        2,
        "a failed replace leaves the day as it was"
    );

    let claims_more = rows(scratch, "claims", &narrow, &users(d1, &[9]), Some(5));
    let n = warehouse
        .replace_day(table, d1, &claims_more, &narrow)
        .await;
    assert_eq!(
        n.expect("replace 1 row"),
        1,
        "the count returned is read back from the target, not the rows claimed"
    );

    let wide = schema(true);
    warehouse
        .prepare(table, &wide)
        .await
        .unwrap_or_else(|e| panic!("prepare widens a table by a column: {e}"));
    if let Some(now) = warehouse.schema(table).await.expect("the table's schema") {
        for c in &wide.columns {
            assert!(
                now.get(&c.name).is_some(),
                "column `{}` after widening: {now:?}",
                c.name
            );
        }
    }
    if skip.loads_into_added_columns {
        // Rows load into the columns the table had.
        let n = warehouse
            .replace_day(table, d1, &claims_more, &narrow)
            .await;
        assert_eq!(n.expect("replace after widening"), 1);
    } else {
        let noted = rows(
            scratch,
            "noted",
            &wide,
            &[format!(
                r#"{{"_ds":"{d1}","id":10,"name":"user 10","note":"new"}}"#
            )],
            None,
        );
        let n = warehouse.replace_day(table, d1, &noted, &wide).await;
        assert_eq!(n.expect("replace with the new column"), 1);
    }

    let empty = rows(scratch, "empty", &wide, &[], None);
    let n = warehouse.replace_day(table, d1, &empty, &wide).await;
    assert_eq!(n.expect("replace with no rows"), 0, "no rows empty the day");
    assert_eq!(count(warehouse, table, d1).await, 0);
    assert_eq!(
        count(warehouse, table, d2).await,
        1,
        "emptying a day leaves the others alone"
    );
}

async fn count(warehouse: &dyn Warehouse, table: &Table, day: NaiveDate) -> u64 {
    warehouse
        .count_day(table, day)
        .await
        .unwrap_or_else(|e| panic!("count_day {day}: {e}"))
}

async fn read(warehouse: &dyn Warehouse, table: &Table, day: NaiveDate, limit: usize) -> ReadRows {
    warehouse
        .read_day(table, day, &["id"], limit)
        .await
        .unwrap_or_else(|e| panic!("read_day {day}: {e}"))
}

/// NDJSON lines as the objects `read_day` returns.
fn parsed(lines: &[String]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a row is a JSON object"))
        .collect()
}
