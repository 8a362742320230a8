//! BigQuery tables, partition by partition.
//!
//! Every table is DAY-partitioned on a DATE column (normally
//! [`DS_COLUMN`](crate::table::DS_COLUMN)), and a run replaces whole days:
//! a reader sees a day's old rows or its new rows, never a mix, and a rerun
//! of a day never appends.
//!
//! Two ways to replace a day ([`ReplaceMode`]):
//! - **Decorator** (real BigQuery): one load job into `table$YYYYMMDD` with
//!   `WRITE_TRUNCATE`. BigQuery swaps the partition atomically and rejects a
//!   row of another day. The job is built by the pure [`decorator_load_job`].
//! - **Staging** (emulators, which take `table$YYYYMMDD` as a table name):
//!   load into `{table}__staging_{YYYYMMDD}`, then one script
//!   `BEGIN TRANSACTION; DELETE day; INSERT day FROM staging; COMMIT
//!   TRANSACTION;` sent through `jobs.query`, then the staging table is
//!   deleted. Real BigQuery rolls the transaction back when a statement
//!   fails; bigquery-emulator v0.8.1 treats `BEGIN`/`COMMIT` as no-ops but
//!   runs a whole `jobs.query` request in one SQLite transaction that it
//!   rolls back on error (its `jobs.insert` commits a failed script's
//!   earlier statements, which is why scripts go through `jobs.query`).
//!   DDL on permanent tables is not allowed inside a BigQuery transaction,
//!   so the staging table is dropped with `tables.delete` afterwards; it
//!   also expires by itself a day later, in case the process dies first.
//!
//! A day with no rows never sends a load job: it is one `DELETE` of the
//! day, so a day whose documents were deleted upstream is emptied on rerun.
//!
//! Files are sent with the resumable upload protocol (session, then one
//! `PUT` of the file streamed from disk), which both BigQuery and the
//! emulator accept. Requests go straight through `reqwest` rather than
//! `gcp-bigquery-client`'s typed API: that crate has no media uploads, and
//! its errors lose the HTTP status when a body is not BigQuery's JSON,
//! which the retry policy needs. The crate still provides authentication
//! (its [`Authenticator`] trait and the `yup-oauth2` it re-exports).
//!
//! Transient failures (connection errors, timeouts, HTTP 5xx, 429 and 403
//! `rateLimitExceeded`) are retried a few times with exponential backoff.
//! Every retried operation is idempotent: jobs get a fresh id per attempt,
//! and a truncating load or a delete-then-insert gives the same result when
//! it runs twice.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::credentials::ServiceAccount;
use crate::spec::{ColumnType, ReplaceMode};
use crate::table::{Column, TableSchema, DS_COLUMN};

/// Google's BigQuery API host.
const GOOGLE_ROOT: &str = "https://bigquery.googleapis.com";
/// The OAuth scope for reading and writing BigQuery.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// How long `jobs.query` waits on the server before answering "not yet".
const QUERY_WAIT_MS: u64 = 10_000;
/// Timeout of one JSON API request (`jobs.query` waits up to `QUERY_WAIT_MS`
/// of it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Slowest upload throughput tolerated before an upload counts as stuck.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 256 * 1024;
/// How long a staging table outlives a process that died before dropping it.
const STAGING_TTL: chrono::Duration = chrono::Duration::hours(24);

/// Why a BigQuery operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BigQueryError {
    /// No usable credentials.
    #[error("cannot authenticate to BigQuery: {message}")]
    Auth {
        /// Why, with what to do.
        message: String,
    },
    /// A request failed, after retries when the failure was transient.
    #[error("{op} {target}: {error}")]
    Request {
        /// What was being done, such as `load into`.
        op: &'static str,
        /// The table and day.
        target: Box<Target>,
        /// The HTTP or connection failure.
        error: ApiError,
    },
    /// A job finished with `status.errorResult`.
    #[error("{op} {target}: job `{job_id}` failed: {message}")]
    Job {
        /// What was being done.
        op: &'static str,
        /// The table and day.
        target: Box<Target>,
        /// The job.
        job_id: String,
        /// `status.errorResult`, then the distinct `status.errors`.
        message: String,
        /// Whether BigQuery says a rerun may succeed (`backendError`, ...).
        transient: bool,
    },
    /// A job was not done in time. It may still finish; the operation is
    /// idempotent, so running it again is safe.
    #[error("{op} {target}: job `{job_id}` not done after {}s", waited.as_secs())]
    JobTimeout {
        /// What was being done.
        op: &'static str,
        /// The table and day.
        target: Box<Target>,
        /// The job.
        job_id: String,
        /// How long it was polled.
        waited: Duration,
    },
    /// An existing column has another type than the one the rows need.
    #[error("column `{column}` of {target} is {existing}, the rows need {wanted}: BigQuery cannot change a column's type in place")]
    Retype {
        /// The table.
        target: Box<Target>,
        /// The column.
        column: String,
        /// Its type in BigQuery, such as `INT64` or `REPEATED STRING`.
        existing: String,
        /// The type of the rows.
        wanted: String,
    },
    /// The table exists with other partitioning than DAY on the column.
    #[error("{target} is partitioned {found}, expected DAY partitioning on `{expected}`")]
    Partitioning {
        /// The table.
        target: Box<Target>,
        /// What it has.
        found: String,
        /// The partition column wanted.
        expected: String,
    },
    /// A schema etl cannot write, or a table column etl cannot represent.
    #[error("{target}: {message}")]
    Schema {
        /// The table.
        target: Box<Target>,
        /// What is wrong.
        message: String,
    },
    /// A name that cannot be used in a BigQuery path or SQL.
    #[error("invalid BigQuery {what} `{name}`, expected {expected}")]
    InvalidName {
        /// `project id`, `dataset id`, `table id` or `column name`.
        what: &'static str,
        /// The name.
        name: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The rows file cannot be read.
    #[error("{target}: cannot read `{}`: {error}", path.display())]
    Io {
        /// The table and day.
        target: Box<Target>,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// BigQuery answered something this code does not understand.
    #[error("{op} {target}: unexpected response: {message}")]
    Unexpected {
        /// What was being done.
        op: &'static str,
        /// The table and day.
        target: Box<Target>,
        /// What was odd.
        message: String,
    },
}

impl BigQueryError {
    /// Whether running the operation again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            BigQueryError::Request { error, .. } => error.transient,
            BigQueryError::Job { transient, .. } => *transient,
            BigQueryError::JobTimeout { .. } => true,
            _ => false,
        }
    }
}

/// The table (and day) an error is about, displayed as
/// `` `project.dataset.table` day 2020-06-01 ``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Project id.
    pub project: String,
    /// Dataset id.
    pub dataset: String,
    /// Table id.
    pub table: String,
    /// The partition, when one is concerned.
    pub day: Option<NaiveDate>,
}

impl Target {
    fn boxed(&self) -> Box<Target> {
        Box::new(self.clone())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.table.is_empty() {
            write!(f, "`{}.{}`", self.project, self.dataset)?;
        } else {
            write!(f, "`{}.{}.{}`", self.project, self.dataset, self.table)?;
        }
        if let Some(day) = self.day {
            write!(f, " day {day}")?;
        }
        Ok(())
    }
}

/// A failed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", status.map(|s| format!("HTTP {s}{}: ", reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default())).unwrap_or_default())]
pub struct ApiError {
    /// The HTTP status; None when no response came.
    pub status: Option<u16>,
    /// BigQuery's `error.errors[0].reason`, such as `notFound`.
    pub reason: Option<String>,
    /// BigQuery's message, or the transport error.
    pub message: String,
    /// Whether a retry may help.
    pub transient: bool,
}

impl ApiError {
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            status: None,
            reason: None,
            message: message.into(),
            transient: false,
        }
    }

    fn is_status(&self, status: StatusCode) -> bool {
        self.status == Some(status.as_u16())
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    /// Attempts in all, the first included.
    attempts: u32,
    /// The pause after the first failure; it doubles after each.
    first_delay: Duration,
}

const RETRIES: Backoff = Backoff {
    attempts: 5,
    first_delay: Duration::from_millis(200),
};

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries.
async fn retry<T, F, Fut>(backoff: Backoff, what: &str, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut delay = backoff.first_delay;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.transient && tries < backoff.attempts => {
                warn!(what, attempt = tries, error = %e, retry_in_ms = delay.as_millis() as u64, "transient BigQuery failure, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// A BigQuery project, ready to create tables and replace partitions.
#[derive(Clone)]
pub struct BigQuerySink {
    api: Api,
    project: String,
    location: Option<String>,
    job_timeout: Duration,
}

impl std::fmt::Debug for BigQuerySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BigQuerySink({} at {})", self.project, self.api.root)
    }
}

impl BigQuerySink {
    /// A sink for `project`. With an `endpoint` (an emulator, such as
    /// `http://127.0.0.1:9050`) requests carry a fixed bearer token; without
    /// one they go to Google with application default credentials:
    /// `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key or an
    /// authorized-user file), then gcloud's
    /// `application_default_credentials.json`, then the metadata server.
    /// One token is fetched here, so missing credentials fail early.
    ///
    /// With a service `account` (the connection's `credentials` secret,
    /// held in memory) requests to Google use its tokens instead; an
    /// emulator still gets the fixed token.
    ///
    /// `location` is given to the datasets etl creates and to every job.
    pub async fn connect(
        project: &str,
        location: Option<&str>,
        endpoint: Option<&str>,
        account: Option<&ServiceAccount>,
    ) -> Result<Self, BigQueryError> {
        check_project(project)?;
        let (root, auth): (String, Arc<dyn Authenticator>) = match (endpoint, account) {
            (Some(e), _) => (api_root(e), Arc::new(FixedToken)),
            (None, Some(a)) => (GOOGLE_ROOT.to_owned(), service_account(a).await?),
            (None, None) => (GOOGLE_ROOT.to_owned(), default_credentials().await?),
        };
        auth.access_token().await.map_err(|e| BigQueryError::Auth {
            message: auth_message(&e),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("etl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BigQueryError::Auth {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            api: Api {
                http,
                auth,
                project_url: format!("{root}/bigquery/v2/projects/{project}"),
                upload_url: format!("{root}/upload/bigquery/v2/projects/{project}/jobs"),
                root,
            },
            project: project.to_owned(),
            location: location.map(str::to_owned),
            job_timeout: Duration::from_secs(3600),
        })
    }

    /// How long to wait for one job before giving up (default: one hour).
    pub fn with_job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.project
    }

    fn target(&self, dataset: &str, table: &str, day: Option<NaiveDate>) -> Target {
        Target {
            project: self.project.clone(),
            dataset: dataset.to_owned(),
            table: table.to_owned(),
            day,
        }
    }

    fn table_url(&self, dataset: &str, table: &str) -> String {
        format!("{}/datasets/{dataset}/tables/{table}", self.api.project_url)
    }

    /// Creates the dataset and the table if missing: `schema` (NULLABLE, or
    /// REPEATED when a column is repeated), DAY time partitioning on
    /// `partition_column`, and `clustering`. If the table exists, the
    /// columns it lacks are appended with one `tables.patch`. Columns are
    /// never dropped or retyped: a column with another type is a
    /// [`BigQueryError::Retype`], and a table partitioned otherwise is a
    /// [`BigQueryError::Partitioning`]. Other clustering only logs a warning.
    pub async fn ensure_table(
        &self,
        dataset: &str,
        table: &str,
        schema: &TableSchema,
        partition_column: &str,
        clustering: &[String],
    ) -> Result<(), BigQueryError> {
        let target = self.target(dataset, table, None);
        check_names(dataset, table)?;
        check_schema(&target, schema, partition_column)?;
        for c in clustering {
            if schema.get(c).is_none() {
                return Err(BigQueryError::Schema {
                    target: target.boxed(),
                    message: format!("clustering column `{c}` is not in the schema"),
                });
            }
        }
        self.ensure_dataset(dataset).await?;

        let existing = match self.get_table(&target).await? {
            Some(t) => t,
            None => {
                let mut body = json!({
                    "tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": table},
                    "schema": schema_json(schema),
                    "timePartitioning": {"type": "DAY", "field": partition_column},
                });
                if !clustering.is_empty() {
                    body["clustering"] = json!({ "fields": clustering });
                }
                let url = format!("{}/datasets/{dataset}/tables", self.api.project_url);
                match self.api.json(Method::POST, &url, Some(&body)).await {
                    Ok(_) => {
                        info!(project = %self.project, dataset, table, columns = schema.columns.len(), partition_column, ?clustering, "table created");
                        return Ok(());
                    }
                    // Created meanwhile by another run: check it like any existing table.
                    Err(e) if e.is_status(StatusCode::CONFLICT) => {
                        self.get_table(&target)
                            .await?
                            .ok_or_else(|| BigQueryError::Unexpected {
                                op: "creating",
                                target: target.boxed(),
                                message: "table exists, then is not found".into(),
                            })?
                    }
                    Err(error) => {
                        return Err(BigQueryError::Request {
                            op: "creating",
                            target: target.boxed(),
                            error,
                        })
                    }
                }
            }
        };

        check_partitioning(&target, &existing, partition_column)?;
        let have_clustering: Vec<&str> = existing["clustering"]["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if have_clustering != clustering.iter().map(String::as_str).collect::<Vec<_>>() {
            warn!(project = %self.project, dataset, table, existing = ?have_clustering, wanted = ?clustering, "table exists with other clustering; keeping it");
        }
        let fields = existing["schema"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let added = missing_fields(&target, &fields, schema)?;
        if added.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = added
            .iter()
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect();
        // A grown RECORD replaces its old self; new columns go last.
        let same = |a: &Value, b: &Value| {
            a["name"].as_str().map(str::to_ascii_lowercase)
                == b["name"].as_str().map(str::to_ascii_lowercase)
        };
        let mut merged = fields;
        for f in added {
            match merged.iter_mut().find(|m| same(m, &f)) {
                Some(m) => *m = f,
                None => merged.push(f),
            }
        }
        let body = json!({ "schema": { "fields": merged } });
        self.api
            .json(Method::PATCH, &self.table_url(dataset, table), Some(&body))
            .await
            .map_err(|error| BigQueryError::Request {
                op: "adding columns to",
                target: target.boxed(),
                error,
            })?;
        info!(project = %self.project, dataset, table, added = ?names, "columns added");
        Ok(())
    }

    /// The table's columns, or None when it does not exist. A column of a
    /// type etl does not write (RECORD, TIME, ...) is an error, because a
    /// schema without it could not be loaded into the table.
    pub async fn table_schema(
        &self,
        dataset: &str,
        table: &str,
    ) -> Result<Option<TableSchema>, BigQueryError> {
        check_names(dataset, table)?;
        let target = self.target(dataset, table, None);
        let Some(t) = self.get_table(&target).await? else {
            return Ok(None);
        };
        let mut columns = Vec::new();
        for f in t["schema"]["fields"].as_array().into_iter().flatten() {
            let Some(column) = parse_column(f) else {
                return Err(BigQueryError::Schema {
                    target: target.boxed(),
                    message: format!(
                        "column `{}` has type {}, which etl does not write",
                        f["name"].as_str().unwrap_or("?"),
                        f["type"].as_str().unwrap_or("?")
                    ),
                });
            };
            columns.push(column);
        }
        Ok(Some(TableSchema { columns }))
    }

    /// Replaces the rows of day `day` with the rows of the NDJSON file
    /// (`rows` of them, in the format of [`crate::table`]), atomically from
    /// a reader's view, and returns the number of rows now in that
    /// partition. The table must exist ([`Self::ensure_table`]) with every
    /// column of `schema`. Rows of another day are rejected (decorator
    /// mode) or not inserted (staging mode); either way the returned count
    /// then differs from `rows`.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_partition(
        &self,
        dataset: &str,
        table: &str,
        day: NaiveDate,
        rows_file: &Path,
        rows: u64,
        schema: &TableSchema,
        partition_column: &str,
        mode: ReplaceMode,
    ) -> Result<u64, BigQueryError> {
        check_names(dataset, table)?;
        let target = self.target(dataset, table, Some(day));
        check_schema(&target, schema, partition_column)?;
        let started = Instant::now();
        if rows == 0 {
            // No load job: an empty upload is not worth a job, and whether a
            // truncating load of nothing empties a partition is not something
            // to depend on. A DELETE of one partition is atomic by itself.
            let sql = delete_partition_sql(&self.project, dataset, table, partition_column, day);
            self.run_query("emptying", &target, &sql).await?;
        } else {
            match mode {
                ReplaceMode::Decorator => {
                    let job = decorator_load_job(
                        &self.project,
                        dataset,
                        table,
                        day,
                        schema,
                        partition_column,
                        &[],
                    );
                    self.load("load into", &target, job, rows_file).await?;
                }
                ReplaceMode::Staging => {
                    self.replace_via_staging(&target, rows_file, schema, partition_column)
                        .await?
                }
            }
        }
        let now = self.count_rows(&target, partition_column).await?;
        info!(
            project = %self.project, dataset, table, partition = %day, rows, loaded = now, ?mode,
            elapsed_ms = started.elapsed().as_millis() as u64, "partition replaced"
        );
        if now != rows {
            warn!(project = %self.project, dataset, table, partition = %day, rows, loaded = now, "partition row count differs from the file's");
        }
        Ok(now)
    }

    /// Rows in day `day` (`` SELECT COUNT(*) ... WHERE `_ds` = DATE '...' ``),
    /// for reconciliation and tests.
    pub async fn count_partition(
        &self,
        dataset: &str,
        table: &str,
        day: NaiveDate,
    ) -> Result<u64, BigQueryError> {
        check_names(dataset, table)?;
        self.count_rows(&self.target(dataset, table, Some(day)), DS_COLUMN)
            .await
    }

    async fn count_rows(&self, target: &Target, column: &str) -> Result<u64, BigQueryError> {
        let day = target.day.expect("a count is for one day");
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE `{column}` = DATE '{day}'",
            table_path(&target.project, &target.dataset, &target.table)
        );
        let resp = self.run_query("counting rows of", target, &sql).await?;
        let cell = &resp["rows"][0]["f"][0]["v"];
        cell.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| cell.as_u64())
            .ok_or_else(|| BigQueryError::Unexpected {
                op: "counting rows of",
                target: target.boxed(),
                message: format!("no count in {resp}"),
            })
    }

    /// Staging mode: load, then delete + insert in one transaction, then
    /// drop the staging table whatever happened.
    async fn replace_via_staging(
        &self,
        target: &Target,
        rows_file: &Path,
        schema: &TableSchema,
        partition_column: &str,
    ) -> Result<(), BigQueryError> {
        let day = target.day.expect("a replace is for one day");
        let staging = staging_table_name(&target.table, day);
        let st = Target {
            table: staging.clone(),
            ..target.clone()
        };
        // A leftover from a failed run may have an older schema; the
        // emulator loads NDJSON with the existing table's columns.
        self.delete_table(&st).await?;
        let body = json!({
            "tableReference": {"projectId": self.project, "datasetId": st.dataset, "tableId": staging},
            "schema": schema_json(schema),
            "expirationTime": (chrono::Utc::now() + STAGING_TTL).timestamp_millis().to_string(),
        });
        let url = format!("{}/datasets/{}/tables", self.api.project_url, st.dataset);
        self.api
            .json(Method::POST, &url, Some(&body))
            .await
            .map_err(|error| BigQueryError::Request {
                op: "creating",
                target: st.boxed(),
                error,
            })?;

        let result = async {
            let job = staging_load_job(&self.project, &st.dataset, &staging, schema);
            self.load("load into", &st, job, rows_file).await?;
            let sql = replace_script(
                &self.project,
                &target.dataset,
                &target.table,
                &staging,
                day,
                schema,
                partition_column,
            );
            self.run_query("replacing", target, &sql).await.map(|_| ())
        }
        .await;
        if let Err(e) = self.delete_table(&st).await {
            warn!(error = %e, "cannot drop the staging table; it expires by itself");
        }
        result
    }

    async fn ensure_dataset(&self, dataset: &str) -> Result<(), BigQueryError> {
        let target = self.target(dataset, "", None);
        let url = format!("{}/datasets/{dataset}", self.api.project_url);
        match self.api.json(Method::GET, &url, None).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => {}
            Err(error) => {
                return Err(BigQueryError::Request {
                    op: "reading dataset",
                    target: target.boxed(),
                    error,
                })
            }
        }
        let mut body =
            json!({ "datasetReference": {"projectId": self.project, "datasetId": dataset} });
        if let Some(l) = &self.location {
            body["location"] = json!(l);
        }
        match self
            .api
            .json(
                Method::POST,
                &format!("{}/datasets", self.api.project_url),
                Some(&body),
            )
            .await
        {
            Ok(_) => {
                info!(project = %self.project, dataset, location = ?self.location, "dataset created");
                Ok(())
            }
            Err(e) if e.is_status(StatusCode::CONFLICT) => Ok(()),
            Err(error) => Err(BigQueryError::Request {
                op: "creating dataset",
                target: target.boxed(),
                error,
            }),
        }
    }

    async fn get_table(&self, target: &Target) -> Result<Option<Value>, BigQueryError> {
        match self
            .api
            .json(
                Method::GET,
                &self.table_url(&target.dataset, &target.table),
                None,
            )
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(None),
            Err(error) => Err(BigQueryError::Request {
                op: "reading",
                target: target.boxed(),
                error,
            }),
        }
    }

    /// Deletes a table; a missing one is fine.
    async fn delete_table(&self, target: &Target) -> Result<(), BigQueryError> {
        match self
            .api
            .json(
                Method::DELETE,
                &self.table_url(&target.dataset, &target.table),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(()),
            Err(error) => Err(BigQueryError::Request {
                op: "deleting",
                target: target.boxed(),
                error,
            }),
        }
    }

    /// Runs a load job whose data is `file`, and waits for it.
    async fn load(
        &self,
        op: &'static str,
        target: &Target,
        job: Value,
        file: &Path,
    ) -> Result<Value, BigQueryError> {
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|error| BigQueryError::Io {
                target: target.boxed(),
                path: file.to_owned(),
                error,
            })?
            .len();
        let day = target
            .day
            .map(|d| d.format("%Y%m%d").to_string())
            .unwrap_or_default();
        let prefix = job_prefix(&target.table, &day);
        let started = Instant::now();
        let resp = retry(RETRIES, "upload", || {
            let mut body = job.clone();
            body["jobReference"] = self.job_reference(&prefix);
            async move { self.api.upload(&body, file, size).await }
        })
        .await
        .map_err(|error| BigQueryError::Request {
            op,
            target: target.boxed(),
            error,
        })?;
        let done = self.wait_job(op, target, resp).await?;
        debug!(
            job_id = done["jobReference"]["jobId"].as_str().unwrap_or("?"),
            bytes = size,
            output_rows = done["statistics"]["load"]["outputRows"]
                .as_str()
                .unwrap_or("?"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "load job done"
        );
        Ok(done)
    }

    fn job_reference(&self, prefix: &str) -> Value {
        let mut r = json!({
            "projectId": self.project,
            "jobId": format!("{prefix}_{}", uuid::Uuid::new_v4().simple()),
        });
        if let Some(l) = &self.location {
            r["location"] = json!(l);
        }
        r
    }

    /// Runs SQL (one statement or a script) through `jobs.query` and
    /// returns the final response, whose `rows` hold the last statement's
    /// result.
    async fn run_query(
        &self,
        op: &'static str,
        target: &Target,
        sql: &str,
    ) -> Result<Value, BigQueryError> {
        let mut req = json!({
            "query": sql,
            "useLegacySql": false,
            "timeoutMs": QUERY_WAIT_MS,
            // Makes a retried request idempotent on BigQuery.
            "requestId": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(l) = &self.location {
            req["location"] = json!(l);
        }
        debug!(%target, sql, "query");
        let url = format!("{}/queries", self.api.project_url);
        let resp = self
            .api
            .json(Method::POST, &url, Some(&req))
            .await
            .map_err(|error| BigQueryError::Request {
                op,
                target: target.boxed(),
                error,
            })?;
        if resp["jobComplete"].as_bool() == Some(true) {
            return Ok(resp);
        }
        // Still running: wait on the job, then read its result.
        let job = json!({ "jobReference": resp["jobReference"].clone() });
        let done = self.wait_job(op, target, job).await?;
        let job_id = done["jobReference"]["jobId"].as_str().unwrap_or_default();
        let mut url = format!(
            "{}/queries/{job_id}?timeoutMs={QUERY_WAIT_MS}",
            self.api.project_url
        );
        if let Some(l) = done["jobReference"]["location"].as_str() {
            url.push_str(&format!("&location={l}"));
        }
        self.api
            .json(Method::GET, &url, None)
            .await
            .map_err(|error| BigQueryError::Request {
                op,
                target: target.boxed(),
                error,
            })
    }

    /// Polls `jobs.get` until the job is DONE, within the job timeout.
    async fn wait_job(
        &self,
        op: &'static str,
        target: &Target,
        mut job: Value,
    ) -> Result<Value, BigQueryError> {
        let job_id = job["jobReference"]["jobId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if job_id.is_empty() {
            return Err(BigQueryError::Unexpected {
                op,
                target: target.boxed(),
                message: format!("no job reference in {job}"),
            });
        }
        let mut url = format!("{}/jobs/{job_id}", self.api.project_url);
        if let Some(l) = job["jobReference"]["location"].as_str() {
            url.push_str(&format!("?location={l}"));
        }
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let status = &job["status"];
            if status["state"].as_str() == Some("DONE") {
                if status.get("errorResult").is_some_and(|e| !e.is_null()) {
                    return Err(BigQueryError::Job {
                        op,
                        target: target.boxed(),
                        job_id,
                        message: job_error_message(status),
                        transient: is_transient_reason(
                            status["errorResult"]["reason"].as_str().unwrap_or_default(),
                        ),
                    });
                }
                return Ok(job);
            }
            if started.elapsed() >= self.job_timeout {
                return Err(BigQueryError::JobTimeout {
                    op,
                    target: target.boxed(),
                    job_id,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            job = self
                .api
                .json(Method::GET, &url, None)
                .await
                .map_err(|error| BigQueryError::Request {
                    op,
                    target: target.boxed(),
                    error,
                })?;
        }
    }
}

/// The load job for a decorator replace: `WRITE_TRUNCATE` of the data into
/// `{table}${YYYYMMDD}`. Pure, so the request can be checked without a
/// server (emulators take the decorator as part of the table name). Its
/// `jobReference` is added when it is sent. `CREATE_NEVER`, because the
/// table is created by [`BigQuerySink::ensure_table`], clustering included;
/// [`BigQuerySink::replace_partition`] therefore sends no `clustering`
/// (a load's clustering must match the table's, and omitting it keeps it).
pub fn decorator_load_job(
    project: &str,
    dataset: &str,
    table: &str,
    day: NaiveDate,
    schema: &TableSchema,
    partition_column: &str,
    clustering: &[String],
) -> Value {
    let mut load = json!({
        "destinationTable": {
            "projectId": project,
            "datasetId": dataset,
            "tableId": format!("{table}${}", day.format("%Y%m%d")),
        },
        "sourceFormat": "NEWLINE_DELIMITED_JSON",
        "writeDisposition": "WRITE_TRUNCATE",
        "createDisposition": "CREATE_NEVER",
        "schema": schema_json(schema),
        "timePartitioning": {"type": "DAY", "field": partition_column},
    });
    if !clustering.is_empty() {
        load["clustering"] = json!({ "fields": clustering });
    }
    json!({ "configuration": { "load": load } })
}

/// The load job filling a staging table.
fn staging_load_job(project: &str, dataset: &str, staging: &str, schema: &TableSchema) -> Value {
    json!({ "configuration": { "load": {
        "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": staging},
        "sourceFormat": "NEWLINE_DELIMITED_JSON",
        "writeDisposition": "WRITE_TRUNCATE",
        "createDisposition": "CREATE_NEVER",
        "schema": schema_json(schema),
    }}})
}

/// `{table}__staging_{YYYYMMDD}`.
fn staging_table_name(table: &str, day: NaiveDate) -> String {
    format!("{table}__staging_{}", day.format("%Y%m%d"))
}

/// `` `project.dataset.table` `` for SQL; every part is checked first.
fn table_path(project: &str, dataset: &str, table: &str) -> String {
    format!("`{project}.{dataset}.{table}`")
}

fn delete_partition_sql(
    project: &str,
    dataset: &str,
    table: &str,
    partition_column: &str,
    day: NaiveDate,
) -> String {
    format!(
        "DELETE FROM {} WHERE `{partition_column}` = DATE '{day}'",
        table_path(project, dataset, table)
    )
}

/// The staging-mode script. Rows of other days in the staging table are
/// left out, so no other partition is ever touched.
fn replace_script(
    project: &str,
    dataset: &str,
    table: &str,
    staging: &str,
    day: NaiveDate,
    schema: &TableSchema,
    partition_column: &str,
) -> String {
    let cols = schema
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "BEGIN TRANSACTION;\n\
         {};\n\
         INSERT INTO {} ({cols})\n  SELECT {cols} FROM {} WHERE `{partition_column}` = DATE '{day}';\n\
         COMMIT TRANSACTION;",
        delete_partition_sql(project, dataset, table, partition_column, day),
        table_path(project, dataset, table),
        table_path(project, dataset, staging),
    )
}

/// BigQuery's `schema` object for `schema`.
fn schema_json(schema: &TableSchema) -> Value {
    json!({ "fields": schema.columns.iter().map(field_json).collect::<Vec<_>>() })
}

/// One column as a BigQuery field; a RECORD with its fields.
fn field_json(c: &Column) -> Value {
    let mut f = json!({"name": c.name, "type": c.kind.bigquery_name(), "mode": if c.repeated { "REPEATED" } else { "NULLABLE" }});
    if c.kind == ColumnType::Record {
        f["fields"] = Value::Array(c.fields.iter().map(field_json).collect());
    }
    f
}

/// A BigQuery field as a column; None when etl has no such type.
fn parse_column(f: &Value) -> Option<Column> {
    let (name, kind, repeated) = parse_field(f);
    let kind = kind?;
    let fields = match kind {
        ColumnType::Record => f["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parse_column)
            .collect::<Option<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Some(Column {
        name,
        kind,
        repeated,
        fields,
    })
}

/// A type name as BigQuery returns it (legacy or standard spelling).
fn parse_type(name: &str) -> Option<ColumnType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "STRING" => ColumnType::String,
        "INTEGER" | "INT64" => ColumnType::Int64,
        "FLOAT" | "FLOAT64" => ColumnType::Float64,
        "NUMERIC" | "DECIMAL" => ColumnType::Numeric,
        "BIGNUMERIC" | "BIGDECIMAL" => ColumnType::Bignumeric,
        "BOOLEAN" | "BOOL" => ColumnType::Bool,
        "TIMESTAMP" => ColumnType::Timestamp,
        "DATE" => ColumnType::Date,
        "BYTES" => ColumnType::Bytes,
        "JSON" => ColumnType::Json,
        "RECORD" | "STRUCT" => ColumnType::Record,
        _ => return None,
    })
}

/// Name, type (None when etl has no such type) and REPEATED of a field.
fn parse_field(f: &Value) -> (String, Option<ColumnType>, bool) {
    let name = f["name"].as_str().unwrap_or_default().to_owned();
    let kind = f["type"].as_str().and_then(parse_type);
    let repeated = f["mode"]
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case("REPEATED"));
    (name, kind, repeated)
}

fn type_label(kind: Option<ColumnType>, raw: &str, repeated: bool) -> String {
    let name = kind.map(ColumnType::bigquery_name).unwrap_or(raw);
    if repeated {
        format!("REPEATED {name}")
    } else {
        name.to_owned()
    }
}

/// The fields of `schema` that `existing` lacks, or the first column whose
/// type differs. Names compare case-insensitively, as in BigQuery.
fn missing_fields(
    target: &Target,
    existing: &[Value],
    schema: &TableSchema,
) -> Result<Vec<Value>, BigQueryError> {
    let mut added = Vec::new();
    let wanted = schema_json(schema);
    for (col, field) in schema
        .columns
        .iter()
        .zip(wanted["fields"].as_array().expect("fields"))
    {
        let found = existing.iter().find(|f| {
            f["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&col.name))
        });
        match found {
            None => added.push(field.clone()),
            Some(f) => {
                let (_, kind, repeated) = parse_field(f);
                if kind == Some(ColumnType::Record)
                    && col.kind == ColumnType::Record
                    && repeated == col.repeated
                {
                    // New fields inside a RECORD: the field is sent again,
                    // whole, with them appended.
                    let have = f["fields"].as_array().cloned().unwrap_or_default();
                    let inner = TableSchema {
                        columns: col.fields.clone(),
                    };
                    let more = missing_fields(target, &have, &inner)?;
                    if !more.is_empty() {
                        let mut grown = f.clone();
                        grown["fields"] = Value::Array(have.into_iter().chain(more).collect());
                        added.push(grown);
                    }
                    continue;
                }
                if kind != Some(col.kind) || repeated != col.repeated {
                    return Err(BigQueryError::Retype {
                        target: target.boxed(),
                        column: col.name.clone(),
                        existing: type_label(kind, f["type"].as_str().unwrap_or("?"), repeated),
                        wanted: type_label(Some(col.kind), "", col.repeated),
                    });
                }
            }
        }
    }
    Ok(added)
}

fn check_partitioning(target: &Target, table: &Value, column: &str) -> Result<(), BigQueryError> {
    let tp = &table["timePartitioning"];
    let (kind, field) = (tp["type"].as_str(), tp["field"].as_str());
    if kind == Some("DAY") && field == Some(column) {
        return Ok(());
    }
    let found = match (kind, field, table.get("rangePartitioning")) {
        (None, _, Some(r)) if !r.is_null() => "by integer range".to_owned(),
        (None, _, _) => "not at all".to_owned(),
        (Some(k), None, _) => format!("{k} by ingestion time"),
        (Some(k), Some(f), _) => format!("{k} on `{f}`"),
    };
    Err(BigQueryError::Partitioning {
        target: target.boxed(),
        found,
        expected: column.to_owned(),
    })
}

/// The partition column must be a DATE column of the schema, and every
/// column name must be safe in SQL.
fn check_schema(
    target: &Target,
    schema: &TableSchema,
    partition_column: &str,
) -> Result<(), BigQueryError> {
    for c in &schema.columns {
        if !crate::plan::is_column_name(&c.name) {
            return Err(BigQueryError::InvalidName {
                what: "column name",
                name: c.name.clone(),
                expected: "letters, digits and `_`, not starting with a digit",
            });
        }
    }
    match schema.get(partition_column) {
        Some(c) if c.kind == ColumnType::Date && !c.repeated => Ok(()),
        Some(c) => Err(BigQueryError::Schema {
            target: target.boxed(),
            message: format!(
                "partition column `{partition_column}` is {}, expected DATE",
                type_label(Some(c.kind), "", c.repeated)
            ),
        }),
        None => Err(BigQueryError::Schema {
            target: target.boxed(),
            message: format!("partition column `{partition_column}` is not in the schema"),
        }),
    }
}

fn check_project(project: &str) -> Result<(), BigQueryError> {
    let ok = !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(BigQueryError::InvalidName {
            what: "project id",
            name: project.to_owned(),
            expected: "letters, digits, `-`, `.` and `:`",
        })
    }
}

/// Dataset and table ids go into URLs and SQL, so they are checked here
/// whatever rendered them.
fn check_names(dataset: &str, table: &str) -> Result<(), BigQueryError> {
    if dataset.is_empty()
        || dataset.len() > 1024
        || !dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(BigQueryError::InvalidName {
            what: "dataset id",
            name: dataset.to_owned(),
            expected: "letters, digits and `_`",
        });
    }
    if table.is_empty()
        || table.len() > 1024
        || !table
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(BigQueryError::InvalidName {
            what: "table id",
            name: table.to_owned(),
            expected: "letters, digits, `_` and `-`",
        });
    }
    Ok(())
}

/// `etl_{table}_{YYYYMMDD}`, cut to what a job id allows, for finding the
/// jobs of a table in the console.
fn job_prefix(table: &str, day: &str) -> String {
    let t: String = table
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(200)
        .collect();
    format!("etl_{t}_{day}")
}

/// `errorResult`, then the other distinct messages of `errors` (BigQuery
/// puts the row-level details there).
fn job_error_message(status: &Value) -> String {
    let fmt = |e: &Value| {
        let msg = e["message"].as_str().unwrap_or("no message");
        match e["reason"].as_str() {
            Some(r) if !r.is_empty() => format!("{r}: {msg}"),
            _ => msg.to_owned(),
        }
    };
    let mut parts = vec![fmt(&status["errorResult"])];
    for e in status["errors"].as_array().into_iter().flatten() {
        let m = fmt(e);
        if !parts.contains(&m) && parts.len() < 6 {
            parts.push(m);
        }
    }
    parts.join("; ")
}

/// Job error reasons BigQuery documents as worth a retry.
fn is_transient_reason(reason: &str) -> bool {
    matches!(
        reason,
        "backendError" | "internalError" | "rateLimitExceeded" | "jobBackendError"
    )
}

/// The API root of an endpoint, without a trailing `/` or `/bigquery/v2`.
fn api_root(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    e.strip_suffix("/bigquery/v2").unwrap_or(e).to_owned()
}

/// HTTP to the BigQuery REST API, with a token per request.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    auth: Arc<dyn Authenticator>,
    /// `https://bigquery.googleapis.com` or the emulator's base URL.
    root: String,
    /// `{root}/bigquery/v2/projects/{project}`.
    project_url: String,
    /// `{root}/upload/bigquery/v2/projects/{project}/jobs`.
    upload_url: String,
}

impl Api {
    async fn token(&self) -> Result<String, ApiError> {
        self.auth.access_token().await.map_err(|e| ApiError {
            status: None,
            reason: None,
            message: format!("cannot get a token: {}", auth_message(&e)),
            transient: matches!(
                e,
                BQError::RequestError(_)
                    | BQError::YupAuthError(gcp_bigquery_client::yup_oauth2::Error::HttpError(_))
            ),
        })
    }

    /// One JSON request, retried when the failure is transient. A success
    /// without a body (`tables.delete`) is `null`.
    async fn json(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        retry(RETRIES, url, || async {
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.token().await?)
                .timeout(REQUEST_TIMEOUT);
            if let Some(b) = body {
                req = req.json(b);
            }
            read_json(req.send().await.map_err(transport)?).await
        })
        .await
    }

    /// A resumable upload: the job resource opens a session, then one `PUT`
    /// streams the file. Returns the job. Not retried here: a retry needs a
    /// new job id.
    async fn upload(&self, job: &Value, file: &Path, size: u64) -> Result<Value, ApiError> {
        let token = self.token().await?;
        let session = self
            .http
            .post(format!("{}?uploadType=resumable", self.upload_url))
            .bearer_auth(&token)
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header("X-Upload-Content-Length", size)
            .timeout(REQUEST_TIMEOUT)
            .json(job)
            .send()
            .await
            .map_err(transport)?;
        if !session.status().is_success() {
            return Err(read_json(session)
                .await
                .err()
                .unwrap_or_else(|| ApiError::fatal("upload session refused")));
        }
        let location = session
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::fatal("the upload session has no `Location` header"))?
            .to_owned();
        let data = tokio::fs::File::open(file)
            .await
            .map_err(|e| ApiError::fatal(format!("cannot open `{}`: {e}", file.display())))?;
        let resp = self
            .http
            .put(location)
            .bearer_auth(&token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .timeout(REQUEST_TIMEOUT + Duration::from_secs(size / MIN_UPLOAD_BYTES_PER_SEC))
            .body(reqwest::Body::from(data))
            .send()
            .await
            .map_err(transport)?;
        read_json(resp).await
    }
}

/// The body of a successful response, or the error BigQuery described.
async fn read_json(resp: reqwest::Response) -> Result<Value, ApiError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::fatal(format!("invalid JSON in a {status} response: {e}")));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reason = body["error"]["errors"][0]["reason"]
        .as_str()
        .map(str::to_owned);
    let message = match body["error"]["message"].as_str() {
        Some(m) => m.to_owned(),
        None => {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.chars().take(500).collect()
            }
        }
    };
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && matches!(reason.as_deref(), Some("rateLimitExceeded")));
    Err(ApiError {
        status: Some(status.as_u16()),
        reason,
        message,
        transient,
    })
}

/// A request that got no response. Everything but a malformed request is
/// worth a retry (refused, reset, timed out).
fn transport(e: reqwest::Error) -> ApiError {
    let transient = !e.is_builder() && !e.is_decode();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    ApiError {
        status: None,
        reason: None,
        message,
        transient,
    }
}

/// The token for an emulator, which wants a bearer token, not a valid one.
#[derive(Clone)]
struct FixedToken;

#[async_trait::async_trait]
impl Authenticator for FixedToken {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok("emulator".to_owned())
    }
}

type YupAuthenticator = gcp_bigquery_client::yup_oauth2::authenticator::Authenticator<
    <gcp_bigquery_client::yup_oauth2::DefaultHyperClientBuilder as gcp_bigquery_client::yup_oauth2::HyperClientBuilder>::Connector,
>;

/// Application default credentials through `yup-oauth2`, which caches and
/// refreshes the token.
#[derive(Clone)]
struct DefaultCredentials(YupAuthenticator);

#[async_trait::async_trait]
impl Authenticator for DefaultCredentials {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(self
            .0
            .token(&[SCOPE])
            .await?
            .token()
            .ok_or(BQError::NoToken)?
            .to_owned())
    }
}

const NEW_KEY_HINT: &str =
    "re-create the key with `gcloud iam service-accounts keys create` and encrypt it again";

/// Tokens for a service account whose key is held in memory.
async fn service_account(a: &ServiceAccount) -> Result<Arc<dyn Authenticator>, BigQueryError> {
    use gcp_bigquery_client::yup_oauth2 as yup;
    // Neither message quotes the key: yup's parse error can hold its text.
    let fail = |what: &str| BigQueryError::Auth {
        message: format!(
            "service account {} (secret `{}`): {what}; {NEW_KEY_HINT}",
            a.client_email, a.secret
        ),
    };
    let key = yup::parse_service_account_key(a.json.expose().as_bytes())
        .map_err(|_| fail("the JSON is not a service-account key"))?;
    let auth = yup::ServiceAccountAuthenticator::builder(key)
        .build()
        .await
        .map_err(|_| fail("its private_key is not a PEM RSA key"))?;
    Ok(Arc::new(DefaultCredentials(auth)))
}

/// The authorized-user file of `gcloud auth application-default login`, a
/// service-account key, or the metadata server, in the order of Google's
/// client libraries.
async fn default_credentials() -> Result<Arc<dyn Authenticator>, BigQueryError> {
    use gcp_bigquery_client::yup_oauth2 as yup;
    let fail = |e: &dyn std::fmt::Display| BigQueryError::Auth {
        message: format!("{e}; {ADC_HINT}"),
    };
    let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h).join(".config/gcloud/application_default_credentials.json")
            })
        });
    if let Some(path) = path.filter(|p| p.is_file()) {
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| fail(&format!("cannot read `{}`: {e}", path.display())))?;
        let kind: Value = serde_json::from_str(&text)
            .map_err(|e| fail(&format!("`{}` is not JSON: {e}", path.display())))?;
        if kind["type"].as_str() == Some("authorized_user") {
            let secret: yup::authorized_user::AuthorizedUserSecret = serde_json::from_str(&text)
                .map_err(|e| fail(&format!("`{}`: {e}", path.display())))?;
            let auth = yup::AuthorizedUserAuthenticator::builder(secret)
                .build()
                .await
                .map_err(|e| fail(&e))?;
            return Ok(Arc::new(DefaultCredentials(auth)));
        }
    }
    let auth = match yup::ApplicationDefaultCredentialsAuthenticator::builder(
        yup::ApplicationDefaultCredentialsFlowOpts::default(),
    )
    .await
    {
        yup::authenticator::ApplicationDefaultCredentialsTypes::ServiceAccount(b) => {
            b.build().await
        }
        yup::authenticator::ApplicationDefaultCredentialsTypes::InstanceMetadata(b) => {
            b.build().await
        }
    }
    .map_err(|e| fail(&e))?;
    Ok(Arc::new(DefaultCredentials(auth)))
}

const ADC_HINT: &str = "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file";

fn auth_message(e: &BQError) -> String {
    match e {
        BQError::YupAuthError(_) | BQError::AuthError(_) | BQError::NoToken => {
            format!("{e}; {ADC_HINT}")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn schema(cols: &[(&str, ColumnType, bool)]) -> TableSchema {
        TableSchema {
            columns: cols
                .iter()
                .map(|(n, k, r)| Column {
                    name: (*n).into(),
                    kind: *k,
                    repeated: *r,
                    fields: Vec::new(),
                })
                .collect(),
        }
    }

    fn target() -> Target {
        Target {
            project: "p".into(),
            dataset: "d".into(),
            table: "t".into(),
            day: NaiveDate::from_ymd_opt(2020, 6, 1),
        }
    }

    #[test]
    fn the_script_replaces_one_day_in_a_transaction() {
        let s = schema(&[
            ("_ds", ColumnType::Date, false),
            ("tags", ColumnType::String, true),
        ]);
        let day = NaiveDate::from_ymd_opt(2020, 6, 1).unwrap();
        assert_eq!(
            replace_script("etl-local", "d", "t", &staging_table_name("t", day), day, &s, "_ds"),
            "BEGIN TRANSACTION;\n\
             DELETE FROM `etl-local.d.t` WHERE `_ds` = DATE '2020-06-01';\n\
             INSERT INTO `etl-local.d.t` (`_ds`, `tags`)\n  SELECT `_ds`, `tags` FROM `etl-local.d.t__staging_20200601` WHERE `_ds` = DATE '2020-06-01';\n\
             COMMIT TRANSACTION;"
        );
    }

    #[test]
    fn an_existing_table_gets_only_missing_columns_and_never_a_retype() {
        let existing = vec![
            json!({"name": "_ds", "type": "DATE", "mode": "NULLABLE", "description": "kept"}),
            json!({"name": "n", "type": "INTEGER"}),
            json!({"name": "tags", "type": "STRING", "mode": "REPEATED"}),
        ];
        let wanted = schema(&[
            ("_ds", ColumnType::Date, false),
            ("n", ColumnType::Int64, false),
            ("tags", ColumnType::String, true),
            ("new", ColumnType::Json, false),
        ]);
        assert_eq!(
            missing_fields(&target(), &existing, &wanted).unwrap(),
            vec![json!({"name": "new", "type": "JSON", "mode": "NULLABLE"})]
        );

        let retyped = schema(&[("n", ColumnType::String, false)]);
        let e = missing_fields(&target(), &existing, &retyped).unwrap_err();
        assert_eq!(
            e.to_string(),
            "column `n` of `p.d.t` day 2020-06-01 is INT64, the rows need STRING: BigQuery cannot change a column's type in place"
        );
        let unrepeated = schema(&[("tags", ColumnType::String, false)]);
        assert!(matches!(
            missing_fields(&target(), &existing, &unrepeated),
            Err(BigQueryError::Retype { existing, wanted, .. }) if existing == "REPEATED STRING" && wanted == "STRING"
        ));
    }

    #[test]
    fn partitioning_must_be_day_on_the_column() {
        let t = target();
        assert!(check_partitioning(
            &t,
            &json!({"timePartitioning": {"type": "DAY", "field": "_ds"}}),
            "_ds"
        )
        .is_ok());
        let e = check_partitioning(&t, &json!({"timePartitioning": {"type": "DAY"}}), "_ds")
            .unwrap_err();
        assert_eq!(e.to_string(), "`p.d.t` day 2020-06-01 is partitioned DAY by ingestion time, expected DAY partitioning on `_ds`");
        let e = check_partitioning(&t, &json!({}), "_ds").unwrap_err();
        assert!(e.to_string().contains("partitioned not at all"), "{e}");
    }

    #[test]
    fn names_that_could_break_sql_are_refused() {
        assert!(check_names("etl_demo", "orders-2020").is_ok());
        assert!(check_names("etl_demo", "t` WHERE 1=1 --").is_err());
        assert!(check_names("etl-demo", "t").is_err());
        assert!(check_project("example.com:my-project").is_ok());
        assert!(check_project("p`").is_err());
        let bad = schema(&[
            ("_ds", ColumnType::Date, false),
            ("a`b", ColumnType::String, false),
        ]);
        assert!(matches!(
            check_schema(&target(), &bad, "_ds"),
            Err(BigQueryError::InvalidName { .. })
        ));
        let no_ds = schema(&[("a", ColumnType::String, false)]);
        assert_eq!(
            check_schema(&target(), &no_ds, "_ds")
                .unwrap_err()
                .to_string(),
            "`p.d.t` day 2020-06-01: partition column `_ds` is not in the schema"
        );
    }

    #[test]
    fn legacy_type_names_read_back() {
        for (name, kind) in [
            ("INTEGER", ColumnType::Int64),
            ("FLOAT", ColumnType::Float64),
            ("BOOLEAN", ColumnType::Bool),
            ("BIGNUMERIC", ColumnType::Bignumeric),
            ("STRUCT", ColumnType::Record),
        ] {
            assert_eq!(parse_type(name), Some(kind));
        }
        assert_eq!(parse_type("GEOGRAPHY"), None);
    }

    #[test]
    fn job_errors_keep_the_row_details() {
        let status = json!({
            "state": "DONE",
            "errorResult": {"reason": "invalid", "message": "Error while reading data"},
            "errors": [
                {"reason": "invalid", "message": "Error while reading data"},
                {"reason": "invalid", "message": "Could not convert value 'abc' to integer. Field: n"}
            ]
        });
        assert_eq!(
            job_error_message(&status),
            "invalid: Error while reading data; invalid: Could not convert value 'abc' to integer. Field: n"
        );
    }

    #[test]
    fn endpoints_lose_their_api_path() {
        assert_eq!(api_root("http://127.0.0.1:9050/"), "http://127.0.0.1:9050");
        assert_eq!(
            api_root("http://127.0.0.1:9050/bigquery/v2"),
            "http://127.0.0.1:9050"
        );
    }

    #[test]
    fn api_errors_read_like_bigquery_says_them() {
        let e = ApiError {
            status: Some(404),
            reason: Some("notFound".into()),
            message: "table t is not found".into(),
            transient: false,
        };
        assert_eq!(e.to_string(), "HTTP 404 notFound: table t is not found");
        assert_eq!(
            ApiError::fatal("connection refused").to_string(),
            "connection refused"
        );
    }

    #[tokio::test]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let fast = Backoff {
            attempts: 5,
            first_delay: Duration::from_millis(1),
        };
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(fast, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError {
                status: Some(503),
                reason: None,
                message: "busy".into(),
                transient: true,
            })
        })
        .await;
        assert_eq!(
            (r.unwrap_err().status, calls.load(Ordering::SeqCst)),
            (Some(503), 5)
        );

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = retry(fast, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError {
                status: Some(400),
                reason: None,
                message: "bad".into(),
                transient: false,
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let r = retry(fast, "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(ApiError {
                    status: None,
                    reason: None,
                    message: "reset".into(),
                    transient: true,
                }),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
