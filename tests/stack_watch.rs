//! `etl watch` and `etl run --dirty` on the fast server (mongo-java-server
//! with its oplog on: FerretDB has no change streams), into Parquet and a
//! local lake. After a backfill, documents of past days are inserted,
//! updated, deleted and moved to another day while the watcher runs; the
//! state store must mark exactly those days, a watcher killed between
//! changes must lose no mark, and `etl run --dirty` must make every day of
//! the warehouse equal MongoDB again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bson::{doc, oid::ObjectId, Document};
use chrono::NaiveDate;
use common::{stack, Project};

const SPEC: &str = r#"version: 1
source: { connection: mongo, database: DB, collection: orders }
partition: { field: created_at, kind: date, start_date: "2020-06-01" }
sinks:
  lake:
    connection: lake
    path: "raw/orders/dt={{ ds }}/orders.jsonl.gz"
  warehouse:
    type: parquet
    connection: warehouse_files
    path: orders
"#;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn at(day: &str, hour: u32) -> bson::DateTime {
    bson::DateTime::parse_rfc3339_str(format!("{day}T{hour:02}:00:00Z")).unwrap()
}

/// A project on the fast server whose `orders` spec reads `database`.
fn project(database: &str, today: &str) -> Project {
    let mut p = Project::with(&["etl.yaml"]);
    p.write("pipelines/orders.yaml", &SPEC.replace("DB", database));
    p.set_env("ETL_PROFILE", "fast");
    p.set_env("ETL_MONGO_FAST_PORT", &stack::mongo_fast_port().to_string());
    p.set_env("ETL_TODAY", today);
    p
}

/// The days with marks in the project's state store, and the marks.
fn dirty_days(p: &Project) -> BTreeMap<NaiveDate, usize> {
    let dir = p.path().join(".etl/state/dirty/orders");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            let day: NaiveDate = e.file_name().to_str().unwrap().parse().unwrap();
            (day, std::fs::read_dir(e.path()).unwrap().count())
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Waits until `done` holds, for at most `limit`; how long it took. The
/// watcher's log `log` is shown on failure.
fn wait_for(limit: Duration, what: &str, log: &Path, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; the watcher's log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// `etl watch` in the background, its stderr in `log`; returns once it
/// says it watches.
fn start_watcher(p: &Project, log: &Path) -> Child {
    let _ = std::fs::remove_file(log);
    let child = p
        .command(&["watch", "pipelines/orders.yaml", "--batch-wait-ms", "200"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the watcher starts", log, || {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("watching changes"))
    });
    child
}

/// Per day, the `_id` and `total` of each row of the Parquet dataset.
fn warehouse(p: &Project) -> BTreeMap<NaiveDate, BTreeMap<String, i64>> {
    use parquet::file::reader::FileReader;
    use parquet::record::Field;
    let root = p.path().join(".etl/warehouse/orders");
    let mut out = BTreeMap::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap();
        let name = dir.file_name().to_str().unwrap().to_owned();
        let d: NaiveDate = name.strip_prefix("dt=").unwrap().parse().unwrap();
        let rows: &mut BTreeMap<String, i64> = out.entry(d).or_default();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let file = std::fs::File::open(f.unwrap().path()).unwrap();
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
            for row in reader.get_row_iter(None).unwrap() {
                let row = row.unwrap();
                let (mut id, mut total) = (String::new(), 0);
                for (name, field) in row.get_column_iter() {
                    match (name.as_str(), field) {
                        ("_id", Field::Str(s)) => id = s.clone(),
                        ("total", Field::Long(n)) => total = *n,
                        _ => {}
                    }
                }
                rows.insert(id, total);
            }
        }
    }
    out
}

/// The same, from MongoDB, for the days `days`.
async fn source(
    orders: &mongodb::Collection<Document>,
    days: &[NaiveDate],
) -> BTreeMap<NaiveDate, BTreeMap<String, i64>> {
    let mut out: BTreeMap<NaiveDate, BTreeMap<String, i64>> =
        days.iter().map(|d| (*d, BTreeMap::new())).collect();
    let mut cursor = orders.find(doc! {}).batch_size(500).await.unwrap();
    while cursor.advance().await.unwrap() {
        let d = cursor.deserialize_current().unwrap();
        let created = d.get_datetime("created_at").unwrap().timestamp_millis();
        let created = chrono::DateTime::from_timestamp_millis(created)
            .unwrap()
            .date_naive();
        if let Some(rows) = out.get_mut(&created) {
            rows.insert(
                d.get_object_id("_id").unwrap().to_hex(),
                d.get_i64("total").unwrap(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_marks_exactly_the_changed_days_and_run_dirty_makes_the_warehouse_equal_mongodb() {
    let client = stack::mongo_fast().await;
    let database = format!("it_watch_{}", std::process::id());
    let orders = client.database(&database).collection::<Document>("orders");
    let days: Vec<NaiveDate> = (1..=6).map(|d| day(&format!("2020-06-0{d}"))).collect();
    let mut docs = Vec::new();
    for (i, d) in days.iter().enumerate() {
        for n in 0..5 {
            docs.push(doc! {
                "_id": ObjectId::new(),
                "created_at": at(&d.to_string(), 8 + n),
                "total": (i * 100 + n as usize) as i64,
            });
        }
    }
    orders.insert_many(&docs).await.unwrap();
    let p = project(&database, "2020-06-08");
    let out = p.ok(&["run", "pipelines/orders.yaml"]);
    assert!(out.contains("7 done, 0 skipped"), "{out}");
    let id_on = |d: usize, n: usize| docs[d * 5 + n].get_object_id("_id").unwrap();

    let log = p.path().join("watch.log");
    let mut watcher = start_watcher(&p, &log);
    // Three past days: an insert, an update, a delete (whose day only the
    // warehouse knows: the server sends no pre-image).
    orders
        .insert_one(
            doc! { "_id": ObjectId::new(), "created_at": at("2020-06-02", 20), "total": 7i64 },
        )
        .await
        .unwrap();
    orders
        .update_one(
            doc! { "_id": id_on(2, 0) },
            doc! { "$set": { "total": 999i64 } },
        )
        .await
        .unwrap();
    orders
        .delete_one(doc! { "_id": id_on(3, 1) })
        .await
        .unwrap();
    let changed = Instant::now();
    let expected: BTreeSet<NaiveDate> =
        [day("2020-06-02"), day("2020-06-03"), day("2020-06-04")].into();
    let lag = wait_for(Duration::from_secs(30), "three days marked", &log, || {
        dirty_days(&p).keys().copied().collect::<BTreeSet<_>>() == expected
    });
    println!("lag from the last of three changes to its mark: {lag:?}");
    // Nothing else gets marked afterwards.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        dirty_days(&p).keys().copied().collect::<BTreeSet<_>>(),
        expected,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(changed.elapsed() < Duration::from_secs(30));

    // Killed between changes: the next changes are made while no watcher
    // runs, and the restarted one must still mark their days. One moves a
    // document from June 1 to June 5; one is of "today", which no run
    // extracts yet, so it marks nothing.
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    orders
        .update_one(
            doc! { "_id": id_on(0, 4) },
            doc! { "$set": { "created_at": at("2020-06-05", 23) } },
        )
        .await
        .unwrap();
    orders
        .insert_one(
            doc! { "_id": ObjectId::new(), "created_at": at("2020-06-08", 1), "total": 1i64 },
        )
        .await
        .unwrap();
    let watcher = start_watcher(&p, &log);
    let expected: BTreeSet<NaiveDate> = [1, 2, 3, 4, 5]
        .iter()
        .map(|d| day(&format!("2020-06-0{d}")))
        .collect();
    wait_for(
        Duration::from_secs(30),
        "the moved document's two days marked",
        &log,
        || dirty_days(&p).keys().copied().collect::<BTreeSet<_>>() == expected,
    );

    let status = p.etl(&["status", "pipelines/orders.yaml"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("7 done, 0 failed, 0 missing, 5 dirty"),
        "{shown}"
    );
    assert!(
        shown.contains("dirty: 1 change since; the next run redoes it"),
        "{shown}"
    );

    // SIGTERM: the watcher ends cleanly and says what it did.
    let pid = watcher.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = watcher.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("orders: 2 changes read, 2 days marked dirty, 1 ignored"),
        "{said}"
    );

    let out = p.ok(&["run", "--dirty", "pipelines/orders.yaml"]);
    assert!(out.contains("5 done, 0 skipped"), "{out}");
    assert!(
        out.contains("2020-06-03 runs again: `etl watch` saw 1 change since it was loaded"),
        "{out}"
    );
    assert!(dirty_days(&p).is_empty());
    let now = warehouse(&p);
    let want = source(&orders, &days).await;
    for d in &days {
        assert_eq!(now[d], want[d], "{d}: the warehouse differs from MongoDB");
    }
    let counts: Vec<usize> = days.iter().map(|d| now[d].len()).collect();
    assert_eq!(counts, [4, 6, 5, 4, 6, 5]);
    assert_eq!(now[&day("2020-06-03")][&id_on(2, 0).to_hex()], 999);
    assert!(!now[&day("2020-06-04")].contains_key(&id_on(3, 1).to_hex()));
    assert!(now[&day("2020-06-05")].contains_key(&id_on(0, 4).to_hex()));

    // Nothing dirty is left: a catch-up has nothing to do.
    let out = p.ok(&["run", "pipelines/orders.yaml"]);
    assert!(out.contains("0 done, 7 skipped"), "{out}");
    client.database(&database).drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_10000_changes_over_30_days_marks_those_30_days() {
    let client = stack::mongo_fast().await;
    let database = format!("it_watch_burst_{}", std::process::id());
    let orders = client.database(&database).collection::<Document>("orders");
    let docs: Vec<Document> = (0..10_000)
        .map(|i| {
            let d = NaiveDate::from_ymd_opt(2020, 6, 1 + (i % 30) as u32).unwrap();
            doc! { "_id": ObjectId::new(), "created_at": at(&d.to_string(), (i % 24) as u32), "total": i as i64 }
        })
        .collect();
    for chunk in docs.chunks(2000) {
        orders.insert_many(chunk).await.unwrap();
    }
    let p = project(&database, "2020-07-15");
    let log = p.path().join("watch.log");
    let watcher = start_watcher(&p, &log);
    // Every order of June paid late: one update each.
    let started = Instant::now();
    let updated = orders
        .update_many(doc! {}, doc! { "$set": { "status": "paid" } })
        .await
        .unwrap();
    assert_eq!(updated.modified_count, 10_000);
    let sent = started.elapsed();
    let state = p.path().join(".etl/state/changes/orders/watch.json");
    let read = || -> u64 {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["changes"].as_u64())
            .unwrap_or(0)
    };
    let after = wait_for(
        Duration::from_secs(300),
        "10,000 changes marked",
        &log,
        || read() == 10_000,
    );
    let pid = watcher.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = watcher.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let days = dirty_days(&p);
    let marks: usize = days.values().sum();
    println!(
        "burst: 10,000 updates over 30 days sent in {sent:?}; the last marked {after:?} after that; {marks} mark objects on {} days",
        days.len()
    );
    assert!(
        said.contains("orders: 10000 changes read, 30 days marked dirty, 0 ignored"),
        "{said}"
    );
    let june: Vec<NaiveDate> = (1..=30)
        .map(|d| NaiveDate::from_ymd_opt(2020, 6, d).unwrap())
        .collect();
    assert_eq!(days.keys().copied().collect::<Vec<_>>(), june);
    // At most one mark per day and batch of up to 1,000 changes.
    assert!(marks <= 30 * 10, "{marks} marks");
    client.database(&database).drop().await.unwrap();
}

/// BigQuery as the warehouse: the day a delete or a move left is looked up
/// there by `_id`, with one query.
#[tokio::test(flavor = "multi_thread")]
async fn on_bigquery_the_day_a_document_left_is_found_by_its_id() {
    let client = stack::mongo_fast().await;
    let database = format!("it_watch_bq_{}", std::process::id());
    let orders = client.database(&database).collection::<Document>("orders");
    let days: Vec<NaiveDate> = (1..=3).map(|d| day(&format!("2020-06-0{d}"))).collect();
    let mut docs = Vec::new();
    for d in &days {
        for n in 0..4 {
            docs.push(doc! { "_id": ObjectId::new(), "created_at": at(&d.to_string(), 8 + n), "total": n as i64 });
        }
    }
    orders.insert_many(&docs).await.unwrap();
    let id_on = |d: usize, n: usize| docs[d * 4 + n].get_object_id("_id").unwrap();
    let mut p = project(&database, "2020-06-04");
    p.set_env("ETL_BQ_ENDPOINT", &stack::bq_endpoint());
    p.edit(
        "pipelines/orders.yaml",
        "    type: parquet\n    connection: warehouse_files\n    path: orders\n",
        &format!("    type: bigquery\n    connection: warehouse\n    dataset: {database}\n    table: orders\n    replace: staging\n"),
    );
    let out = p.ok(&["run", "pipelines/orders.yaml"]);
    assert!(out.contains("3 done, 0 skipped"), "{out}");
    let log = p.path().join("watch.log");
    let watcher = start_watcher(&p, &log);
    orders
        .delete_one(doc! { "_id": id_on(1, 0) })
        .await
        .unwrap();
    orders
        .update_one(
            doc! { "_id": id_on(2, 0) },
            doc! { "$set": { "created_at": at("2020-06-01", 23) } },
        )
        .await
        .unwrap();
    let expected: BTreeSet<NaiveDate> = days.iter().copied().collect();
    wait_for(
        Duration::from_secs(60),
        "the three days marked",
        &log,
        || dirty_days(&p).keys().copied().collect::<BTreeSet<_>>() == expected,
    );
    std::process::Command::new("kill")
        .args(["-TERM", &watcher.id().to_string()])
        .status()
        .unwrap();
    let out = watcher.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("orders: 2 changes read, 3 days marked dirty, 0 ignored (no day, before start_date, or today), 0 of unknown day"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(&log).unwrap()
    );
    let out = p.ok(&["run", "--dirty", "pipelines/orders.yaml"]);
    assert!(out.contains("3 done, 0 skipped"), "{out}");
    let counts = stack::bq_rows(&format!(
        "SELECT CAST(_ds AS STRING), COUNT(*), COUNT(DISTINCT _id) FROM `{}.{database}.orders` GROUP BY _ds ORDER BY _ds",
        stack::BQ_PROJECT
    ))
    .await;
    assert_eq!(
        counts,
        [
            ["2020-06-01", "5", "5"],
            ["2020-06-02", "3", "3"],
            ["2020-06-03", "3", "3"]
        ]
    );
    client.database(&database).drop().await.unwrap();
    stack::Emulator::require()
        .await
        .drop_dataset(&database)
        .await;
}
