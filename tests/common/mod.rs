//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// "Today" for every test: the day after the last one a catch-up runs.
pub const TODAY: &str = "2026-11-23";

/// Settings of the caller's shell that would change which project,
/// profile, server, key or log level `etl` uses: no test inherits them.
const CALLER_SETTINGS: [&str; 10] = [
    "ETL_PROFILE",
    "ETL_PROJECT",
    "ETL_MONGO_PORT",
    "ETL_MONGO_FAST_PORT",
    "ETL_BQ_ENDPOINT",
    "ETL_LOG",
    "ETL_AGE_IDENTITY_FILE",
    "ETL_AGE_IDENTITY",
    "ETL_AGE_PASSPHRASE",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// The profile tests run the shipped `etl.yaml` in: `local` with its lake,
/// Parquet warehouse and ledger in folders, which tests read as files, and
/// with no key to seal (a fresh clone has none). [`Project::on_gcs`] moves
/// a project to the buckets of `local` itself.
pub const TEST_PROFILE: &str = "files";

/// The one way tests start `etl`: in `dir`, "today" pinned to [`TODAY`],
/// no colours, and none of [`CALLER_SETTINGS`]; a test sets what it needs.
/// In the repository itself, and in a [`Project`] with its `etl.yaml`,
/// the profile is [`TEST_PROFILE`].
pub fn etl_command(dir: &Path) -> Command {
    command_in(env!("CARGO_BIN_EXE_etl"), dir)
}

/// `program` in `dir` as [`etl_command`] starts `etl`: for a program that
/// runs `etl` itself, such as Airflow.
pub fn command_in(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut c = Command::new(program);
    for k in CALLER_SETTINGS {
        c.env_remove(k);
    }
    c.current_dir(dir)
        .env("ETL_TODAY", TODAY)
        .env("NO_COLOR", "1");
    if dir == root() {
        c.env("ETL_PROFILE", TEST_PROFILE);
    }
    c
}

/// Runs `etl` from the repository root on `today`.
pub fn etl(args: &[&str], today: &str) -> Output {
    etl_in(&root(), args, today)
}

/// Runs `etl` in `dir` on `today`.
pub fn etl_in(dir: &Path, args: &[&str], today: &str) -> Output {
    etl_command(dir)
        .args(args)
        .env("ETL_TODAY", today)
        .output()
        .expect("etl runs")
}

/// Exit code plus both streams, with the machine's paths replaced, for
/// snapshots.
pub fn transcript(out: &Output) -> String {
    let root = root().canonicalize().unwrap();
    let clean =
        |b: &[u8]| String::from_utf8_lossy(b).replace(&root.display().to_string(), "[ROOT]");
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        clean(&out.stdout),
        clean(&out.stderr)
    )
}

/// The ledger record of `pipeline`'s `day` in the project at `dir`.
pub fn ledger_record(dir: &Path, pipeline: &str, day: &str) -> serde_json::Value {
    let path = dir.join(format!(".etl/state/ledger/{pipeline}/{day}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// Both streams as text, stdout first.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, by its path relative to `dir`, with its bytes.
pub fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Rows of the Parquet files in `dir` (one day of a dataset), read from
/// their footers.
pub fn parquet_rows(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| parquet_file_rows(std::fs::File::open(e.unwrap().path()).unwrap()))
        .sum()
}

/// Rows of one Parquet file (a local file, or an object's bytes), read
/// from its footer.
pub fn parquet_file_rows(file: impl parquet::file::reader::ChunkReader + 'static) -> u64 {
    use parquet::file::reader::FileReader;
    parquet::file::serialized_reader::SerializedFileReader::new(file)
        .unwrap()
        .metadata()
        .file_metadata()
        .num_rows() as u64
}

/// `text` (of file `name`) with every `from` replaced by `to`; fails the
/// test when there is no `from`, since the edit would change nothing.
pub fn edited(name: &str, text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "`{from}` is not in {name}: this edit of the test project would change nothing"
    );
    text.replace(from, to)
}

/// The `local` profile's buckets of one test ([`Project::on_gcs`]), as
/// `etl` opens them.
pub struct Buckets {
    /// Connection `lake`.
    pub lake: etl::sink::lake::Store,
    /// Connection `warehouse_files`, the Parquet datasets.
    pub warehouse: etl::sink::lake::Store,
    /// The ledger and the leases.
    pub state: etl::sink::lake::Store,
}

impl Buckets {
    /// Every object under the lake, with its bytes, by relative path.
    pub async fn lake_objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects(&self.lake, "").await
    }

    /// Every object under `rel` of `store`, with its bytes, by path
    /// relative to `rel`, as [`files_under`] gives a folder's.
    pub async fn objects(
        &self,
        store: &etl::sink::lake::Store,
        rel: &str,
    ) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for path in store.list(rel).await.unwrap() {
            let bytes = store.get(&path).await.unwrap().unwrap();
            let below = path.strip_prefix(rel).unwrap_or(&path);
            out.insert(below.trim_start_matches('/').to_owned(), bytes.to_vec());
        }
        out
    }

    /// Rows of the Parquet files under `rel` of the warehouse bucket,
    /// read from their footers.
    pub async fn parquet_rows(&self, rel: &str) -> u64 {
        let mut total = 0;
        for file in self.warehouse.list(rel).await.unwrap() {
            total += parquet_file_rows(self.warehouse.get(&file).await.unwrap().unwrap());
        }
        total
    }
}

/// A project folder of a test's own: files copied from the repository,
/// then edited. Every edit must match what it replaces, so no test runs on
/// a file it only believes it changed.
pub struct Project {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    unset: Vec<String>,
}

impl Project {
    /// An empty project folder.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            unset: Vec::new(),
        }
    }

    /// A folder with these files or folders of the repository copied in;
    /// with `etl.yaml`, its commands run in [`TEST_PROFILE`].
    pub fn with(paths: &[&str]) -> Self {
        let mut p = Self::empty();
        for rel in paths {
            p.copy(rel);
        }
        if paths.contains(&"etl.yaml") {
            p.set_env("ETL_PROFILE", TEST_PROFILE);
        }
        p
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the repository's file or folder `rel` to the same place.
    pub fn copy(&self, rel: &str) {
        let from = root().join(rel);
        let to = self.path().join(rel);
        if from.is_dir() {
            for (file, bytes) in files_under(&from) {
                let to = to.join(file);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::write(to, bytes).unwrap();
            }
        } else {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
    }

    /// Writes `text` to `rel`.
    pub fn write(&self, rel: &str, text: &str) {
        let to = self.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, text).unwrap();
    }

    /// The text of `rel`.
    pub fn read(&self, rel: &str) -> String {
        let path = self.path().join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Replaces every `from` in `rel` with `to`; fails the test when
    /// `rel` holds no `from`.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        self.write(rel, &edited(rel, &self.read(rel), from, to));
    }

    /// Points the shipped pipeline `rel` (a `bigquery` warehouse) at a
    /// Parquet dataset in the project's `warehouse_files` instead, named
    /// after the pipeline: for tests whose subject is not BigQuery, which
    /// then spend no minute on the emulator's jobs (docs/local-stack.md).
    pub fn warehouse_to_parquet(&self, rel: &str) {
        let text = self.read(rel);
        let start = text
            .find("  warehouse:\n    type: bigquery\n")
            .unwrap_or_else(|| panic!("{rel} has no `bigquery` warehouse under `sinks`"));
        let block = &text[start..];
        let len = block
            .split_inclusive('\n')
            .enumerate()
            .take_while(|(i, line)| *i == 0 || line.starts_with("    "))
            .map(|(_, line)| line.len())
            .sum::<usize>();
        let parquet = "  warehouse:\n    type: parquet\n    connection: warehouse_files\n    path: \"{{ pipeline }}\"\n";
        self.write(
            rel,
            &format!("{}{parquet}{}", &text[..start], &text[start + len..]),
        );
    }

    /// Moves the project's lake (connection `lake`, every profile) to
    /// `gs://<the stack's bucket>/<prefix>` on the stack's GCS server, with
    /// a key from the environment as a production one would come; the
    /// lake as `etl` opens it.
    pub fn lake_on_gcs(&mut self, prefix: &str) -> etl::sink::lake::Store {
        let url = format!("gs://{}/{prefix}", stack::GCS_BUCKET);
        self.edit(
            "etl.yaml",
            "      lake:\n        type: object_store\n        url: .etl/lake\n",
            &format!(
                "      lake:\n        type: object_store\n        url: {url}\n        options:\n          google_service_account_key: '{{{{ env(\"ETL_TEST_GCS_KEY\") }}}}'\n"
            ),
        );
        let key = stack::gcs_service_account_key();
        self.set_env("ETL_TEST_GCS_KEY", &key);
        let options = BTreeMap::from([("google_service_account_key".to_owned(), key)]);
        etl::sink::lake::Store::open(&url, &options).unwrap()
    }

    /// Moves the project to the shipped `local` profile, whose lake,
    /// Parquet warehouse and ledger are gs:// buckets on gcs-front, each
    /// under `prefix` here (every test its own). The key comes as
    /// `stack/stack.sh key` makes it: a service-account JSON pointing at
    /// gcs-front, sealed into `.etl/secrets/gcs_local.age`, here to an age
    /// identity of the test's own, handed to `etl` in `ETL_AGE_IDENTITY`.
    pub fn on_gcs(&mut self, prefix: &str) -> Buckets {
        use age::secrecy::ExposeSecret;
        let mut urls = Vec::new();
        for bucket in stack::LOCAL_BUCKETS {
            let url = format!("gs://{bucket}/{prefix}");
            self.edit(
                "etl.yaml",
                &format!(" url: gs://{bucket}\n"),
                &format!(" url: {url}\n"),
            );
            urls.push(url);
        }
        let identity = age::x25519::Identity::generate();
        let key = stack::gcs_service_account_key();
        let sealed = age::encrypt(&identity.to_public(), key.as_bytes()).unwrap();
        let file = self.path().join(".etl/secrets/gcs_local.age");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, sealed).unwrap();
        self.set_env("ETL_AGE_IDENTITY", identity.to_string().expose_secret());
        self.set_env("ETL_PROFILE", "local");
        let options = BTreeMap::from([("google_service_account_key".to_owned(), key)]);
        let open = |url: &String| etl::sink::lake::Store::open(url, &options).unwrap();
        Buckets {
            lake: open(&urls[0]),
            warehouse: open(&urls[1]),
            state: open(&urls[2]),
        }
    }

    /// Sets `key` for every command the project runs.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Leaves `key` out of the environment of every command the project
    /// runs, as [`etl_command`] would set it.
    pub fn unset_env(&mut self, key: &str) {
        self.unset.push(key.to_owned());
    }

    /// `etl args` in the project, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.program(env!("CARGO_BIN_EXE_etl"));
        c.args(args);
        c
    }

    /// `program` in the project, with the environment its `etl` commands
    /// get, not started.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = command_in(program, self.path());
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for k in &self.unset {
            c.env_remove(k);
        }
        c
    }

    /// Runs `etl args` in the project.
    pub fn etl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("etl runs")
    }

    /// Runs `etl args`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.etl(args);
        assert!(
            out.status.success(),
            "etl {args:?} failed ({:?}):\n{}",
            out.status.code(),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The local stack started by `stack/stack.sh up`, as `stack/stack.sh env`
/// describes it.
pub mod stack {
    use serde_json::Value;

    /// What to do when a server is not there.
    pub const HINT: &str = "start the local stack with `stack/stack.sh up` (then `eval \"$(stack/stack.sh env)\"`), or run the tests through `stack/test.sh`";
    /// The emulator's project.
    pub const BQ_PROJECT: &str = "etl-local";
    /// The dataset `stack.sh up` creates.
    pub const BQ_DATASET: &str = "etl_demo";
    /// The bucket `stack.sh up` creates.
    pub const GCS_BUCKET: &str = "etl-lake";

    fn var(name: &str, default: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| default.to_owned())
    }

    /// The port of the MongoDB server the suite runs on ([`on_fast_server`]),
    /// as `stack/stack.sh` was told.
    pub fn mongo_port() -> u16 {
        if on_fast_server() {
            return mongo_fast_port();
        }
        var("ETL_MONGO_PORT", "27017")
            .parse()
            .expect("ETL_MONGO_PORT is a port number")
    }

    /// The URI of the MongoDB server the suite runs on.
    pub fn mongo_uri() -> String {
        if on_fast_server() {
            return mongo_fast_uri();
        }
        var(
            "ETL_MONGO_URI",
            "mongodb://127.0.0.1:27017/?directConnection=true",
        )
    }

    /// The fast server's port (mongo-java-server), as `stack/stack.sh` was
    /// told.
    pub fn mongo_fast_port() -> u16 {
        var("ETL_MONGO_FAST_PORT", "27018")
            .parse()
            .expect("ETL_MONGO_FAST_PORT is a port number")
    }

    /// The fast server's URI.
    pub fn mongo_fast_uri() -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true",
            mongo_fast_port()
        )
    }

    /// A client of the fast server, once it answers `ping`.
    pub async fn mongo_fast() -> mongodb::Client {
        let uri = mongo_fast_uri();
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        ping(&client, &uri, "mongo-java-server").await;
        client
    }

    /// Which MongoDB server the suite runs on: mongo-java-server unless
    /// `ETL_TEST_MONGO=ferretdb` (`stack/test.sh` sets it for the tests
    /// only FerretDB can show; docs/local-stack.md says which).
    pub fn on_fast_server() -> bool {
        match var("ETL_TEST_MONGO", "fast").as_str() {
            "fast" => true,
            "ferretdb" => false,
            other => panic!("ETL_TEST_MONGO is `fast` or `ferretdb`, not `{other}`"),
        }
    }

    /// gcs-front's (fake-gcs-server's) base URL.
    pub fn gcs_endpoint() -> String {
        var("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")
    }

    /// The key for the stack's GCS server: [`gcs_key`] for its endpoint.
    /// A `gs://` connection takes it as `google_service_account_key`.
    pub fn gcs_service_account_key() -> String {
        gcs_key(&gcs_endpoint())
    }

    /// The buckets of the shipped `local` profile, which `stack.sh up`
    /// creates: its lake, Parquet warehouse and ledger, in that order.
    pub const LOCAL_BUCKETS: [&str; 3] =
        ["etl-local-lake", "etl-local-warehouse", "etl-local-state"];

    /// A service-account key such as a production one, as `stack/stack.sh
    /// key` makes it for the `local` profile, but for the GCS server at
    /// `endpoint` (`gcs_base_url`), with OAuth off: no private key in it.
    pub fn gcs_key(endpoint: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": BQ_PROJECT,
            "client_email": format!("etl-local@{BQ_PROJECT}.iam.gserviceaccount.com"),
            "private_key_id": "none",
            "private_key": "none: gcs-front checks no token",
            "gcs_base_url": endpoint,
            "disable_oauth": true,
        })
        .to_string()
    }

    /// moto's S3 endpoint, and the bucket `stack.sh up` creates there.
    pub fn s3_endpoint() -> String {
        var("ETL_S3_ENDPOINT", "http://127.0.0.1:9070")
    }

    /// The bucket `stack.sh up` creates on moto.
    pub const S3_BUCKET: &str = "etl-state";

    /// A key pair for moto, which checks none: not a secret.
    pub const S3_KEY_ID: &str = "moto-test";
    pub const S3_KEY: &str = "moto-test";

    /// MongoDB's own count of a day of the demo's `users` and `orders` (by
    /// `created_at`; orders without the `test` status) or `products` (by the
    /// time inside `_id`), computed here, not by the engine.
    pub async fn mongo_day_count(uri: &str, db: &str, coll: &str, day: chrono::NaiveDate) -> u64 {
        let client = mongodb::Client::with_uri_str(uri).await.unwrap();
        let c = client.database(db).collection::<bson::Document>(coll);
        let ms =
            |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
        let next = day.succ_opt().unwrap();
        let filter = match coll {
            // products are partitioned by the time inside `_id`.
            "products" => {
                let oid = |d: chrono::NaiveDate| {
                    let mut b = [0u8; 12];
                    b[..4].copy_from_slice(&((ms(d) / 1000) as u32).to_be_bytes());
                    bson::oid::ObjectId::from_bytes(b)
                };
                bson::doc! { "_id": { "$gte": oid(day), "$lt": oid(next) } }
            }
            "orders" => {
                bson::doc! { "status": { "$ne": "test" }, "created_at": { "$gte": bson::DateTime::from_millis(ms(day)), "$lt": bson::DateTime::from_millis(ms(next)) } }
            }
            _ => {
                bson::doc! { "created_at": { "$gte": bson::DateTime::from_millis(ms(day)), "$lt": bson::DateTime::from_millis(ms(next)) } }
            }
        };
        c.count_documents(filter).await.unwrap()
    }

    /// An S3 client of `bucket` on the moto at `endpoint`.
    pub fn s3(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_access_key_id(S3_KEY_ID)
            .with_secret_access_key(S3_KEY)
            .build()
            .unwrap()
    }

    /// bigquery-emulator's base URL.
    pub fn bq_endpoint() -> String {
        var("ETL_BQ_ENDPOINT", "http://127.0.0.1:9050")
    }

    /// Fails the test with a hint unless MongoDB answers `ping`.
    pub async fn require_mongo(client: &mongodb::Client) {
        let server = if on_fast_server() {
            "mongo-java-server"
        } else {
            "FerretDB"
        };
        ping(client, &mongo_uri(), server).await;
    }

    async fn ping(client: &mongodb::Client, uri: &str, server: &str) {
        let admin = client.database("admin");
        let ping = admin.run_command(bson::doc! {"ping": 1});
        match tokio::time::timeout(std::time::Duration::from_secs(10), ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{server} at {uri} did not answer ping: {e}\n{HINT}"),
            Err(_) => panic!("{server} at {uri} did not answer ping within 10 s\n{HINT}"),
        }
    }

    /// A connected MongoDB client.
    pub async fn mongo() -> mongodb::Client {
        let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
        require_mongo(&client).await;
        client
    }

    /// bigquery-emulator through its REST API, independent of `etl`'s
    /// BigQuery client.
    pub struct Emulator {
        http: reqwest::Client,
        base: String,
    }

    impl Emulator {
        /// Fails with the stack hint unless the emulator answers.
        pub async fn require() -> Self {
            let e = Emulator {
                http: reqwest::Client::new(),
                base: format!("{}/bigquery/v2/projects/{BQ_PROJECT}", bq_endpoint()),
            };
            let url = format!("{}/datasets/{BQ_DATASET}", e.base);
            let answer = e
                .http
                .get(&url)
                .bearer_auth("t")
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => e,
                Ok(r) => panic!(
                    "bigquery-emulator answered {} for dataset `{BQ_DATASET}`\n{HINT}",
                    r.status()
                ),
                Err(err) => panic!(
                    "bigquery-emulator at {} is not reachable: {err}\n{HINT}",
                    bq_endpoint()
                ),
            }
        }

        /// Sends a request to `path` under the project: the status and the
        /// JSON answer (null when it is not JSON).
        pub async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut req = self
                .http
                .request(method, format!("{}/{path}", self.base))
                .bearer_auth("t");
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }

        /// The table's resource.
        pub async fn table(&self, dataset: &str, table: &str) -> (u16, Value) {
            self.send(
                reqwest::Method::GET,
                &format!("datasets/{dataset}/tables/{table}"),
                None,
            )
            .await
        }

        /// The names of the dataset's tables.
        pub async fn table_names(&self, dataset: &str) -> Vec<String> {
            let (status, list) = self
                .send(
                    reqwest::Method::GET,
                    &format!("datasets/{dataset}/tables"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "listing the tables of {dataset}: {list}");
            list["tables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["tableReference"]["tableId"].as_str().map(str::to_owned))
                .collect()
        }

        /// Drops a table; a missing one is fine.
        pub async fn drop_table(&self, dataset: &str, table: &str) {
            self.send(
                reqwest::Method::DELETE,
                &format!("datasets/{dataset}/tables/{table}"),
                None,
            )
            .await;
        }

        /// Drops a dataset and its tables.
        pub async fn drop_dataset(&self, dataset: &str) {
            self.send(
                reqwest::Method::DELETE,
                &format!("datasets/{dataset}?deleteContents=true"),
                None,
            )
            .await;
        }

        /// The rows of a query, as BigQuery's `f`/`v` cells.
        pub async fn query(&self, sql: &str) -> Vec<Vec<Value>> {
            let (status, resp) = self
                .send(
                    reqwest::Method::POST,
                    "queries",
                    Some(serde_json::json!({"query": sql, "useLegacySql": false})),
                )
                .await;
            assert_eq!(status, 200, "{sql}: {resp}");
            resp["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    r["f"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["v"].clone())
                        .collect()
                })
                .collect()
        }
    }

    /// A query's rows on the emulator, every cell as text ("" for NULL).
    pub async fn bq_rows(sql: &str) -> Vec<Vec<String>> {
        Emulator::require()
            .await
            .query(sql)
            .await
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|cell| match cell {
                        Value::Null => String::new(),
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect()
    }

    /// A MongoDB server of the test's own, so stopping it disturbs no other
    /// test: FerretDB, or mongo-java-server when the suite runs on it
    /// (`ETL_TEST_MONGO=fast`). The latter keeps nothing across a restart.
    pub struct OwnMongo {
        child: std::process::Child,
        pub port: u16,
        pub dir: std::path::PathBuf,
    }

    impl OwnMongo {
        pub fn start(port: u16, dir: &std::path::Path) -> Self {
            let root = super::root();
            let mut cmd = if on_fast_server() {
                let mut c = std::process::Command::new("java");
                c.args(["-Xmx1g", "-jar"])
                    .arg(root.join("stack/bin/mongo-fast.jar"))
                    .args([
                        "--host",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                        "--oplog",
                        "off",
                    ]);
                c
            } else {
                let mut c = std::process::Command::new(root.join("stack/bin/ferretdb-embedded"));
                c.args([
                    "-listen",
                    &format!("127.0.0.1:{port}"),
                    "-dir",
                    &dir.display().to_string(),
                ]);
                c
            };
            let child = cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{cmd:?}: {e}\n{}", HINT));
            Self {
                child,
                port,
                dir: dir.to_owned(),
            }
        }

        /// Whether the server keeps its data across a restart.
        pub fn durable() -> bool {
            !on_fast_server()
        }

        pub async fn wait_ready(&self) {
            let uri = format!(
                "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=500",
                self.port
            );
            for _ in 0..200 {
                if let Ok(c) = mongodb::Client::with_uri_str(&uri).await {
                    if c.database("admin")
                        .run_command(bson::doc! {"ping": 1})
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the test's own MongoDB on port {} did not start", self.port);
        }

        pub fn stop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for OwnMongo {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
