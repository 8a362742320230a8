//! `etl run` end to end on the local stack: demo data in FerretDB, the raw
//! archive in a local lake, rows in bigquery-emulator and in a Parquet
//! dataset. Each test works in its own project folder, database and
//! dataset, so tests never see each other's data.

mod common;
#[path = "common/leases.rs"]
mod leases;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use bson::doc;
use chrono::NaiveDate;
use common::stack;
use leases::{four_workers_share_a_backfill, StateStore};
use serde_json::json;

/// A project folder: `etl.yaml` and the three shipped pipelines, pointed
/// at a database and dataset of its own.
struct Project {
    project: common::Project,
    database: String,
    mongo_port: u16,
}

impl Project {
    fn new(tag: &str, mongo_port: u16) -> Self {
        let database = format!("it_{tag}_{}", std::process::id());
        // The committed schema locks too: runs apply them, and a test
        // without them once missed that the demo rejected 95% of its
        // products (issue 10).
        let mut project = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
        project.edit(
            "etl.yaml",
            "?directConnection=true",
            "?directConnection=true&serverSelectionTimeoutMS=2000",
        );
        for p in ["users", "orders", "products"] {
            let spec = format!("pipelines/{p}.yaml");
            project.edit(&spec, "database: shop", &format!("database: {database}"));
            if p != "products" {
                project.edit(&spec, "dataset: etl_demo", &format!("dataset: {database}"));
            }
        }
        project.set_env("ETL_MONGO_PORT", &mongo_port.to_string());
        project.set_env("ETL_BQ_ENDPOINT", &stack::bq_endpoint());
        Self {
            project,
            database,
            mongo_port,
        }
    }

    fn path(&self) -> &Path {
        self.project.path()
    }

    fn etl(&self, args: &[&str]) -> Output {
        self.project.etl(args)
    }

    /// [`Project::etl`] with more environment variables.
    fn etl_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.project
            .command(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// [`Project::new`] on the stack's MongoDB, once it answers.
    async fn on_stack(tag: &str) -> Self {
        stack::mongo().await;
        Self::new(tag, stack::mongo_port())
    }

    /// A client of the project's server.
    async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(self.mongo_uri())
            .await
            .unwrap()
    }

    /// The collection `name` of the project's database.
    async fn collection(&self, name: &str) -> mongodb::Collection<bson::Document> {
        self.client()
            .await
            .database(&self.database)
            .collection(name)
    }

    /// Drops the project's database.
    async fn drop_database(&self) {
        let db = self.client().await.database(&self.database);
        db.drop().await.unwrap();
    }

    fn seed(&self, users: usize, orders: usize, products: usize) {
        let out = self.etl(&[
            "demo",
            "--database",
            &self.database,
            "--users",
            &users.to_string(),
            "--orders",
            &orders.to_string(),
            "--products",
            &products.to_string(),
        ]);
        assert!(
            out.status.success(),
            "etl demo failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn mongo_uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true",
            self.mongo_port
        )
    }

    /// `pipelines/events.yaml`: the `events` collection of the project's
    /// database, by `created_at`, into the lake and a Parquet dataset,
    /// with `flatten` (top-level YAML, or empty) in between.
    fn write_events_spec(&self, flatten: &str) {
        let spec = format!(
            "version: 1
name: events
source: {{ connection: mongo, database: {db}, collection: events }}
partition: {{ field: created_at, kind: date, start_date: \"2020-06-01\" }}
{flatten}sinks:
  lake: {{ connection: lake, path: \"raw/events/dt={{{{ ds }}}}/events.jsonl.gz\" }}
  warehouse: {{ type: parquet, connection: warehouse_files, path: \"{{{{ pipeline }}}}\" }}
",
            db = self.database
        );
        self.project.write("pipelines/events.yaml", &spec);
    }

    /// The staging folders of `pipeline`'s `day`, in every run's folder
    /// (`.etl/staging/<run>/<pipeline>/<day>`).
    fn staged(&self, pipeline: &str, day: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.path().join(".etl/staging"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|run| run.path().join(pipeline).join(day))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Every file under the lake, with its bytes.
    fn lake_files(&self) -> BTreeMap<String, Vec<u8>> {
        common::files_under(&self.path().join(".etl/lake"))
    }
}

fn days() -> Vec<NaiveDate> {
    NaiveDate::from_ymd_opt(2020, 6, 1)
        .unwrap()
        .iter_days()
        .take(10)
        .collect()
}

fn ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// The sum of the `items` arrays' lengths over a day's orders.
async fn mongo_item_count(uri: &str, db: &str, day: NaiveDate) -> u64 {
    use futures::TryStreamExt;
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let c = client.database(db).collection::<bson::Document>("orders");
    let next = day.succ_opt().unwrap();
    let filter = doc! { "status": { "$ne": "test" }, "created_at": { "$gte": bson::DateTime::from_millis(ms(day)), "$lt": bson::DateTime::from_millis(ms(next)) } };
    let mut cursor = c.find(filter).await.unwrap();
    let mut n = 0;
    while let Some(d) = cursor.try_next().await.unwrap() {
        n += d.get_array("items").map_or(0, |a| a.len() as u64);
    }
    n
}

fn gunzip_lines(bytes: &[u8]) -> Vec<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    s.lines().map(str::to_owned).collect()
}

fn run_ok(p: &Project, args: &[&str]) -> String {
    p.project.ok(args)
}

async fn bq_count(dataset: &str, table: &str, day: NaiveDate) -> u64 {
    bq_scalar(&format!(
        "SELECT COUNT(*) FROM `{}.{dataset}.{table}` WHERE _ds = DATE '{day}'",
        stack::BQ_PROJECT
    ))
    .await
}

/// The one integer a query returns (0 for NULL).
async fn bq_scalar(sql: &str) -> u64 {
    let rows = stack::bq_rows(sql).await;
    rows[0][0].parse().unwrap_or(0)
}

fn parquet_count(p: &Project, day: NaiveDate) -> u64 {
    parquet_rows(p, "products", day)
}

/// Rows of `table`'s Parquet files for `day`.
fn parquet_rows(p: &Project, table: &str, day: NaiveDate) -> u64 {
    common::parquet_rows(&p.path().join(format!(".etl/warehouse/{table}/dt={day}")))
}

/// The main job: three pipelines, ten days, every count reconciled against
/// MongoDB; boundaries; then idempotency and a shrinking rerun. In the
/// shipped `local` profile, as the demo runs it: the lake, the Parquet
/// dataset and the ledger in gs:// buckets on gcs-front, with the key
/// from an age secret.
#[tokio::test(flavor = "multi_thread")]
async fn three_pipelines_ten_days_reconciled_idempotent() {
    let mut p = Project::on_stack("main").await;
    let buckets = p.project.on_gcs(&p.database.clone());
    p.seed(600, 900, 300);
    let pipelines = [
        "pipelines/users.yaml",
        "pipelines/orders.yaml",
        "pipelines/products.yaml",
    ];
    let mut args = vec![
        "run",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-10",
        "--parallel",
        "3",
    ];
    args.extend(pipelines);
    let summary = run_ok(&p, &args);
    assert!(
        summary.contains("30 done, 0 skipped (already done), 0 failed"),
        "{summary}"
    );

    // A done day's staging folder is removed (issue 10): a year of
    // backfill must not keep a year of data on local disk.
    let staging = p.path().join(".etl/staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging left behind: {left:?}");

    // Every object went through the GCS client: nothing in local folders.
    for local in [".etl/lake", ".etl/warehouse", ".etl/state"] {
        assert!(!p.path().join(local).exists(), "{local} was written");
    }
    let ledger = buckets.state.list("").await.unwrap();
    assert!(
        ledger.iter().any(|k| k.starts_with("ledger/orders/")),
        "the ledger is in the state bucket: {ledger:?}"
    );

    let uri = p.mongo_uri();
    let lake = buckets.lake_objects().await;
    let mut rejected_by: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for day in days() {
        for coll in ["users", "orders", "products"] {
            let expected = stack::mongo_day_count(&uri, &p.database, coll, day).await;
            let ext = if coll == "orders" { "zst" } else { "gz" };
            let raw = format!(
                "raw/{coll}/dt={day}/{coll}-{}.jsonl.{ext}",
                day.format("%Y%m%d")
            );
            let manifest = format!("raw/{coll}/dt={day}/_manifest.json");
            let m: serde_json::Value = serde_json::from_slice(
                lake.get(&manifest)
                    .unwrap_or_else(|| panic!("{manifest} missing")),
            )
            .unwrap();
            assert_eq!(m["documents"], expected, "{manifest}");
            let bytes = lake.get(&raw).unwrap_or_else(|| panic!("{raw} missing"));
            assert_eq!(m["bytes"], bytes.len() as u64);
            let lines = if ext == "gz" {
                gunzip_lines(bytes).len()
            } else {
                zstd::decode_all(&bytes[..])
                    .unwrap()
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            };
            assert_eq!(lines as u64, expected, "{raw}");
            let loaded = match coll {
                "products" => buckets.parquet_rows(&format!("products/dt={day}")).await,
                table => bq_count(&p.database, table, day).await,
            };
            // products reject documents whose price or weight is a string.
            let rejects = format!("raw/{coll}/dt={day}/_rejects.jsonl");
            let rejected: Vec<serde_json::Value> = lake
                .get(&rejects)
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect()
                })
                .unwrap_or_default();
            for r in &rejected {
                let path = r["path"].as_str().unwrap();
                assert!(
                    ["$.price", "$.attributes.weight_grams"].contains(&path),
                    "{rejects}: {r}"
                );
                assert!(
                    r["reason"].as_str().unwrap().contains("is a STRING value"),
                    "{r}"
                );
                assert!(
                    r["document"]["_id"]["$oid"].is_string(),
                    "canonical Extended JSON: {r}"
                );
            }
            assert_eq!(m["rejected"], rejected.len() as u64, "{manifest}");
            assert_eq!(
                loaded + rejected.len() as u64,
                expected,
                "{coll} {day}: warehouse rows + rejected vs MongoDB"
            );
            let tally = rejected_by.entry(coll).or_default();
            tally.0 += rejected.len();
            tally.1 += expected;
        }
        // `items` is exploded: one child row per element.
        let items = mongo_item_count(&uri, &p.database, day).await;
        assert!(items > 0, "{day}: the demo orders have items");
        assert_eq!(
            bq_count(&p.database, "orders__items", day).await,
            items,
            "orders__items {day}: child rows vs the sum of the items arrays' lengths"
        );
    }

    // What a person reads in the summary: users and orders convert their
    // drift and load every document; products reject only the few whose
    // price or weight is a string (about 2%, as its spec says), not 95%.
    assert_eq!(rejected_by["users"].0, 0, "{rejected_by:?}");
    assert_eq!(rejected_by["orders"].0, 0, "{rejected_by:?}");
    let (rejected, source) = rejected_by["products"];
    let share = rejected as f64 / source as f64;
    assert!(
        (0.01..=0.05).contains(&share),
        "products rejected {rejected} of {source} ({:.1}%)",
        share * 100.0
    );

    // Boundaries: a document at exactly 00:00:00.000 and one at
    // 23:59:59.999 land in their own day; documents before the range and
    // "today" appear in no archive.
    let users = p.collection("users").await;
    let all_raw: Vec<(String, Vec<String>)> = lake
        .iter()
        .filter(|(k, _)| k.starts_with("raw/users/") && k.ends_with(".gz"))
        .map(|(k, v)| (k.clone(), gunzip_lines(v)))
        .collect();
    let day_of = |id: &bson::oid::ObjectId| -> Vec<String> {
        let needle = format!("\"$oid\":\"{}\"", id.to_hex());
        all_raw
            .iter()
            .filter(|(_, lines)| {
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{{\"_id\":{{{needle}}}")))
            })
            .map(|(k, _)| k.clone())
            .collect()
    };
    let midnight = users
        .find_one(doc! {"created_at": bson::DateTime::from_millis(ms(days()[0]))})
        .await
        .unwrap()
        .expect("a midnight document");
    assert_eq!(
        day_of(&midnight.get_object_id("_id").unwrap()),
        vec!["raw/users/dt=2020-06-01/users-20200601.jsonl.gz"]
    );
    let mut cursor = users.find(doc! {}).await.unwrap();
    let (mut at_end_of_day, mut outside) = (0, 0);
    use futures::TryStreamExt;
    while let Some(d) = cursor.try_next().await.unwrap() {
        let t = d.get_datetime("created_at").unwrap().timestamp_millis();
        let id = d.get_object_id("_id").unwrap();
        let day = chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .date_naive();
        let found = day_of(&id);
        if days().contains(&day) {
            assert_eq!(
                found,
                vec![format!(
                    "raw/users/dt={day}/users-{}.jsonl.gz",
                    day.format("%Y%m%d")
                )],
                "{id} at {t}"
            );
            if t % 86_400_000 == 86_399_999 {
                at_end_of_day += 1;
            }
        } else {
            assert!(
                found.is_empty(),
                "{id} at {day} is outside the range but archived in {found:?}"
            );
            outside += 1;
        }
    }
    assert!(
        at_end_of_day >= 1,
        "the demo data has a 23:59:59.999 document"
    );
    assert!(
        outside >= 2,
        "the demo data has documents before the range and today"
    );

    // Idempotency: a second run skips every day; a forced rerun rewrites
    // byte-identical lake objects and the same counts.
    let again = run_ok(&p, &args);
    assert!(
        again.contains("0 done, 30 skipped (already done), 0 failed"),
        "{again}"
    );
    let mut rerun = args.clone();
    rerun.push("--rerun");
    run_ok(&p, &rerun);
    assert!(
        buckets.lake_objects().await == lake,
        "a rerun changed lake objects"
    );
    assert_eq!(
        bq_count(&p.database, "users", days()[2]).await,
        stack::mongo_day_count(&uri, &p.database, "users", days()[2]).await
    );

    // Deleted upstream: a rerun of the day shrinks the warehouse to match.
    let d3 = days()[2];
    let before = stack::mongo_day_count(&uri, &p.database, "orders", d3).await;
    let orders = p.collection("orders").await;
    let victims: Vec<bson::Document> = orders
        .find(doc! {"created_at": {"$gte": bson::DateTime::from_millis(ms(d3)), "$lt": bson::DateTime::from_millis(ms(d3) + 86_400_000)}})
        .limit(5)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for v in &victims {
        orders
            .delete_one(doc! {"_id": v.get_object_id("_id").unwrap()})
            .await
            .unwrap();
    }
    run_ok(
        &p,
        &[
            "run",
            "pipelines/orders.yaml",
            "--date",
            "2020-06-03",
            "--rerun",
        ],
    );
    assert_eq!(
        bq_count(&p.database, "orders", d3).await,
        before - victims.len() as u64
    );
    assert_eq!(
        bq_count(&p.database, "orders", days()[3]).await,
        stack::mongo_day_count(&uri, &p.database, "orders", days()[3]).await
    );

    // `etl status` shows the ledger with its gaps.
    let out = p.etl(&["status", "pipelines/users.yaml"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("  2020-06-01 done"), "{status}");
    assert!(status.contains("  2020-06-11 missing"), "{status}");
    assert_eq!(out.status.code(), Some(1), "gaps make `etl status` exit 1");
    // As JSON: every day listed, missing ones too, with the warehouse rows.
    let out = p.etl(&["status", "pipelines/users.yaml", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the same exit code as the table"
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let users = &status["pipelines"][0];
    let listed = users["days"].as_array().unwrap();
    assert_eq!(users["pipeline"], "users");
    assert_eq!(
        listed.len() as u64,
        users["done"].as_u64().unwrap()
            + users["failed"].as_u64().unwrap()
            + users["missing"].as_u64().unwrap()
    );
    assert_eq!(listed[0]["status"], "done");
    assert_eq!(
        listed[0]["record"]["warehouse_rows"].as_u64(),
        Some(bq_count(&p.database, "users", days()[0]).await)
    );
    assert_eq!(
        listed[10],
        json!({"day": "2020-06-11", "status": "missing"})
    );

    p.drop_database().await;
}

/// A day with no documents is recorded, and its warehouse partition is
/// emptied.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_day_is_recorded_and_empties_its_partition() {
    let p = Project::on_stack("empty").await;
    p.seed(200, 200, 100);
    run_ok(&p, &["run", "pipelines/users.yaml", "--date", "2020-06-04"]);
    let d = days()[3];
    assert!(bq_count(&p.database, "users", d).await > 0);
    p.collection("users")
        .await
        .delete_many(doc! {"created_at": {"$gte": bson::DateTime::from_millis(ms(d)), "$lt": bson::DateTime::from_millis(ms(d) + 86_400_000)}})
        .await
        .unwrap();
    let summary = run_ok(
        &p,
        &[
            "run",
            "pipelines/users.yaml",
            "--date",
            "2020-06-04",
            "--rerun",
        ],
    );
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &regex_escape(&p.path().canonicalize().unwrap().display().to_string()),
        "[PROJECT]",
    );
    settings.add_filter(&regex_escape(&p.database), "[DB]");
    settings.add_filter(r" +\d+\.\ds ", " [TIME] ");
    settings.bind(|| insta::assert_snapshot!(summary));
    assert_eq!(bq_count(&p.database, "users", d).await, 0);
    let m: serde_json::Value =
        serde_json::from_slice(&p.lake_files()["raw/users/dt=2020-06-04/_manifest.json"]).unwrap();
    assert_eq!(m["documents"], 0);
    p.drop_database().await;
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Stopping MongoDB in the middle of a run fails the remaining partitions
/// (exit 1, recorded in the ledger); a catch-up run after the restart
/// completes everything without duplicates.
#[tokio::test(flavor = "multi_thread")]
async fn mongo_dying_mid_run_fails_partitions_and_a_rerun_recovers() {
    stack::mongo().await;
    let data = tempfile::tempdir().unwrap();
    let port = 27300 + (std::process::id() % 500) as u16;
    let mut ferret = stack::OwnMongo::start(port, data.path());
    ferret.wait_ready().await;
    let p = Project::new("fail", port);
    // Its subject is MongoDB, not BigQuery.
    p.project.warehouse_to_parquet("pipelines/users.yaml");
    p.seed(8000, 10, 10);

    let child = p
        .project
        .command(&[
            "run",
            "pipelines/users.yaml",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-10",
            "--retries",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once the first day is in the ledger.
    let ledger = p.path().join(".etl/state/ledger/users");
    for _ in 0..600 {
        if std::fs::read_dir(&ledger)
            .map(|d| d.count() >= 1)
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ferret.stop();
    let out = child.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("failed: users 2020-06-10"), "{summary}");
    let status =
        String::from_utf8_lossy(&p.etl(&["status", "pipelines/users.yaml"]).stdout).into_owned();
    assert!(status.contains("  2020-06-10 failed"), "{status}");

    let ferret = stack::OwnMongo::start(port, &ferret.dir.clone());
    ferret.wait_ready().await;
    if !stack::OwnMongo::durable() {
        // The same deterministic data again.
        p.seed(8000, 10, 10);
    }
    let summary = run_ok(
        &p,
        &[
            "run",
            "pipelines/users.yaml",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-10",
        ],
    );
    assert!(summary.contains(", 0 failed"), "{summary}");
    let uri = p.mongo_uri();
    for day in days() {
        assert_eq!(
            parquet_rows(&p, "users", day),
            stack::mongo_day_count(&uri, &p.database, "users", day).await,
            "{day}"
        );
    }
}

/// The `iso_string` kind: a day selected by string bounds on an ISO-8601
/// field holds exactly the documents the BSON Date selects.
#[tokio::test(flavor = "multi_thread")]
async fn iso_string_partitions_match_date_partitions() {
    let p = Project::on_stack("iso").await;
    p.seed(400, 10, 10);
    let spec = "pipelines/users_iso.yaml";
    p.project
        .write(spec, &p.project.read("pipelines/users.yaml"));
    p.project.edit(
        spec,
        "  field: created_at\n  kind: date\n",
        "  field: created_at_iso\n  kind: iso_string\n",
    );
    p.project
        .edit(spec, "raw/{{ collection }}/", "raw/{{ pipeline }}/");
    let iso = p.project.read(spec);
    let warehouse_at = iso.find("  warehouse:\n").unwrap();
    let iso = format!(
        "{}  warehouse:\n    type: parquet\n    connection: warehouse_files\n    path: \"{{{{ pipeline }}}}\"\n",
        &iso[..warehouse_at]
    );
    std::fs::write(p.path().join("pipelines/users_iso.yaml"), iso).unwrap();
    run_ok(
        &p,
        &[
            "run",
            "pipelines/users_iso.yaml",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-10",
        ],
    );
    let uri = p.mongo_uri();
    for day in days() {
        let dir = p.path().join(format!(".etl/warehouse/users_iso/dt={day}"));
        let f = std::fs::File::open(dir.join("part-00000.parquet")).unwrap();
        use parquet::file::reader::FileReader;
        let rows = parquet::file::serialized_reader::SerializedFileReader::new(f)
            .unwrap()
            .metadata()
            .file_metadata()
            .num_rows() as u64;
        assert_eq!(
            rows,
            stack::mongo_day_count(&uri, &p.database, "users", day).await,
            "{day}"
        );
    }
    mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&p.database)
        .drop()
        .await
        .unwrap();
}

/// `iso_string` days are exact: every accepted form (a date alone, a
/// space for `T`, minutes only, fractions, `Z`, offsets of each spelling)
/// lands on its instant's day, even where its characters name another
/// date, and the day's count (`source.count`, a scan of the field) agrees.
/// Strings in no accepted form land on no day: `etl verify` counts them.
#[tokio::test(flavor = "multi_thread")]
async fn iso_strings_of_every_form_land_on_their_instants_day() {
    let p = Project::on_stack("isoforms").await;
    let stamps = p.collection("stamps").await;
    let forms: [(i32, &str, Option<&str>); 13] = [
        (1, "2020-06-01", Some("2020-06-01")),
        (2, "2020-06-01T00:00:00Z", Some("2020-06-01")),
        (3, "2020-06-01 12:00", Some("2020-06-01")),
        (4, "2020-06-01T23:30:00+02:00", Some("2020-06-01")),
        (5, "2020-06-02T01:00:00+0200", Some("2020-06-01")),
        (6, "2020-06-01T23:30:00-02:00", Some("2020-06-02")),
        (7, "2020-06-02T12:00:00.123456Z", Some("2020-06-02")),
        (8, "2020-06-02 23:59:59.999", Some("2020-06-02")),
        (9, "2020-06-03T00:30:00+01", Some("2020-06-02")),
        (10, "2020-06-03", Some("2020-06-03")),
        (11, "June 3, 2020", None),
        (12, "2020-06-03T25:00:00Z", None),
        (13, "2020-06-03 08:00 UTC", None),
    ];
    stamps
        .insert_many(forms.iter().map(|(id, at, _)| doc! { "_id": id, "at": at }))
        .await
        .unwrap();
    std::fs::write(
        p.path().join("pipelines/stamps.yaml"),
        format!(
            "version: 1
source: {{ connection: mongo, database: {db}, collection: stamps, count: true }}
partition: {{ field: at, kind: iso_string, start_date: \"2020-06-01\" }}
sinks:
  lake:
    connection: lake
    path: raw/stamps/dt={{{{ ds }}}}/stamps.jsonl.gz
  warehouse: {{ type: parquet, connection: warehouse_files, path: stamps }}
",
            db = p.database
        ),
    )
    .unwrap();
    let summary = run_ok(
        &p,
        &[
            "run",
            "pipelines/stamps.yaml",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-03",
        ],
    );
    assert!(summary.contains("3 done"), "{summary}");
    let lake = p.lake_files();
    for d in ["2020-06-01", "2020-06-02", "2020-06-03"] {
        let raw = &lake[&format!("raw/stamps/dt={d}/stamps.jsonl.gz")];
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap();
        let ids: Vec<i64> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["_id"]["$numberInt"].as_str().unwrap().parse().unwrap()
            })
            .collect();
        let want: Vec<i64> = forms
            .iter()
            .filter(|(_, _, day)| *day == Some(d))
            .map(|(id, _, _)| i64::from(*id))
            .collect();
        assert_eq!(ids, want, "{d}");
        let day: NaiveDate = d.parse().unwrap();
        assert_eq!(parquet_rows(&p, "stamps", day), want.len() as u64, "{d}");
    }
    p.drop_database().await;
}

/// A count of non-null values of `column` on the day.
async fn bq_non_null(dataset: &str, table: &str, column: &str, day: NaiveDate) -> u64 {
    bq_scalar(&format!(
        "SELECT COUNT({column}) FROM `{}.{dataset}.{table}` WHERE _ds = DATE '{day}'",
        stack::BQ_PROJECT
    ))
    .await
}

/// Drifted documents follow `on_type_conflict`: under `variant` every
/// document loads, the odd values in `n__v_string`; under `reject` they go
/// whole to `_rejects.jsonl`, and source = loaded + rejected.
#[tokio::test(flavor = "multi_thread")]
async fn type_conflicts_follow_the_policy_and_reconcile() {
    let p = Project::on_stack("policies").await;
    let events = p.collection("events").await;
    let day = NaiveDate::from_ymd_opt(2020, 6, 1).unwrap();
    let at = |i: i64| bson::DateTime::from_millis(ms(day) + i * 60_000);
    let mut docs = Vec::new();
    for i in 0..6 {
        docs.push(doc! {"_id": i, "created_at": at(i), "n": i, "tags": ["a", "b"]});
    }
    docs.push(doc! {"_id": 6, "created_at": at(6), "n": "seven", "tags": ["c"]});
    docs.push(doc! {"_id": 7, "created_at": at(7), "n": "eight"});
    // FerretDB cannot store NaN: unit tests cover NaN from BSON.
    docs.push(doc! {"_id": 8, "created_at": at(8), "n": true});
    events.insert_many(docs).await.unwrap();
    let spec = |policy: &str, table: &str| {
        format!(
            "version: 1
source: {{ connection: mongo, database: {db}, collection: events }}
partition: {{ field: created_at, kind: date, start_date: \"2020-06-01\" }}
flatten:
  on_type_conflict: {policy}
  arrays: {{ default: repeated }}
sinks:
  lake:
    connection: lake
    path: raw/{table}/dt={{{{ ds }}}}/{table}.jsonl.gz
  warehouse: {{ type: bigquery, connection: warehouse, dataset: {db}, table: {table}, replace: staging }}
",
            db = p.database
        )
    };
    for (policy, table) in [("variant", "events_variant"), ("reject", "events_reject")] {
        std::fs::write(
            p.path().join(format!("pipelines/{table}.yaml")),
            spec(policy, table),
        )
        .unwrap();
    }
    let summary = run_ok(
        &p,
        &[
            "run",
            "--date",
            "2020-06-01",
            "pipelines/events_variant.yaml",
            "pipelines/events_reject.yaml",
        ],
    );
    assert!(summary.contains("2 done"), "{summary}");

    // variant: all 9 load; the odd values beside the INT64 column.
    assert_eq!(bq_count(&p.database, "events_variant", day).await, 9);
    assert_eq!(
        bq_non_null(&p.database, "events_variant", "n", day).await,
        6
    );
    assert_eq!(
        bq_non_null(&p.database, "events_variant", "n__v_string", day).await,
        2
    );
    assert_eq!(
        bq_non_null(&p.database, "events_variant", "n__v_bool", day).await,
        1
    );

    // reject: 6 load, 3 are kept whole with their reasons.
    assert_eq!(bq_count(&p.database, "events_reject", day).await, 6);
    let rejects = p
        .lake_files()
        .remove("raw/events_reject/dt=2020-06-01/_rejects.jsonl")
        .expect("the rejects object");
    let rejects: Vec<serde_json::Value> = String::from_utf8(rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<(&str, &str)> = rejects
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("$.n", "`$.n` is a STRING value, but column `n` is INT64"),
            ("$.n", "`$.n` is a STRING value, but column `n` is INT64"),
            ("$.n", "`$.n` is a BOOL value, but column `n` is INT64"),
        ]
    );
    assert_eq!(rejects[0]["document"]["_id"], json!({"$numberInt": "6"}));
    assert_eq!(rejects[2]["document"]["n"], json!(true));
    assert!(
        summary.contains("3  rejected (type conflicts)"),
        "the summary shows the rejects: {summary}"
    );
    let out = p.etl(&["status", "pipelines/events_reject.yaml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2020-06-01 done"));
    // The same day for a script: the 9 documents read, 6 rows, 3 rejects.
    let out = p.etl(&["status", "pipelines/events_reject.yaml", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &status["pipelines"][0]["days"][0];
    assert_eq!(
        (
            &first["day"],
            &first["status"],
            &first["record"]["read"],
            &first["record"]["source_count"],
            &first["record"]["warehouse_rows"],
            &first["record"]["rejected"],
            &first["record"]["attempts"],
        ),
        (
            &json!("2020-06-01"),
            &json!("done"),
            &json!(9),
            // No `source.count`: nothing counted at the source.
            &json!(null),
            &json!(6),
            &json!(3),
            &json!(1)
        ),
        "{status}"
    );

    p.drop_database().await;
}

/// Declared columns whose values do not convert: each such value is NULL
/// in its row, and counted per column in the summary, the ledger, the
/// manifest and `etl status`, and listed by `_id` in `_unconverted.jsonl`
/// beside the raw object. A missing or null value is NULL uncounted.
#[tokio::test(flavor = "multi_thread")]
async fn values_that_do_not_convert_are_counted_and_listed() {
    let p = Project::on_stack("unconverted").await;
    let day = NaiveDate::from_ymd_opt(2020, 6, 1).unwrap();
    let at = bson::DateTime::from_millis(ms(day) + 3_600_000);
    p.collection("prices")
        .await
        .insert_many([
            doc! {"_id": 1, "created_at": at, "price": "1.50", "qty": 2},
            doc! {"_id": 2, "created_at": at, "price": "n/a", "qty": "two"},
            doc! {"_id": 3, "created_at": at, "price": "123456789012345678901234567890"},
            doc! {"_id": 4, "created_at": at, "price": bson::Bson::Null, "qty": 1},
            doc! {"_id": 5, "created_at": at},
        ])
        .await
        .unwrap();
    std::fs::write(
        p.path().join("pipelines/prices.yaml"),
        format!(
            "version: 1
source: {{ connection: mongo, database: {db}, collection: prices }}
partition: {{ field: created_at, kind: date, start_date: \"2020-06-01\" }}
flatten:
  columns:
    - {{ name: price, path: $.price, type: numeric }}
    - {{ name: qty, path: $.qty, type: int64 }}
sinks:
  lake:
    connection: lake
    path: raw/prices/dt={{{{ ds }}}}/prices.jsonl.gz
  warehouse: {{ type: parquet, connection: warehouse_files, path: prices }}
",
            db = p.database
        ),
    )
    .unwrap();
    let summary = run_ok(
        &p,
        &["run", "pipelines/prices.yaml", "--date", "2020-06-01"],
    );
    assert!(
        summary.contains(
            "3  values did not convert to their column's type, NULL in their rows (price: 2, qty: 1); listed in "
        ) && summary.contains("/raw/prices/dt=2020-06-01/_unconverted.jsonl\n"),
        "{summary}"
    );
    // Every document is a row: nothing was rejected.
    assert_eq!(parquet_rows(&p, "prices", day), 5);
    let record = common::ledger_record(p.path(), "prices", "2020-06-01");
    assert_eq!(record["unconverted"], json!({"price": 2, "qty": 1}));
    assert_eq!(record["raw_lines"], json!(5));
    let lake = p.lake_files();
    let listed: Vec<serde_json::Value> =
        String::from_utf8(lake["raw/prices/dt=2020-06-01/_unconverted.jsonl"].clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(
        listed,
        [
            json!({"_id": {"$numberInt": "2"}, "table": "prices", "column": "price", "found": "a STRING value", "expected": "NUMERIC"}),
            json!({"_id": {"$numberInt": "2"}, "table": "prices", "column": "qty", "found": "a STRING value", "expected": "INT64"}),
            json!({"_id": {"$numberInt": "3"}, "table": "prices", "column": "price", "found": "a number with more digits than NUMERIC holds", "expected": "NUMERIC"}),
        ]
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&lake["raw/prices/dt=2020-06-01/_manifest.json"]).unwrap();
    assert_eq!(manifest["unconverted"], json!({"price": 2, "qty": 1}));
    assert_eq!(
        manifest["unconverted_object"],
        json!("raw/prices/dt=2020-06-01/_unconverted.jsonl")
    );
    let shown = common::text(&p.etl(&["status", "pipelines/prices.yaml"]));
    assert!(
        shown.contains("3 values did not convert (price: 2, qty: 1)"),
        "{shown}"
    );
    let out = p.etl(&["status", "pipelines/prices.yaml", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["pipelines"][0]["days"][0]["record"]["unconverted"],
        json!({"price": 2, "qty": 1})
    );

    // Under `variant` the same values are kept beside their columns.
    let variant = p
        .project
        .read("pipelines/prices.yaml")
        .replace("flatten:\n", "flatten:\n  on_type_conflict: variant\n")
        .replace("prices", "prices_variant")
        .replace("collection: prices_variant", "collection: prices");
    p.project.write("pipelines/prices_variant.yaml", &variant);
    let summary = run_ok(
        &p,
        &[
            "run",
            "pipelines/prices_variant.yaml",
            "--date",
            "2020-06-01",
        ],
    );
    assert!(!summary.contains("did not convert"), "{summary}");
    let record = common::ledger_record(p.path(), "prices_variant", "2020-06-01");
    assert_eq!(record["unconverted"], serde_json::Value::Null, "{record}");
    let file = std::fs::File::open(
        p.path()
            .join(".etl/warehouse/prices_variant/dt=2020-06-01/part-00000.parquet"),
    )
    .unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batch = reader.map(Result::unwrap).next().unwrap();
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert!(
        names.starts_with(&["_ds", "price", "price__v_string", "qty", "qty__v_string"]),
        "{names:?}"
    );
    let text = |name: &str| {
        use arrow_array::Array;
        let col = batch.column_by_name(name).unwrap();
        let col = col
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        (0..col.len())
            .map(|i| (!col.is_null(i)).then(|| col.value(i).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        text("price__v_string"),
        [
            None,
            Some("n/a".to_owned()),
            Some("123456789012345678901234567890".to_owned()),
            None,
            None
        ]
    );
    assert_eq!(text("qty__v_string")[1].as_deref(), Some("two"));

    // Fixed at the source, the day's rerun lists nothing, and the old list
    // is gone from the lake.
    let prices = p.collection("prices").await;
    prices
        .update_one(doc! {"_id": 2}, doc! {"$set": {"price": "2", "qty": 2}})
        .await
        .unwrap();
    prices
        .update_one(doc! {"_id": 3}, doc! {"$set": {"price": "3"}})
        .await
        .unwrap();
    let summary = run_ok(
        &p,
        &[
            "run",
            "pipelines/prices.yaml",
            "--date",
            "2020-06-01",
            "--rerun",
        ],
    );
    assert!(!summary.contains("did not convert"), "{summary}");
    assert!(!p
        .lake_files()
        .contains_key("raw/prices/dt=2020-06-01/_unconverted.jsonl"));
    p.drop_database().await;
}

/// The schema lock from data, then `on_new_field`: `fail` stops a day whose
/// documents have a field the lock lacks, naming it; `ignore` loads the day
/// without it.
#[tokio::test(flavor = "multi_thread")]
async fn new_fields_follow_the_lock_and_the_policy() {
    let p = Project::on_stack("newfields").await;
    let events = p.collection("events").await;
    let [d1, d2] = [days()[0], days()[1]];
    let at = |d: NaiveDate, i: i64| bson::DateTime::from_millis(ms(d) + i * 60_000);
    events
        .insert_many([
            doc! {"_id": 1, "created_at": at(d1, 1), "a": 1},
            doc! {"_id": 2, "created_at": at(d1, 2), "a": 2},
            doc! {"_id": 3, "created_at": at(d2, 1), "a": 3, "surprise": "new"},
        ])
        .await
        .unwrap();
    let spec = |policy: &str| {
        format!(
            "version: 1
name: events
source: {{ connection: mongo, database: {db}, collection: events }}
partition: {{ field: created_at, kind: date, start_date: \"2020-06-01\" }}
flatten: {{ on_new_field: {policy} }}
sinks:
  lake: {{ connection: lake, path: \"raw/events/dt={{{{ ds }}}}/events.jsonl.gz\" }}
  warehouse: {{ type: bigquery, connection: warehouse, dataset: {db}, table: events, replace: staging }}
",
            db = p.database
        )
    };
    let file = p.path().join("pipelines/events.yaml");
    std::fs::write(&file, spec("fail")).unwrap();
    let locked = run_ok(
        &p,
        &[
            "schema",
            "lock",
            "pipelines/events.yaml",
            "--date",
            "2020-06-01",
        ],
    );
    assert!(
        locked.contains("wrote schemas/tables/events.json"),
        "{locked}"
    );

    let out = p.etl(&[
        "run",
        "pipelines/events.yaml",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-02",
    ]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("1 done, 0 skipped (already done), 1 failed"),
        "{summary}"
    );
    assert!(
        summary.contains("table `events` has columns that schemas/tables/events.json lacks for `events`: surprise (on_new_field: fail)"),
        "{summary}"
    );

    std::fs::write(&file, spec("ignore")).unwrap();
    run_ok(
        &p,
        &["run", "pipelines/events.yaml", "--date", "2020-06-02"],
    );
    assert_eq!(bq_count(&p.database, "events", d2).await, 1);
    let (status, table) = stack::Emulator::require()
        .await
        .table(&p.database, "events")
        .await;
    assert_eq!(status, 200, "{table}");
    let names: Vec<&str> = table["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["_ds", "_id", "created_at", "a"],
        "the new field is left out"
    );

    p.drop_database().await;
}

/// `etl infer` on a collection seeded only here: it reads every document
/// of the days asked, drafts a spec and its lock, and the draft validates
/// and loads every document and array element without edits.
#[tokio::test(flavor = "multi_thread")]
async fn infer_drafts_a_spec_that_runs_without_edits() {
    let p = Project::on_stack("infer").await;
    let reviews = p.collection("reviews").await;
    let [d1, d2] = [days()[0], days()[1]];
    let mut docs = Vec::new();
    let mut photos = [0u64; 2];
    for i in 0..40i64 {
        let day = if i < 25 { d1 } else { d2 };
        let n_photos = (i % 4) as usize;
        photos[usize::from(day == d2)] += n_photos as u64;
        // Ratings are numbers on day 1; a few are strings on day 2.
        let rating = if day == d2 && i % 5 == 0 {
            bson::Bson::String(format!("{}", i % 5 + 1))
        } else {
            bson::Bson::Int32((i % 5 + 1) as i32)
        };
        docs.push(doc! {
            "_id": bson::oid::ObjectId::new(),
            "posted_at": bson::DateTime::from_millis(ms(day) + i * 60_000),
            "author": { "name": format!("a{i}"), "country": "FR" },
            "rating": rating,
            "tags": (0..i % 3).map(|t| format!("t{t}")).collect::<Vec<_>>(),
            "photos": (0..n_photos).map(|k| doc! {"url": format!("u{i}-{k}"), "w": 100 + k as i32}).collect::<Vec<_>>(),
        });
    }
    reviews.insert_many(docs).await.unwrap();

    let report = run_ok(
        &p,
        &[
            "infer",
            "--database",
            &p.database,
            "--collection",
            "reviews",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-02",
        ],
    );
    assert!(
        report.contains("partition field: `posted_at` (date;"),
        "{report}"
    );
    assert!(
        report.contains("read all 40 documents from 2020-06-01 to 2020-06-02"),
        "{report}"
    );
    assert!(report.contains("  rating "), "{report}");
    assert!(
        report.contains("int 37, string 3  -> type conflict"),
        "{report}"
    );
    assert!(report.contains("-> explode"), "{report}");
    let draft = std::fs::read_to_string(p.path().join("pipelines/reviews.yaml")).unwrap();
    assert!(
        draft.contains("path: \"$.photos\"\n        policy: explode"),
        "{draft}"
    );
    assert!(
        draft.contains("path: \"$.tags\"\n        policy: repeated"),
        "{draft}"
    );

    run_ok(&p, &["validate", "pipelines/reviews.yaml"]);
    let summary = run_ok(
        &p,
        &[
            "run",
            "pipelines/reviews.yaml",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-02",
        ],
    );
    assert!(summary.contains("2 done"), "{summary}");
    assert_eq!(bq_count(&p.database, "reviews", d1).await, 25);
    assert_eq!(bq_count(&p.database, "reviews", d2).await, 15);
    assert_eq!(
        bq_count(&p.database, "reviews__photos", d1).await,
        photos[0]
    );
    assert_eq!(
        bq_count(&p.database, "reviews__photos", d2).await,
        photos[1]
    );
    // Day 1 alone had only numbers, but the lock saw both days: one type.
    assert_eq!(bq_non_null(&p.database, "reviews", "rating", d1).await, 25);
    assert_eq!(bq_non_null(&p.database, "reviews", "rating", d2).await, 15);

    p.drop_database().await;
}

/// Issue 10: a collection imported today, whose ObjectIds are younger than
/// its business date `created_ms`. `infer` must partition on `created_ms`,
/// read the requested days' documents, and refuse to draft from days that
/// hold none, naming the candidates.
#[tokio::test(flavor = "multi_thread")]
async fn infer_prefers_a_business_date_to_young_object_ids_and_refuses_empty_days() {
    let p = Project::on_stack("infer_ms").await;
    let reviews = p.collection("reviews").await;
    let first = NaiveDate::from_ymd_opt(2020, 6, 1).unwrap();
    let docs: Vec<_> = (0..100i64)
        .map(|i| {
            doc! {
                // Inserted now: the ObjectId's time is today's.
                "_id": bson::oid::ObjectId::new(),
                "created_ms": ms(first) + (i % 5) * 86_400_000 + i * 1_000,
                "stars": (i % 5 + 1) as i32,
            }
        })
        .collect();
    reviews.insert_many(docs).await.unwrap();
    let infer = |start: &str, end: &str| {
        p.etl(&[
            "infer",
            "--database",
            &p.database,
            "--collection",
            "reviews",
            "--start",
            start,
            "--end",
            end,
        ])
    };

    let out = infer("2019-01-01", "2019-01-05");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("with values between 2019-01-01 and 2019-01-05"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`created_ms` epoch_millis (100 documents, 0 in the requested days)"),
        "{stderr}"
    );
    assert!(!p.path().join("pipelines/reviews.yaml").exists());
    assert!(!p.path().join("schemas/tables/reviews.json").exists());

    let out = infer("2020-06-01", "2020-06-05");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("partition field: `created_ms` (epoch_millis; in 100 of the 100 documents, 100 of them in the requested days)"),
        "{report}"
    );
    assert!(
        report.contains("`_id` object_id (100 documents, 0 in the requested days)"),
        "{report}"
    );
    assert!(
        report.contains("read all 100 documents from 2020-06-01 to 2020-06-05"),
        "{report}"
    );
    let draft = std::fs::read_to_string(p.path().join("pipelines/reviews.yaml")).unwrap();
    assert!(
        draft.contains("field: created_ms\n  kind: epoch_millis"),
        "{draft}"
    );

    p.drop_database().await;
}

/// Issue 10: a query the server refuses fails the partition at once, with
/// a hint, instead of being retried as if it were a network fault.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_query_fails_at_once_with_a_hint() {
    let p = Project::on_stack("refused").await;
    p.project.edit(
        "pipelines/users.yaml",
        "  collection: users\n",
        "  collection: users\n  filter: { $nosuchoperator: 1 }\n",
    );
    // A server evaluates no filter over a collection that does not exist.
    p.seed(50, 1, 1);
    let started = std::time::Instant::now();
    let out = p.etl(&["run", "pipelines/users.yaml", "--date", "2020-06-01"]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("hint: the server refused the query: check `source.filter`"),
        "{summary}"
    );
    let record = common::ledger_record(p.path(), "users", "2020-06-01");
    assert_eq!(record["attempts"], 1, "{record}");
    assert_eq!(record["status"], "failed", "{record}");
    // Three retries would have waited 1 + 2 + 4 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    // A failed day keeps its staging folder, and says where.
    let kept = p.staged("users", "2020-06-01");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept = &kept[0];
    assert!(
        record["error"].as_str().unwrap().contains(&format!(
            "this day's staging files are kept in `{}`",
            kept.display()
        )),
        "{record}"
    );

    // `state.keep_staging: true` keeps a done day's folder too.
    p.project.edit(
        "etl.yaml",
        "  staging_dir: .etl/staging\n",
        "  staging_dir: .etl/staging\n  keep_staging: true\n",
    );
    p.project.edit(
        "pipelines/users.yaml",
        "  filter: { $nosuchoperator: 1 }\n",
        "",
    );
    run_ok(&p, &["run", "pipelines/users.yaml", "--date", "2020-06-01"]);
    // The run has a folder of its own; in it the spool is gone once
    // flattened, and the rows and the archive stay.
    let done: Vec<PathBuf> = p
        .staged("users", "2020-06-01")
        .into_iter()
        .filter(|d| d != kept)
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        done[0].join("parquet-users/part-00000.parquet").is_file()
            && done[0].join("users-20200601.jsonl.gz").is_file()
            && !done[0].join("spool.bson").exists(),
        "keep_staging keeps the rows and the raw archive"
    );
}

/// A day whose schema is known before its extract (here from the schema
/// lock) has its rows written while the documents arrive; a day whose
/// schema turns out otherwise is flattened again after the extract. Both
/// ways must write the same bytes: the same Parquet files, the same rejects.
#[tokio::test(flavor = "multi_thread")]
async fn rows_written_during_the_extract_equal_those_written_after_it() {
    let p = Project::on_stack("speculate").await;
    let events = p.collection("events").await;
    let d1 = days()[0];
    let docs: Vec<bson::Document> = (0..60i64)
        .map(|i| {
            let mut d = doc! {
                "_id": i,
                "created_at": bson::DateTime::from_millis(ms(d1) + i * 60_000),
                "n": i,
                "who": { "name": format!("user {i}"), "tier": i % 3 },
                "items": (0..(i % 4)).map(|k| doc! {"sku": format!("s{k}"), "qty": k}).collect::<Vec<_>>(),
            };
            if i % 20 == 7 {
                // Against the lock's INT64: rejected, under `reject`.
                d.insert("n", format!("n{i}"));
            }
            d
        })
        .collect();
    events.insert_many(docs).await.unwrap();
    p.write_events_spec(
        "flatten:
  on_type_conflict: reject
  arrays:
    rules:
      - { path: $.items, policy: explode, table: events__items }
",
    );
    // The lock, from documents without the conflicting values: drafted
    // from the day itself, `n` would be STRING.
    let lock_path = p.path().join("schemas/tables/events.json");
    let mut lock = json!({"version": 1, "pipeline": "events", "tables": {
        "events": {"columns": [
            {"name": "_ds", "type": "date"},
            {"name": "_id", "type": "int64"},
            {"name": "created_at", "type": "timestamp"},
            {"name": "n", "type": "int64"},
            {"name": "who__name", "type": "string"},
            {"name": "who__tier", "type": "int64"},
        ]},
        "events__items": {"columns": [
            {"name": "_ds", "type": "date"},
            {"name": "_root_id", "type": "string"},
            {"name": "_idx", "type": "int64"},
            {"name": "sku", "type": "string"},
            {"name": "qty", "type": "int64"},
        ]},
    }});
    std::fs::write(&lock_path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();

    let outputs = |p: &Project| -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for table in ["events", "events__items"] {
            let dir = p.path().join(format!(".etl/warehouse/{table}/dt={d1}"));
            for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = e.unwrap().path();
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
        for (name, bytes) in p.lake_files() {
            files.insert(name, bytes);
        }
        files
    };
    let run = |p: &Project| {
        let out = p.etl_with(
            &[
                "run",
                "pipelines/events.yaml",
                "--date",
                "2020-06-01",
                "--rerun",
            ],
            &[("ETL_LOG", "etl=debug")],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stdout}\n{stderr}");
        (stdout, stderr)
    };
    const KEPT: &str = "rows written during the extract kept";

    let (summary, log) = run(&p);
    // The lock's columns, in the lock's order, are the day's: both tables'
    // Parquet files, encoded during the extract, are the ones published.
    assert!(
        log.contains(KEPT),
        "the lock's columns are the day's:\n{log}"
    );
    assert!(
        summary.contains("1 done, 0 skipped (already done), 0 failed"),
        "{summary}"
    );
    let during = outputs(&p);
    let rejects = during
        .iter()
        .find(|(name, _)| name.contains("_rejects"))
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .expect("a rejects object in the lake");
    assert_eq!(rejects.lines().count(), 3, "{rejects}");
    let record = common::ledger_record(p.path(), "events", "2020-06-01");
    assert_eq!(record["warehouse_rows"], 57, "{record}");
    assert_eq!(record["rejected"], 3, "{record}");
    assert_eq!(record["child_rows"]["events__items"], 81, "{record}");

    // A column the lock lacks, and no dataset schema to tell of it: the
    // day's schema differs from the one expected, the lock's. (A column
    // of the lock the day lacks no longer does: every day has the lock's
    // columns, issue 29.) `who__tier`, the lock's last column, comes back
    // as a new column in the same place, so the files are the same.
    lock["tables"]["events"]["columns"]
        .as_array_mut()
        .unwrap()
        .pop();
    std::fs::write(&lock_path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    std::fs::remove_dir_all(p.path().join(".etl/warehouse/_etl")).unwrap();
    let (summary, log) = run(&p);
    assert!(
        !log.contains(KEPT),
        "the day has a column the lock lacks:\n{log}"
    );
    // Pass 2 ran again, from the raw archive: a day that started pass 2
    // beside its extract writes no BSON spool.
    assert!(
        log.contains("flattening the day after its extract")
            && log.contains("from=\"the raw archive\""),
        "{log}"
    );
    assert!(
        summary.contains("1 done, 0 skipped (already done), 0 failed"),
        "{summary}"
    );
    let after = outputs(&p);
    assert_eq!(
        during.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &during {
        assert!(after[name] == *bytes, "{name} differs between the two ways");
    }

    p.drop_database().await;
}

/// A SIGTERM during a day: no new day starts, the running one is recorded
/// `interrupted` with its staging folder gone and nothing loaded, the exit
/// code says so, and the next run does the day and the rest.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_stops_the_run_and_the_next_run_heals_it() {
    let p = Project::on_stack("signal").await;
    let events = p.collection("events").await;
    let d1 = days()[0];
    // A first day long enough to be caught running; two short ones after.
    // mongo-java-server serves 20,000 documents in under 0.1 s, and the
    // whole run once ended before the signal: it gets ten times as many.
    let big: i64 = if stack::on_fast_server() {
        200_000
    } else {
        20_000
    };
    let docs: Vec<bson::Document> = (0..big + 20)
        .map(|i| {
            let at = if i < big {
                ms(d1) + i * (86_400_000 / big)
            } else {
                ms(d1) + 86_400_000 * (1 + (i - big) % 2) + i
            };
            doc! { "_id": i, "created_at": bson::DateTime::from_millis(at), "n": i, "who": { "name": format!("user {i}") } }
        })
        .collect();
    events.insert_many(docs).await.unwrap();
    p.write_events_spec("");
    let args = [
        "run",
        "pipelines/events.yaml",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-03",
    ];

    let child = p
        .project
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first day has started once its spool exists.
    for _ in 0..3000 {
        if p.staged("events", "2020-06-01")
            .iter()
            .any(|d| d.join("spool.bson").exists())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        !p.staged("events", "2020-06-01").is_empty(),
        "the first day never started"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("interrupted: no new day starts"),
        "{stderr}"
    );
    assert!(
        stdout.contains("events     2020-06-01 STOPPED")
            && stdout.contains("events     2020-06-02 not run")
            && stdout.contains("events     2020-06-03 not run"),
        "{stdout}"
    );
    assert!(
        stdout.contains("interrupted: 1 day(s) stopped and recorded `interrupted`, 2 not started; run the same command again to finish"),
        "{stdout}"
    );
    let record = common::ledger_record(p.path(), "events", "2020-06-01");
    assert_eq!(record["status"], "interrupted", "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted by a shutdown request"),
        "{record}"
    );
    assert!(!p
        .path()
        .join(".etl/state/ledger/events/2020-06-02.json")
        .exists());
    assert!(
        p.staged("events", "2020-06-01").is_empty(),
        "the stopped day's staging folder is removed"
    );
    assert!(
        !p.path()
            .join(".etl/warehouse/events/dt=2020-06-01")
            .exists(),
        "nothing of the stopped day is loaded"
    );
    let status = p.etl(&["status", "pipelines/events.yaml"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("  2020-06-01 stopped"), "{shown}");

    let summary = run_ok(&p, &args);
    assert!(
        summary.contains("3 done, 0 skipped (already done), 0 failed"),
        "{summary}"
    );
    assert_eq!(
        common::ledger_record(p.path(), "events", "2020-06-01")["status"],
        "done"
    );
    assert_eq!(parquet_rows(&p, "events", d1), big as u64);
    assert_eq!(parquet_rows(&p, "events", d1.succ_opt().unwrap()), 10);
}

/// `etl schedule` as systemd runs it, its clock a day every six seconds:
/// on start it catches up the days missed, then loads each day once when
/// the cron falls due, logging each decision; SIGTERM stops it with 0.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_loads_each_day_when_it_falls_due_and_stops_on_sigterm() {
    let p = Project::on_stack("schedule").await;
    let events = p.collection("events").await;
    // 10 + i documents on the i-th day.
    let docs: Vec<bson::Document> = days()
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            (0..10 + i as i64).map(move |j| {
                doc! { "_id": format!("{d}-{j}"), "created_at": bson::DateTime::from_millis(ms(*d) + j * 60_000), "n": j }
            })
        })
        .collect();
    events.insert_many(docs).await.unwrap();
    p.write_events_spec("");
    let log_path = p.path().join("schedule.log");
    let mut child = p
        .project
        .command(&[
            "schedule",
            "pipelines/events.yaml",
            "--clock-start",
            "2020-06-03T12:00:00Z",
            "--clock-speed",
            "14400",
        ])
        // The daemon follows its clock; it refuses a pinned "today".
        .env_remove("ETL_TODAY")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap();
    let done = |day: &str| {
        let path = p
            .path()
            .join(format!(".etl/state/ledger/events/{day}.json"));
        std::fs::read_to_string(path).is_ok_and(|t| t.contains("\"status\": \"done\""))
    };
    // 2020-06-05 falls due at 06-06 00:00 of its clock: 42 virtual hours,
    // about ten seconds, after it starts.
    let started = std::time::Instant::now();
    while !done("2020-06-05") {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("etl schedule ended by itself ({status}):\n{}", log());
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "2020-06-05 was never loaded:\n{}",
            log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < std::time::Duration::from_secs(30),
            "SIGTERM did not stop it:\n{}",
            log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let log = log();
    assert_eq!(status.code(), Some(0), "{log}");
    for line in [
        // Its clock starts when the process does, a moment before this line.
        "schedule: started at 2020-06-03 12:00:",
        "with 1 pipeline(s); catching up the days missed so far",
        "events: catch-up on start: running every day not done through 2020-06-02",
        "events: done 2 days, 2020-06-01..2020-06-02; 0 already done; 0 failed",
        "events: next run at 2020-06-04 00:00:00 UTC (cron `0 0 * * *`, UTC); it loads through 2020-06-03",
        "events: due at 2020-06-05 00:00:00 UTC: running every day not done through 2020-06-04",
        "events: done 2020-06-04; 3 already done; 0 failed",
        "events: due at 2020-06-06 00:00:00 UTC: running every day not done through 2020-06-05",
        "schedule: stopping on a signal",
    ] {
        assert!(log.contains(line), "no `{line}` in:\n{log}");
    }
    assert!(
        log.trim_end().ends_with("schedule: stopped")
            || log.contains("schedule: stopped; the running days were recorded `interrupted`"),
        "{log}"
    );
    // Each day up to the clock's yesterday loaded once, with every row.
    for (i, day) in days().iter().take(5).enumerate() {
        let record = common::ledger_record(p.path(), "events", &day.to_string());
        assert_eq!(record["status"], "done", "{record}");
        assert_eq!(record["attempts"], 1, "{record}");
        assert_eq!(parquet_rows(&p, "events", *day), 10 + i as u64, "{day}");
    }
    // Nothing past what had fallen due: the clock had not reached 06-08.
    for day in ["2020-06-07", "2020-06-08", "2020-06-09"] {
        assert!(!done(day), "{day} was loaded before it fell due:\n{log}");
    }
    p.drop_database().await;
}

/// Four workers started at once on the same ten days of two pipelines
/// (issue 12), one into BigQuery and one into Parquet: leases in the
/// shared ledger give each day to one of them, which loads it once; the
/// others leave it, and none fails. (Two BigQuery pipelines would only
/// triple the emulator's jobs, which is where this test spends its time.)
/// Here the ledger is a local folder.
#[tokio::test(flavor = "multi_thread")]
async fn four_workers_share_one_backfill_through_leases() {
    let p = Project::on_stack("workers").await;
    p.seed(1000, 10, 1000);
    let state = StateStore::local(&p.path().join(".etl/state"));
    four_workers_share_a_backfill(&p.project, &p.database, &p.mongo_uri(), &state).await;
    p.drop_database().await;
}

/// [`four_workers_share_one_backfill_through_leases`] with the ledger on
/// an object-store URL that four processes can share: `s3://` on the
/// stack's moto server, whose conditional creates (`If-None-Match: *`)
/// the leases take once told (`aws_conditional_put: etag`).
#[tokio::test(flavor = "multi_thread")]
async fn four_workers_share_one_backfill_through_leases_on_s3() {
    let mut p = Project::on_stack("workers_s3").await;
    let state = StateStore::s3(&p.database).await;
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
            prefix = p.database
        ),
    );
    p.project.set_env("ETL_S3_ENDPOINT", &stack::s3_endpoint());
    // moto takes any key pair, but answers an unsigned read of an object
    // that an unsigned write made with 403 (its ACLs).
    p.project.set_env("ETL_S3_KEY_ID", stack::S3_KEY_ID);
    p.project.set_env("ETL_S3_KEY", stack::S3_KEY);
    p.seed(1000, 10, 1000);
    four_workers_share_a_backfill(&p.project, &p.database, &p.mongo_uri(), &state).await;
    assert!(
        !p.path().join(".etl/state").exists(),
        "nothing of the ledger is written locally"
    );
    p.drop_database().await;
}

/// The DAG `etl airflow` writes, run by a real Apache Airflow 3 (issue
/// 12): it imports with no error, its runs for 2020-06-01..10 load each
/// day of both pipelines once, with every row, and a second pass over the
/// same dates loads nothing again. `tests/airflow/run_dag.py` runs it with
/// `dag.test`, as the scheduler would, one logical date per day.
#[tokio::test(flavor = "multi_thread")]
async fn an_airflow_dag_loads_each_day_once_and_a_second_pass_skips_them() {
    let p = Project::on_stack("airflow").await;
    // Its subject is Airflow, not BigQuery.
    p.project.warehouse_to_parquet("pipelines/users.yaml");
    p.seed(1000, 10, 1000);
    let python = common::root().join("stack/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `stack/python.sh` (it installs the pinned apache-airflow into stack/venv), or the tests through `stack/test.sh`",
        python.display()
    );
    let dags = p.path().join("dags");
    let out = p.etl(&[
        "airflow",
        "pipelines/users.yaml",
        "pipelines/products.yaml",
        "--etl-bin",
        env!("CARGO_BIN_EXE_etl"),
        "--out",
        dags.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let home = p.path().join("airflow-home");
    let airflow = |args: &[&str]| {
        p.project
            .program(&python)
            .args(args)
            .env("AIRFLOW_HOME", &home)
            .env("AIRFLOW__CORE__DAGS_FOLDER", &dags)
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .output()
            .unwrap()
    };
    let migrate = airflow(&["-m", "airflow", "db", "migrate"]);
    assert!(migrate.status.success(), "{}", common::text(&migrate));
    let harness = common::root().join("tests/airflow/run_dag.py");
    let out = airflow(&[
        harness.to_str().unwrap(),
        dags.to_str().unwrap(),
        "etl",
        "2020-06-01",
        "2020-06-10",
        "UTC",
        "2",
    ]);
    let log = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert_eq!(
        results[0],
        json!({"dags": ["etl"], "tasks": ["products", "users"]}),
        "{log}"
    );
    let runs = &results[1..];
    assert_eq!(runs.len(), 20, "two passes of ten days:\n{log}");
    for run in runs {
        let day: NaiveDate = run["day"].as_str().unwrap().parse().unwrap();
        // The run that loads a day is the one whose interval is that day.
        assert_eq!(
            run["interval"],
            json!([
                format!("{day} 00:00:00+00:00"),
                format!("{} 00:00:00+00:00", day.succ_opt().unwrap())
            ]),
            "{run}"
        );
        assert_eq!(
            (&run["run"], &run["tasks"]),
            (
                &json!("success"),
                &json!({"products": "success", "users": "success"})
            ),
            "{run}\n{log}"
        );
    }
    // Each task ran `etl run SPEC --date DAY` for its interval's day, and
    // Airflow logged its summary: the first pass loaded the day, the second
    // found it done.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for day in days() {
        for pipeline in ["users", "products"] {
            for status in ["done", "skipped"] {
                let line = format!("{pipeline:<10} {day} {status:<8} ");
                assert_eq!(stdout.matches(&line).count(), 1, "`{line}` once in:\n{log}");
            }
        }
    }
    let uri = p.mongo_uri();
    for day in days() {
        for pipeline in ["users", "products"] {
            let rows = parquet_rows(&p, pipeline, day);
            let record = common::ledger_record(p.path(), pipeline, &day.to_string());
            let loaded = stack::mongo_day_count(&uri, &p.database, pipeline, day).await
                - record["rejected"].as_u64().unwrap_or(0);
            assert!(loaded > 0, "{pipeline} {day}: the seed has rows");
            assert_eq!(rows, loaded, "{pipeline} {day}: warehouse rows");
            assert_eq!(
                (record["status"].as_str(), record["attempts"].as_u64()),
                (Some("done"), Some(1)),
                "{pipeline} {day}: loaded once over both passes: {record}"
            );
        }
    }
    p.drop_database().await;
}

/// `etl preview` reads a loaded day back (issue 13): orders and their
/// items from BigQuery, products from Parquet, in `_id` order, with the
/// values MongoDB holds; and names a table that does not exist.
#[tokio::test(flavor = "multi_thread")]
async fn preview_reads_a_day_back_from_bigquery_and_from_parquet() {
    let p = Project::on_stack("preview").await;
    p.seed(40, 60, 40);
    let day = days()[1];
    let date = day.to_string();
    run_ok(
        &p,
        &[
            "run",
            "pipelines/orders.yaml",
            "pipelines/products.yaml",
            "--date",
            &date,
        ],
    );
    let shown = |out: &Output| {
        common::transcript(out)
            .replace(&p.database, "[DB]")
            .replace(&p.path().display().to_string(), "[PROJECT]")
    };
    let preview = |args: &[&str]| {
        let mut all = vec!["preview", args[0], "--date", &date];
        all.extend(&args[1..]);
        p.etl(&all)
    };

    let out = preview(&[
        "pipelines/orders.yaml",
        "--limit",
        "3",
        "--columns",
        "_id,order_id,status,total,created_at,customer__address__country",
    ]);
    insta::assert_snapshot!("preview_orders", shown(&out));
    let out = preview(&[
        "pipelines/orders.yaml",
        "--table",
        "orders__items",
        "--limit",
        "4",
        "--columns",
        "_root_id,_idx,sku,quantity,unit_price",
    ]);
    insta::assert_snapshot!("preview_orders_items", shown(&out));
    let out = preview(&["pipelines/orders.yaml", "--table", "items"]);
    insta::assert_snapshot!("preview_unknown_table", shown(&out));
    let out = preview(&[
        "pipelines/products.yaml",
        "--limit",
        "3",
        "--columns",
        "_id,product_id,name,price,in_stock,price_history",
    ]);
    insta::assert_snapshot!("preview_products", shown(&out));

    // Every row of the day, as JSON: the documents MongoDB holds for it,
    // in `_id` order, with their values.
    let uri = p.mongo_uri();
    let orders = p.collection("orders").await;
    let next = day.succ_opt().unwrap();
    let mut cursor = orders
        .find(doc! { "status": { "$ne": "test" }, "created_at": {
        "$gte": bson::DateTime::from_millis(ms(day)),
        "$lt": bson::DateTime::from_millis(ms(next)) } })
        .sort(doc! { "_id": 1 })
        .await
        .unwrap();
    let mut want = Vec::new();
    while cursor.advance().await.unwrap() {
        let d = cursor.deserialize_current().unwrap();
        want.push(json!([
            d.get_object_id("_id").unwrap().to_hex(),
            d.get("order_id")
                .and_then(bson::Bson::as_i64)
                .or_else(|| d.get_i32("order_id").ok().map(i64::from)),
            d.get_str("status").unwrap(),
        ]));
    }
    assert!(
        want.len() > 3,
        "the seed has orders that day: {}",
        want.len()
    );
    assert_eq!(
        want.len() as u64,
        stack::mongo_day_count(&uri, &p.database, "orders", day).await
    );
    let out = preview(&[
        "pipelines/orders.yaml",
        "--limit",
        "10000",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["rows_in_day"], want.len());
    let got: Vec<serde_json::Value> = read["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["_id"], r["order_id"], r["status"]]))
        .collect();
    assert_eq!(
        got, want,
        "BigQuery's rows are MongoDB's documents, in `_id` order"
    );

    let out = preview(&[
        "pipelines/products.yaml",
        "--limit",
        "10000",
        "--format",
        "json",
    ]);
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = read["rows"].as_array().unwrap();
    assert_eq!(rows.len() as u64, parquet_count(&p, day));
    assert_eq!(read["rows_in_day"], rows.len());
    let ids: Vec<&str> = rows.iter().map(|r| r["_id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "Parquet rows come back in `_id` order");
    p.drop_database().await;
}

/// What a person sees in a real terminal (issue 13): `etl run` inside
/// tmux, its screen read with `capture-pane` while it runs and once it
/// ended. The day's line goes through its phases (`extract` with the
/// documents read, then `load`), and the final screen, times blanked, is snapshotted: the
/// finished line and the summary, counts with thousands separators.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_shows_each_phase_and_counts_with_separators() {
    let p = Project::on_stack("terminal").await;
    let out = p.etl(&[
        "demo",
        "--database",
        &p.database,
        "--users",
        "1",
        "--products",
        "1",
        "--orders",
        "3000",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-01",
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    let socket = format!("etl-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        p.project
            .program("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux runs (Debian's tmux package)")
    };
    let command = format!(
        "{} run pipelines/orders.yaml --date 2020-06-01; echo \"exit: $?\"; sleep 30",
        env!("CARGO_BIN_EXE_etl")
    );
    let dir = p.path().display().to_string();
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "320",
        "-y",
        "30",
        "-s",
        "run",
        "-c",
        &dir,
        &command,
    ]);
    assert!(started.status.success(), "{}", common::text(&started));
    let screen =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "run"]).stdout).into_owned();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let last = loop {
        let s = screen();
        for line in s.lines().filter(|l| l.contains("orders 2020-06-01")) {
            for phase in ["extract ", "load ", "done "] {
                if line.contains(phase) {
                    seen.insert(phase.trim_end());
                }
            }
        }
        if s.contains("exit: ") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "etl run did not end:\n{s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    };
    tmux(&["kill-server"]);
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["done", "extract", "load"],
        "phases seen on the day's line; the screen at the end:\n{last}"
    );
    let shown = last
        .replace(&p.database, "[DB]")
        .replace(&p.path().display().to_string(), "[PROJECT]");
    let shown: Vec<&str> = shown
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    // The time and the spaces that right-align it: a day of 10 s or more
    // on a loaded machine takes one more character.
    insta::with_settings!({filters => vec![(r" +\d+\.\ds", " [T]")]}, {
        insta::assert_snapshot!(shown.join("\n"));
    });
    p.drop_database().await;
}

/// Issue 29, spec edits, end to end on the Parquet warehouse: an edit of
/// `description` redoes no day (nothing extracted, the records untouched);
/// an edit of a flatten rule makes the done days `stale`, which a catch-up
/// leaves, saying so, and `etl status` shows; `etl run --stale` redoes
/// them.
#[tokio::test(flavor = "multi_thread")]
async fn a_description_edit_redoes_nothing_and_a_flatten_edit_is_stale_until_asked() {
    let mut p = Project::on_stack("stale").await;
    p.seed(30, 10, 60);
    // A catch-up covers 2020-06-01 to 2020-06-03.
    p.project.set_env("ETL_TODAY", "2020-06-04");
    let first = run_ok(&p, &["run", "pipelines/products.yaml"]);
    assert!(first.contains("3 done, 0 skipped"), "{first}");
    let record = |day: &str| common::ledger_record(p.path(), "products", day);
    let loaded: Vec<_> = ["2020-06-01", "2020-06-02", "2020-06-03"]
        .map(|d| record(d)["finished_at"].clone())
        .into();

    p.project.edit(
        "pipelines/products.yaml",
        "The product catalogue,",
        "The catalogue of products,",
    );
    let again = run_ok(&p, &["run", "pipelines/products.yaml"]);
    assert!(
        again.contains("0 done, 3 skipped (already done), 0 failed\n"),
        "{again}"
    );
    assert!(!again.contains("notice:"), "{again}");
    for (day, at) in ["2020-06-01", "2020-06-02", "2020-06-03"]
        .iter()
        .zip(&loaded)
    {
        assert_eq!(&record(day)["finished_at"], at, "{day} untouched");
    }

    p.project.edit(
        "pipelines/products.yaml",
        "  on_type_conflict: reject\n",
        "  on_type_conflict: reject\n  exclude:\n    - $.in_stock\n",
    );
    let stale = run_ok(&p, &["run", "pipelines/products.yaml"]);
    eprintln!("{stale}");
    assert!(
        stale.contains("notice: products: 3 done days are stale (2020-06-01 to 2020-06-03): the spec changed what they land since they were loaded, and a catch-up does not redo them; redo them with `etl run --stale "),
        "{stale}"
    );
    assert!(
        stale.contains(
            "0 done, 0 skipped (already done), 0 failed, 3 stale (not redone: `--stale`)"
        ),
        "{stale}"
    );
    for (day, at) in ["2020-06-01", "2020-06-02", "2020-06-03"]
        .iter()
        .zip(&loaded)
    {
        assert_eq!(&record(day)["finished_at"], at, "{day} untouched");
    }
    let status = p.etl(&["status", "pipelines/products.yaml"]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r" +\d+\.\ds ", " [TIME] ");
    settings.bind(|| insta::assert_snapshot!(common::transcript(&status)));

    let redone = run_ok(&p, &["run", "--stale", "pipelines/products.yaml"]);
    assert!(redone.contains("3 done, 0 skipped"), "{redone}");
    assert!(
        redone.contains("notice: products: 2020-06-01 runs again: it is stale, the spec changed what it lands since it was loaded"),
        "{redone}"
    );
    let status = p.etl(&["status", "pipelines/products.yaml"]);
    let shown = common::text(&status);
    assert!(status.status.success(), "{shown}");
    assert!(shown.contains("  3 done, 0 failed, 0 missing\n"), "{shown}");
    p.drop_database().await;
}
