//! The Parquet warehouse end to end on the local stack: documents in
//! FerretDB, `etl run` into a local Parquet dataset, every file read back
//! with the parquet crate.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bson::doc;
use common::stack;

/// A project folder with the stack's `etl.yaml` and one pipeline,
/// `events`, on a database of its own.
struct Project {
    project: common::Project,
    database: String,
}

impl Project {
    async fn on_stack(tag: &str) -> Self {
        stack::mongo().await;
        let database = format!("it_{tag}_{}", std::process::id());
        let mut project = common::Project::with(&["etl.yaml"]);
        project.edit(
            "etl.yaml",
            "?directConnection=true",
            "?directConnection=true&serverSelectionTimeoutMS=2000",
        );
        project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
        let p = Self { project, database };
        p.project.write(
            "pipelines/events.yaml",
            &format!(
                "version: 1
name: events
source: {{ connection: mongo, database: {db}, collection: events }}
partition: {{ field: created_at, kind: date, start_date: \"2020-06-01\" }}
flatten:
  arrays:
    rules:
      - {{ path: $.items, policy: explode, table: events__items }}
sinks:
  lake: {{ connection: lake, path: \"raw/events/dt={{{{ ds }}}}/events.jsonl.gz\" }}
  warehouse: {{ type: parquet, connection: warehouse_files, path: \"{{{{ pipeline }}}}\" }}
",
                db = p.database
            ),
        );
        p
    }

    async fn collection(&self) -> mongodb::Collection<bson::Document> {
        stack::mongo()
            .await
            .database(&self.database)
            .collection("events")
    }

    fn warehouse(&self) -> PathBuf {
        self.project.path().join(".etl/warehouse")
    }

    async fn drop_database(&self) {
        stack::mongo()
            .await
            .database(&self.database)
            .drop()
            .await
            .unwrap();
    }
}

fn at(day: &str, hour: u32) -> bson::DateTime {
    let t = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc();
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// A dataset's files by day, each as (its Arrow schema, its Parquet
/// schema as the footer prints it, its rows). Fails the test on any
/// object in the dataset but `dt=<day>/part-00000.parquet`.
type Files = BTreeMap<String, (arrow_schema::SchemaRef, String, i64)>;

fn dataset_files(dir: &Path) -> Files {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Files::new();
    for (rel, bytes) in common::files_under(dir) {
        let day = rel
            .strip_prefix("dt=")
            .and_then(|r| r.strip_suffix("/part-00000.parquet"))
            .unwrap_or_else(|| panic!("{}: `{rel}` is not a day's Parquet file", dir.display()))
            .to_owned();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let meta = builder.metadata().file_metadata();
        let mut printed = Vec::new();
        parquet::schema::printer::print_schema(&mut printed, meta.schema());
        let rows = meta.num_rows();
        out.insert(
            day,
            (
                builder.schema().clone(),
                String::from_utf8(printed).unwrap(),
                rows,
            ),
        );
    }
    out
}

/// Every file of `files` has the schema of the first: the same columns,
/// types and nullability, in Arrow's terms and in Parquet's.
fn one_schema(name: &str, files: &Files) -> arrow_schema::SchemaRef {
    let (first_day, (arrow, parquet, _)) = files.iter().next().expect("some file");
    for (day, (a, p, _)) in files {
        assert_eq!(
            a.fields(),
            arrow.fields(),
            "`{name}`: the file of {day} has another schema than that of {first_day}"
        );
        assert_eq!(
            p, parquet,
            "`{name}`: the Parquet schemas of {day} and {first_day}"
        );
    }
    arrow.clone()
}

fn columns(schema: &arrow_schema::Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect()
}

fn rows(files: &Files) -> BTreeMap<&str, i64> {
    files
        .iter()
        .map(|(d, (_, _, n))| (d.as_str(), *n))
        .collect()
}

/// Issue 29, part 7 ("one schema per dataset"): a day without documents
/// wrote a file with only `_ds`, and a day without an optional field a
/// file without its column, so a reader taking a dataset's schema from
/// one file missed columns. Every file of a dataset, root and child
/// table, now has the table's whole schema: without a lock, the one the
/// dataset grew to, and with one, the lock's, whatever order the days ran
/// in. A first day without documents, before the dataset has any file,
/// writes none.
#[tokio::test(flavor = "multi_thread")]
async fn issue_29_every_file_of_a_dataset_has_the_table_schema() {
    let p = Project::on_stack("pq_schema").await;
    // The database is the test's own (named by test and process): empty.
    let events = p.collection().await;
    events
        .insert_many([
            // 2020-06-01: nothing. 2020-06-02: every field.
            doc! {"event_id": 1_i64, "created_at": at("2020-06-02", 9), "kind": "click", "score": 3_i64,
                  "note": "first", "meta": {"source": "web"},
                  "items": [{"sku": "A", "qty": 1_i64}, {"sku": "B", "qty": 2_i64, "gift": true}]},
            doc! {"event_id": 2_i64, "created_at": at("2020-06-02", 10), "kind": "view", "score": 5_i64,
                  "note": "second", "meta": {"source": "app"}, "items": [{"sku": "C", "qty": 3_i64}]},
            // 2020-06-03: nothing. 2020-06-04: documents, but no items.
            doc! {"event_id": 3_i64, "created_at": at("2020-06-04", 9), "kind": "click", "score": 1_i64,
                  "note": "no items", "meta": {"source": "web"}, "items": []},
            doc! {"event_id": 4_i64, "created_at": at("2020-06-04", 11), "kind": "view", "score": 2_i64,
                  "note": "none at all", "meta": {"source": "web"}},
            // 2020-06-05: no `note`, no `meta`, `score` null, no `gift`.
            doc! {"event_id": 5_i64, "created_at": at("2020-06-05", 9), "kind": "click", "score": null,
                  "items": [{"sku": "D", "qty": 4_i64}]},
            // 2020-06-06: nothing.
        ])
        .await
        .unwrap();
    let range = ["--start", "2020-06-01", "--end", "2020-06-06"];
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "pipelines/events.yaml"];
        args.extend(range);
        args.extend(extra);
        p.project.ok(&args);
    };

    // Without a lock, days in order: the schema the dataset grew to.
    run(&[]);
    let root_columns = [
        "_ds Date32",
        "_id Utf8",
        "event_id Int64",
        "created_at Timestamp(Microsecond, Some(\"+00:00\"))",
        "kind Utf8",
        "score Int64",
        "note Utf8",
        "meta__source Utf8",
    ];
    // `every_day`: whether each day but the first has its file, as when
    // the days ran in order. Days run at once may each find the dataset
    // without a file yet; a day without rows then writes none either.
    let check = |want_root: &[&str], want_items: &[&str], every_day: bool| {
        let root = dataset_files(&p.warehouse().join("events"));
        let items = dataset_files(&p.warehouse().join("events__items"));
        let root_schema = one_schema("events", &root);
        let items_schema = one_schema("events__items", &items);
        assert_eq!(columns(&root_schema), want_root);
        assert_eq!(columns(&items_schema), want_items);
        for f in root_schema.fields().iter().chain(items_schema.fields()) {
            assert!(f.is_nullable(), "{f:?}");
        }
        for (files, want) in [(&root, [0, 2, 0, 2, 1, 0]), (&items, [0, 3, 0, 0, 1, 0])] {
            let days = [
                "2020-06-01",
                "2020-06-02",
                "2020-06-03",
                "2020-06-04",
                "2020-06-05",
                "2020-06-06",
            ];
            let mut want: BTreeMap<&str, i64> = days.into_iter().zip(want).collect();
            let have = rows(files);
            // In order, the first day ran before any other: the dataset
            // had no file yet, and it wrote none.
            want.retain(|day, n| {
                if every_day {
                    *day != "2020-06-01"
                } else {
                    *n > 0 || have.contains_key(day)
                }
            });
            assert_eq!(have, want);
        }
    };
    let item_columns = [
        "_ds Date32",
        "_root_id Utf8",
        "_idx Int64",
        "sku Utf8",
        "qty Int64",
        "gift Boolean",
    ];
    check(&root_columns, &item_columns, true);
    for table in ["events", "events__items"] {
        assert!(
            !p.warehouse().join(table).join("dt=2020-06-01").exists(),
            "`{table}`: the first day, empty, wrote no file"
        );
    }
    let record = common::ledger_record(p.project.path(), "events", "2020-06-01");
    assert_eq!(record["status"], "done", "{record}");

    // With a lock, days at once, from an empty warehouse: the lock's
    // columns in every file, whichever day came first.
    let mut lock = vec!["schema", "lock", "pipelines/events.yaml"];
    lock.extend(range);
    p.project.ok(&lock);
    std::fs::remove_dir_all(p.warehouse()).unwrap();
    run(&["--rerun", "--parallel", "4"]);
    let lock: serde_json::Value =
        serde_json::from_str(&p.project.read("schemas/tables/events.json")).unwrap();
    let locked = |table: &str| -> Vec<String> {
        lock["tables"][table]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // The lock's order is the lock's; each column's type is the one the
    // days found.
    let typed = |table: &str, found: &[&str]| -> Vec<String> {
        locked(table)
            .iter()
            .map(|name| {
                found
                    .iter()
                    .find(|c| c.split_once(' ').unwrap().0 == name)
                    .unwrap_or_else(|| panic!("`{name}` of the lock is a column found"))
                    .to_string()
            })
            .collect()
    };
    let (root_locked, items_locked) = (
        typed("events", &root_columns),
        typed("events__items", &item_columns),
    );
    assert_eq!(root_locked.len(), root_columns.len(), "{root_locked:?}");
    assert_eq!(items_locked.len(), item_columns.len(), "{items_locked:?}");
    check(
        &root_locked.iter().map(String::as_str).collect::<Vec<_>>(),
        &items_locked.iter().map(String::as_str).collect::<Vec<_>>(),
        false,
    );

    p.drop_database().await;
}
