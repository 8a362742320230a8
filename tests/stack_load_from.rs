//! `load_from: bucket` end to end (issue 32, part 4): `etl run` with the
//! lake in the stack's `gs://` bucket (fake-gcs-server behind
//! `stack/gcs-front`), each table's rows staged under the lake's `_load/`
//! and loaded by bigquery-emulator from their `gs://` URI (it reads the
//! bucket through `STORAGE_EMULATOR_HOST`), then deleted; and the
//! warehouse contract with every load, failed ones included, read from
//! the bucket.
//! The test works in a lake prefix, a database and a dataset named after
//! the process id, and removes them.

mod common;

use std::collections::BTreeMap;

use bson::doc;
use common::stack;
use etl::sink::lake::Store;

/// A project whose `local` lake is `gs://etl-lake/<prefix>`, with its
/// database, dataset and lake prefix of its own.
struct Project {
    project: common::Project,
    /// The MongoDB database and the BigQuery dataset.
    name: String,
    /// The lake, as `etl` opens it.
    lake: Store,
}

impl Project {
    async fn on_stack(tag: &str) -> Self {
        stack::mongo().await;
        let name = format!("it_{tag}_{}", std::process::id());
        let mut project = common::Project::with(&["etl.yaml"]);
        project.edit(
            "etl.yaml",
            "?directConnection=true",
            "?directConnection=true&serverSelectionTimeoutMS=2000",
        );
        let lake = project.lake_on_gcs(&format!("it_load_from/{name}"));
        project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
        if let Ok(bq) = std::env::var("ETL_BQ_ENDPOINT") {
            project.set_env("ETL_BQ_ENDPOINT", &bq);
        }
        Self {
            project,
            name,
            lake,
        }
    }

    async fn collection(&self) -> mongodb::Collection<bson::Document> {
        stack::mongo()
            .await
            .database(&self.name)
            .collection("events")
    }

    /// Removes the database, the dataset and the lake prefix.
    async fn clean_up(&self) {
        self.collection().await.drop().await.unwrap();
        stack::Emulator::require()
            .await
            .drop_dataset(&self.name)
            .await;
        for rel in self.lake.list("").await.unwrap() {
            self.lake.delete(&rel).await.unwrap();
        }
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

/// A day loaded from the bucket: the rows of the root and the child table
/// are in BigQuery, the raw object is in the lake, and no staged rows are
/// left, neither this run's nor those a crashed run left for the day.
#[tokio::test(flavor = "multi_thread")]
async fn load_from_bucket_loads_a_day_from_the_lake_bucket_and_leaves_nothing_staged() {
    let p = Project::on_stack("loadfrom").await;
    p.collection()
        .await
        .insert_many([
            doc! {"_id": 1, "created_at": at("2020-06-01", 1), "name": "ada", "items": [{"sku": "a"}, {"sku": "b"}]},
            doc! {"_id": 2, "created_at": at("2020-06-01", 2), "name": "bob", "items": [{"sku": "c"}]},
            doc! {"_id": 3, "created_at": at("2020-06-01", 3), "name": "cy", "items": []},
            doc! {"_id": 4, "created_at": at("2020-06-02", 1), "name": "dee", "items": []},
        ])
        .await
        .unwrap();
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
  warehouse: {{ type: bigquery, connection: warehouse, dataset: {db}, table: events, replace: staging, load_from: bucket }}
",
            db = p.name
        ),
    );
    // What a run killed between staging and clean-up leaves.
    let crashed = format!("_load/{}/events/2020-06-01/0dead.parquet", p.name);
    p.lake
        .put(&crashed, b"{\"not\": \"a row\"}\n".to_vec())
        .await
        .unwrap();

    let out = p
        .project
        .ok(&["run", "pipelines/events.yaml", "--date", "2020-06-01"]);
    assert!(out.contains("1 done"), "{out}");

    let rows = stack::bq_rows(&format!(
        "SELECT CAST(_id AS STRING), name FROM `{}.{db}.events` WHERE _ds = DATE '2020-06-01' ORDER BY _id",
        stack::BQ_PROJECT,
        db = p.name
    ))
    .await;
    assert_eq!(
        rows,
        [["1", "ada"], ["2", "bob"], ["3", "cy"]].map(|r| r.map(str::to_owned).to_vec())
    );
    let skus = stack::bq_rows(&format!(
        "SELECT sku FROM `{}.{db}.events__items` WHERE _ds = DATE '2020-06-01' ORDER BY sku",
        stack::BQ_PROJECT,
        db = p.name
    ))
    .await;
    assert_eq!(
        skus,
        [["a"], ["b"], ["c"]].map(|r| r.map(str::to_owned).to_vec())
    );

    let objects = p.lake.list("").await.unwrap();
    assert!(
        objects.contains(&"raw/events/dt=2020-06-01/events.jsonl.gz".to_owned()),
        "{objects:?}"
    );
    let staged: Vec<&String> = objects.iter().filter(|o| o.starts_with("_load/")).collect();
    assert!(
        staged.is_empty(),
        "staged rows left in the bucket: {staged:?}"
    );

    p.clean_up().await;
}

/// The warehouse contract (`etl::sink::warehouse::conformance`) on the
/// emulator with every load read from the bucket, failed loads included;
/// then nothing is left staged.
#[tokio::test]
async fn the_warehouse_contract_holds_when_loads_come_from_the_bucket() {
    use etl::sink::bigquery::BigQuerySink;
    use etl::sink::warehouse::{bigquery::BigQuery, conformance, Table};
    use etl::spec::ReplaceMode;

    let emu = stack::Emulator::require().await;
    let name = format!("it_contract_{}", std::process::id());
    emu.drop_table(stack::BQ_DATASET, &name).await;
    let options = BTreeMap::from([(
        "google_service_account_key".to_owned(),
        stack::gcs_service_account_key(),
    )]);
    let lake = Store::open(
        &format!("gs://{}/it_load_from/{name}", stack::GCS_BUCKET),
        &options,
    )
    .unwrap();
    let sink = BigQuerySink::connect(stack::BQ_PROJECT, None, Some(&stack::bq_endpoint()), None)
        .await
        .unwrap();
    let warehouse = BigQuery::new(sink, "_ds", &[], ReplaceMode::Staging).with_bucket(lake.clone());
    let table = Table {
        dataset: stack::BQ_DATASET.to_owned(),
        name: name.clone(),
        root: true,
    };
    let scratch = tempfile::tempdir().unwrap();
    // The emulator's tables.patch leaves its SQL table without the added
    // column (docs/local-stack.md), as in tests/stack_bigquery.rs.
    let skip = conformance::Skip {
        loads_into_added_columns: true,
    };
    conformance::run(&warehouse, &table, scratch.path(), skip).await;
    emu.drop_table(stack::BQ_DATASET, &name).await;
    let left = lake.list("").await.unwrap();
    assert!(left.is_empty(), "staged rows left in the bucket: {left:?}");
}
