//! `etl validate --connect` on the local stack (issue 28): each check of a
//! pipeline against its real connections (the collection, the partition
//! field in a sample, an index on it, a BigQuery table against the schema
//! lock, the lake and the state store written), its diagnostic located on
//! the YAML key concerned, and the exit code: errors 1, warnings 0.
//!
//! The suite runs on the stack's MongoDB, FerretDB and then
//! mongo-java-server (`stack/test.sh`); the snapshots are the same on both.
//! Each test works in its own project folder and database.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use common::stack;

/// A project folder with the shipped `etl.yaml` and one pipeline of the
/// test's own, `pipelines/events.yaml`, on a database of its own.
struct Project {
    project: common::Project,
    database: String,
}

impl Project {
    /// A project on the stack's MongoDB, once it answers.
    async fn new(tag: &str) -> Self {
        stack::mongo().await;
        let database = format!("it_validate_{tag}_{}", std::process::id());
        let mut project = common::Project::with(&["etl.yaml"]);
        // A dead server fails the check in 2 s rather than the driver's 10.
        project.edit(
            "etl.yaml",
            "?directConnection=true",
            "?directConnection=true&serverSelectionTimeoutMS=2000",
        );
        project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
        project.set_env("ETL_BQ_ENDPOINT", &stack::bq_endpoint());
        let p = Self { project, database };
        p.drop_database().await;
        p
    }

    fn path(&self) -> &Path {
        self.project.path()
    }

    /// `pipelines/<name>.yaml` on collection `collection` partitioned by
    /// `field` of `kind`, into the local lake and `warehouse` (YAML flow
    /// mapping of `sinks.warehouse`).
    fn write_spec(&self, name: &str, collection: &str, field: &str, kind: &str, warehouse: &str) {
        let spec = format!(
            "version: 1
name: {name}
source:
  connection: mongo
  database: {db}
  collection: {collection}
partition:
  field: {field}
  kind: {kind}
  start_date: \"2020-06-01\"
sinks:
  lake:
    connection: lake
    path: \"raw/{name}/dt={{{{ ds }}}}/{name}.jsonl.gz\"
  warehouse: {warehouse}
",
            db = self.database
        );
        self.project.write(&format!("pipelines/{name}.yaml"), &spec);
    }

    /// `pipelines/events.yaml`: collection `events` by `created_at`, a
    /// `date`, into a Parquet dataset.
    fn write_events(&self) {
        self.write_spec(
            "events",
            "events",
            "created_at",
            "date",
            "{ type: parquet, connection: warehouse_files, path: \"{{ pipeline }}\" }",
        );
    }

    async fn collection(&self, name: &str) -> mongodb::Collection<Document> {
        stack::mongo()
            .await
            .database(&self.database)
            .collection(name)
    }

    async fn drop_database(&self) {
        let db = stack::mongo().await.database(&self.database);
        db.drop().await.unwrap();
    }

    /// `etl validate --connect args...`.
    fn validate(&self, args: &[&str]) -> Output {
        let mut all = vec!["validate", "--connect"];
        all.extend_from_slice(args);
        self.project.etl(&all)
    }

    /// The output as a snapshot holds it: the project folder, the
    /// database and the server's port replaced.
    fn transcript(&self, out: &Output) -> String {
        let mut text = common::transcript(out);
        for dir in [self.path().canonicalize().unwrap(), self.path().to_owned()] {
            text = text.replace(&dir.display().to_string(), "[PROJECT]");
        }
        text = text.replace(&self.database, "[DB]");
        let port = format!("127.0.0.1:{}", stack::mongo_port());
        text.replace(&port, "127.0.0.1:[PORT]")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `n` documents created one minute apart from 2020-06-01, `_id` 0..n.
fn events(n: i64) -> Vec<Document> {
    let start = 1_590_969_600_000i64; // 2020-06-01T00:00:00Z
    (0..n)
        .map(|i| doc! {"_id": i, "created_at": bson::DateTime::from_millis(start + i * 60_000), "n": i})
        .collect()
}

/// A spec whose collection does not exist is an error on
/// `source.collection` (exit 1), whose hint lists the collections that do,
/// nearest first; nothing else of the source is checked.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_collection_is_an_error_listing_the_collections_nearest_first() {
    let p = Project::new("missing").await;
    for name in ["users", "orders", "products"] {
        p.collection(name)
            .await
            .insert_one(doc! {"_id": 1})
            .await
            .unwrap();
    }
    p.write_spec(
        "events",
        "userz",
        "created_at",
        "date",
        "{ type: parquet, connection: warehouse_files, path: \"{{ pipeline }}\" }",
    );
    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("source.collection: collection `userz` does not exist in database"),
        "{err}"
    );
    assert!(err.contains("\nhint: database `"), "{err}");
    assert!(err.contains("` holds `users`, "), "{err}");
    assert!(err.ends_with("1 error in 1 of 2 files\n"), "{err}");
    insta::assert_snapshot!(p.transcript(&out));
    p.drop_database().await;
}

/// Without an index whose first key is the partition field, each day's
/// query reads the whole collection: a warning (exit 0) whose hint is the
/// command that creates the index. Once it exists, the summary names it
/// and the warning is gone.
#[tokio::test(flavor = "multi_thread")]
async fn no_index_on_the_partition_field_warns_with_the_command_and_an_index_silences_it() {
    let p = Project::new("index").await;
    let coll = p.collection("events").await;
    coll.insert_many(events(3000)).await.unwrap();
    p.write_events();

    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: pipelines/events.yaml:8:10: partition.field: no index of"),
        "{err}"
    );
    assert!(
        err.contains("each day's query reads the whole collection (3000 documents)"),
        "{err}"
    );
    assert!(
        err.contains(r#"`db.events.createIndex({"created_at": 1})`"#),
        "{err}"
    );
    let summary = stdout(&out);
    assert!(
        summary.contains("events 3000 documents (estimated); partition field created_at: date in 1000 of 1000 sampled; no index on created_at; lake writable"),
        "{summary}"
    );
    assert!(
        summary.ends_with("ok: 2 files valid, connections checked, 1 warning\n"),
        "{summary}"
    );
    insta::assert_snapshot!(p.transcript(&out));

    // The JSON form carries the severity.
    let json = p.validate(&["--format", "json"]);
    assert_eq!(json.status.code(), Some(0));
    let diags: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(diags[0]["severity"], "warning", "{diags}");
    assert_eq!(diags[0]["path"], "partition.field", "{diags}");

    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"created_at": 1})
            .build(),
    )
    .await
    .unwrap();
    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("; index created_at_1;"), "{summary}");
    assert!(
        summary.ends_with("ok: 2 files valid, connections checked\n"),
        "{summary}"
    );
    p.drop_database().await;
}

/// A partition field missing in some of the newest documents, null or a
/// string in others: a warning with the count of each reason (exit 0).
/// When no sampled document has it as the spec's kind, an error (exit 1)
/// whose hint names the kind the values look like.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_field_missing_or_of_another_type_is_counted_by_reason() {
    let p = Project::new("field").await;
    let coll = p.collection("events").await;
    let mut docs = events(20);
    for d in &mut docs[10..13] {
        d.remove("created_at");
    }
    for d in &mut docs[13..15] {
        d.insert("created_at", "2020-06-01T10:00:00Z");
    }
    docs[15].insert("created_at", bson::Bson::Null);
    docs[16].insert("created_at", 1_591_000_000i64);
    coll.insert_many(docs).await.unwrap();
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"created_at": 1})
            .build(),
    )
    .await
    .unwrap();
    p.write_events();

    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: pipelines/events.yaml:8:10: partition.field: `created_at` is not of kind `date` in 7 of the 20 newest documents: 3 missing, 2 of BSON type `string`, 1 null, 1 of BSON type `long`"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("partition field created_at: date in 13 of 20 sampled"),
        "{}",
        stdout(&out)
    );
    insta::assert_snapshot!(p.transcript(&out));

    // A field that is a string in every sampled document, read as a date.
    let strings = p.collection("labels").await;
    strings
        .insert_many((0..5).map(|i| doc! {"_id": i, "at": format!("2020-06-0{}T08:00:00Z", i + 1)}))
        .await
        .unwrap();
    p.write_spec(
        "labels",
        "labels",
        "at",
        "date",
        "{ type: parquet, connection: warehouse_files, path: \"{{ pipeline }}\" }",
    );
    let out = p.validate(&["pipelines/labels.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: pipelines/labels.yaml:8:10: partition.field: `at` is not of kind `date` in any of the 5 newest documents: 5 of BSON type `string`"),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: the sampled values look like `kind: iso_string`: check `partition.kind`"
        ),
        "{err}"
    );
    p.drop_database().await;
}

/// A BigQuery table that exists with other partitioning than DAY on `_ds`
/// and a column of another type than the lock says: two errors on
/// `sinks.warehouse.table` (exit 1), since every run would fail on it.
/// Clustering that differs from the spec's is a warning. A dataset that
/// does not exist yet is only a note: the first run creates it.
#[tokio::test(flavor = "multi_thread")]
async fn a_bigquery_table_partitioned_or_typed_otherwise_than_the_lock_is_an_error() {
    let p = Project::new("bq").await;
    let bq = stack::Emulator::require().await;
    bq.drop_dataset(&p.database).await;
    let coll = p.collection("events").await;
    coll.insert_many(events(10)).await.unwrap();
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"created_at": 1})
            .build(),
    )
    .await
    .unwrap();
    // The dataset (the database's name, whose length varies with the
    // process id) goes last, so the columns of the other keys do not move.
    p.write_spec(
        "events",
        "events",
        "created_at",
        "date",
        &format!(
            "{{ type: bigquery, connection: warehouse, table: events, clustering: [n], replace: staging, dataset: {} }}",
            p.database
        ),
    );
    p.project.write(
        "schemas/tables/events.json",
        r#"{
  "version": 1,
  "pipeline": "events",
  "tables": {
    "events": {
      "columns": [
        { "name": "_ds", "type": "date" },
        { "name": "_id", "type": "int64" },
        { "name": "created_at", "type": "timestamp" },
        { "name": "n", "type": "int64" },
        { "name": "note", "type": "string" }
      ]
    }
  }
}
"#,
    );

    // No dataset yet: fine, a run creates it.
    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "warehouse dataset {} does not exist yet (a run creates it)",
            p.database
        )),
        "{}",
        stdout(&out)
    );

    let (status, answer) = bq
        .send(
            reqwest::Method::POST,
            "datasets",
            Some(serde_json::json!({"datasetReference": {"projectId": stack::BQ_PROJECT, "datasetId": p.database}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = bq
        .send(
            reqwest::Method::POST,
            &format!("datasets/{}/tables", p.database),
            Some(serde_json::json!({
                "tableReference": {"projectId": stack::BQ_PROJECT, "datasetId": p.database, "tableId": "events"},
                "schema": {"fields": [
                    {"name": "_ds", "type": "DATE", "mode": "NULLABLE"},
                    {"name": "_id", "type": "INTEGER", "mode": "NULLABLE"},
                    {"name": "created_at", "type": "TIMESTAMP", "mode": "NULLABLE"},
                    {"name": "n", "type": "STRING", "mode": "NULLABLE"},
                    {"name": "extra", "type": "STRING", "mode": "NULLABLE"}
                ]},
                "timePartitioning": {"type": "DAY", "field": "created_at"},
            })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("sinks.warehouse.table: table `{}.events` is partitioned DAY on `created_at`, expected DAY partitioning on `_ds`", p.database)),
        "{err}"
    );
    assert!(
        err.contains(&format!("sinks.warehouse.table: table `{}.events` has 1 column of another type than schemas/tables/events.json: `n` is STRING, the lock says INT64", p.database)),
        "{err}"
    );
    assert!(
        err.contains("warning: pipelines/events.yaml:")
            && err.contains("sinks.warehouse.clustering: table"),
        "{err}"
    );
    assert!(
        err.ends_with("2 errors in 1 of 2 files, 1 warning\n"),
        "{err}"
    );
    let summary = stdout(&out);
    assert!(
        summary.contains(&format!("{}.events partitioned DAY on `created_at`, 3 of 5 lock columns match, 1 not in the table yet (a run adds them), 1 more in the table than in the lock", p.database)),
        "{summary}"
    );
    insta::assert_snapshot!(p.transcript(&out));
    bq.drop_dataset(&p.database).await;
    p.drop_database().await;
}

/// The state store takes a probe object and refuses the second of two
/// conditional creates of one name, as day leases need: on local files
/// (the default `.etl/state`) and on S3 (moto, with `aws_conditional_put:
/// etag`). No probe object is left behind in either.
#[tokio::test(flavor = "multi_thread")]
async fn state_stores_on_local_files_and_s3_are_written_and_refuse_a_second_create() {
    let mut p = Project::new("state").await;
    p.collection("events")
        .await
        .insert_many(events(10))
        .await
        .unwrap();
    p.write_events();

    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let state = p.path().canonicalize().unwrap().join(".etl/state");
    assert!(
        stdout(&out).contains(&format!(
            "state store file://{}: writable; a second conditional create of one name was refused (`AlreadyExists`), as day leases need",
            state.display()
        )),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("; lake writable; warehouse "));
    for dir in [".etl/state", ".etl/lake", ".etl/warehouse"] {
        let left = common::files_under(&p.path().join(dir));
        assert!(left.is_empty(), "{dir}: {:?}", left.keys());
    }

    let prefix = p.database.clone();
    p.project.edit(
        "etl.yaml",
        "  url: .etl/state\n",
        &format!(
            "  url: s3://{bucket}/{prefix}
  options:
    aws_endpoint: '{{{{ env(\"ETL_S3_ENDPOINT\") }}}}'
    aws_allow_http: \"true\"
    aws_region: us-east-1
    aws_access_key_id: '{{{{ env(\"ETL_S3_KEY_ID\") }}}}'
    aws_secret_access_key: '{{{{ env(\"ETL_S3_KEY\") }}}}'
    aws_conditional_put: etag
",
            bucket = stack::S3_BUCKET,
        ),
    );
    p.project.set_env("ETL_S3_ENDPOINT", &stack::s3_endpoint());
    p.project.set_env("ETL_S3_KEY_ID", stack::S3_KEY_ID);
    p.project.set_env("ETL_S3_KEY", stack::S3_KEY);
    let out = p.validate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "state store s3://{}/{prefix}: writable; a second conditional create of one name was refused (`AlreadyExists`), as day leases need",
            stack::S3_BUCKET
        )),
        "{}",
        stdout(&out)
    );
    let s3 = stack::s3(&stack::s3_endpoint(), stack::S3_BUCKET);
    let left = {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        s3.list(Some(&object_store::path::Path::from(prefix.as_str())))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    };
    assert!(left.is_empty(), "probe objects left on S3: {left:?}");
    p.drop_database().await;
}

/// A server that does not answer is an error on `source.connection`
/// within seconds, naming the connection, its password redacted; the
/// other connections are still checked.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_an_error_within_seconds_with_its_password_redacted() {
    let p = Project::new("down").await;
    p.write_events();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    p.project.edit(
        "etl.yaml",
        "mongodb://127.0.0.1:{{ env(\"ETL_MONGO_PORT\", \"27017\") }}/",
        &format!("mongodb://etl:hunter2@127.0.0.1:{port}/"),
    );
    let started = Instant::now();
    let out = p.validate(&[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let all = common::text(&out);
    assert!(!all.contains("hunter2"), "{all}");
    assert!(
        all.contains(&format!(
            "source.connection: cannot reach MongoDB connection `mongo` at `mongodb://etl:***@127.0.0.1:{port}/"
        )),
        "{all}"
    );
    assert!(stdout(&out).contains("; lake writable; "), "{all}");
}

/// `listIndexes`, which the index check reads, answers on both servers of
/// the stack with every index and its keys, a range index created with
/// `createIndexes` included (mongo-java-server keeps it, though it uses
/// only unique indexes for queries). What each returned is in
/// docs/operations.md.
#[tokio::test(flavor = "multi_thread")]
async fn list_indexes_answers_with_each_index_and_its_keys() {
    let p = Project::new("listindexes").await;
    let coll = p.collection("events").await;
    coll.insert_many(events(3)).await.unwrap();
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"created_at": 1})
            .build(),
    )
    .await
    .unwrap();
    let answer = stack::mongo()
        .await
        .database(&p.database)
        .run_command(doc! {"listIndexes": "events"})
        .await
        .unwrap();
    eprintln!("listIndexes answered: {answer}");
    let batch = answer
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .unwrap();
    let indexes: Vec<(String, Document)> = batch
        .iter()
        .map(|i| {
            let i = i.as_document().unwrap();
            (
                i.get_str("name").unwrap().to_owned(),
                i.get_document("key").unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(
        indexes,
        vec![
            ("_id_".to_owned(), doc! {"_id": 1}),
            ("created_at_1".to_owned(), doc! {"created_at": 1}),
        ]
    );
    p.drop_database().await;
}
