//! `etl verify` on the local stack (issue 29, "Nothing silent"): the
//! documents no day selects, counted by reason, and a done day that
//! gained a document since it was loaded, marked dirty and redone. On the
//! stack's MongoDB: FerretDB, then mongo-java-server in `stack/test.sh`'s
//! second pass; the snapshots are the same on both. Each test works in a
//! project folder and a database of its own.
//!
//! <https://github.com/etl/etl/issues/29>

mod common;

use std::process::Output;

use bson::{doc, Bson, Document};
use chrono::NaiveDate;
use common::stack;
use serde_json::{json, Value};

/// A project with the stack's MongoDB, a lake and a Parquet warehouse:
/// the subject is MongoDB against the ledger, not BigQuery.
const PROJECT: &str = r#"version: 1
default_profile: local
state:
  url: .etl/state
  staging_dir: .etl/staging
profiles:
  local:
    connections:
      mongo:
        type: mongodb
        uri: mongodb://127.0.0.1:{{ env("ETL_MONGO_PORT", "27017") }}/?directConnection=true&serverSelectionTimeoutMS=2000
      lake:
        type: object_store
        url: .etl/lake
      warehouse_files:
        type: object_store
        url: .etl/warehouse
"#;

/// The first day of the test pipelines: five days to the pinned
/// yesterday, 2026-11-22.
const START: &str = "2026-11-18";

struct Verify {
    project: common::Project,
    database: String,
    client: mongodb::Client,
}

impl Verify {
    async fn new(tag: &str) -> Self {
        let client = stack::mongo().await;
        let database = format!("it_verify_{tag}_{}", std::process::id());
        client.database(&database).drop().await.unwrap();
        let mut project = common::Project::empty();
        project.write("etl.yaml", PROJECT);
        project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
        Self {
            project,
            database,
            client,
        }
    }

    /// `pipelines/events.yaml`: collection `events` by `field` of `kind`.
    fn write_spec(&self, field: &str, kind: &str) {
        self.project.write(
            "pipelines/events.yaml",
            &format!(
                "version: 1
name: events
source:
  connection: mongo
  database: {db}
  collection: events
partition:
  field: {field}
  kind: {kind}
  start_date: \"{START}\"
sinks:
  lake:
    connection: lake
    path: \"raw/events/dt={{{{ ds }}}}/events.jsonl.gz\"
  warehouse: {{ type: parquet, connection: warehouse_files, path: events }}
",
                db = self.database
            ),
        );
    }

    fn events(&self) -> mongodb::Collection<Document> {
        self.client.database(&self.database).collection("events")
    }

    fn etl(&self, args: &[&str]) -> Output {
        self.project.etl(args)
    }

    /// `etl verify pipelines/events.yaml --format json`'s one pipeline.
    fn verify_json(&self, more: &[&str]) -> (Option<i32>, Value) {
        let mut args = vec!["verify", "pipelines/events.yaml", "--format", "json"];
        args.extend_from_slice(more);
        let out = self.etl(&args);
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}:\n{}", common::text(&out)));
        (out.status.code(), json["pipelines"][0].clone())
    }

    /// The output as a snapshot holds it: the project folder, the
    /// database and the server's port replaced.
    fn transcript(&self, out: &Output) -> String {
        let mut text = common::transcript(out);
        let dir = self.project.path();
        for d in [dir.canonicalize().unwrap(), dir.to_owned()] {
            text = text.replace(&d.display().to_string(), "[PROJECT]");
        }
        text.replace(&self.database, "[DB]").replace(
            &format!("127.0.0.1:{}", stack::mongo_port()),
            "127.0.0.1:[PORT]",
        )
    }

    async fn drop(self) {
        self.client.database(&self.database).drop().await.unwrap();
    }
}

fn at(day: &str, hour: u32) -> bson::DateTime {
    let day: NaiveDate = day.parse().unwrap();
    bson::DateTime::from_millis(
        day.and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis(),
    )
}

/// Two documents on each day from [`START`] to yesterday, `_id` 1 to 10.
fn dated() -> Vec<Document> {
    [
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
    ]
    .iter()
    .enumerate()
    .flat_map(|(i, day)| {
        let i = i as i32;
        [
            doc! { "_id": 2 * i + 1, "created_at": at(day, 9), "n": 1 },
            doc! { "_id": 2 * i + 2, "created_at": at(day, 17), "n": 2 },
        ]
    })
    .collect()
}

/// Issue 29: every kind of document a run never reads is counted by
/// reason with its `_id`s, a done day that gained a document differs by
/// one, `--mark` has the next run redo it, and once the orphans are gone
/// verify exits 0; `etl status` shows the last verify.
#[tokio::test(flavor = "multi_thread")]
async fn documents_in_no_day_and_a_day_that_changed_are_reported_until_fixed() {
    let v = Verify::new("orphans").await;
    v.write_spec("created_at", "date");
    let mut docs = dated();
    docs.extend([
        doc! { "_id": 101, "n": 0 },
        doc! { "_id": 102, "created_at": Bson::Null },
        doc! { "_id": 103, "created_at": "2026-11-19T10:00:00Z" },
        doc! { "_id": 104, "created_at": 1_763_546_400_000i64 },
        doc! { "_id": 105, "created_at": at("2026-11-10", 12) },
        // Today: a later run takes it.
        doc! { "_id": 106, "created_at": at("2026-11-23", 5) },
    ]);
    v.events().insert_many(docs).await.unwrap();

    let status = v.etl(&["status", "pipelines/events.yaml"]);
    assert!(
        common::text(&status).contains("  never verified\n"),
        "{}",
        common::text(&status)
    );
    v.project.ok(&["run", "pipelines/events.yaml"]);

    let out = v.etl(&["verify", "pipelines/events.yaml"]);
    insta::assert_snapshot!("orphans", v.transcript(&out));
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let (code, p) = v.verify_json(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(p["pipeline"], "events");
    assert_eq!(
        (&p["start"], &p["end"]),
        (&json!(START), &json!("2026-11-22"))
    );
    assert_eq!(p["unpartitioned"], 5);
    assert_eq!(
        p["unpartitioned_by_reason"],
        json!({"missing": 1, "null": 1, "wrong_type": 2, "unparseable_string": 0, "before_start_date": 1})
    );
    assert_eq!(
        p["samples"],
        json!({"missing": [101], "null": [102], "wrong_type": [104, 103], "unparseable_string": [], "before_start_date": [105]})
    );
    assert_eq!(p["after_cutoff"], 1);
    assert_eq!(p["days_differing"], 0);
    assert_eq!(p["days"].as_array().unwrap().len(), 5);
    assert_eq!(
        p["days"][2],
        json!({"day": "2026-11-20", "source_now": 2, "loaded": 2, "status": "ok"})
    );

    // A document lands in a done day after it was loaded.
    v.events()
        .insert_one(doc! { "_id": 11, "created_at": at("2026-11-20", 12), "n": 3 })
        .await
        .unwrap();
    let (code, p) = v.verify_json(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(p["days_differing"], 1);
    assert_eq!(
        p["days"][2],
        json!({"day": "2026-11-20", "source_now": 3, "loaded": 2, "status": "differs"})
    );
    assert_eq!(p["marked"], json!([]));

    let out = v.etl(&["verify", "pipelines/events.yaml", "--mark"]);
    insta::assert_snapshot!("a_day_differs_and_is_marked", v.transcript(&out));
    assert_eq!(out.status.code(), Some(1));
    let status = v.etl(&["status", "pipelines/events.yaml"]);
    let shown = common::text(&status);
    assert!(
        shown.contains("  verified 2026-11-23 (2026-11-18 to 2026-11-22): 5 documents in no day, 1 day differs (marked dirty)\n"),
        "{shown}"
    );
    assert!(shown.contains("dirty: 1 change since"), "{shown}");
    let json: Value = serde_json::from_slice(
        &v.etl(&["status", "pipelines/events.yaml", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["pipelines"][0]["verify"]["unpartitioned"], 5);
    assert_eq!(
        json["pipelines"][0]["verify"]["differing"][0]["day"],
        "2026-11-20"
    );

    // The catch-up redoes the marked day; the orphans are fixed or deleted.
    v.project.ok(&["run", "pipelines/events.yaml"]);
    assert_eq!(
        common::ledger_record(v.project.path(), "events", "2026-11-20")["raw_lines"],
        3
    );
    v.events()
        .delete_many(doc! { "_id": { "$in": [101, 102, 103, 104, 105] } })
        .await
        .unwrap();

    let out = v.etl(&["verify", "pipelines/events.yaml"]);
    insta::assert_snapshot!("accounted_for", v.transcript(&out));
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let status = v.etl(&["status", "pipelines/events.yaml"]);
    assert_eq!(status.status.code(), Some(0), "{}", common::text(&status));
    assert!(
        common::text(&status)
            .contains("  verified 2026-11-23 (2026-11-18 to 2026-11-22): 0 unaccounted\n"),
        "{}",
        common::text(&status)
    );
    let page = v.project.path().join("report.html");
    v.project.ok(&[
        "report",
        "pipelines/events.yaml",
        "-o",
        page.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("verified 2026-11-23 (2026-11-18 to 2026-11-22): 0 unaccounted"),
        "{html}"
    );

    // A last result that does not parse is an error naming it, not
    // "never verified".
    v.project
        .write(".etl/state/verify/events.json", "{\"pipeline\": \"ev");
    let status = v.etl(&["status", "pipelines/events.yaml"]);
    let shown = common::text(&status);
    assert_eq!(status.status.code(), Some(1), "{shown}");
    assert!(shown.contains("verify/events.json` is corrupt"), "{shown}");
    assert!(shown.contains("  last verify unreadable"), "{shown}");
    v.drop().await;
}

/// An `iso_string` field: the strings are parsed by the engine's own
/// `day_of`, so one that does not parse is in no day, as is a date before
/// `start_date`; a number is of the wrong type.
#[tokio::test(flavor = "multi_thread")]
async fn iso_strings_that_do_not_parse_are_in_no_day() {
    let v = Verify::new("iso").await;
    v.write_spec("meta.at", "iso_string");
    v.events()
        .insert_many([
            doc! { "_id": 1, "meta": { "at": "2026-11-19T10:00:00Z" } },
            doc! { "_id": 2, "meta": { "at": "2026-11-21T23:59:59.500Z" } },
            doc! { "_id": 3, "meta": { "at": "not a date" } },
            doc! { "_id": 4, "meta": { "at": "2026-10-01T00:00:00Z" } },
            doc! { "_id": 5, "meta": { "at": 5 } },
            doc! { "_id": 6, "meta": {} },
            doc! { "_id": 7, "meta": { "at": "2026-11-23T01:00:00Z" } },
        ])
        .await
        .unwrap();
    v.project.ok(&["run", "pipelines/events.yaml"]);
    let (code, p) = v.verify_json(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        p["unpartitioned_by_reason"],
        json!({"missing": 1, "null": 0, "wrong_type": 1, "unparseable_string": 1, "before_start_date": 1})
    );
    assert_eq!(
        p["samples"],
        json!({"missing": [6], "null": [], "wrong_type": [5], "unparseable_string": [3], "before_start_date": [4]})
    );
    assert_eq!(p["after_cutoff"], 1);
    assert_eq!(p["days_differing"], 0);
    assert_eq!(
        p["days"][1],
        json!({"day": "2026-11-19", "source_now": 1, "loaded": 1, "status": "ok"})
    );

    // A day with documents and no record is not loaded.
    std::fs::remove_file(
        v.project
            .path()
            .join(".etl/state/ledger/events/2026-11-19.json"),
    )
    .unwrap();
    let (code, p) = v.verify_json(&["--start", "2026-11-19", "--end", "2026-11-20"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        p["days"],
        json!([
            {"day": "2026-11-19", "source_now": 1, "loaded": null, "status": "not_loaded"},
            {"day": "2026-11-20", "source_now": 0, "loaded": 0, "status": "ok"},
        ])
    );
    assert_eq!(p["days_differing"], 1);
    v.drop().await;
}

/// Issue 29's whole promise on one collection: documents of every orphan
/// kind, values a declared column cannot take, a day without documents,
/// and spec edits, through `run`, `verify`, `status` and the report. Every
/// count a person reads is asserted, and no value is NULL uncounted.
#[tokio::test(flavor = "multi_thread")]
async fn every_document_and_value_is_accounted_for_through_run_verify_status_and_report() {
    let v = Verify::new("accounting").await;
    v.write_spec("created_at", "date");
    // Declared types: `n` INT64, `amount` NUMERIC.
    v.project.edit(
        "pipelines/events.yaml",
        "sinks:\n",
        "flatten:\n  columns:\n    - { name: n, path: $.n, type: int64 }\n    - { name: amount, path: $.amount, type: numeric }\nsinks:\n",
    );
    let mut docs: Vec<Document> = dated()
        .into_iter()
        // 2026-11-20 has no documents.
        .filter(|d| !matches!(d.get_i32("_id"), Ok(5 | 6)))
        .collect();
    docs[0].insert("n", "many");
    docs[1].insert("amount", "123456789012345678901234567890");
    docs[2].insert("amount", "12.50");
    docs.extend([
        doc! { "_id": 101, "n": 0 },
        doc! { "_id": 102, "created_at": Bson::Null },
        doc! { "_id": 103, "created_at": "2026-11-19" },
        doc! { "_id": 104, "created_at": at("2026-11-01", 12) },
    ]);
    v.events().insert_many(docs).await.unwrap();

    // The run: 8 documents read on 4 days, the empty day done with none,
    // and the two values that did not convert counted by column.
    let out = v.etl(&["run", "pipelines/events.yaml"]);
    let summary = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    assert!(summary.contains("5 done, 0 skipped"), "{summary}");
    // Both on 2026-11-18; "12.50" converts.
    assert!(
        summary.contains(
            "2  values did not convert to their column's type, NULL in their rows (amount: 1, n: 1); listed in "
        ),
        "{summary}"
    );
    assert_eq!(summary.matches("did not convert").count(), 1, "{summary}");
    let read: Vec<u64> = [
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
    ]
    .iter()
    .map(|d| {
        common::ledger_record(v.project.path(), "events", d)["raw_lines"]
            .as_u64()
            .unwrap()
    })
    .collect();
    assert_eq!(read, [2, 2, 0, 2, 2]);
    let first = common::ledger_record(v.project.path(), "events", "2026-11-18");
    assert_eq!(first["unconverted"], json!({"amount": 1, "n": 1}));
    assert_eq!(
        first["source_count"],
        Value::Null,
        "nothing counted at the source"
    );
    // The empty day's Parquet file has the table's columns.
    let empty = v
        .project
        .path()
        .join(".etl/warehouse/events/dt=2026-11-20/part-00000.parquet");
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(
        std::fs::File::open(&empty).unwrap(),
    )
    .unwrap();
    use parquet::file::reader::FileReader;
    let meta = reader.metadata().file_metadata();
    let columns: Vec<&str> = meta
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(meta.num_rows(), 0);
    assert!(
        columns.contains(&"n") && columns.contains(&"amount") && columns.contains(&"created_at"),
        "{columns:?}"
    );

    // Verify: the 4 documents no day selects, by reason; every day as
    // loaded, the empty one included.
    let (code, p) = v.verify_json(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(p["unpartitioned"], 4);
    assert_eq!(
        p["unpartitioned_by_reason"],
        json!({"missing": 1, "null": 1, "wrong_type": 1, "unparseable_string": 0, "before_start_date": 1})
    );
    assert_eq!(p["days_differing"], 0);
    assert_eq!(
        p["days"][2],
        json!({"day": "2026-11-20", "source_now": 0, "loaded": 0, "status": "ok"})
    );

    // Status: the read counts, the values that did not convert, the verify.
    let shown = common::text(&v.etl(&["status", "pipelines/events.yaml"]));
    assert!(
        shown.contains("2 values did not convert (amount: 1, n: 1)"),
        "{shown}"
    );
    assert!(
        shown.contains("  verified 2026-11-23 (2026-11-18 to 2026-11-22): 4 documents in no day\n"),
        "{shown}"
    );
    let page = v.project.path().join("report.html");
    v.project.ok(&[
        "report",
        "pipelines/events.yaml",
        "-o",
        page.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("documents read"),
        "the report names what it counts"
    );
    assert!(
        html.contains("2 values did not convert, NULL in their rows (amount: 1, n: 1)"),
        "{html}"
    );
    assert!(html.contains("4 documents in no day"), "{html}");

    // A description edit redoes nothing; an edit of what lands makes the
    // done days stale, which a catch-up leaves until asked.
    v.project.edit(
        "pipelines/events.yaml",
        "name: events\n",
        "name: events\ndescription: the events, for issue 29\n",
    );
    let summary = v.project.ok(&["run", "pipelines/events.yaml"]);
    assert!(summary.contains("0 done, 5 skipped"), "{summary}");
    v.project.edit(
        "pipelines/events.yaml",
        "type: numeric }",
        "type: numeric }\n    - { name: n_text, path: $.n, type: string }",
    );
    let summary = v.project.ok(&["run", "pipelines/events.yaml"]);
    assert!(
        summary.contains(
            "0 done, 0 skipped (already done), 0 failed, 5 stale (not redone: `--stale`)"
        ),
        "{summary}"
    );
    let summary = v.project.ok(&["run", "pipelines/events.yaml", "--stale"]);
    assert!(summary.contains("5 done"), "{summary}");
    // The text column takes what the INT64 one could not.
    let first = common::ledger_record(v.project.path(), "events", "2026-11-18");
    assert_eq!(first["unconverted"], json!({"amount": 1, "n": 1}));
    v.drop().await;
}
