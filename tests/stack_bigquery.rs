//! `sink::bigquery` against bigquery-emulator: table creation and schema
//! growth, partition replacement in staging mode, every column type through
//! a load job, and load errors. The decorator mode is checked on the
//! request it sends, because the emulator takes `t$20200601` as a literal
//! table name. Tests use tables named after the process id and drop them;
//! they fail, never skip, when the emulator is down.

mod common;

use std::path::PathBuf;

use chrono::NaiveDate;
use common::stack::{self, Emulator};
use etl::sink::bigquery::{decorator_load_job, BigQueryError, BigQuerySink};
use etl::spec::{ColumnType, ReplaceMode};
use etl::table::{Column, TableSchema};
use serde_json::{json, Value};

fn day(d: &str) -> NaiveDate {
    d.parse().unwrap()
}

/// A table name no other test or run uses.
fn unique(tag: &str) -> String {
    format!("bq_{tag}_{}", std::process::id())
}

/// The emulator, the sink on it, the stack's dataset, and a table name
/// no other test or run uses, dropped if a run before left it.
async fn fresh_table(tag: &str) -> (Emulator, BigQuerySink, &'static str, String) {
    let emu = Emulator::require().await;
    let table = unique(tag);
    emu.drop_table(stack::BQ_DATASET, &table).await;
    (emu, sink().await, stack::BQ_DATASET, table)
}

/// The staging tables of `table` still in the dataset (each attempt of a
/// day loads into one of its own, `{table}__staging_{YYYYMMDD}_{id}`).
async fn staging_tables(emu: &Emulator, ds: &str, table: &str) -> Vec<String> {
    let prefix = format!("{table}__staging_");
    let mut names = emu.table_names(ds).await;
    assert!(
        names.iter().any(|n| n == table),
        "{table} not listed: {names:?}"
    );
    names.retain(|n| n.starts_with(&prefix));
    names
}

/// The sink on the emulator.
async fn sink() -> BigQuerySink {
    BigQuerySink::connect(stack::BQ_PROJECT, None, Some(&stack::bq_endpoint()), None)
        .await
        .unwrap()
}

/// `rows` (in the row format of `etl::table`) as the Parquet file a run
/// loads, `{name}.parquet`, for rows of `schema`: the warehouse contract's
/// own rows files.
fn rows_file(
    dir: &tempfile::TempDir,
    name: &str,
    schema: &TableSchema,
    rows: &[Value],
) -> (PathBuf, u64) {
    let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
    let day = etl::sink::warehouse::conformance::rows(dir.path(), name, schema, &lines, None);
    (day.parquet, day.rows)
}

#[tokio::test]
async fn ensure_table_creates_a_partitioned_clustered_table_then_adds_columns() {
    let emu = Emulator::require().await;
    let sink = sink().await;
    // A dataset of its own, so its creation is covered too.
    let dataset = unique("ds");
    let table = "events";
    emu.drop_dataset(&dataset).await;

    let v1 = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("id", ColumnType::Int64, false),
        ("name", ColumnType::String, false),
        ("tags", ColumnType::String, true),
    ]);
    let clustering = vec!["id".to_owned(), "name".to_owned()];
    let created = sink
        .ensure_table(&dataset, table, &v1, "_ds", &clustering)
        .await;
    let (_, first) = emu.table(&dataset, table).await;

    let mut v2 = v1.clone();
    v2.columns.push(Column::new("amount", ColumnType::Numeric));
    let grown = sink
        .ensure_table(&dataset, table, &v2, "_ds", &clustering)
        .await;
    let (_, second) = emu.table(&dataset, table).await;
    let again = sink
        .ensure_table(&dataset, table, &v2, "_ds", &clustering)
        .await;
    let read_back = sink.table_schema(&dataset, table).await;
    let missing = sink.table_schema(&dataset, "no_such_table").await;

    let mut retyped = v2.clone();
    retyped.columns[1].kind = ColumnType::String;
    let retype = sink
        .ensure_table(&dataset, table, &retyped, "_ds", &clustering)
        .await;
    emu.drop_dataset(&dataset).await;

    created.unwrap();
    assert_eq!(
        first["timePartitioning"],
        json!({"type": "DAY", "field": "_ds"})
    );
    assert_eq!(first["clustering"], json!({"fields": ["id", "name"]}));
    assert_eq!(
        first["schema"]["fields"],
        json!([
            {"name": "_ds", "type": "DATE", "mode": "NULLABLE"},
            {"name": "id", "type": "INT64", "mode": "NULLABLE"},
            {"name": "name", "type": "STRING", "mode": "NULLABLE"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        ])
    );
    grown.unwrap();
    again.unwrap();
    assert_eq!(
        second["schema"]["fields"][4],
        json!({"name": "amount", "type": "NUMERIC", "mode": "NULLABLE"})
    );
    assert_eq!(second["schema"]["fields"].as_array().unwrap().len(), 5);
    assert_eq!(
        second["timePartitioning"], first["timePartitioning"],
        "a patch keeps the partitioning"
    );
    assert_eq!(read_back.unwrap(), Some(v2));
    assert_eq!(missing.unwrap(), None);
    match retype {
        Err(e @ BigQueryError::Retype { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("column `id`") && msg.contains("INT64") && msg.contains("STRING"),
                "{msg}"
            );
            assert!(msg.contains(&format!("{dataset}.{table}")), "{msg}");
        }
        other => panic!("expected a retype error, got {other:?}"),
    }
}

#[tokio::test]
async fn staging_mode_replaces_one_day_and_leaves_the_others() {
    let (emu, sink, ds, table) = fresh_table("staging").await;
    let s = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("id", ColumnType::Int64, false),
        ("tags", ColumnType::String, true),
    ]);
    sink.ensure_table(ds, &table, &s, "_ds", &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (day("2020-06-01"), day("2020-06-02"));
    let row = |d: &str, id: i64| json!({"_ds": d, "id": id, "tags": ["a", "b"]});

    let mut counts = Vec::new();
    let replace = |file: (PathBuf, u64), d: NaiveDate| {
        let (sink, s, table) = (&sink, &s, &table);
        async move {
            sink.replace_partition(
                ds,
                table,
                d,
                &file.0,
                file.1,
                s,
                "_ds",
                ReplaceMode::Staging,
            )
            .await
            .unwrap()
        }
    };
    let loaded_1 = replace(
        rows_file(
            &dir,
            "a",
            &s,
            &[
                row("2020-06-01", 1),
                row("2020-06-01", 2),
                row("2020-06-01", 3),
            ],
        ),
        d1,
    )
    .await;
    let loaded_2 = replace(
        rows_file(&dir, "b", &s, &[row("2020-06-02", 4), row("2020-06-02", 5)]),
        d2,
    )
    .await;
    counts.push((
        sink.count_partition(ds, &table, d1, "_ds").await.unwrap(),
        sink.count_partition(ds, &table, d2, "_ds").await.unwrap(),
    ));

    // The same day again, with one row: replaced, not appended.
    let reloaded = replace(rows_file(&dir, "c", &s, &[row("2020-06-01", 9)]), d1).await;
    counts.push((
        sink.count_partition(ds, &table, d1, "_ds").await.unwrap(),
        sink.count_partition(ds, &table, d2, "_ds").await.unwrap(),
    ));
    let ids = emu
        .query(&format!(
            "SELECT id, ARRAY_LENGTH(tags) FROM `{}.{ds}.{table}` WHERE _ds = DATE '2020-06-01'",
            stack::BQ_PROJECT
        ))
        .await;

    // Upstream deleted the day: an empty file empties the partition.
    let emptied = replace(rows_file(&dir, "d", &s, &[]), d1).await;
    counts.push((
        sink.count_partition(ds, &table, d1, "_ds").await.unwrap(),
        sink.count_partition(ds, &table, d2, "_ds").await.unwrap(),
    ));

    let staging = staging_tables(&emu, ds, &table).await;
    emu.drop_table(ds, &table).await;

    assert_eq!(
        (loaded_1, loaded_2, reloaded, emptied),
        (3, 2, 1, 0),
        "replace_partition returns the day's rows"
    );
    assert_eq!(counts, vec![(3, 2), (1, 2), (0, 2)]);
    assert_eq!(ids, vec![vec![json!("9"), json!("2")]]);
    assert_eq!(
        staging,
        Vec::<String>::new(),
        "the staging tables are dropped"
    );
}

/// `repeated` arrays of objects: a REPEATED RECORD column is created,
/// loaded, queried, and grows a field on a later day.
#[tokio::test]
async fn repeated_records_load_and_grow_fields() {
    let (emu, sink, ds, table) = fresh_table("records").await;
    let lines = |fields: &[(&str, ColumnType)]| Column {
        name: "lines".into(),
        kind: ColumnType::Record,
        repeated: true,
        fields: fields.iter().map(|(n, k)| Column::new(*n, *k)).collect(),
    };
    let mut s = TableSchema::of(&[("_ds", ColumnType::Date, false)]);
    s.columns.push(lines(&[
        ("sku", ColumnType::String),
        ("qty", ColumnType::Int64),
    ]));
    sink.ensure_table(ds, &table, &s, "_ds", &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d1 = day("2020-06-01");
    let file = rows_file(
        &dir,
        "a",
        &s,
        &[
            json!({"_ds": "2020-06-01", "lines": [{"sku": "a", "qty": 2}, {"sku": "b"}]}),
            json!({"_ds": "2020-06-01"}),
        ],
    );
    let loaded = sink
        .replace_partition(
            ds,
            &table,
            d1,
            &file.0,
            file.1,
            &s,
            "_ds",
            ReplaceMode::Staging,
        )
        .await
        .unwrap();
    // Whole records, not `UNNEST(lines) AS l` and `l.sku`: the emulator
    // stores RECORD fields in Go map order, so field access after UNNEST
    // reads the wrong field at random (goccy/bigquery-emulator#483, open).
    // TO_JSON_STRING reads them by name.
    let items = emu
        .query(&format!(
            "SELECT TO_JSON_STRING(lines) FROM `{}.{ds}.{table}` WHERE ARRAY_LENGTH(lines) > 0",
            stack::BQ_PROJECT
        ))
        .await;

    // A later day's objects have a new key: the RECORD gains a field.
    let mut grown = TableSchema::of(&[("_ds", ColumnType::Date, false)]);
    grown.columns.push(lines(&[
        ("sku", ColumnType::String),
        ("qty", ColumnType::Int64),
        ("note", ColumnType::String),
    ]));
    sink.ensure_table(ds, &table, &grown, "_ds", &[])
        .await
        .unwrap();
    let after = sink.table_schema(ds, &table).await.unwrap().unwrap();
    emu.drop_table(ds, &table).await;

    assert_eq!(loaded, 2);
    assert_eq!(items.len(), 1, "{items:?}");
    // Parsed, because the emulator's TO_JSON_STRING writes a RECORD's keys
    // in Go map order too, which changes from run to run.
    let record: serde_json::Value =
        serde_json::from_str(items[0][0].as_str().expect("a JSON string")).unwrap();
    assert_eq!(
        record,
        // As BigQuery writes them: INT64 a number, a NULL field `null`.
        json!([{"sku": "a", "qty": 2}, {"sku": "b", "qty": null}])
    );
    assert_eq!(after, grown, "the RECORD's new field is added in place");
}

#[tokio::test]
async fn every_column_type_round_trips_through_a_load() {
    let (emu, sink, ds, table) = fresh_table("types").await;
    let s = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("i", ColumnType::Int64, false),
        ("f", ColumnType::Float64, false),
        ("n", ColumnType::Numeric, false),
        ("bn", ColumnType::Bignumeric, false),
        ("ts", ColumnType::Timestamp, false),
        ("d", ColumnType::Date, false),
        ("b", ColumnType::Bytes, false),
        ("ok", ColumnType::Bool, false),
        ("s", ColumnType::String, false),
        ("j", ColumnType::Json, false),
        ("tags", ColumnType::String, true),
        ("nums", ColumnType::Int64, true),
    ]);
    sink.ensure_table(ds, &table, &s, "_ds", &[]).await.unwrap();
    // The row format of `etl::table`: INT64 as an exact JSON number,
    // NUMERIC as a string, TIMESTAMP in microseconds, BYTES as base64, JSON
    // as a string holding JSON text, and a missing key for NULL.
    let full = json!({
        "_ds": "2020-06-01",
        "i": 9_007_199_254_740_993_i64, // 2^53 + 1: not a double
        "f": 0.1,
        "n": "12345678901234567890.123456789",
        "bn": "-0.00000000000000000000000000000000000001",
        "ts": "2020-06-01T12:34:56.123456Z",
        "d": "1999-12-31",
        "b": "AAEC/w==",
        "ok": true,
        "s": "Zoë 李雷 🚀 \"quoted\"\ttab",
        "j": "{\"a\":[1,2],\"b\":null}",
        "tags": ["x", "y"],
        "nums": [i64::MIN, i64::MAX],
    });
    let empty = json!({"_ds": "2020-06-01", "i": 0});
    let dir = tempfile::tempdir().unwrap();
    let (file, rows) = rows_file(&dir, "types", &s, &[full, empty]);
    let loaded = sink
        .replace_partition(
            ds,
            &table,
            day("2020-06-01"),
            &file,
            rows,
            &s,
            "_ds",
            ReplaceMode::Staging,
        )
        .await;

    let fq = format!("`{}.{ds}.{table}`", stack::BQ_PROJECT);
    let raw = emu
        .query(&format!(
            "SELECT i, f, n, bn, d, ok, s, tags, nums FROM {fq} ORDER BY i DESC"
        ))
        .await;
    // Representations that differ between BigQuery and the emulator are
    // compared through SQL.
    let computed = emu
        .query(&format!(
            "SELECT UNIX_MICROS(ts), TO_BASE64(b), TO_JSON_STRING(j), JSON_VALUE(j, '$.a[1]'), i = 9007199254740993, j IS NULL \
             FROM {fq} ORDER BY i DESC"
        ))
        .await;
    emu.drop_table(ds, &table).await;

    assert_eq!(loaded.unwrap(), 2);
    let cells = |vs: &[&str]| vs.iter().map(|v| json!(v)).collect::<Vec<_>>();
    let f = &raw[0];
    assert_eq!(f[0], json!("9007199254740993"));
    assert_eq!(f[1].as_str().unwrap().parse::<f64>().unwrap(), 0.1);
    // The file holds NUMERIC as DECIMAL(38, 9) and BIGNUMERIC as
    // DECIMAL(76, 38), which BigQuery loads exactly (the values are
    // checked in the file by `sink::warehouse::parquet`'s tests).
    // bigquery-emulator v0.8.1 reads a Parquet DECIMAL as 0: its loader
    // hands the decimal's raw bytes to SQLite. NDJSON carried them as text.
    for (at, exact) in [
        (2, "12345678901234567890.123456789"),
        (3, "-0.00000000000000000000000000000000000001"),
    ] {
        assert!(
            f[at] == json!(exact) || f[at] == json!("0"),
            "decimal read back as {}",
            f[at]
        );
    }
    assert_eq!(
        f[4..7],
        cells(&["1999-12-31", "true", "Zoë 李雷 🚀 \"quoted\"\ttab"])[..]
    );
    assert_eq!(f[7], json!([{"v": "x"}, {"v": "y"}]));
    assert_eq!(
        f[8],
        json!([{"v": i64::MIN.to_string()}, {"v": i64::MAX.to_string()}])
    );
    let c = &computed[0];
    assert_eq!(c[0], json!("1591014896123456"));
    // The file holds the bytes themselves (Parquet BYTE_ARRAY, no UTF8
    // annotation), which BigQuery loads into BYTES as they are: this reads
    // `AAEC/w==`. bigquery-emulator v0.8.1 reads them as a string, so a
    // byte that is not UTF-8 (0xff here) comes back as U+FFFD.
    assert!(
        c[1] == json!("AAEC/w==") || c[1] == json!("AAEC77+9"),
        "BYTES read back as {}",
        c[1]
    );
    // The emulator supports JSON columns and parses the string into JSON.
    assert_eq!(
        c[2..6],
        cells(&["{\"a\":[1,2],\"b\":null}", "2", "true", "false"])[..]
    );

    // Missing keys are NULL; a missing REPEATED column is an empty array.
    let e = &raw[1];
    assert_eq!(e[0], json!("0"));
    assert!(e[1..7].iter().all(Value::is_null), "{e:?}");
    assert_eq!(e[7..9], [json!([]), json!([])]);
    let n = &computed[1];
    assert!(n[0].is_null() && n[1].is_null() && n[3].is_null(), "{n:?}");
    // A NULL in the file is SQL NULL, not JSON null; its TO_JSON_STRING
    // is `null` (from an NDJSON load the emulator gave SQL NULL there).
    assert_eq!(
        n[2..],
        [json!("null"), Value::Null, json!("false"), json!("true")],
        "a NULL JSON value read back as {n:?}"
    );
}

#[test]
fn decorator_load_job_truncates_one_partition() {
    // bigquery-emulator takes `t$20200601` as a literal table name, so this
    // mode is tested on the request it sends.
    let s = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("id", ColumnType::Int64, false),
        ("tags", ColumnType::String, true),
    ]);
    let job = decorator_load_job(
        "etl-prod",
        "shop",
        "t",
        day("2020-06-01"),
        &s,
        "_ds",
        &["id".to_owned()],
    );
    assert_eq!(
        job,
        json!({"configuration": {"load": {
            "destinationTable": {"projectId": "etl-prod", "datasetId": "shop", "tableId": "t$20200601"},
            "sourceFormat": "PARQUET",
            "parquetOptions": {"enableListInference": true},
            "writeDisposition": "WRITE_TRUNCATE",
            "createDisposition": "CREATE_NEVER",
            "schema": {"fields": [
                {"name": "_ds", "type": "DATE", "mode": "NULLABLE"},
                {"name": "id", "type": "INT64", "mode": "NULLABLE"},
                {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            ]},
            "timePartitioning": {"type": "DAY", "field": "_ds"},
            "clustering": {"fields": ["id"]},
        }}})
    );
    let unclustered = decorator_load_job("p", "d", "t", day("2020-12-31"), &s, "_ds", &[]);
    assert_eq!(
        unclustered["configuration"]["load"]["destinationTable"]["tableId"],
        "t$20201231"
    );
    assert!(unclustered["configuration"]["load"]
        .get("clustering")
        .is_none());
}

#[tokio::test]
async fn a_row_that_does_not_fit_fails_naming_table_and_day() {
    let (emu, sink, ds, table) = fresh_table("badrow").await;
    let s = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("id", ColumnType::Int64, false),
    ]);
    sink.ensure_table(ds, &table, &s, "_ds", &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = day("2020-06-01");
    let (good, n) = rows_file(
        &dir,
        "good",
        &s,
        &[
            json!({"_ds": "2020-06-01", "id": 1}),
            json!({"_ds": "2020-06-01", "id": 2}),
        ],
    );
    sink.replace_partition(ds, &table, d, &good, n, &s, "_ds", ReplaceMode::Staging)
        .await
        .unwrap();

    // A file whose `id` is text, as a Parquet file written for another
    // table would be: the load fails on the row that does not convert.
    let text_ids = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("id", ColumnType::String, false),
    ]);
    let (bad, n) = rows_file(
        &dir,
        "bad",
        &text_ids,
        &[
            json!({"_ds": "2020-06-01", "id": "3"}),
            json!({"_ds": "2020-06-01", "id": "three"}),
        ],
    );
    let err = sink
        .replace_partition(ds, &table, d, &bad, n, &s, "_ds", ReplaceMode::Staging)
        .await;
    let after = sink.count_partition(ds, &table, d, "_ds").await;
    let staging = staging_tables(&emu, ds, &table).await;
    let missing = sink
        .replace_partition(
            ds,
            &table,
            d,
            &dir.path().join("nope.parquet"),
            1,
            &s,
            "_ds",
            ReplaceMode::Staging,
        )
        .await;
    emu.drop_table(ds, &table).await;

    let err = err.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&table) && msg.contains("2020-06-01"), "{msg}");
    assert!(!err.is_transient(), "a bad row is not worth a retry: {msg}");
    assert_eq!(after.unwrap(), 2, "a failed load leaves the day as it was");
    assert_eq!(
        staging,
        Vec::<String>::new(),
        "the staging table is dropped after a failure too"
    );
    let missing = missing.unwrap_err().to_string();
    assert!(
        missing.contains("nope.parquet") && missing.contains("2020-06-01"),
        "{missing}"
    );
}

/// What staging mode's atomicity rests on in the emulator: `BEGIN` and
/// `COMMIT TRANSACTION` are no-ops there, but one `jobs.query` request runs
/// in one SQLite transaction that is rolled back when a statement fails.
/// (Its `jobs.insert` commits the statements before a failure, and its
/// `jobs.get` then reports the job DONE without the error, which is why
/// the sink sends scripts through `jobs.query`.) If an emulator upgrade
/// changes this, staging mode is no longer atomic there.
#[tokio::test]
async fn the_emulator_rolls_back_a_failing_script() {
    let (emu, sink, ds, table) = fresh_table("rollback").await;
    let s = TableSchema::of(&[
        ("_ds", ColumnType::Date, false),
        ("id", ColumnType::Int64, false),
    ]);
    sink.ensure_table(ds, &table, &s, "_ds", &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (file, n) = rows_file(
        &dir,
        "two",
        &s,
        &[
            json!({"_ds": "2020-06-01", "id": 1}),
            json!({"_ds": "2020-06-01", "id": 2}),
        ],
    );
    sink.replace_partition(
        ds,
        &table,
        day("2020-06-01"),
        &file,
        n,
        &s,
        "_ds",
        ReplaceMode::Staging,
    )
    .await
    .unwrap();

    let fq = format!("`{}.{ds}.{table}`", stack::BQ_PROJECT);
    let script = format!(
        "BEGIN TRANSACTION; DELETE FROM {fq} WHERE `_ds` = DATE '2020-06-01'; \
         INSERT INTO {fq} (`_ds`, `id`) SELECT DATE '2020-06-01', CAST('x' AS INT64); COMMIT TRANSACTION;"
    );
    let (status, resp) = emu
        .send(
            reqwest::Method::POST,
            "queries",
            Some(json!({"query": script, "useLegacySql": false})),
        )
        .await;
    let after = sink
        .count_partition(ds, &table, day("2020-06-01"), "_ds")
        .await;
    emu.drop_table(ds, &table).await;

    assert_eq!(status, 400, "{resp}");
    assert_eq!(
        after.unwrap(),
        2,
        "the DELETE before the failing INSERT is rolled back"
    );
}

/// The warehouse contract (`etl::sink::warehouse::conformance`) on the
/// emulator, through the BigQuery warehouse the engine uses: the same
/// suite the Parquet datasets pass in the unit tests.
#[tokio::test]
async fn the_warehouse_contract_holds_on_bigquery() {
    use etl::sink::warehouse::{bigquery::BigQuery, conformance, Table};
    let (emu, sink, ds, name) = fresh_table("contract").await;
    let warehouse = BigQuery::new(sink, "_ds", &[], ReplaceMode::Staging);
    let table = Table {
        dataset: ds.to_owned(),
        name: name.clone(),
        root: true,
    };
    let scratch = tempfile::tempdir().unwrap();
    // The emulator's tables.patch leaves its SQL table without the added
    // column (docs/local-stack.md); the widening itself is still checked.
    let skip = conformance::Skip {
        loads_into_added_columns: true,
    };
    conformance::run(&warehouse, &table, scratch.path(), skip).await;
    emu.drop_table(ds, &name).await;
}
