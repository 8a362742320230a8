//! The spec types: exactly what the YAML says, nothing resolved.
//!
//! Every struct derives serde and schemars from one definition, so the JSON
//! Schema in `schemas/` can never disagree with the parser. Doc comments
//! become schema descriptions; a test fails when a property has none.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// The project file (`etl.yaml`)
// ---------------------------------------------------------------------------

/// The project file, `etl.yaml`: connections grouped in profiles, secrets,
/// the state location, and defaults that every pipeline inherits.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[schemars(title = "etl project file")]
pub struct ProjectSpec {
    /// Version of the project file format. Only `1` exists.
    pub version: u32,

    /// Profile used when neither `--profile` nor `ETL_PROFILE` names one.
    #[serde(default = "default_profile_name")]
    pub default_profile: String,

    /// Named sets of connections, such as `local` and `prod`. Pipelines refer
    /// to connections by name, so the same pipeline runs against either.
    pub profiles: BTreeMap<String, ProfileSpec>,

    /// Secrets by name, each an `age`-encrypted file. Templates read them with
    /// `secret("name")`; connections name them in `credentials`.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSpec>,

    /// Where the run ledger and the local staging area live.
    #[serde(default)]
    pub state: StateSpec,

    /// Values that pipelines inherit when they do not set their own.
    #[serde(default)]
    pub defaults: DefaultsSpec,

    /// Who to tell how each `etl run` and each `etl schedule` fire went: an
    /// email, a Slack-shaped webhook, or both. A notification that cannot
    /// be sent is logged and never changes the run's exit code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifySpec>,
}

fn default_profile_name() -> String {
    "local".to_owned()
}

/// One profile: the connections a pipeline may name.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ProfileSpec {
    /// Connections by name. Each has a `type`.
    pub connections: BTreeMap<String, ConnectionSpec>,

    /// This profile's run ledger and day leases, when they are not the
    /// top-level `state.url`: an object store written like an
    /// `object_store` connection (`url`, `options`, `credentials`). The
    /// staging folder stays the top-level one. A production profile puts
    /// its ledger beside its lake (`gs://...`), where every machine sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ObjectStoreConnectionSpec>,
}

/// A connection to a source or a sink. The `type` says which kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConnectionSpec {
    /// A MongoDB deployment (or anything speaking its wire protocol).
    Mongodb(MongodbConnectionSpec),
    /// An object store: the data lake, a Parquet warehouse, or the state.
    ObjectStore(ObjectStoreConnectionSpec),
    /// A BigQuery project.
    Bigquery(BigqueryConnectionSpec),
}

impl ConnectionSpec {
    /// The `type` tag as written in YAML.
    pub fn kind(&self) -> ConnectionKind {
        match self {
            ConnectionSpec::Mongodb(_) => ConnectionKind::Mongodb,
            ConnectionSpec::ObjectStore(_) => ConnectionKind::ObjectStore,
            ConnectionSpec::Bigquery(_) => ConnectionKind::Bigquery,
        }
    }
}

/// The kinds of connection, for messages and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    /// `type: mongodb`
    Mongodb,
    /// `type: object_store`
    ObjectStore,
    /// `type: bigquery`
    Bigquery,
}

impl std::fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectionKind::Mongodb => "mongodb",
            ConnectionKind::ObjectStore => "object_store",
            ConnectionKind::Bigquery => "bigquery",
        })
    }
}

/// A MongoDB connection.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct MongodbConnectionSpec {
    /// Connection string, a template. Put a password in it through
    /// `{{ secret("name") }}`, never in plain text; it is redacted in every
    /// message and log.
    pub uri: String,

    /// Application name sent to the server, visible in its logs.
    #[serde(default = "default_app_name")]
    pub app_name: String,
}

fn default_app_name() -> String {
    "etl".to_owned()
}

/// An object store reached through the `object_store` crate.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ObjectStoreConnectionSpec {
    /// Root URL, a template: `gs://bucket/prefix`, `s3://bucket`,
    /// `az://container`, `file:///abs/dir`, `memory://`, or a plain path
    /// (relative to the project file's folder) for a local folder.
    pub url: String,

    /// Extra `object_store` options (`aws_region`, `google_service_account`,
    /// ...), values as templates. Unknown keys are rejected at run time by
    /// `object_store` itself.
    #[serde(default)]
    pub options: BTreeMap<String, String>,

    /// Name of a secret holding credentials (a GCP service-account JSON for
    /// `gs://`). Without it, the store uses its usual default credentials.
    #[serde(default)]
    pub credentials: Option<String>,
}

/// A BigQuery project.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct BigqueryConnectionSpec {
    /// GCP project that owns the datasets and runs the jobs, a template.
    pub project: String,

    /// Dataset location for datasets `etl` creates, such as `EU` or `US`.
    #[serde(default)]
    pub location: Option<String>,

    /// Base URL of the BigQuery REST API, a template. Set it only for an
    /// emulator, such as `http://127.0.0.1:9050`; default: Google's endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,

    /// Name of a secret holding a service-account JSON. Without it, the client
    /// uses application default credentials.
    #[serde(default)]
    pub credentials: Option<String>,
}

/// A secret kept in an `age`-encrypted file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SecretSpec {
    /// Path of the `.age` file, relative to the project file's folder.
    pub file: String,
}

/// Where `etl` keeps its state.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct StateSpec {
    /// Object-store URL or local path of the run ledger and the day
    /// leases, a template. Point several machines at one shared URL to
    /// share the ledger; the store must give conditional puts (GCS, S3,
    /// local files do; `docs/operations.md`). Default: `.etl/state`.
    #[serde(default = "default_state_url")]
    pub url: String,

    /// Extra `object_store` options for `url`, values as templates: an S3
    /// endpoint, `aws_conditional_put: etag` for S3-compatible stores,
    /// keys with `{{ secret("name") }}`. As a connection's `options`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,

    /// Name of a secret holding a GCP service-account JSON, for a `gs://`
    /// `url`. Without it, the store uses its usual default credentials.
    #[serde(default)]
    pub credentials: Option<String>,

    /// Local folder for raw extracts and flattened rows before upload.
    /// Default: `.etl/staging`.
    #[serde(default = "default_staging_dir")]
    pub staging_dir: String,

    /// Keep each day's staging folder (the compressed raw archive, the
    /// tables' Parquet files, and the BSON spool of a day that needed one) after the day is recorded `done`. Default:
    /// `false`: a finished day's folder is removed, so a year of backfill
    /// does not keep a year of data on local disk. A failed day's folder
    /// is always kept for inspection, and its error says where.
    #[serde(default)]
    pub keep_staging: bool,
}

impl Default for StateSpec {
    fn default() -> Self {
        Self {
            url: default_state_url(),
            options: BTreeMap::new(),
            credentials: None,
            staging_dir: default_staging_dir(),
            keep_staging: false,
        }
    }
}

fn default_state_url() -> String {
    ".etl/state".to_owned()
}

fn default_staging_dir() -> String {
    ".etl/staging".to_owned()
}

/// Defaults inherited by every pipeline that does not set the value itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DefaultsSpec {
    /// IANA timezone of partition days, such as `Europe/Paris`. Built-in
    /// default: `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,

    /// Documents per cursor batch. Built-in default: 1000.
    #[serde(default)]
    pub batch_size: Option<u32>,

    /// Compression of raw lake objects. Built-in default: `gzip`.
    #[serde(default)]
    pub lake_compression: Option<Compression>,

    /// Cron schedule. Built-in default: `0 0 * * *` (daily at midnight).
    #[serde(default)]
    pub schedule: Option<String>,

    /// Times `etl schedule` runs a pipeline's failed days again before the
    /// next cron fire; also the `retries` of the tasks `etl airflow` writes
    /// and the `backoffLimit` of those `etl k8s` writes. (Within one run,
    /// `--retries` already retries transient errors.) Built-in default: 2.
    #[serde(default)]
    pub retries: Option<u32>,

    /// Seconds `etl schedule` waits before it runs failed days again; also
    /// the `retry_delay` of the tasks `etl airflow` writes. Built-in
    /// default: 300.
    #[serde(default)]
    pub retry_delay_seconds: Option<u32>,
}

impl DefaultsSpec {
    /// [`Self::retries`], or its built-in default.
    pub fn task_retries(&self) -> u32 {
        self.retries.unwrap_or(2)
    }

    /// [`Self::retry_delay_seconds`], or its built-in default.
    pub fn task_retry_delay_seconds(&self) -> u32 {
        self.retry_delay_seconds.unwrap_or(300)
    }
}

/// One way to tell people how a run went. The `type` says which.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifySpec {
    /// An email over SMTP.
    Email(EmailNotifySpec),
    /// A JSON POST in the shape of a Slack incoming webhook (`text` and
    /// `blocks`), which Slack, Mattermost and most chat tools accept.
    Webhook(WebhookNotifySpec),
}

impl NotifySpec {
    /// When it is sent.
    pub fn on(&self) -> &[NotifyOn] {
        match self {
            NotifySpec::Email(e) => &e.on,
            NotifySpec::Webhook(w) => &w.on,
        }
    }

    /// The secret it needs, with its field.
    pub fn secret(&self) -> Option<(&'static str, &str)> {
        match self {
            NotifySpec::Email(e) => e.password_secret.as_deref().map(|s| ("password_secret", s)),
            NotifySpec::Webhook(w) => Some(("url_secret", w.url_secret.as_str())),
        }
    }
}

/// When a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// A run with a failed, stopped or unstarted day.
    Failure,
    /// A run whose every day is done (or was already).
    Success,
    /// Every run.
    Always,
}

fn default_notify_on() -> Vec<NotifyOn> {
    vec![NotifyOn::Failure]
}

/// An email over SMTP.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct EmailNotifySpec {
    /// When to send: `[failure]`, `[failure, success]` or `[always]`.
    /// Default: `[failure]`.
    #[serde(default = "default_notify_on")]
    pub on: Vec<NotifyOn>,

    /// The SMTP server's host name, a template.
    pub host: String,

    /// The SMTP server's port. Default: 587, the submission port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,

    /// How the connection is secured: `auto` (STARTTLS when the server
    /// offers it), `starttls` (STARTTLS or nothing is sent), `tls`
    /// (implicit TLS, usually port 465) or `none` (a relay on loopback).
    /// Default: `auto`.
    #[serde(default)]
    pub tls: SmtpTls,

    /// A PEM file of the certificate authority that signs the server's
    /// certificate, relative to the project file's folder: for a relay
    /// with a private CA. Default: the public web roots only.
    #[serde(default)]
    pub ca_file: Option<String>,

    /// The user name to log in with, a template. Omit it for a relay that
    /// needs no login; set `password_secret` with it.
    #[serde(default)]
    pub username: Option<String>,

    /// Name of the secret (under `secrets:`) holding the SMTP password.
    /// Never the password itself: nothing on disk holds it in plain text.
    #[serde(default)]
    pub password_secret: Option<String>,

    /// The sender: `etl@example.com` or `etl <etl@example.com>`.
    pub from: String,

    /// The recipients, at least one.
    pub to: Vec<String>,
}

fn default_smtp_port() -> u16 {
    587
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// STARTTLS when the server offers it, plain text otherwise; with a
    /// login, STARTTLS is required, so that a password never goes out in
    /// clear text to a server (or a man in the middle) that does not offer it.
    #[default]
    Auto,
    /// STARTTLS, required: a server that does not offer it gets nothing.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Never TLS: for a relay on loopback. With a login, only to a
    /// loopback host (`127.0.0.1`, `::1`, `localhost`).
    None,
}

/// A JSON POST shaped like a Slack incoming webhook's.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct WebhookNotifySpec {
    /// When to send: `[failure]`, `[failure, success]` or `[always]`.
    /// Default: `[failure]`.
    #[serde(default = "default_notify_on")]
    pub on: Vec<NotifyOn>,

    /// Name of the secret (under `secrets:`) holding the webhook's URL: a
    /// Slack webhook URL is itself a credential, so it is never written
    /// in plain text, and never logged.
    pub url_secret: String,
}

// ---------------------------------------------------------------------------
// Pipeline specs (`pipelines/*.yaml`)
// ---------------------------------------------------------------------------

/// A pipeline: one MongoDB collection, partitioned by day, flattened, and
/// written to the lake and the warehouse.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[schemars(title = "etl pipeline spec")]
pub struct PipelineSpec {
    /// Version of the pipeline format. Only `1` exists.
    pub version: u32,

    /// Pipeline name, used in paths, the ledger and logs. Default: the file
    /// name without `.yaml`.
    #[serde(default)]
    pub name: Option<String>,

    /// Free text shown by `etl plan` and in docs.
    #[serde(default)]
    pub description: Option<String>,

    /// Where the documents come from.
    pub source: SourceSpec,

    /// How documents map to days.
    pub partition: PartitionSpec,

    /// How nested documents become flat rows.
    #[serde(default)]
    pub flatten: FlattenSpec,

    /// Where the raw archive and the rows go.
    pub sinks: SinksSpec,

    /// How `etl watch` turns the collection's change stream into days to
    /// redo (docs/cdc.md). Without it, the defaults below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangesSpec>,

    /// Cron schedule (five fields). Default: the project's, else `0 0 * * *`.
    #[serde(default)]
    pub schedule: Option<String>,

    /// Flatten test cases, run offline by `etl test`: input documents and
    /// the rows each output table must get.
    #[serde(default)]
    pub tests: Vec<TestCaseSpec>,
}

/// One `etl test` case.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TestCaseSpec {
    /// What the case shows, printed by `etl test`.
    pub name: String,

    /// The partition day (`YYYY-MM-DD`) the rows get in `_ds`. Default: the
    /// partition's `start_date`.
    #[serde(default)]
    pub ds: Option<String>,

    /// Input documents in MongoDB Extended JSON (`{"$date": ...}`,
    /// `{"$numberLong": ...}` keep their BSON types).
    pub documents: Vec<serde_json::Value>,

    /// Expected rows per output table, in order. The root table is the
    /// pipeline's name; child tables are named as `explode` makes them
    /// (`orders__items`). A row lists its columns; a column left out must
    /// be NULL, except `_ds`, which is only compared when listed. Tables
    /// not listed are not checked.
    #[serde(default)]
    pub expect: BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,

    /// Positions (from 0) of the documents `on_type_conflict: reject` must
    /// send to `_rejects`. Default: none.
    #[serde(default)]
    pub rejected: Vec<usize>,
}

/// The MongoDB collection to read.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SourceSpec {
    /// Name of a `mongodb` connection in the active profile.
    pub connection: String,

    /// Database name.
    pub database: String,

    /// Collection name.
    pub collection: String,

    /// Extra filter, in MongoDB Extended JSON, combined with `$and` with the
    /// partition range. Default: none.
    #[serde(default)]
    pub filter: Option<serde_json::Map<String, serde_json::Value>>,

    /// Projection, in MongoDB Extended JSON. Default: whole documents.
    #[serde(default)]
    pub projection: Option<serde_json::Map<String, serde_json::Value>>,

    /// Documents per cursor batch. Default: the project's, else 1000.
    #[serde(default)]
    pub batch_size: Option<u32>,

    /// Server-side time limit for each cursor batch, in milliseconds.
    /// `etl` itself gives up on a batch (or the count) that has no answer
    /// after twice this plus 5 s, as a server that ignores the limit or a
    /// stalled network would leave it: the day fails, naming the server,
    /// and is retried. Default: no server limit, and `etl` waits 10
    /// minutes.
    #[serde(default)]
    pub max_time_ms: Option<u64>,

    /// Also count the day's documents (`countDocuments`, beside the cursor),
    /// and fail the day, to be retried, when the count and the documents
    /// read differ: documents of a past day changed while it was read. The
    /// count also gives the progress bar a total. Without an index on the
    /// partition field the count is a second scan of the collection, which
    /// is why it is off unless asked for. Default: false.
    #[serde(default)]
    pub count: bool,
}

/// How a document's partition day is found.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PartitionSpec {
    /// Field holding the timestamp, in dotted form (`created_at`,
    /// `meta.created`). For `kind: object_id` this is usually `_id`.
    pub field: String,

    /// How the field stores time.
    pub kind: PartitionKind,

    /// Partition size. Only `daily` exists today.
    #[serde(default)]
    pub granularity: Granularity,

    /// IANA timezone in which days start at 00:00. Default: the project's,
    /// else `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,

    /// First day with data (`YYYY-MM-DD`). Catch-up runs start here.
    pub start_date: String,

    /// Days before the last one that each catch-up run (no `--end`, no
    /// `--date`) redoes as well, done or not: late changes to documents of
    /// those days then reach the lake and the warehouse without change
    /// streams. `3` redoes the three days before yesterday every day.
    /// Default: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lookback: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `changes`: what `etl watch` does with the change stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ChangesSpec {
    /// What to do with a change whose day cannot be told: a delete (or an
    /// update that moved the partition field) without a pre-image, whose
    /// `_id` the warehouse does not hold either. Default: `record`.
    #[serde(default)]
    pub unknown_day: UnknownDay,

    /// With `unknown_day: mark_recent`, how many days before today are
    /// marked. Default: 7.
    #[serde(default)]
    pub recent_days: Option<u32>,

    /// Ask the server for each change's pre-image
    /// (`fullDocumentBeforeChange: whenAvailable`): MongoDB 6.0 or newer,
    /// with `changeStreamPreAndPostImages` enabled on the collection. It
    /// tells the day of every delete and move without a lookup. Default:
    /// false (older servers refuse the option).
    #[serde(default)]
    pub pre_images: bool,
}

/// What `etl watch` does with a change whose day it cannot tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDay {
    /// Record it in the state store; `etl status` reports it, and nothing
    /// is redone until someone decides.
    #[default]
    Record,
    /// Mark the `recent_days` days before today dirty.
    MarkRecent,
}

/// How the partition field stores time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// A BSON Date.
    Date,
    /// An ISO-8601 string: a date alone (`2020-06-01`, that day), or a date
    /// and a time, separated by `T` or a space, with minutes or seconds and
    /// any fraction, and a zone (`Z`, `+02:00`, `+0200`, `+02`) or none
    /// (UTC), such as `2020-06-01T12:00:00Z` or `2020-06-01 14:00+02`. A
    /// document belongs to its instant's day in the partition timezone.
    /// Any other string is in no day, and `etl verify` counts it.
    IsoString,
    /// A number of seconds since the Unix epoch.
    EpochSeconds,
    /// A number of milliseconds since the Unix epoch.
    EpochMillis,
    /// The creation time inside an ObjectId (usually `_id`).
    ObjectId,
}

impl PartitionKind {
    /// The YAML spelling: `date`, `iso_string`, ...
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Date => "date",
            PartitionKind::IsoString => "iso_string",
            PartitionKind::EpochSeconds => "epoch_seconds",
            PartitionKind::EpochMillis => "epoch_millis",
            PartitionKind::ObjectId => "object_id",
        }
    }
}

/// Partition size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One partition per calendar day in the partition timezone.
    #[default]
    Daily,
}

/// Flatten rules: how one document becomes rows.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FlattenSpec {
    /// Joins the keys of nested objects into column names (`address__city`).
    /// Default: `__`.
    #[serde(default = "default_separator")]
    pub separator: String,

    /// Deepest object level turned into columns; deeper values become JSON
    /// strings. Default: 5.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,

    /// Whether every field becomes a column automatically. With `false`, only
    /// `columns` are produced. Default: `true`.
    #[serde(default = "default_true")]
    pub auto_columns: bool,

    /// Explicit columns chosen by JSONPath, with a name and a type.
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,

    /// Paths (`$.a.b`) that never reach a column.
    #[serde(default)]
    pub exclude: Vec<String>,

    /// How arrays are stored.
    #[serde(default)]
    pub arrays: ArraysSpec,

    /// Per-path rules for objects, such as an object used as a map (ids or
    /// dates as keys) kept as one JSON column instead of a column per key.
    /// Default: none, every object's keys become columns.
    // Left out of the spec's JSON when empty, so that specs written before
    // it hash as they did and no done day is redone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRuleSpec>,

    /// What to do with a field the schema lock has not seen. Default: `add`.
    #[serde(default)]
    pub on_new_field: NewFieldPolicy,

    /// What to do when a value's type differs from its column's. Default:
    /// `coerce`.
    #[serde(default)]
    pub on_type_conflict: TypeConflictPolicy,

    /// The column type of Decimal128 values. Default: `numeric`.
    #[serde(default)]
    pub decimal: DecimalType,

    /// Give every column of ObjectIds a TIMESTAMP column `<column>__ts` with
    /// their creation time (seconds), right after it. Default: `false`.
    #[serde(default)]
    pub object_id_timestamps: bool,
}

/// The column type of Decimal128 values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecimalType {
    /// NUMERIC (29 integer and 9 fraction digits). A value that does not
    /// fit is BIGNUMERIC, and follows `on_type_conflict` in a NUMERIC
    /// column (`coerce` widens the column to BIGNUMERIC).
    #[default]
    Numeric,
    /// BIGNUMERIC (38 and 38 digits) for every decimal.
    Bignumeric,
}

impl Default for FlattenSpec {
    fn default() -> Self {
        Self {
            separator: default_separator(),
            max_depth: default_max_depth(),
            auto_columns: true,
            columns: Vec::new(),
            exclude: Vec::new(),
            arrays: ArraysSpec::default(),
            objects: Vec::new(),
            on_new_field: NewFieldPolicy::default(),
            on_type_conflict: TypeConflictPolicy::default(),
            decimal: DecimalType::default(),
            object_id_timestamps: false,
        }
    }
}

fn default_separator() -> String {
    "__".to_owned()
}

fn default_max_depth() -> u32 {
    5
}

fn default_true() -> bool {
    true
}

/// An explicit column.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ColumnSpec {
    /// Column name: letters, digits and `_`, not starting with a digit.
    pub name: String,

    /// JSONPath of the value in the document, such as `$.address.city`.
    pub path: String,

    /// Target type.
    #[serde(rename = "type")]
    pub kind: ColumnType,

    /// Value used when the path matches nothing. Default: NULL.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
}

/// Column types, named as in BigQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Exact decimal, 38 digits of precision and 9 of scale.
    Numeric,
    /// Exact decimal, 76 digits of precision and 38 of scale.
    Bignumeric,
    /// true or false.
    Bool,
    /// Instant, microsecond precision.
    Timestamp,
    /// Calendar date.
    Date,
    /// Binary data.
    Bytes,
    /// A JSON document, stored as text.
    Json,
    /// A struct of named fields: only in output tables, for `repeated`
    /// arrays of objects; never declared in a spec.
    #[schemars(skip)]
    Record,
}

/// Array handling: a default policy and per-path overrides.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ArraysSpec {
    /// Policy for arrays no rule names: `json` or `repeated` (`explode`
    /// needs a rule per array, since each makes a table). Default: `json`.
    #[serde(default)]
    pub default: ArrayPolicy,

    /// Per-path rules.
    #[serde(default)]
    pub rules: Vec<ArrayRuleSpec>,
}

/// How one array path is stored.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ArrayRuleSpec {
    /// Path of the array, such as `$.items`.
    pub path: String,

    /// The policy for this array.
    pub policy: ArrayPolicy,

    /// Name of the child table for `explode`. Default:
    /// `<table><separator><path>`.
    #[serde(default)]
    pub table: Option<String>,

    /// Flatten rules for the child table's rows (only with `explode`).
    /// Default: the same separator and depth, automatic columns.
    #[serde(default)]
    pub flatten: Option<Box<FlattenSpec>>,
}

/// How one object path is stored.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ObjectRuleSpec {
    /// Path of the object, such as `$.scores_by_user`.
    pub path: String,

    /// The policy for this object.
    pub policy: ObjectPolicy,
}

/// Object policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectPolicy {
    /// Each key becomes a column (`<path>__<key>`), down to `max_depth`.
    #[default]
    Columns,
    /// One JSON column holding the whole object, whatever its keys: for an
    /// object used as a map, whose keys are data (ids, dates) and would
    /// otherwise add a column per key.
    Json,
}

/// Array policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArrayPolicy {
    /// One JSON string column holding the whole array.
    #[default]
    Json,
    /// A child table `<table>__<path>` with one row per element: the
    /// element's fields (or `value`), keyed by `_root_id` (the root's
    /// `_id`), `_parent_key` (below the first level) and `_idx` (position),
    /// partitioned on `_ds` like its parent.
    Explode,
    /// A native REPEATED column of the elements, typed like any column;
    /// REPEATED RECORD (a Parquet list of structs) for arrays of objects.
    Repeated,
}

/// What to do with a field that the schema lock does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewFieldPolicy {
    /// Add a column to the table.
    #[default]
    Add,
    /// Drop the field.
    Ignore,
    /// Fail the partition.
    Fail,
}

/// What to do when a value's type conflicts with its column's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TypeConflictPolicy {
    /// Widen: int to float, anything to string.
    #[default]
    Coerce,
    /// Write the value to a separate column `<col>__v_<type>`.
    Variant,
    /// Send the whole document to the partition's `_rejects` object.
    Reject,
}

/// Where the data goes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SinksSpec {
    /// The raw archive: every document, unchanged, as Extended JSON lines.
    pub lake: LakeSinkSpec,

    /// The flattened rows.
    pub warehouse: WarehouseSinkSpec,
}

/// The raw archive in the data lake.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct LakeSinkSpec {
    /// Name of an `object_store` connection in the active profile.
    pub connection: String,

    /// Object path under the connection's URL, a template, such as
    /// `raw/{{ collection }}/dt={{ ds }}/part-0.jsonl.gz`. It must differ per
    /// day, so that a rerun overwrites instead of adding.
    pub path: String,

    /// Format of the raw objects. Default: `ndjson` (canonical Extended JSON,
    /// one document per line).
    #[serde(default)]
    pub format: LakeFormat,

    /// Compression. Default: the project's, else `gzip`.
    #[serde(default)]
    pub compression: Option<Compression>,
}

/// Raw archive formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LakeFormat {
    /// Canonical MongoDB Extended JSON, one document per line: lossless.
    #[default]
    Ndjson,
}

/// Compression codecs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip, readable everywhere.
    #[default]
    Gzip,
    /// zstd: faster and smaller.
    Zstd,
    /// No compression.
    None,
}

/// The warehouse for flattened rows. The `type` says which kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WarehouseSinkSpec {
    /// A BigQuery table partitioned by day.
    Bigquery(BigquerySinkSpec),
    /// A Hive-style Parquet dataset (`.../dt=2020-06-01/part-00000.parquet`).
    Parquet(ParquetSinkSpec),
}

/// A BigQuery table.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct BigquerySinkSpec {
    /// Name of a `bigquery` connection in the active profile.
    pub connection: String,

    /// Dataset, a template.
    pub dataset: String,

    /// Table, a template.
    pub table: String,

    /// Column used for DAY time partitioning. Default: `_ds`, the DATE column
    /// every row carries (the partition day in the pipeline's timezone), which
    /// keeps each day in its own partition whatever the timezone. Name a
    /// TIMESTAMP column only for a UTC pipeline.
    #[serde(default)]
    pub partition_column: Option<String>,

    /// Clustering columns, at most four.
    #[serde(default)]
    pub clustering: Vec<String>,

    /// How a day's rows are replaced. Default: `decorator`.
    #[serde(default)]
    pub replace: ReplaceMode,

    /// Where a load job reads a day's rows from. Default: `request`, the
    /// rows sent in the load request. `bucket` stages them in the lake's
    /// `gs://` bucket (under `_load/`, deleted after the load) and loads
    /// from there, as production loads above the request size limit must.
    // Left out when it is the default, so that the spec hashes of the days
    // loaded before the option existed stay as they were.
    #[serde(default, skip_serializing_if = "LoadFrom::is_request")]
    pub load_from: LoadFrom,
}

/// Where a BigQuery load job reads the rows from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadFrom {
    /// The day's Parquet file is uploaded in the load request (a resumable upload):
    /// no bucket needed, but BigQuery limits the size of such a request.
    #[default]
    Request,
    /// The day's Parquet file is written to the lake's `gs://` bucket, under
    /// `_load/<dataset>/<table>/<day>/`, the job loads it by its `gs://`
    /// URI, and the object is deleted after the load. What a crash leaves
    /// there is deleted by the next run of the day. The lake connection
    /// must be a `gs://` URL.
    Bucket,
}

impl LoadFrom {
    fn is_request(&self) -> bool {
        *self == LoadFrom::Request
    }
}

/// How a BigQuery partition is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceMode {
    /// A load job with WRITE_TRUNCATE into `table$YYYYMMDD`: atomic, free.
    #[default]
    Decorator,
    /// Load into a staging table, then delete and insert the day in one
    /// script. For emulators without partition decorators.
    Staging,
}

/// A Parquet dataset in an object store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ParquetSinkSpec {
    /// Name of an `object_store` connection in the active profile.
    pub connection: String,

    /// Dataset folder under the connection's URL, a template, such as
    /// `warehouse/{{ pipeline }}`. Each day is written to `dt=<day>/` below it.
    pub path: String,
}
