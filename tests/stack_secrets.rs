//! The leak test: a real run on the local stack, in the shipped `local`
//! profile, whose MongoDB URI, BigQuery service-account key and GCS key
//! (the lake and the ledger are gs:// buckets) are age secrets, each
//! carrying a marker. Afterwards the markers are looked for in every file
//! the project folder holds (staging, the age files), every object of its
//! lake and ledger buckets, and everything `etl` printed: run logs as text
//! and as JSON, `plan`, `status` and `validate --decrypt`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::{stack, text};

/// The MongoDB password.
const PASSWORD: &str = "Pw-LEAK-5d3a91";
/// Inside the service account's private key.
const KEY: &str = "Key-LEAK-8b2f07";
/// Inside the GCS key (gcs-front checks none, so it is carried, not used).
const GCS_KEY: &str = "GcsKey-LEAK-41c9e2";
const ACCOUNT: &str = "etl-leak@etl-local.iam.gserviceaccount.com";

struct Project {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    identity: std::path::PathBuf,
    database: String,
}

impl Project {
    fn path(&self) -> &Path {
        &self.root
    }

    fn etl(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = common::etl_command(self.path());
        c.args(args)
            .env("ETL_AGE_IDENTITY_FILE", &self.identity)
            // Every crate's debug lines: the driver's and HTTP clients' too.
            .env("ETL_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.unwrap_or_default()).unwrap();
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.etl(args, None);
        let text = text(&out);
        assert!(out.status.success(), "etl {args:?} failed:\n{text}");
        text
    }

    /// Encrypts `plaintext`, given on stdin so it is never a file, into
    /// `file` of the project.
    fn encrypt(&self, file: &str, recipient: &str, plaintext: &str) {
        let out = self.etl(
            &["secrets", "encrypt", "--recipient", recipient, "-"],
            Some(plaintext.as_bytes()),
        );
        assert!(out.status.success(), "{}", text(&out));
        let file = self.path().join(file);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, &out.stdout).unwrap();
    }

    /// Every object of the project's lake and ledger buckets, by URL.
    async fn bucket_objects(&self) -> Vec<(String, Vec<u8>)> {
        let options = BTreeMap::from([("google_service_account_key".to_owned(), marked_gcs_key())]);
        let mut out = Vec::new();
        for bucket in stack::LOCAL_BUCKETS {
            let url = format!("gs://{bucket}/{}", self.database);
            let store = etl::sink::lake::Store::open(&url, &options).unwrap();
            for rel in store.list("").await.unwrap() {
                let bytes = store.get(&rel).await.unwrap().unwrap();
                out.push((format!("{url}/{rel}"), bytes.to_vec()));
            }
        }
        out
    }
}

/// The `local` profile's GCS key as `stack/stack.sh key` makes it, with
/// the marker in it.
fn marked_gcs_key() -> String {
    let mut key: serde_json::Value =
        serde_json::from_str(&stack::gcs_service_account_key()).unwrap();
    key["private_key_id"] = GCS_KEY.into();
    key.to_string()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The project: the shipped `users` pipeline on a database of its own,
/// seeded with demo data, then switched to a URI and a warehouse key that
/// only exist as age secrets.
fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let p = dir.path().join("p");
    std::fs::create_dir_all(p.join("pipelines")).unwrap();
    std::fs::create_dir_all(p.join("secrets")).unwrap();
    let database = format!("it_leak_{}", std::process::id());
    let spec = std::fs::read_to_string(root.join("pipelines/users.yaml")).unwrap();
    let spec = common::edited(
        "users.yaml",
        &spec,
        "database: shop",
        &format!("database: {database}"),
    );
    let spec = common::edited(
        "users.yaml",
        &spec,
        "dataset: etl_demo",
        &format!("dataset: {database}"),
    );
    std::fs::write(p.join("pipelines/users.yaml"), spec).unwrap();
    let shipped = std::fs::read_to_string(root.join("etl.yaml")).unwrap();
    let endpoint = format!("endpoint: {}", stack::bq_endpoint());
    let plain = shipped
        .replace(
            "endpoint: '{{ env(\"ETL_BQ_ENDPOINT\", \"http://127.0.0.1:9050\") }}'",
            &endpoint,
        )
        .replace(
            "{{ env(\"ETL_MONGO_PORT\", \"27017\") }}",
            &stack::mongo_port().to_string(),
        )
        // Done days keep their staging files, so the scan reads them too.
        .replace(
            "  staging_dir: .etl/staging\n",
            "  staging_dir: .etl/staging\n  keep_staging: true\n",
        );
    assert!(
        plain.contains(&endpoint) && plain.contains("keep_staging: true"),
        "etl.yaml's local warehouse or staging folder moved"
    );
    // The profile's buckets, under a prefix of the test's own.
    let mut plain = plain;
    for bucket in stack::LOCAL_BUCKETS {
        plain = common::edited(
            "etl.yaml",
            &plain,
            &format!(" url: gs://{bucket}\n"),
            &format!(" url: gs://{bucket}/{database}\n"),
        );
    }
    std::fs::write(p.join("etl.yaml"), &plain).unwrap();

    // The identity lives outside the project, as it would in ~/.config.
    let identity = dir.path().join("identity.txt");
    let project = Project {
        _dir: dir,
        root: p,
        identity: identity.clone(),
        database,
    };
    let keygen = project.etl(&["secrets", "keygen"], None);
    assert!(keygen.status.success(), "{}", text(&keygen));
    std::fs::write(&identity, &keygen.stdout).unwrap();
    let recipient = String::from_utf8(keygen.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# public key: ")
        .to_owned();

    project.ok(&[
        "demo",
        "--database",
        &project.database,
        "--users",
        "60",
        "--orders",
        "0",
        "--products",
        "0",
    ]);

    let uri = format!(
        "mongodb://etl:{PASSWORD}@127.0.0.1:{}/?directConnection=true&authMechanism=PLAIN",
        stack::mongo_port()
    );
    project.encrypt("secrets/mongo_uri.age", &recipient, &uri);
    project.encrypt(".etl/secrets/gcs_local.age", &recipient, &marked_gcs_key());
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "etl-local",
        "private_key_id": "0123456789abcdef",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{KEY}\n-----END PRIVATE KEY-----\n"),
        "client_email": ACCOUNT,
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    project.encrypt("secrets/gcp_sa.age", &recipient, &key.to_string());
    let local_mongo = format!(
        "uri: mongodb://127.0.0.1:{}/?directConnection=true",
        stack::mongo_port()
    );
    assert!(plain.contains(&local_mongo), "etl.yaml's local mongo moved");
    let secret = plain
        .replace(&local_mongo, "uri: '{{ secret(\"mongo_uri\") }}'")
        .replace(
            &endpoint,
            &format!("{endpoint}\n        credentials: gcp_sa"),
        );
    std::fs::write(project.path().join("etl.yaml"), secret).unwrap();
    project
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_no_file_log_or_output() {
    let p = project();
    let mut printed = Vec::new();
    printed.push((
        "validate --decrypt".to_owned(),
        p.ok(&["validate", "--decrypt"]),
    ));
    let days = [
        "pipelines/users.yaml",
        "--start",
        "2020-06-01",
        "--end",
        "2020-06-03",
    ];
    printed.push(("plan".to_owned(), p.ok(&[&["plan"][..], &days].concat())));
    let run = p.ok(&[&["run"][..], &days].concat());
    printed.push(("run (text logs)".to_owned(), run.clone()));
    let json_run = p.ok(&[&["run"][..], &days, &["--rerun", "--log-format", "json"]].concat());
    printed.push(("run (JSON logs)".to_owned(), json_run.clone()));
    // Exit 1: the days after the range are missing.
    let status = text(&p.etl(&["status", "pipelines/users.yaml"], None));
    assert!(status.contains("3 done, 0 failed"), "{status}");
    printed.push(("status".to_owned(), status));
    let show = p.ok(&["secrets", "show", "mongo_uri"]);
    printed.push(("secrets show".to_owned(), show.clone()));
    printed.push(("secrets list".to_owned(), p.ok(&["secrets", "list"])));

    // The run used both secrets: it read MongoDB and loaded the warehouse,
    // and says which credentials the warehouse used.
    assert!(
        run.contains("3 done, 0 skipped (already done), 0 failed"),
        "{run}"
    );
    assert!(
        run.contains(&format!(
            "credentials  warehouse        service account {ACCOUNT} (secret `gcp_sa`), not sent: the endpoint is an emulator"
        )),
        "{run}"
    );
    assert!(
        run.contains("credentials  mongo            the URI, with secret `mongo_uri`"),
        "{run}"
    );
    assert!(
        run.contains("credentials  lake             service account etl-local@etl-local.iam.gserviceaccount.com (secret `gcs_local`), not sent: the endpoint is an emulator"),
        "{run}"
    );
    assert!(
        json_run.lines().any(|l| l.starts_with('{')),
        "JSON log lines: {json_run}"
    );
    assert!(show.contains("mongo_uri: ***"), "{show}");

    // The markers are real: revealing shows them, and the scan finds them.
    let revealed = p.ok(&["secrets", "show", "mongo_uri", "--reveal"]);
    assert!(contains(revealed.as_bytes(), PASSWORD), "{revealed}");
    let revealed = p.ok(&["secrets", "show", "gcs_local", "--reveal"]);
    assert!(contains(revealed.as_bytes(), GCS_KEY), "{revealed}");

    let mut everything: Vec<(String, Vec<u8>)> =
        common::files_under(p.path()).into_iter().collect();
    everything.extend(p.bucket_objects().await);
    let names: Vec<&str> = everything.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        ".etl/staging/",
        "gs://etl-local-lake/",
        "gs://etl-local-state/",
        "secrets/gcp_sa.age",
        ".etl/secrets/gcs_local.age",
    ] {
        assert!(
            names.iter().any(|n| n.contains(wanted)),
            "nothing under {wanted} was scanned: {names:#?}"
        );
    }
    everything.extend(printed.into_iter().map(|(n, t)| (n, t.into_bytes())));
    for (name, bytes) in &everything {
        for marker in [PASSWORD, KEY, GCS_KEY] {
            assert!(!contains(bytes, marker), "{marker} leaked into {name}");
        }
    }
}
