//! The data lake: any `object_store` URL (`gs://`, `s3://`, `az://`,
//! `file://`, `memory://`), and the formats of what a day leaves there.
//!
//! - [`Store`] (here): uploads, small objects, listings.
//! - [`archive`]: the raw archive, canonical Extended JSON lines,
//!   compressed and hashed as they are written.
//! - [`records`]: the manifest beside each raw object, and the record of
//!   each rejected document.
//!
//! Object names come from the spec's templates and are the same on every
//! run of a day, so a rerun overwrites and never adds. Uploads stream from
//! the local staging file through `object_store`'s `BufWriter`, which
//! switches to a multipart upload for large files.

use std::collections::BTreeMap;
use std::path::Path as LocalPath;
use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;

use crate::redact::redact_uri;

pub mod archive;
pub mod records;

pub use archive::RawArchive;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The URL or its options are not usable.
    #[error("cannot open object store `{url}`: {message}")]
    Open {
        /// The URL, redacted.
        url: String,
        /// Why.
        message: String,
    },
    /// An upload, download or listing failed.
    #[error("{operation} `{path}` in `{url}` failed: {message}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The object.
        path: String,
        /// The store, redacted.
        url: String,
        /// Why.
        message: String,
        /// Whether the same operation may succeed later: the network or
        /// the service, not a missing object, a refusal or a bad path.
        transient: bool,
    },
    /// A state object that is there but does not parse (cut short,
    /// hand-edited, or from another version of etl): never read as
    /// nothing, since that would silently redo, forget or skip work.
    #[error("`{object}` is corrupt: {message}\n\nhint: {hint}")]
    Corrupt {
        /// The object's URL, redacted.
        object: String,
        /// Why it does not parse.
        message: String,
        /// How to repair it, and what that loses.
        hint: String,
    },
}

impl LakeError {
    /// Whether running the same operation again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LakeError::Io {
                transient: true,
                ..
            }
        )
    }
}

/// Whether an `object_store` failure may pass.
fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotImplemented
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

/// How often one request to a cloud store is retried, and for how long,
/// before the day fails as transient and the run's own retries (`--retries`,
/// minutes apart) take over. `object_store`'s default, 10 tries over up to
/// 3 minutes, held a day on a store that was down for that long, each try.
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(30),
    }
}

/// `object_store::parse_url_opts`, with [`retry_config`] for the cloud
/// stores, and an option it does not know refused instead of ignored.
fn build(
    url: &url::Url,
    options: &BTreeMap<String, String>,
) -> Result<(Box<dyn ObjectStore>, Path), object_store::Error> {
    use object_store::ObjectStoreScheme as Scheme;
    macro_rules! cloud {
        ($builder:ty) => {{
            let mut builder = <$builder>::new()
                .with_url(url.to_string())
                .with_retry(retry_config());
            for (key, value) in options {
                builder = builder.with_config(key.parse()?, value.clone());
            }
            Box::new(builder.build()?) as Box<dyn ObjectStore>
        }};
    }
    let (scheme, path) = Scheme::parse(url)?;
    let store = match scheme {
        Scheme::AmazonS3 => cloud!(object_store::aws::AmazonS3Builder),
        Scheme::GoogleCloudStorage => cloud!(object_store::gcp::GoogleCloudStorageBuilder),
        Scheme::MicrosoftAzure => cloud!(object_store::azure::MicrosoftAzureBuilder),
        _ => return object_store::parse_url_opts(url, options.iter()),
    };
    Ok((store, Path::parse(path)?))
}

/// How a conditional create ([`Store::create`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call created the object.
    Yes,
    /// Refused: the object exists (`object_store`'s `AlreadyExists`).
    AlreadyExists,
    /// Refused by a failed precondition (`Precondition`), which some
    /// stores answer instead.
    Precondition,
}

/// An object store with a root prefix.
#[derive(Clone)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

/// An upload larger than this goes up in parts of this size: the smallest
/// part S3 and GCS accept.
const UPLOAD_PART_BYTES: usize = 5 << 20;
/// Parts of one upload in flight at once. object_store's defaults (parts
/// of 10 MiB, 8 at once) held up to 90 MiB per upload, and a day uploads
/// its raw archive and its Parquet files at once: at 1,000,000 orders that
/// was 50 MB on top of the extract's peak RSS.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

impl Store {
    /// Opens `url` with `object_store` options. Local folders are created.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self, LakeError> {
        let shown = redact_uri(url);
        // object_store quotes the URL in some errors: hide its secrets there too.
        let open_err = |message: String| LakeError::Open {
            url: shown.clone(),
            message: crate::redact::redact_text(&message),
        };
        let parsed = url::Url::parse(url).map_err(|e| open_err(e.to_string()))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|_| open_err("not an absolute local path".to_owned()))?;
            std::fs::create_dir_all(&dir).map_err(|e| open_err(e.to_string()))?;
        }
        let (store, prefix) = build(&parsed, options).map_err(|e| open_err(e.to_string()))?;
        Ok(Self::from_parts(Arc::from(store), prefix, shown))
    }

    /// Wraps an existing store (tests use `InMemory`).
    pub fn from_parts(store: Arc<dyn ObjectStore>, prefix: Path, url: String) -> Self {
        Self { store, prefix, url }
    }

    /// The `object_store` behind it, for readers that take one (Parquet's
    /// range reads); paths from [`Self::path`].
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The full path of `rel` under the prefix.
    pub fn path(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.child(part);
        }
        p
    }

    /// The URL of `rel`, for people.
    pub fn display(&self, rel: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), rel)
    }

    /// The `gs://bucket/key` URI of `rel`, by which BigQuery reads it;
    /// None unless the store is a GCS bucket.
    pub fn gs_uri(&self, rel: &str) -> Option<String> {
        let url = url::Url::parse(&self.url).ok()?;
        if url.scheme() != "gs" {
            return None;
        }
        Some(format!("gs://{}/{}", url.host_str()?, self.path(rel)))
    }

    fn io(
        &self,
        operation: &'static str,
        path: &Path,
        e: impl std::fmt::Display,
        transient: bool,
    ) -> LakeError {
        LakeError::Io {
            operation,
            path: path.to_string(),
            url: self.url.clone(),
            message: e.to_string(),
            transient,
        }
    }

    fn store_error(
        &self,
        operation: &'static str,
        path: &Path,
        e: object_store::Error,
    ) -> LakeError {
        let transient = is_transient(&e);
        self.io(operation, path, e, transient)
    }

    /// Streams a local file to `rel`, replacing what was there. Returns the
    /// bytes written.
    pub async fn upload(&self, local: &LocalPath, rel: &str) -> Result<u64, LakeError> {
        let path = self.path(rel);
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| self.io("read", &path, e, false))?;
        let mut writer = object_store::buffered::BufWriter::with_capacity(
            self.store.clone(),
            path.clone(),
            UPLOAD_PART_BYTES,
        )
        .with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
        let n = tokio::io::copy(&mut file, &mut writer)
            .await
            .map_err(|e| self.io("upload", &path, e, true))?;
        writer
            .shutdown()
            .await
            .map_err(|e| self.io("upload", &path, e, true))?;
        Ok(n)
    }

    /// Writes small bytes (a manifest, a ledger record) to `rel`.
    pub async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        let path = self.path(rel);
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(|e| self.store_error("write", &path, e))?;
        Ok(())
    }

    /// Writes `bytes` to `rel` unless something is there already: true
    /// when this call created it. The store must support conditional puts
    /// (`PutMode::Create`: local files, GCS, Azure, and S3 with
    /// `aws_conditional_put`); one that does not is an error saying so.
    pub async fn put_if_absent(&self, rel: &str, bytes: Vec<u8>) -> Result<bool, LakeError> {
        Ok(self.create(rel, bytes).await? == Created::Yes)
    }

    /// [`Self::put_if_absent`], saying how a refusal came: what
    /// `etl validate --connect` reports of the state store.
    pub async fn create(&self, rel: &str, bytes: Vec<u8>) -> Result<Created, LakeError> {
        let path = self.path(rel);
        let mode: object_store::PutOptions = object_store::PutMode::Create.into();
        match self.store.put_opts(&path, bytes.into(), mode).await {
            Ok(_) => Ok(Created::Yes),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(object_store::Error::Precondition { .. }) => Ok(Created::Precondition),
            Err(e @ object_store::Error::NotImplemented) => Err(self.io(
                "create",
                &path,
                format!("{e}: this store has no conditional puts, which leases need"),
                false,
            )),
            Err(e) => Err(self.store_error("create", &path, e)),
        }
    }

    /// [`Self::create`] on a store with conditional puts; on one without,
    /// a plain put, which always creates: for writes where a lost race
    /// costs less than refusing the store (a Parquet dataset's schema
    /// versions, `sink::warehouse::parquet`).
    pub async fn create_or_put(&self, rel: &str, bytes: Vec<u8>) -> Result<Created, LakeError> {
        let path = self.path(rel);
        let bytes = bytes::Bytes::from(bytes);
        let mode: object_store::PutOptions = object_store::PutMode::Create.into();
        match self.store.put_opts(&path, bytes.clone().into(), mode).await {
            Ok(_) => Ok(Created::Yes),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(object_store::Error::Precondition { .. }) => Ok(Created::Precondition),
            Err(object_store::Error::NotImplemented) => {
                self.store
                    .put(&path, bytes.into())
                    .await
                    .map_err(|e| self.store_error("write", &path, e))?;
                Ok(Created::Yes)
            }
            Err(e) => Err(self.store_error("create", &path, e)),
        }
    }

    /// Reads `rel`, or None when it does not exist.
    /// The JSON record at `rel`, if there is one. A record that does not
    /// parse is [`LakeError::Corrupt`], never absent: `corrupt` says what
    /// it is and how to repair it (a message and a hint).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        rel: &str,
        corrupt: impl FnOnce(serde_json::Error) -> (String, String),
    ) -> Result<Option<T>, LakeError> {
        let Some(bytes) = self.get(rel).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            let (message, hint) = corrupt(e);
            LakeError::Corrupt {
                object: self.display(rel),
                message,
                hint,
            }
        })
    }

    pub async fn get(&self, rel: &str) -> Result<Option<bytes::Bytes>, LakeError> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(|e| self.store_error("read", &path, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_error("read", &path, e)),
        }
    }

    /// Streams `rel`'s bytes, or None when it does not exist: for objects
    /// too large to hold, such as a raw archive read back.
    pub async fn read_stream(
        &self,
        rel: &str,
    ) -> Result<Option<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>>, LakeError>
    {
        use futures::{StreamExt, TryStreamExt};
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.into_stream().map_err(std::io::Error::other).boxed())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_error("read", &path, e)),
        }
    }

    /// The relative paths of every object under `rel`, sorted.
    pub async fn list(&self, rel: &str) -> Result<Vec<String>, LakeError> {
        use futures::TryStreamExt;
        let path = self.path(rel);
        let metas: Vec<_> = self
            .store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| self.store_error("list", &path, e))?;
        let skip = self.prefix.parts().count();
        let mut out: Vec<String> = metas
            .into_iter()
            .map(|m| {
                m.location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes `rel`; a missing object is fine.
    pub async fn delete(&self, rel: &str) -> Result<(), LakeError> {
        let path = self.path(rel);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error("delete", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    /// The URI a BigQuery load job is given for a staged object: the
    /// bucket, the store's prefix, then the object (issue 32, part 4).
    #[test]
    fn gs_uri_names_the_object_in_its_bucket_and_only_on_gcs() {
        let key = serde_json::json!({
            "gcs_base_url": "http://127.0.0.1:1",
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        })
        .to_string();
        let options = BTreeMap::from([("google_service_account_key".to_owned(), key)]);
        let gcs = Store::open("gs://acme-lake/etl/prod", &options).unwrap();
        assert_eq!(
            gcs.gs_uri("_load/shop/events/2020-06-01/a1.parquet")
                .as_deref(),
            Some("gs://acme-lake/etl/prod/_load/shop/events/2020-06-01/a1.parquet")
        );
        let memory = Store::from_parts(
            Arc::new(InMemory::new()),
            Path::from("p"),
            "memory://".into(),
        );
        assert_eq!(memory.gs_uri("a.parquet"), None);
    }

    #[tokio::test]
    async fn upload_overwrites_the_same_name() {
        let store = Store::from_parts(
            Arc::new(InMemory::new()),
            Path::from("lake"),
            "memory://lake".into(),
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"first").unwrap();
        store
            .upload(&f, "raw/users/dt=2020-06-01/a.jsonl.gz")
            .await
            .unwrap();
        std::fs::write(&f, b"second").unwrap();
        let n = store
            .upload(&f, "raw/users/dt=2020-06-01/a.jsonl.gz")
            .await
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(
            store.list("raw").await.unwrap(),
            vec!["raw/users/dt=2020-06-01/a.jsonl.gz"]
        );
        assert_eq!(
            &store
                .get("raw/users/dt=2020-06-01/a.jsonl.gz")
                .await
                .unwrap()
                .unwrap()[..],
            b"second"
        );
        assert!(store.get("raw/missing").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn large_files_go_up_in_parts_and_arrive_whole() {
        let store = Store::from_parts(
            Arc::new(InMemory::new()),
            Path::from(""),
            "memory://".into(),
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        // Past BufWriter's 10 MiB threshold, so the multipart path runs.
        let data: Vec<u8> = (0..25 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        assert_eq!(
            store.upload(&f, "big.bin").await.unwrap(),
            data.len() as u64
        );
        assert!(store.get("big.bin").await.unwrap().unwrap() == data);
    }

    #[test]
    fn gs_urls_configure_without_network() {
        // Building a client reads no credentials and opens no connection.
        let opts = BTreeMap::from([(
            "google_service_account_key".to_owned(),
            r#"{"private_key":"","private_key_id":"","client_email":"x","disable_oauth":true}"#
                .to_owned(),
        )]);
        let s = Store::open("gs://acme-data-lake/raw", &opts).unwrap();
        assert_eq!(s.path("a/b.json").to_string(), "raw/a/b.json");
        let err = Store::open("gs://", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot open object store `gs://`"), "{err}");
    }

    #[test]
    fn open_errors_hide_secrets() {
        let err = Store::open("ftp://etl:hunter2@files.example/x", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot open object store `ftp://etl:***@files.example/x`"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
