//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `etl` from the repository root with "today" pinned.
pub fn etl(args: &[&str], today: &str) -> Output {
    etl_in(&root(), args, today)
}

/// Runs `etl` in `dir` with "today" pinned and no profile from the caller.
pub fn etl_in(dir: &Path, args: &[&str], today: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .current_dir(dir)
        .env("ETL_TODAY", today)
        .env_remove("ETL_PROFILE")
        .env_remove("ETL_PROJECT")
        .env_remove("ETL_MONGO_PORT")
        .env_remove("ETL_BQ_ENDPOINT")
        .env("NO_COLOR", "1")
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

/// The local stack started by `stack/stack.sh up`, as `stack/stack.sh env`
/// describes it.
pub mod stack {
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

    /// FerretDB's port, as `stack/stack.sh` was told.
    pub fn mongo_port() -> u16 {
        var("ETL_MONGO_PORT", "27017")
            .parse()
            .expect("ETL_MONGO_PORT is a port number")
    }

    /// FerretDB's URI.
    pub fn mongo_uri() -> String {
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

    /// Which MongoDB server `mongo_uri` is: `fast` when the suite runs on
    /// mongo-java-server (`ETL_TEST_MONGO=fast`, set by `stack/test.sh`).
    pub fn on_fast_server() -> bool {
        var("ETL_TEST_MONGO", "ferretdb") == "fast"
    }

    /// fake-gcs-server's base URL.
    pub fn gcs_endpoint() -> String {
        var("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")
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

    /// The emulator needs a bearer token, not a valid one.
    #[derive(Clone)]
    struct FixedToken;

    #[async_trait::async_trait]
    impl gcp_bigquery_client::auth::Authenticator for FixedToken {
        async fn access_token(&self) -> Result<String, gcp_bigquery_client::error::BQError> {
            Ok("emulator".to_owned())
        }
    }

    /// A BigQuery client for the emulator.
    pub async fn bigquery() -> gcp_bigquery_client::Client {
        gcp_bigquery_client::client_builder::ClientBuilder::new()
            .with_v2_base_url(format!("{}/bigquery/v2", bq_endpoint()))
            .build_from_authenticator(std::sync::Arc::new(FixedToken))
            .await
            .unwrap()
    }

    /// A query's rows on the emulator, every cell as text ("" for NULL).
    pub async fn bq_rows(sql: &str) -> Vec<Vec<String>> {
        let client = bigquery().await;
        let resp = client
            .job()
            .query(
                BQ_PROJECT,
                gcp_bigquery_client::model::query_request::QueryRequest::new(sql.to_owned()),
            )
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut rs =
            gcp_bigquery_client::model::query_response::ResultSet::new_from_query_response(resp);
        let n = rs.column_names().len();
        let mut out = Vec::new();
        while rs.next_row() {
            out.push(
                (0..n)
                    .map(|i| rs.get_string(i).unwrap().unwrap_or_default())
                    .collect(),
            );
        }
        out
    }
}
