//! BigQuery tables, partition by partition.
//!
//! Every table is DAY-partitioned on a DATE column (normally
//! [`DS_COLUMN`](crate::table::DS_COLUMN)), and a run replaces whole days:
//! a reader sees a day's old rows or its new rows, never a mix, and a rerun
//! of a day never appends.
//!
//! Two ways to replace a day ([`ReplaceMode`](crate::spec::ReplaceMode)):
//! - **Decorator** (real BigQuery): one load job into `table$YYYYMMDD` with
//!   `WRITE_TRUNCATE`. BigQuery swaps the partition atomically and rejects a
//!   row of another day. The job is built by the pure [`decorator_load_job`].
//! - **Staging** (emulators, which take `table$YYYYMMDD` as a table name):
//!   load into `{table}__staging_{YYYYMMDD}_{attempt}`, then one script
//!   `BEGIN TRANSACTION; DELETE day; INSERT day FROM staging; COMMIT
//!   TRANSACTION;` sent through `jobs.query`, then the staging table is
//!   deleted. Real BigQuery rolls the transaction back when a statement
//!   fails; bigquery-emulator v0.8.1 treats `BEGIN`/`COMMIT` as no-ops but
//!   runs a whole `jobs.query` request in one SQLite transaction that it
//!   rolls back on error (its `jobs.insert` commits a failed script's
//!   earlier statements, which is why scripts go through `jobs.query`).
//!   DDL on permanent tables is not allowed inside a BigQuery transaction,
//!   so the staging table is dropped with `tables.delete` afterwards; it
//!   also expires by itself a day later, in case the process dies first,
//!   and the next attempt's has another name.
//!
//! A day with no rows never sends a load job: it is one `DELETE` of the
//! day, so a day whose documents were deleted upstream is emptied on rerun.
//!
//! Files are sent with the resumable upload protocol (session, then one
//! `PUT` of the file streamed from disk), which both BigQuery and the
//! emulator accept. Or, for [`LoadSource::Uri`] (`load_from: bucket`),
//! the job names an object in Cloud Storage (`sourceUris`) that BigQuery
//! reads itself, without the size limit of a request. Requests go straight through `reqwest` rather than
//! `gcp-bigquery-client`'s typed API: that crate has no media uploads, and
//! its errors lose the HTTP status when a body is not BigQuery's JSON,
//! which the retry policy needs. The crate still provides authentication
//! (its [`Authenticator`](gcp_bigquery_client::auth::Authenticator) trait and the `yup-oauth2` it re-exports).
//!
//! Transient failures (connection errors, timeouts, HTTP 5xx, 429 and 403
//! `rateLimitExceeded`) are retried a few times with exponential backoff.
//! Every retried operation is idempotent: jobs get a fresh id per attempt,
//! and a truncating load or a delete-then-insert gives the same result when
//! it runs twice.
//!
//! Layout:
//! - `client`: HTTP to the REST API, with retries ([`ApiError`]);
//! - `auth`: tokens for an emulator, a service account or application
//!   default credentials;
//! - `jobs`: load jobs and SQL, built without a server, and name checks;
//! - `rows`: query answers back into rows, for `etl preview`;
//! - `schema`: [`TableSchema`](crate::table::TableSchema) to and from BigQuery fields, and the checks of
//!   an existing table;
//! - `sink`: [`BigQuerySink`], which strings them together.

mod auth;
mod client;
mod jobs;
mod rows;
mod schema;
mod sink;

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;

pub use client::ApiError;
pub use jobs::decorator_load_job;
pub use schema::{LayoutColumn, TableLayout};
pub use sink::{BigQuerySink, TableState};

/// Where a load job reads a day's rows from.
#[derive(Debug, Clone, Copy)]
pub enum LoadSource<'a> {
    /// A local Parquet file, sent in the load request.
    File(&'a std::path::Path),
    /// A Parquet object in a bucket, `gs://bucket/key`, which BigQuery
    /// reads itself (`sourceUris`): no request size limit.
    Uri(&'a str),
}

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

    /// What a failed request of `op` on this target becomes.
    fn request_failed(&self, op: &'static str) -> impl FnOnce(ApiError) -> BigQueryError + '_ {
        move |error| BigQueryError::Request {
            op,
            target: self.boxed(),
            error,
        }
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

#[cfg(test)]
mod fixtures {
    //! Targets shared by the tests of this folder.

    use chrono::NaiveDate;

    use super::Target;

    pub(super) fn target() -> Target {
        Target {
            project: "p".into(),
            dataset: "d".into(),
            table: "t".into(),
            day: NaiveDate::from_ymd_opt(2020, 6, 1),
        }
    }
}
