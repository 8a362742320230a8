//! [`BigQuerySink`]: tables created or grown, days replaced and counted,
//! jobs run and waited on.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use gcp_bigquery_client::auth::Authenticator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::auth::{auth_message, default_credentials, service_account, FixedToken};
use super::client::{api_root, retry, Api, RETRIES};
use super::jobs::{
    check_names, check_project, decorator_load_job, delete_partition_sql, is_transient_reason,
    job_error_message, job_prefix, replace_script, staging_load_job, staging_table_name,
    table_path,
};
use super::schema::{
    check_partitioning, check_schema, missing_fields, parse_column, schema_json, TableLayout,
};
use super::{BigQueryError, LoadSource, Target};
use crate::credentials::ServiceAccount;
use crate::spec::{ColumnType, ReplaceMode};
use crate::table::TableSchema;

/// Google's BigQuery API host.
const GOOGLE_ROOT: &str = "https://bigquery.googleapis.com";
/// How long `jobs.query` waits on the server before answering "not yet".
const QUERY_WAIT_MS: u64 = 10_000;
/// How long a staging table outlives a process that died before dropping it.
const STAGING_TTL: chrono::Duration = chrono::Duration::hours(24);

/// What [`BigQuerySink::table_state`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableState {
    /// The dataset does not exist (a run creates it).
    NoDataset,
    /// The dataset exists, the table does not (a run creates it).
    NoTable,
    /// The table exists, laid out so.
    Table(TableLayout),
}

/// A BigQuery project, ready to create tables and replace partitions.
#[derive(Clone)]
pub struct BigQuerySink {
    api: Api,
    project: String,
    location: Option<String>,
    job_timeout: Duration,
    /// Requests go to an emulator (`endpoint`), not to Google.
    emulator: bool,
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
            emulator: endpoint.is_some(),
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
                    Err(error) => return Err(target.request_failed("creating")(error)),
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
            .map_err(target.request_failed("adding columns to"))?;
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

    /// What exists of `dataset.table`, read without changing anything:
    /// what `etl validate --connect` compares with the spec and the lock.
    pub async fn table_state(
        &self,
        dataset: &str,
        table: &str,
    ) -> Result<TableState, BigQueryError> {
        check_names(dataset, table)?;
        let target = self.target(dataset, table, None);
        if let Some(t) = self.get_table(&target).await? {
            return Ok(TableState::Table(TableLayout::of(&t)));
        }
        let url = format!("{}/datasets/{dataset}", self.api.project_url);
        match self.api.json(Method::GET, &url, None).await {
            Ok(_) => Ok(TableState::NoTable),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(TableState::NoDataset),
            Err(error) => Err(self
                .target(dataset, "", None)
                .request_failed("reading dataset")(error)),
        }
    }

    /// Replaces the rows of day `day` with the rows of the Parquet file
    /// `rows_file` (`rows` of them, of `schema`: see [`crate::rows`]), atomically from
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
        self.replace_partition_from(
            dataset,
            table,
            day,
            LoadSource::File(rows_file),
            rows,
            schema,
            partition_column,
            mode,
        )
        .await
    }

    /// [`Self::replace_partition`] with the rows in a file or, for
    /// [`LoadSource::Uri`], in an object BigQuery reads itself.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_partition_from(
        &self,
        dataset: &str,
        table: &str,
        day: NaiveDate,
        rows_file: LoadSource<'_>,
        rows: u64,
        schema: &TableSchema,
        partition_column: &str,
        mode: ReplaceMode,
    ) -> Result<u64, BigQueryError> {
        check_names(dataset, table)?;
        let target = self.target(dataset, table, Some(day));
        check_schema(&target, schema, partition_column)?;
        if self.emulator && rows > 0 {
            for (column, what) in emulator_lossy_columns(&schema.columns) {
                warn!(dataset, table, partition = %day, column, "bigquery-emulator v0.8.1 {what}");
            }
        }
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

    /// Rows in day `day`, by the table's partition column
    /// (`` SELECT COUNT(*) ... WHERE `_ds` = DATE '...' ``), for
    /// reconciliation and tests.
    pub async fn count_partition(
        &self,
        dataset: &str,
        table: &str,
        day: NaiveDate,
        partition_column: &str,
    ) -> Result<u64, BigQueryError> {
        check_names(dataset, table)?;
        self.count_rows(&self.target(dataset, table, Some(day)), partition_column)
            .await
    }

    /// Up to `limit` rows of day `day`, ordered by `order_by`, in the row
    /// format of [`crate::table`], and the table's columns.
    pub async fn read_partition(
        &self,
        dataset: &str,
        table: &str,
        day: NaiveDate,
        partition_column: &str,
        order_by: &[&str],
        limit: usize,
    ) -> Result<crate::sink::warehouse::ReadRows, BigQueryError> {
        const OP: &str = "reading rows of";
        check_names(dataset, table)?;
        let target = self.target(dataset, table, Some(day));
        let order = if order_by.is_empty() {
            String::new()
        } else {
            let keys: Vec<String> = order_by.iter().map(|c| format!("`{c}`")).collect();
            format!(" ORDER BY {}", keys.join(", "))
        };
        let sql = format!(
            "SELECT * FROM {} WHERE `{partition_column}` = DATE '{day}'{order} LIMIT {limit}",
            table_path(&target.project, &target.dataset, &target.table)
        );
        let unexpected = |message: String| BigQueryError::Unexpected {
            op: OP,
            target: target.boxed(),
            message,
        };
        let mut resp = self.run_query(OP, &target, &sql).await?;
        let (columns, mut rows) = super::rows::decode(&resp).map_err(unexpected)?;
        // A large answer comes in pages: read on until the limit.
        while rows.len() < limit {
            let Some(token) = resp["pageToken"].as_str().map(str::to_owned) else {
                break;
            };
            let job = &resp["jobReference"];
            let mut url = url::Url::parse(&format!(
                "{}/queries/{}",
                self.api.project_url,
                job["jobId"].as_str().unwrap_or_default()
            ))
            .map_err(|e| unexpected(e.to_string()))?;
            url.query_pairs_mut().append_pair("pageToken", &token);
            if let Some(l) = job["location"].as_str() {
                url.query_pairs_mut().append_pair("location", l);
            }
            resp = self
                .api
                .json(Method::GET, url.as_str(), None)
                .await
                .map_err(target.request_failed(OP))?;
            rows.extend(super::rows::decode(&resp).map_err(unexpected)?.1);
        }
        rows.truncate(limit);
        Ok(crate::sink::warehouse::ReadRows { columns, rows })
    }

    /// The days (`partition_column`) of the table's rows whose `column`, as
    /// a string, is one of `values`, by value: one query. A table that does
    /// not exist holds none.
    pub async fn days_holding(
        &self,
        dataset: &str,
        table: &str,
        partition_column: &str,
        column: &str,
        values: &std::collections::BTreeSet<String>,
    ) -> Result<crate::sink::warehouse::DaysHolding, BigQueryError> {
        const OP: &str = "looking up days in";
        check_names(dataset, table)?;
        let mut out = crate::sink::warehouse::DaysHolding::new();
        if values.is_empty() || self.table_schema(dataset, table).await?.is_none() {
            return Ok(out);
        }
        let target = self.target(dataset, table, None);
        let list: Vec<String> = values.iter().map(|v| string_literal(v)).collect();
        let sql = format!(
            "SELECT DISTINCT CAST(`{column}` AS STRING) AS value, CAST(`{partition_column}` AS STRING) AS day FROM {} WHERE CAST(`{column}` AS STRING) IN ({})",
            table_path(&target.project, &target.dataset, &target.table),
            list.join(", ")
        );
        let resp = self.run_query(OP, &target, &sql).await?;
        if resp["pageToken"].is_string() {
            return Err(BigQueryError::Unexpected {
                op: OP,
                target: target.boxed(),
                message: "the answer came in pages; look up fewer values at once".to_owned(),
            });
        }
        for row in resp["rows"].as_array().into_iter().flatten() {
            let cell = |i: usize| row["f"][i]["v"].as_str();
            if let (Some(value), Some(day)) = (cell(0), cell(1).and_then(|d| d.parse().ok())) {
                out.entry(value.to_owned()).or_default().insert(day);
            }
        }
        Ok(out)
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
        rows_file: LoadSource<'_>,
        schema: &TableSchema,
        partition_column: &str,
    ) -> Result<(), BigQueryError> {
        let day = target.day.expect("a replace is for one day");
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let staging = staging_table_name(&target.table, day, &attempt[..12]);
        let st = Target {
            table: staging.clone(),
            ..target.clone()
        };
        let body = json!({
            "tableReference": {"projectId": self.project, "datasetId": st.dataset, "tableId": staging},
            "schema": schema_json(schema),
            "expirationTime": (chrono::Utc::now() + STAGING_TTL).timestamp_millis().to_string(),
        });
        let url = format!("{}/datasets/{}/tables", self.api.project_url, st.dataset);
        self.api
            .json(Method::POST, &url, Some(&body))
            .await
            .map_err(st.request_failed("creating"))?;

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
            crate::engine::crash::during(
                "bigquery_script",
                self.run_query("replacing", target, &sql),
            )
            .await
            .map(|_| ())
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
            Err(error) => return Err(target.request_failed("reading dataset")(error)),
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
            // Created meanwhile by another worker: BigQuery says 409, the
            // emulator 500 "already created". What counts is that it exists.
            Err(error) => match self.api.json(Method::GET, &url, None).await {
                Ok(_) => Ok(()),
                Err(_) => Err(target.request_failed("creating dataset")(error)),
            },
        }
    }

    async fn get_table(&self, target: &Target) -> Result<Option<Value>, BigQueryError> {
        self.table_request(Method::GET, "reading", target).await
    }

    /// Deletes a table; a missing one is fine.
    async fn delete_table(&self, target: &Target) -> Result<(), BigQueryError> {
        self.table_request(Method::DELETE, "deleting", target)
            .await
            .map(drop)
    }

    /// `method` on the table of `target`: its answer, or None when the
    /// table does not exist.
    async fn table_request(
        &self,
        method: Method,
        op: &'static str,
        target: &Target,
    ) -> Result<Option<Value>, BigQueryError> {
        let url = self.table_url(&target.dataset, &target.table);
        match self.api.json(method, &url, None).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(None),
            Err(error) => Err(target.request_failed(op)(error)),
        }
    }

    /// Runs a load job whose data is `source`, and waits for it.
    async fn load(
        &self,
        op: &'static str,
        target: &Target,
        job: Value,
        source: LoadSource<'_>,
    ) -> Result<Value, BigQueryError> {
        let file = match source {
            LoadSource::File(file) => file,
            LoadSource::Uri(uri) => return self.load_uri(op, target, job, uri).await,
        };
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
        .map_err(target.request_failed(op))?;
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

    /// Runs a load job reading the object at `uri` (`gs://...`), and waits
    /// for it. The job carries its `jobReference` from the start: a job id
    /// of ours makes the insert safe to retry, and bigquery-emulator fails
    /// a `sourceUris` load without one (HTTP 500, nil pointer).
    async fn load_uri(
        &self,
        op: &'static str,
        target: &Target,
        job: Value,
        uri: &str,
    ) -> Result<Value, BigQueryError> {
        let day = target
            .day
            .map(|d| d.format("%Y%m%d").to_string())
            .unwrap_or_default();
        let prefix = job_prefix(&target.table, &day);
        let mut job = job;
        job["configuration"]["load"]["sourceUris"] = json!([uri]);
        let started = Instant::now();
        let resp = retry(RETRIES, "load job", || {
            let mut body = job.clone();
            body["jobReference"] = self.job_reference(&prefix);
            async move { self.api.insert_job(&body).await }
        })
        .await
        .map_err(target.request_failed(op))?;
        let done = self.wait_job(op, target, resp).await?;
        debug!(
            job_id = done["jobReference"]["jobId"].as_str().unwrap_or("?"),
            uri,
            output_rows = done["statistics"]["load"]["outputRows"]
                .as_str()
                .unwrap_or("?"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "load job from the bucket done"
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
            .map_err(target.request_failed(op))?;
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
            .map_err(target.request_failed(op))
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
                .map_err(target.request_failed(op))?;
        }
    }
}

/// The first column of each type bigquery-emulator v0.8.1 loads from
/// Parquet otherwise than BigQuery does, with what it does to it.
fn emulator_lossy_columns(columns: &[crate::table::Column]) -> Vec<(&str, &'static str)> {
    const DECIMAL: &str = "reads Parquet DECIMAL values as 0: this NUMERIC or BIGNUMERIC column reads 0 there (BigQuery loads it exactly)";
    const BYTES: &str = "reads Parquet binary values as strings: a byte of this BYTES column that is not UTF-8 reads U+FFFD there (BigQuery loads the bytes as they are)";
    fn walk<'a>(columns: &'a [crate::table::Column], out: &mut Vec<(&'a str, &'static str)>) {
        for c in columns {
            let what = match c.kind {
                ColumnType::Numeric | ColumnType::Bignumeric => DECIMAL,
                ColumnType::Bytes => BYTES,
                ColumnType::Record => {
                    walk(&c.fields, out);
                    continue;
                }
                _ => continue,
            };
            if !out.iter().any(|(_, w)| *w == what) {
                out.push((c.name.as_str(), what));
            }
        }
    }
    let mut out = Vec::new();
    walk(columns, &mut out);
    out
}

/// `s` as a GoogleSQL string literal: quoted, with backslashes, quotes
/// and control characters escaped.
fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn string_literals_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(super::string_literal("5ed4c4"), "'5ed4c4'");
        assert_eq!(
            super::string_literal("a'b\\c\nd\u{1}"),
            r"'a\'b\\c\nd\u0001'"
        );
    }

    /// One warning per kind of loss, naming the first column it hits,
    /// inside records too.
    #[test]
    fn the_emulator_warns_of_decimals_and_bytes_once_each() {
        use crate::spec::ColumnType;
        use crate::table::Column;
        let mut record = Column::new("r", ColumnType::Record).repeated(true);
        record.fields = vec![
            Column::new("blob", ColumnType::Bytes),
            Column::new("n2", ColumnType::Numeric),
        ];
        let columns = [
            Column::new("s", ColumnType::String),
            Column::new("n", ColumnType::Bignumeric),
            record,
            Column::new("blob2", ColumnType::Bytes),
        ];
        let found: Vec<(&str, bool)> = super::emulator_lossy_columns(&columns)
            .into_iter()
            .map(|(c, what)| (c, what.contains("DECIMAL")))
            .collect();
        assert_eq!(found, [("n", true), ("blob", false)]);
        assert!(super::emulator_lossy_columns(&columns[..1]).is_empty());
    }
}
