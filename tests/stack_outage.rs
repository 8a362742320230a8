//! Outages: a server stopped, a lake folder made read-only, or a source
//! gone silent while a day is half read. `users` (3 days, cursor batches
//! of 10) depends on the server the test takes away; `products` runs in
//! the same `etl run` on servers that stay up. Each test holds the run in
//! the middle of `users`' second day (`ETL_HOLD_AT`, see
//! `src/engine/crash.rs`), takes the server away, lets the run go on, and
//! checks what a user would: exit 1, the days recorded `failed` after the
//! bounded retries with an error naming the server, `products` done
//! anyway; then, with the server back, that a plain rerun loads every day
//! with MongoDB's counts. `users` loads into Parquet, except in the
//! BigQuery outage, the only one whose subject BigQuery is.
//!
//! The servers taken away are the test's own (FerretDB or
//! mongo-java-server, moto's S3, bigquery-emulator), so no other test
//! sees the outage. The lake outage uses S3 (moto) where the issue names
//! GCS: it was written before `stack/gcs-front` served the XML API that
//! `object_store` writes `gs://` with (issue 32); the GCS lake outage runs
//! beside it, on a gcs-front of its own.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use common::stack;
use serde_json::Value;

const DAYS: [&str; 3] = ["2020-06-01", "2020-06-02", "2020-06-03"];
const S3_BUCKET: &str = "etl-outage";
/// The bucket of the GCS lake outage, on a gcs-front of the test's own.
const GCS_BUCKET: &str = "etl-outage";
/// `etl run --retries 1`: two attempts a day.
const ATTEMPTS: u64 = 2;

/// What the test takes away from `users`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outage {
    /// Its MongoDB is killed.
    Mongo,
    /// Its lake, an S3 bucket on moto, is killed.
    Lake,
    /// Its lake, a GCS bucket on a gcs-front of the test's own, is killed.
    GcsLake,
    /// Its BigQuery emulator is killed.
    BigQuery,
    /// Its lake folder is made read-only.
    ReadOnlyLake,
    /// Its MongoDB stops answering (a proxy that stops forwarding), with
    /// `source.max_time_ms: 1000`.
    SilentSource,
    /// The project's state store (ledger and leases), an S3 bucket on
    /// moto, is killed.
    StateStore,
}

/// A server process of the test's own, killed when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn spawn(mut cmd: Command) -> Self {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}\n{}", stack::HINT));
        Self { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers HTTP at all.
async fn wait_http(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer within 30 s");
}

/// moto's S3 on `port`, with the test's bucket.
async fn start_moto(port: u16) -> Server {
    let mut cmd = Command::new(common::root().join("stack/venv/bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let server = Server::spawn(cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&base).await;
    let made = reqwest::Client::new()
        .put(format!("{base}/{S3_BUCKET}"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "bucket: {}", made.status());
    server
}

/// The stack's GCS server (gcs-front) on `port`, keeping its objects in
/// `dir` as GCS keeps them across an outage, with the test's bucket.
async fn start_gcs(port: u16, dir: &Path) -> Server {
    let mut cmd = Command::new(common::root().join("stack/bin/gcs-front"));
    cmd.args([
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        &port.to_string(),
    ])
    .args(["-backend", "filesystem", "-filesystem-root"])
    .arg(dir);
    let server = Server::spawn(cmd);
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{base}/storage/v1/b")).await;
    let made = reqwest::Client::new()
        .post(format!("{base}/storage/v1/b"))
        .json(&serde_json::json!({ "name": GCS_BUCKET }))
        .send()
        .await
        .unwrap();
    assert!(
        made.status().is_success() || made.status() == reqwest::StatusCode::CONFLICT,
        "bucket: {}",
        made.status()
    );
    server
}

/// bigquery-emulator on `port`, keeping its data in `dir`.
async fn start_bigquery(port: u16, grpc: u16, dir: &Path) -> Server {
    let mut cmd = Command::new(common::root().join("stack/bin/bigquery-emulator"));
    cmd.arg(format!("--project={}", stack::BQ_PROJECT))
        .arg(format!("--dataset={}", stack::BQ_DATASET))
        .args(["--host=127.0.0.1", "--log-level=error"])
        .arg(format!("--port={port}"))
        .arg(format!("--grpc-port={grpc}"))
        .arg(format!("--database={}", dir.join("emulator.db").display()));
    let server = Server::spawn(cmd);
    wait_http(&format!(
        "http://127.0.0.1:{port}/bigquery/v2/projects/{}/datasets",
        stack::BQ_PROJECT
    ))
    .await;
    server
}

/// A TCP proxy to `target` that forwards nothing more, either way, once
/// `silent` is set: a server or a network that stopped answering without
/// closing anything.
async fn silent_proxy(target: u16, silent: Arc<AtomicBool>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(cr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                ),
                (Box::new(sr), Box::new(cw)),
            ] {
                let silent = silent.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        while silent.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    port
}

/// The test's project: `users` on the servers of `outage`, `products` on
/// the stack's MongoDB, a local lake and Parquet.
struct Setup {
    project: common::Project,
    database: String,
    /// The port of the server holding `users`' documents (not the proxy).
    users_mongo: u16,
    bq_endpoint: String,
    /// Whether `users` loads into BigQuery (else into Parquet).
    on_bigquery: bool,
}

impl Setup {
    /// `lake_port` is the port of the S3 (moto) or GCS server of a lake
    /// outage or of the state store's.
    fn new(outage: Outage, users_mongo: u16, bq_endpoint: &str, lake_port: u16) -> Self {
        let database = format!(
            "it_outage_{}_{}",
            format!("{outage:?}").to_lowercase(),
            std::process::id()
        );
        let mut project = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
        let fast = "&serverSelectionTimeoutMS=2000";
        project.edit(
            "etl.yaml",
            "?directConnection=true\n",
            &format!("?directConnection=true{fast}\n"),
        );
        project.edit(
            "etl.yaml",
            "  files:\n    connections:\n",
            &format!(
                "  files:
    connections:
      mongo_users:
        type: mongodb
        uri: mongodb://127.0.0.1:{users_mongo}/?directConnection=true{fast}
      lake_s3:
        type: object_store
        url: s3://{S3_BUCKET}/lake
        options:
          aws_endpoint: http://127.0.0.1:{lake_port}
          aws_allow_http: \"true\"
          aws_region: us-east-1
          aws_access_key_id: '{{{{ env(\"ETL_S3_KEY_ID\") }}}}'
          aws_secret_access_key: '{{{{ env(\"ETL_S3_KEY\") }}}}'
"
            ),
        );
        for p in ["users", "products"] {
            let spec = format!("pipelines/{p}.yaml");
            project.edit(&spec, "database: shop", &format!("database: {database}"));
        }
        let users = "pipelines/users.yaml";
        project.edit(users, "dataset: etl_demo", &format!("dataset: {database}"));
        project.edit(
            users,
            "  connection: mongo\n",
            "  connection: mongo_users\n",
        );
        project.edit(users, "  batch_size: 1000\n", "  batch_size: 10\n");
        // Only the BigQuery outage is about BigQuery: the others load
        // `users` into Parquet, and spend no minute on the emulator.
        let on_bigquery = outage == Outage::BigQuery;
        if !on_bigquery {
            project.warehouse_to_parquet(users);
        }
        if outage == Outage::Lake {
            project.edit(users, "    connection: lake\n", "    connection: lake_s3\n");
        }
        if outage == Outage::GcsLake {
            project.edit(
                "etl.yaml",
                "  files:\n    connections:\n",
                &format!(
                    "  files:
    connections:
      lake_gcs:
        type: object_store
        url: gs://{GCS_BUCKET}/lake
        options:
          google_service_account_key: '{{{{ env(\"ETL_GCS_KEY\") }}}}'
"
                ),
            );
            project.set_env(
                "ETL_GCS_KEY",
                &stack::gcs_key(&format!("http://127.0.0.1:{lake_port}")),
            );
            project.edit(
                users,
                "    connection: lake\n",
                "    connection: lake_gcs\n",
            );
        }
        if outage == Outage::SilentSource {
            project.edit(
                users,
                "  batch_size: 10\n",
                "  batch_size: 10\n  max_time_ms: 1000\n",
            );
        }
        if outage == Outage::StateStore {
            project.edit(
                "etl.yaml",
                "  url: .etl/state\n",
                &format!(
                    "  url: s3://{S3_BUCKET}/state
  options:
    aws_endpoint: http://127.0.0.1:{lake_port}
    aws_allow_http: \"true\"
    aws_region: us-east-1
    aws_access_key_id: '{{{{ env(\"ETL_S3_KEY_ID\") }}}}'
    aws_secret_access_key: '{{{{ env(\"ETL_S3_KEY\") }}}}'
    aws_conditional_put: etag
"
                ),
            );
        }
        // A catch-up (and `etl status`) covers DAYS.
        project.set_env("ETL_TODAY", "2020-06-04");
        project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
        project.set_env("ETL_BQ_ENDPOINT", bq_endpoint);
        project.set_env("ETL_S3_KEY_ID", stack::S3_KEY_ID);
        project.set_env("ETL_S3_KEY", stack::S3_KEY);
        Self {
            project,
            database,
            users_mongo,
            bq_endpoint: bq_endpoint.to_owned(),
            on_bigquery,
        }
    }

    /// The demo's users, orders and products into the database on `port`.
    fn seed(&self, port: u16) {
        let out = self
            .project
            .command(&[
                "demo",
                "--database",
                &self.database,
                "--users",
                "300",
                "--orders",
                "10",
                "--products",
                "60",
                "--end",
                DAYS[2],
            ])
            .env("ETL_MONGO_PORT", port.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "etl demo: {}", common::text(&out));
    }

    fn run(&self) -> std::process::Command {
        self.project.command(&[
            "run",
            "pipelines/users.yaml",
            "pipelines/products.yaml",
            "--start",
            DAYS[0],
            "--end",
            DAYS[2],
            "--retries",
            "1",
        ])
    }

    /// MongoDB's own count of `users` on `day`.
    async fn mongo_users(&self, port: u16, day: &str) -> u64 {
        let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let start = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let ms = |d: chrono::NaiveDate| {
            bson::DateTime::from_millis(
                d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis(),
            )
        };
        client
            .database(&self.database)
            .collection::<bson::Document>("users")
            .count_documents(
                doc! { "created_at": { "$gte": ms(start), "$lt": ms(start.succ_opt().unwrap()) } },
            )
            .await
            .unwrap()
    }

    /// BigQuery's count of `users` rows of `day`, asked over REST.
    async fn bq_users(&self, day: &str) -> u64 {
        let url = format!(
            "{}/bigquery/v2/projects/{}/queries",
            self.bq_endpoint,
            stack::BQ_PROJECT
        );
        let sql = format!(
            "SELECT COUNT(*) FROM `{}.{}.users` WHERE _ds = DATE '{day}'",
            stack::BQ_PROJECT,
            self.database
        );
        let answer: Value = reqwest::Client::new()
            .post(url)
            .bearer_auth("t")
            .json(&serde_json::json!({ "query": sql, "useLegacySql": false }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["rows"][0]["f"][0]["v"]
            .as_str()
            .unwrap_or_else(|| panic!("{sql}: {answer}"))
            .parse()
            .unwrap()
    }

    fn record(&self, pipeline: &str, day: &str) -> Value {
        common::ledger_record(self.project.path(), pipeline, day)
    }
}

/// Runs the outage scenario; `take_away` stops the server while the run is
/// held, `bring_back` restores it before the rerun. `named` is what the
/// failed days' errors must name.
/// Returns what the run during the outage showed.
async fn outage<F, G, Fut>(setup: &Setup, take_away: F, bring_back: G, named: &str) -> String
where
    F: FnOnce(),
    G: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Hold in the middle of day 2's first cursor batch: day 1's documents,
    // then 5 more.
    let day1 = setup.mongo_users(setup.users_mongo, DAYS[0]).await;
    let day2 = setup.mongo_users(setup.users_mongo, DAYS[1]).await;
    assert!(
        day2 > 20,
        "day 2 needs several cursor batches; it has {day2} users"
    );
    let hold = setup.project.path().join("hold");
    let started = Instant::now();
    let child = setup
        .run()
        .env("ETL_HOLD_AT", format!("extract:{}", day1 + 5))
        .env("ETL_HOLD_FILE", &hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !hold.exists() {
        assert!(
            Instant::now() < deadline,
            "the run never reached its hold point"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = setup.record("users", DAYS[0]);
    assert_eq!(
        record["status"], "done",
        "held in day 2, after day 1: {record}"
    );
    take_away();
    std::fs::remove_file(&hold).unwrap();

    let out = wait_bounded(child, Duration::from_secs(240));
    let took = started.elapsed();
    let shown = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for day in &DAYS[1..] {
        assert!(shown.contains(&format!("failed: users {day}")), "{shown}");
        let r = setup.record("users", day);
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(
            r["attempts"].as_u64(),
            Some(ATTEMPTS),
            "bounded retries: {r}"
        );
        let error = r["error"].as_str().unwrap();
        eprintln!("users {day}: {error}");
        assert!(
            error.contains(named),
            "the error names the server ({named}): {error}"
        );
    }
    // The other pipeline carried on.
    for day in DAYS {
        assert_eq!(
            setup.record("products", day)["status"],
            "done",
            "products {day}: {shown}"
        );
    }
    eprintln!("outage run: exit 1 after {:.1}s", took.as_secs_f64());
    let outage_shown = shown;

    bring_back().await;
    let healed = setup.run().output().unwrap();
    let shown = common::text(&healed);
    assert!(healed.status.success(), "{shown}");
    assert!(shown.contains(", 0 failed"), "{shown}");
    for day in DAYS {
        assert_eq!(
            setup.record("users", day)["status"],
            "done",
            "{day}: {shown}"
        );
    }
    let status = setup
        .project
        .etl(&["status", "pipelines/users.yaml", "pipelines/products.yaml"]);
    assert!(
        status.status.success(),
        "etl status: {}",
        common::text(&status)
    );
    outage_shown
}

impl Setup {
    /// Each of `days` of `users` archived whole in the lake bucket `store`
    /// (under `lake/`), with MongoDB's count of lines.
    async fn archived(&self, store: &dyn object_store::ObjectStore, days: &[&str]) {
        use std::io::Read;
        for day in days {
            let key = format!(
                "lake/raw/users/dt={day}/users-{}.jsonl.gz",
                day.replace('-', "")
            );
            let bytes = store
                .get(&object_store::path::Path::from(key.as_str()))
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"))
                .bytes()
                .await
                .unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(
                text.lines().count() as u64,
                self.mongo_users(stack::mongo_port(), day).await,
                "{key}"
            );
        }
    }

    /// Every day of `users` in the warehouse with MongoDB's count.
    async fn users_loaded(&self, mongo_port: u16) {
        for day in DAYS {
            let want = self.mongo_users(mongo_port, day).await;
            assert!(want > 0, "{day}: the demo has users that day");
            let loaded = if self.on_bigquery {
                self.bq_users(day).await
            } else {
                common::parquet_rows(
                    &self
                        .project
                        .path()
                        .join(format!(".etl/warehouse/users/dt={day}")),
                )
            };
            assert_eq!(loaded, want, "users {day}");
        }
    }
}

/// Waits for `child`, killing it and failing the test past `limit`: an
/// outage must end the run, not hang it.
fn wait_bounded(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the run hung past {limit:?}:\n{}", common::text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mongodb_stopped_mid_day() {
    stack::mongo().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mongo = stack::OwnMongo::start(port, data.path());
    mongo.wait_ready().await;
    let setup = Setup::new(Outage::Mongo, port, &stack::bq_endpoint(), 1);
    setup.seed(port);
    setup.seed(stack::mongo_port());
    let mongo = std::cell::RefCell::new(mongo);
    outage(
        &setup,
        || mongo.borrow_mut().stop(),
        || async {
            let again = stack::OwnMongo::start(port, data.path());
            again.wait_ready().await;
            if !stack::OwnMongo::durable() {
                // The same deterministic documents again.
                setup.seed(port);
            }
            *mongo.borrow_mut() = again;
        },
        &format!("127.0.0.1:{port}"),
    )
    .await;
    setup.users_loaded(port).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_lake_stopped_mid_day() {
    stack::mongo().await;
    let port = free_port();
    let moto = std::cell::RefCell::new(start_moto(port).await);
    let setup = Setup::new(
        Outage::Lake,
        stack::mongo_port(),
        &stack::bq_endpoint(),
        port,
    );
    setup.seed(stack::mongo_port());
    outage(
        &setup,
        || moto.borrow_mut().kill(),
        || async {
            // moto keeps nothing: the bucket is made again, empty.
            *moto.borrow_mut() = start_moto(port).await;
        },
        &format!("s3://{S3_BUCKET}/lake"),
    )
    .await;
    setup.users_loaded(stack::mongo_port()).await;
    // The days the outage failed are in the bucket now, whole.
    let store = stack::s3(&format!("http://127.0.0.1:{port}"), S3_BUCKET);
    setup.archived(&store, &DAYS[1..]).await;
}

/// Issue 32: the same outage with the lake in a `gs://` bucket, written
/// through `object_store`'s GCS client (the XML API gcs-front serves).
#[tokio::test(flavor = "multi_thread")]
async fn the_gcs_lake_stopped_mid_day() {
    stack::mongo().await;
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let gcs = std::cell::RefCell::new(start_gcs(port, data.path()).await);
    let setup = Setup::new(
        Outage::GcsLake,
        stack::mongo_port(),
        &stack::bq_endpoint(),
        port,
    );
    setup.seed(stack::mongo_port());
    outage(
        &setup,
        || gcs.borrow_mut().kill(),
        || async {
            // Its objects are on disk: day 1's archive is still there.
            *gcs.borrow_mut() = start_gcs(port, data.path()).await;
        },
        &format!("gs://{GCS_BUCKET}/lake"),
    )
    .await;
    setup.users_loaded(stack::mongo_port()).await;
    // Every day is in the bucket now, whole.
    let store = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name(GCS_BUCKET)
        .with_service_account_key(stack::gcs_key(&format!("http://127.0.0.1:{port}")))
        .build()
        .unwrap();
    setup.archived(&store, &DAYS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bigquery_stopped_mid_day() {
    stack::mongo().await;
    let data = tempfile::tempdir().unwrap();
    let (port, grpc) = (free_port(), free_port());
    let bq = std::cell::RefCell::new(start_bigquery(port, grpc, data.path()).await);
    let endpoint = format!("http://127.0.0.1:{port}");
    let setup = Setup::new(Outage::BigQuery, stack::mongo_port(), &endpoint, 1);
    setup.seed(stack::mongo_port());
    outage(
        &setup,
        || bq.borrow_mut().kill(),
        || async {
            *bq.borrow_mut() = start_bigquery(port, grpc, data.path()).await;
        },
        &format!("127.0.0.1:{port}"),
    )
    .await;
    setup.users_loaded(stack::mongo_port()).await;
}

/// Whether creating a file in `dir` fails.
fn refuses_writes(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let refused = std::fs::write(&probe, b"").is_err();
    let _ = std::fs::remove_file(&probe);
    refused
}

/// Makes `dir` refuse new entries: by its mode, or, for root, whom modes
/// do not stop, by the immutable attribute. `false` undoes both.
fn make_read_only(dir: &Path, read_only: bool) {
    use std::os::unix::fs::PermissionsExt;
    if !read_only {
        let _ = Command::new("chattr").arg("-i").arg(dir).output();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    if !refuses_writes(dir) {
        let out = Command::new("chattr").arg("+i").arg(dir).output();
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "cannot make {} read-only (mode 0555 does not stop this user, and chattr +i failed: {out:?})",
            dir.display()
        );
    }
    assert!(refuses_writes(dir), "{} still takes writes", dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lake_folder_made_read_only_mid_day() {
    stack::mongo().await;
    let setup = Setup::new(
        Outage::ReadOnlyLake,
        stack::mongo_port(),
        &stack::bq_endpoint(),
        1,
    );
    setup.seed(stack::mongo_port());
    let folder = setup.project.path().join(".etl/lake/raw/users");
    outage(
        &setup,
        || make_read_only(&folder, true),
        || async { make_read_only(&folder, false) },
        "raw/users/dt=2020-06-0",
    )
    .await;
    setup.users_loaded(stack::mongo_port()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_silent_past_max_time_ms() {
    stack::mongo().await;
    let silent = Arc::new(AtomicBool::new(false));
    let proxy = silent_proxy(stack::mongo_port(), silent.clone()).await;
    let mut setup = Setup::new(Outage::SilentSource, proxy, &stack::bq_endpoint(), 1);
    setup.seed(stack::mongo_port());
    // Count through the server itself, not the proxy that goes silent.
    setup.users_mongo = stack::mongo_port();
    let shown = outage(
        &setup,
        || silent.store(true, Ordering::SeqCst),
        || async { silent.store(false, Ordering::SeqCst) },
        &format!("127.0.0.1:{proxy}"),
    )
    .await;
    // Day 2's first attempt was cut mid-cursor: the batch read ahead
    // (`source::mongo::ReadAhead`) got no answer, and its stall reached
    // the run as that day's error, not as a short day. (Its retry, and
    // day 3, fail on the `find` that opens the cursor.)
    assert!(
        shown.contains("getMore on `") && shown.contains("failed: no answer within 7s"),
        "the stalled getMore: {shown}"
    );
    setup.users_loaded(stack::mongo_port()).await;
}

/// Issue 29: the state store (ledger and leases, S3 on moto) stopped while
/// `users`' second day runs. Before, the day's lease check failed, the day
/// was reported `elsewhere` ("another worker took the day over") and the
/// run exited 0. Now the check is retried like any transient failure, then
/// the day is `failed` with the store's error, and so is the next day,
/// whose lease cannot be taken; the run exits 1. Their `failed` records
/// cannot be written to a store that is down, and the errors say so. With
/// the store back (empty: moto keeps nothing), a plain rerun loads every
/// day.
#[tokio::test(flavor = "multi_thread")]
async fn the_s3_state_store_stopped_mid_day() {
    stack::mongo().await;
    let port = free_port();
    let mut moto = start_moto(port).await;
    let setup = Setup::new(
        Outage::StateStore,
        stack::mongo_port(),
        &stack::bq_endpoint(),
        port,
    );
    setup.seed(stack::mongo_port());
    let day1 = setup.mongo_users(stack::mongo_port(), DAYS[0]).await;
    let hold = setup.project.path().join("hold");
    let users = [
        "run",
        "pipelines/users.yaml",
        "--start",
        DAYS[0],
        "--end",
        DAYS[2],
        "--retries",
        "1",
    ];
    let child = setup
        .project
        .command(&users)
        .env("ETL_HOLD_AT", format!("extract:{}", day1 + 5))
        .env("ETL_HOLD_FILE", &hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !hold.exists() {
        assert!(
            Instant::now() < deadline,
            "the run never reached its hold point"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    moto.kill();
    std::fs::remove_file(&hold).unwrap();
    let out = wait_bounded(child, Duration::from_secs(240));
    let shown = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("elsewhere"), "{stdout}");
    assert!(
        stdout.contains("1 done, 0 skipped (already done), 2 failed\n"),
        "{stdout}"
    );
    let store = format!("s3://{S3_BUCKET}/state");
    for (day, what) in [
        (
            DAYS[1],
            "the day ran, but could not check the day's lease in the state store: ",
        ),
        (
            DAYS[2],
            "could not take the day's lease in the state store: ",
        ),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("failed: users {day}: ")))
            .unwrap_or_else(|| panic!("no failure line for {day}: {stdout}"));
        assert!(line.contains(what), "{line}");
        assert!(line.contains(&store), "names the store: {line}");
        assert!(
            line.contains("(its `failed` ledger record could not be written either: "),
            "{line}"
        );
    }

    moto = start_moto(port).await;
    let healed = setup.project.command(&users).output().unwrap();
    let shown = common::text(&healed);
    assert!(healed.status.success(), "{shown}");
    assert!(
        shown.contains("3 done, 0 skipped (already done), 0 failed"),
        "{shown}"
    );
    let status = setup.project.etl(&["status", "pipelines/users.yaml"]);
    assert!(status.status.success(), "{}", common::text(&status));
    drop(moto);
}
