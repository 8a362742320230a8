//! The four-worker backfill through leases (issue 12), shared by the
//! tests that run it with the ledger on local files, S3 (`stack_engine`)
//! and GCS (`stack_gcs`). A test binary takes it with
//! `#[path = "common/leases.rs"] mod leases;` beside `mod common;`, so
//! the binaries that do not run it do not compile it.
// Each binary uses only some of the stores.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::common::{self, stack};

/// A test's state store, read as the engine wrote it.
pub struct StateStore {
    store: Arc<dyn object_store::ObjectStore>,
    prefix: object_store::path::Path,
}

impl StateStore {
    /// `prefix` in `store`, once a listing answers (else the test fails
    /// naming `server`).
    pub async fn on(store: Arc<dyn object_store::ObjectStore>, prefix: &str, server: &str) -> Self {
        let s = Self {
            store,
            prefix: object_store::path::Path::from(prefix),
        };
        if let Err(e) = s.store.list_with_delimiter(Some(&s.prefix)).await {
            panic!("{server} does not answer ({e}); {}", stack::HINT);
        }
        s
    }

    pub fn local(dir: &Path) -> Self {
        Self {
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            prefix: object_store::path::Path::from_absolute_path(dir).unwrap(),
        }
    }

    /// `prefix` in the stack's S3 bucket, once moto answers.
    pub async fn s3(prefix: &str) -> Self {
        let store = stack::s3(&stack::s3_endpoint(), stack::S3_BUCKET);
        let server = format!("moto's S3 at {}", stack::s3_endpoint());
        Self::on(Arc::new(store), prefix, &server).await
    }

    fn path(&self, rel: &str) -> object_store::path::Path {
        rel.split('/')
            .fold(self.prefix.clone(), |p, part| p.child(part))
    }

    /// The JSON object at `rel`.
    pub async fn json(&self, rel: &str) -> serde_json::Value {
        let path = self.path(rel);
        let bytes = self
            .store
            .get(&path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The objects under folder `rel`, relative to the store's root.
    pub async fn list(&self, rel: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let mut names: Vec<String> = self
            .store
            .list(Some(&self.path(rel)))
            .map_ok(|m| {
                m.location
                    .prefix_match(&self.prefix)
                    .unwrap()
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }
}

/// The days the backfill covers: 2020-06-01..10.
fn days() -> Vec<NaiveDate> {
    NaiveDate::from_ymd_opt(2020, 6, 1)
        .unwrap()
        .iter_days()
        .take(10)
        .collect()
}

/// The four-worker backfill of users and products over 2020-06-01..10 on
/// a seeded `project` (pipelines reading `database` on `mongo_uri`, users
/// into BigQuery dataset `database`, products into local Parquet),
/// checked in the warehouse and in `state`.
pub async fn four_workers_share_a_backfill(
    project: &common::Project,
    database: &str,
    mongo_uri: &str,
    state: &StateStore,
) {
    let args = [
        "run",
        "pipelines/users.yaml",
        "pipelines/products.yaml",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-10",
    ];
    let workers: Vec<_> = (0..4)
        .map(|_| {
            project
                .command(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = workers
        .into_iter()
        .map(|w| w.wait_with_output().unwrap())
        .collect();
    let mut done: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut left = 0;
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", common::text(out));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [pipeline @ ("users" | "products"), day, status, ..] = fields[..] {
                match status {
                    "done" => *done.entry((pipeline.into(), day.into())).or_default() += 1,
                    "skipped" | "elsewhere" => left += 1,
                    other => panic!("{line}: {other}\n{}", common::text(out)),
                }
            }
        }
    }
    assert_eq!(done.len(), 20, "every day is done by some worker: {done:?}");
    assert!(
        done.values().all(|&n| n == 1),
        "no day is done twice: {done:?}"
    );
    assert_eq!(left, 60, "the other three workers leave each day");
    // What the workers retried, for the messages below.
    let retried: Vec<String> = outs
        .iter()
        .flat_map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.contains("retrying"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();

    for day in days() {
        for pipeline in ["users", "products"] {
            let (rows, distinct) = if pipeline == "users" {
                let rows = stack::bq_rows(&format!(
                    "SELECT COUNT(*), COUNT(DISTINCT _id) FROM `{}.{}.users` WHERE _ds = DATE '{day}'",
                    stack::BQ_PROJECT,
                    database
                ))
                .await;
                (rows[0][0].parse().unwrap(), rows[0][1].parse().unwrap())
            } else {
                parquet_ids(project.path(), "products", day)
            };
            let record = state.json(&format!("ledger/{pipeline}/{day}.json")).await;
            // The demo's products carry a few type conflicts, rejected whole.
            let loaded = stack::mongo_day_count(mongo_uri, database, pipeline, day).await
                - record["rejected"].as_u64().unwrap_or(0);
            assert_eq!(
                (rows, distinct),
                (loaded, loaded),
                "{pipeline} {day}: rows, distinct _id"
            );
            assert_eq!(
                (record["status"].as_str(), record["attempts"].as_u64()),
                (Some("done"), Some(1)),
                "{record}\nretries: {retried:#?}"
            );
        }
    }
    // Each day's lease ends as one released generation.
    for day in days() {
        let folder = format!("leases/users/{day}");
        let leases = state.list(&folder).await;
        assert_eq!(leases.len(), 1, "{folder}: {leases:?}");
        let lease = state.json(&leases[0]).await;
        let until: chrono::DateTime<chrono::Utc> =
            lease["expires_at"].as_str().unwrap().parse().unwrap();
        assert!(until <= chrono::Utc::now(), "released: {lease}");
    }
}

/// Rows of `table`'s Parquet files for `day` in the project at `dir`,
/// and their distinct `_id`s.
fn parquet_ids(dir: &Path, table: &str, day: NaiveDate) -> (u64, u64) {
    use arrow_array::{Array, StringArray};
    let dir = dir.join(format!(".etl/warehouse/{table}/dt={day}"));
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let f = std::fs::File::open(e.unwrap().path()).unwrap();
        for batch in parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let column = batch.column_by_name("_id").expect("an `_id` column");
            let column = column.as_any().downcast_ref::<StringArray>().unwrap();
            ids.extend((0..column.len()).map(|i| column.value(i).to_owned()));
        }
    }
    let rows = ids.len() as u64;
    ids.sort();
    ids.dedup();
    (rows, ids.len() as u64)
}
