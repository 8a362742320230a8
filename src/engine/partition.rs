//! One partition, start to end. See the module above for the steps.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell};

use super::progress::Bar;
use crate::credentials::{self, ServiceAccount};
use crate::flatten::{FlattenError, RowError, Tables};
use crate::plan::{ConnectionPlan, PartitionTarget, PipelinePlan, WarehousePlan};
use crate::sink::bigquery::BigQuerySink;
use crate::sink::lake::Store;
use crate::source::{MongoSource, ReadOptions, SourceError};
use crate::spec::{ColumnType, Compression};
use crate::table::TableSchema;
use crate::template::{Templates, Vars};

/// What is known of a partition so far; kept on failure too, so the ledger
/// says how far it got.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub source_count: Option<u64>,
    pub raw_lines: Option<u64>,
    pub raw_bytes: Option<u64>,
    pub raw_sha256: Option<String>,
    pub warehouse_rows: Option<u64>,
    /// Documents sent to the partition's `_rejects` object.
    pub rejected: Option<u64>,
    /// Rows loaded into each child table, by table name.
    pub child_rows: std::collections::BTreeMap<String, u64>,
    pub lake_object: String,
    pub warehouse_target: String,
}

/// Why a partition failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PartitionError {
    /// What failed, with context.
    pub message: String,
    /// Whether a retry may help.
    pub transient: bool,
    /// How far it got.
    pub stats: Box<Stats>,
}

impl PartitionError {
    /// A failure no retry will fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            stats: Box::default(),
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
            stats: Box::default(),
        }
    }
}

impl From<SourceError> for PartitionError {
    fn from(e: SourceError) -> Self {
        let transient = e.is_transient();
        Self {
            message: e.to_string(),
            transient,
            stats: Box::default(),
        }
    }
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> PartitionError {
    PartitionError::fatal(format!("{what} `{}`: {e}", path.display()))
}

/// Where rows go, with the clients built once per pipeline.
enum Warehouse {
    Bigquery {
        sink: BigQuerySink,
        /// Table creation and schema changes happen one partition at a time.
        lock: Mutex<()>,
    },
    Parquet {
        store: Store,
    },
}

/// A pipeline's plan plus the clients its partitions share.
pub struct PipelineRuntime {
    pub plan: PipelinePlan,
    templates: Arc<Templates>,
    tables: OnceCell<Arc<Tables>>,
    source: OnceCell<MongoSource>,
    lake: OnceCell<Store>,
    warehouse: OnceCell<Warehouse>,
    /// The credentials each opened connection used, by connection name.
    credentials: std::sync::Mutex<BTreeMap<String, credentials::Source>>,
    /// The schemas the last partition of this run ended with: the next
    /// one's guess when there is no better one ([`Self::expected_schemas`]).
    last_schemas: std::sync::Mutex<Option<Vec<TableSchema>>>,
}

impl PipelineRuntime {
    pub fn new(plan: PipelinePlan, templates: Arc<Templates>) -> Self {
        Self {
            plan,
            templates,
            tables: OnceCell::new(),
            source: OnceCell::new(),
            lake: OnceCell::new(),
            warehouse: OnceCell::new(),
            credentials: Default::default(),
            last_schemas: Default::default(),
        }
    }

    /// The credentials of the connections opened so far, by name.
    pub fn credentials(&self) -> BTreeMap<String, credentials::Source> {
        self.credentials.lock().expect("poisoned").clone()
    }

    fn used(&self, connection: &str, source: credentials::Source) {
        tracing::info!(pipeline = %self.plan.name, connection, credentials = %source, "connection opened");
        self.credentials
            .lock()
            .expect("poisoned")
            .insert(connection.to_owned(), source);
    }

    /// The service account in secret `name`, decrypted now, in memory.
    fn service_account(
        &self,
        name: Option<&String>,
    ) -> Result<Option<ServiceAccount>, PartitionError> {
        let Some(name) = name else { return Ok(None) };
        let json = self.templates.secret(name).map_err(PartitionError::fatal)?;
        ServiceAccount::from_secret(name, json)
            .map(Some)
            .map_err(|e| PartitionError::fatal(format!("{e}; {}", credentials::KeyError::HINT)))
    }

    fn render(&self, t: &str) -> Result<String, PartitionError> {
        self.templates
            .render(t, &Vars::default())
            .map_err(PartitionError::fatal)
    }

    async fn tables(&self) -> Result<&Arc<Tables>, PartitionError> {
        self.tables
            .get_or_try_init(|| async {
                Tables::new(&self.plan.flatten)
                    .map(Arc::new)
                    .map_err(|e| PartitionError::fatal(format!("flatten rules: {e}")))
            })
            .await
    }

    async fn source(&self) -> Result<&MongoSource, PartitionError> {
        self.source
            .get_or_try_init(|| async {
                let ConnectionPlan::Mongodb {
                    uri_template,
                    app_name,
                    ..
                } = &self.plan.source.connection
                else {
                    unreachable!("checked by plan::check_pipeline")
                };
                let uri = self.render(uri_template)?;
                let source = MongoSource::connect(
                    &uri,
                    app_name,
                    &self.plan.source.database,
                    &self.plan.source.collection,
                )
                .await?;
                self.used(
                    &self.plan.source.connection_name,
                    credentials::Source::MongoUri(self.plan.source.connection.secret_names()),
                );
                Ok(source)
            })
            .await
    }

    fn open_store(&self, name: &str, conn: &ConnectionPlan) -> Result<Store, PartitionError> {
        let ConnectionPlan::ObjectStore {
            url,
            options,
            credentials,
        } = conn
        else {
            unreachable!("checked by plan::check_pipeline")
        };
        let mut rendered = BTreeMap::new();
        for (k, v) in options {
            rendered.insert(k.clone(), self.render(v)?);
        }
        let account = self.service_account(credentials.as_ref())?;
        if let Some(a) = &account {
            // object_store takes the key's JSON itself: no file is written.
            rendered.insert(
                "google_service_account_key".to_owned(),
                a.json.expose().to_owned(),
            );
        }
        let source = credentials::Source::object_store(
            account.as_ref(),
            url,
            credentials::Adc::from_process,
        );
        let store =
            Store::open(url, &rendered).map_err(|e| PartitionError::fatal(e.to_string()))?;
        self.used(name, source);
        Ok(store)
    }

    async fn lake(&self) -> Result<&Store, PartitionError> {
        self.lake
            .get_or_try_init(|| async {
                self.open_store(&self.plan.lake.connection_name, &self.plan.lake.connection)
            })
            .await
    }

    async fn warehouse(&self) -> Result<&Warehouse, PartitionError> {
        self.warehouse
            .get_or_try_init(|| async {
                match &self.plan.warehouse {
                    WarehousePlan::Bigquery {
                        connection,
                        connection_name,
                        ..
                    } => {
                        let ConnectionPlan::Bigquery {
                            project,
                            location,
                            endpoint,
                            credentials,
                        } = connection
                        else {
                            unreachable!("checked by plan::check_pipeline")
                        };
                        let account = self.service_account(credentials.as_ref())?;
                        let source = credentials::Source::bigquery(
                            account.as_ref(),
                            endpoint.as_deref(),
                            credentials::Adc::from_process,
                        );
                        let sink = BigQuerySink::connect(
                            project,
                            location.as_deref(),
                            endpoint.as_deref(),
                            account.as_ref(),
                        )
                        .await
                        .map_err(|e| PartitionError::fatal(e.to_string()))?;
                        self.used(connection_name, source);
                        Ok(Warehouse::Bigquery {
                            sink,
                            lock: Mutex::new(()),
                        })
                    }
                    WarehousePlan::Parquet {
                        connection,
                        connection_name,
                        ..
                    } => Ok(Warehouse::Parquet {
                        store: self.open_store(connection_name, connection)?,
                    }),
                }
            })
            .await
    }

    /// Pass 1 alone over day `day`'s documents, streamed from MongoDB into
    /// `builders` (from [`Tables::schema_builders`]): what `etl schema lock`
    /// learns from data. Returns the documents read.
    pub async fn infer_day(
        &self,
        day: NaiveDate,
        builders: &mut [crate::flatten::SchemaBuilder],
    ) -> Result<u64, PartitionError> {
        let tables = self.tables().await?.clone();
        self.scan_day(day, &mut |doc| {
            tables.infer(doc, builders).map_err(|e| {
                PartitionError::fatal(format!("flattening document {}: {e}", doc_id(doc)))
            })
        })
        .await
    }

    /// Calls `f` with each of day `day`'s documents, streamed in `_id`
    /// order. Returns the documents read.
    pub async fn scan_day(
        &self,
        day: NaiveDate,
        f: &mut (dyn FnMut(&bson::RawDocument) -> Result<(), PartitionError> + Send),
    ) -> Result<u64, PartitionError> {
        let target = self
            .plan
            .target(day, &self.templates)
            .map_err(PartitionError::fatal)?;
        let read = ReadOptions {
            batch_size: self.plan.source.batch_size,
            max_time: self.plan.source.max_time_ms.map(Duration::from_millis),
            projection: self.plan.source.projection.clone(),
        };
        let mut cursor = self.source().await?.find(target.filter, &read).await?;
        let mut n = 0;
        while cursor.advance().await? {
            f(cursor.current())?;
            n += 1;
        }
        Ok(n)
    }

    /// The compiled flatten rules of every table.
    pub async fn flatten_tables(&self) -> Result<Arc<Tables>, PartitionError> {
        Ok(self.tables().await?.clone())
    }

    /// Runs the partition once. `dir` is its staging folder.
    pub async fn run(
        &self,
        day: NaiveDate,
        dir: &Path,
        bar: &dyn Bar,
    ) -> Result<Stats, PartitionError> {
        let mut stats = Stats::default();
        let fail = |stats: &Stats, mut e: PartitionError| {
            e.stats = Box::new(stats.clone());
            e
        };
        let target = self
            .plan
            .target(day, &self.templates)
            .map_err(|m| fail(&stats, PartitionError::fatal(m)))?;
        let lake = self.lake().await.map_err(|e| fail(&stats, e))?;
        stats.lake_object = lake.display(&target.lake_path);
        stats.warehouse_target = target.warehouse.clone();
        match self
            .run_inner(day, dir, bar, &target, lake, &mut stats)
            .await
        {
            Ok(()) => Ok(stats),
            Err(e) => Err(fail(&stats, e)),
        }
    }

    async fn run_inner(
        &self,
        day: NaiveDate,
        dir: &Path,
        bar: &dyn Bar,
        target: &PartitionTarget,
        lake: &Store,
        stats: &mut Stats,
    ) -> Result<(), PartitionError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io("cannot clear", dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let tables = self.tables().await?.clone();
        let source = self.source().await?;

        // 1. Extract: spool, raw archive and schema in one pass. The cursor
        // loop only copies each document's bytes and infers the schema; a
        // writer thread spools them, writes the canonical Extended JSON
        // line and compresses and hashes it, so the two run on two cores.
        // The count, when the spec asks for one, runs beside the cursor
        // rather than before it.
        let raw_name = target.lake_path.rsplit('/').next().unwrap_or("raw.jsonl");
        let raw_path = dir.join(raw_name);
        let spool_path = dir.join("spool.bson");
        let read = ReadOptions {
            batch_size: self.plan.source.batch_size,
            max_time: self.plan.source.max_time_ms.map(Duration::from_millis),
            projection: self.plan.source.projection.clone(),
        };
        let mut writer = ExtractWriter::start(&spool_path, &raw_path, self.plan.lake.compression)?;
        let (dataset, root) = self.warehouse_names(target)?;
        let names = tables.names(&root);
        let logical = tables.names(&self.plan.name);
        let output = Arc::new(SpoolOutput {
            rows: (0..names.len())
                .map(|i| dir.join(format!("rows-{i}.ndjson")))
                .collect(),
            rejects: dir.join("_rejects.jsonl"),
            names: names.clone(),
        });
        let parquet: Option<Vec<PathBuf>> =
            matches!(self.plan.warehouse, WarehousePlan::Parquet { .. })
                .then(|| names.iter().map(|n| parquet_file(dir, n)).collect());
        let mut speculation = match self.expected_schemas(&dataset, &names, &logical).await {
            Some(expected) => Some(Speculation::start(&tables, &output, expected, parquet, day)),
            None => None,
        };
        // The builders already hold the explicit columns, so an empty day
        // still has them.
        let mut inferred = tables.schema_builders();
        let mut lines = 0u64;
        let mut counting = self
            .plan
            .source
            .count
            .then(|| source.spawn_count(target.filter.clone()));
        let mut count: Option<u64> = None;
        let mut cursor = source.find(target.filter.clone(), &read).await?;
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + (16 << 10));
        while cursor.advance().await? {
            let doc = cursor.current();
            tables.infer(doc, &mut inferred).map_err(|e| {
                PartitionError::fatal(format!("flattening document {}: {e}", doc_id(doc)))
            })?;
            chunk.extend_from_slice(doc.as_bytes());
            lines += 1;
            if chunk.len() >= CHUNK_BYTES {
                let full = Arc::new(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(CHUNK_BYTES + (16 << 10)),
                ));
                if let Some(s) = &mut speculation {
                    s.send(full.clone()).await;
                }
                writer.send(full).await?;
            }
            if lines % 1000 == 0 {
                if let Some(c) = counting.as_mut().filter(|c| c.is_finished()) {
                    count = Some(join_count(c).await?);
                    counting = None;
                }
                bar.documents(lines, count);
            }
        }
        // Without a count, the source's count is the documents it gave.
        let count = match (count, counting.as_mut()) {
            (Some(n), _) => n,
            (None, Some(c)) => join_count(c).await?,
            (None, None) => lines,
        };
        stats.source_count = Some(count);
        bar.documents(lines, Some(count));
        if !chunk.is_empty() {
            let last = Arc::new(chunk);
            if let Some(s) = &mut speculation {
                s.send(last.clone()).await;
            }
            writer.send(last).await?;
        }
        let (written, raw_bytes, raw_sha256) = writer.finish().await?;
        if written != lines {
            return Err(PartitionError::fatal(format!(
                "the raw archive has {written} lines for {lines} documents read"
            )));
        }
        stats.raw_lines = Some(lines);
        stats.raw_bytes = Some(raw_bytes);
        stats.raw_sha256 = Some(raw_sha256.clone());
        if count != lines {
            // The day is in the past, so its documents should not change
            // while it is read; if they did, the partition must run again.
            return Err(PartitionError::transient(format!(
                "reconciliation failed: source count {count}, raw lines {lines}, warehouse rows not loaded: documents changed during the extract"
            )));
        }

        // 2. Merge each inferred schema with its table's, then flatten,
        // unless the rows written during the extract already are that.
        let warehouse = self.warehouse().await?;
        let mut schemas = Vec::with_capacity(names.len());
        for (i, (name, builder)) in names.iter().zip(inferred).enumerate() {
            let existing = match warehouse {
                Warehouse::Bigquery { sink, .. } => sink
                    .table_schema(&dataset, name)
                    .await
                    .map_err(|e| PartitionError::fatal(e.to_string()))?,
                Warehouse::Parquet { .. } => None,
            };
            for (path, column) in builder.renames() {
                tracing::warn!(
                    pipeline = %self.plan.name, partition = %day, table = %name, %path, %column,
                    "two paths flatten to one column name: this one is renamed (the name is a hash of the path, stable from day to day)"
                );
            }
            let null_only: Vec<String> = builder.null_only().map(str::to_owned).collect();
            // The lock's types come first: they are the reviewed ones.
            let locked = self
                .plan
                .lock
                .as_ref()
                .map(|l| l.table(&logical[i]).cloned().unwrap_or_default());
            let baseline = locked.as_ref().or(existing.as_ref());
            let mut found = builder.finish_against(baseline);
            if let Some(locked) = &locked {
                crate::flatten::adopt_locked_types(&mut found, locked, &null_only);
                let policy = tables.tables()[i].flattener.new_field_policy();
                self.new_fields(day, name, &logical[i], locked, &mut found, policy)?;
            }
            schemas.push(
                merge_schema(existing.as_ref(), found, &null_only)
                    .map_err(|e| PartitionError::fatal(format!("table `{name}`: {}", e.message)))?,
            );
        }
        *self.last_schemas.lock().expect("not poisoned") = Some(schemas.clone());
        let kept = match speculation {
            Some(s) => s.finish(&schemas).await,
            None => None,
        };
        let (Flattening { rows, rejected, .. }, encoded) = match kept {
            Some((flattening, encoded)) => {
                tracing::debug!(
                    pipeline = %self.plan.name, partition = %day,
                    parquet_kept = encoded.iter().filter(|e| e.is_some()).count(),
                    "rows written during the extract kept: the day has the columns expected"
                );
                (flattening, encoded)
            }
            None => {
                if output.rejects.exists() {
                    std::fs::remove_file(&output.rejects)
                        .map_err(|e| io("cannot remove", &output.rejects, e))?;
                }
                let (spool_path, schemas, tables, output) = (
                    spool_path.clone(),
                    schemas.clone(),
                    tables.clone(),
                    output.clone(),
                );
                let flattening = tokio::task::spawn_blocking(move || {
                    flatten_spool(&tables, &spool_path, &output, &schemas, day)
                })
                .await
                .map_err(|e| PartitionError::fatal(e.to_string()))??;
                (flattening, vec![None; names.len()])
            }
        };
        let rows_paths = &output.rows;
        let rejects_path = &output.rejects;
        let _ = std::fs::remove_file(&spool_path);
        stats.rejected = Some(rejected);
        let manifest = manifest(
            &self.plan,
            target,
            lines,
            raw_bytes,
            &raw_sha256,
            self.plan.lake.compression,
            rejected,
        );

        // 3. The lake and the warehouse, concurrently.
        let upload = async {
            lake.upload(&raw_path, &target.lake_path).await?;
            if rejected > 0 {
                lake.upload(rejects_path, &target.rejects_path).await?;
            } else {
                // A rerun after the data or the rules were fixed.
                lake.delete(&target.rejects_path).await?;
            }
            lake.put(&target.manifest_path, manifest).await
        };
        let load = async {
            let mut loaded = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let n = self
                    .load_table(
                        warehouse,
                        &dataset,
                        name,
                        i == 0,
                        day,
                        &rows_paths[i],
                        rows[i],
                        encoded[i],
                        &schemas[i],
                        dir,
                    )
                    .await?;
                loaded.push(n);
            }
            Ok::<Vec<u64>, anyhow::Error>(loaded)
        };
        let (uploaded, loaded) = tokio::join!(upload, load);
        uploaded.map_err(|e| PartitionError::transient(e.to_string()))?;
        let loaded = loaded.map_err(|e| {
            let transient = e
                .downcast_ref::<crate::sink::bigquery::BigQueryError>()
                .is_some_and(|b| b.is_transient());
            PartitionError {
                message: format!("{e:#}"),
                transient,
                stats: Box::default(),
            }
        })?;
        let warehouse_rows = loaded[0];
        stats.warehouse_rows = Some(warehouse_rows);
        stats.child_rows = names[1..]
            .iter()
            .cloned()
            .zip(loaded[1..].iter().copied())
            .collect();

        // 4. Reconcile: every document is one root row or one rejected
        // document, and every table holds the rows written for it.
        if count != lines || lines != warehouse_rows + rejected || rows[0] != warehouse_rows {
            return Err(PartitionError::fatal(format!(
                "reconciliation failed: source count {count}, raw lines {lines}, warehouse rows {warehouse_rows}, rejected {rejected}"
            )));
        }
        for (i, name) in names.iter().enumerate().skip(1) {
            if loaded[i] != rows[i] {
                return Err(PartitionError::fatal(format!(
                    "reconciliation failed: table `{name}` holds {} rows for {day}, {} were written",
                    loaded[i], rows[i]
                )));
            }
        }
        Ok(())
    }

    /// The schemas day's tables are expected to end with, known before the
    /// extract so that its rows can be written while the documents arrive
    /// (see [`Speculation`]): per table, the schema lock's table merged into
    /// the warehouse table as the day's own merge would, else the warehouse
    /// table, else the schema the last partition of this run ended with.
    /// None when some table has no basis for a guess, or the warehouse's
    /// tables cannot be read now (the day's own merge then says why).
    async fn expected_schemas(
        &self,
        dataset: &str,
        names: &[String],
        logical: &[String],
    ) -> Option<Vec<TableSchema>> {
        let warehouse = self.warehouse().await.ok()?;
        let last = self.last_schemas.lock().expect("not poisoned").clone();
        let mut expected = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let existing = match warehouse {
                Warehouse::Bigquery { sink, .. } => sink.table_schema(dataset, name).await.ok()?,
                Warehouse::Parquet { .. } => None,
            };
            let locked = self
                .plan
                .lock
                .as_ref()
                .and_then(|l| l.table(&logical[i]))
                .filter(|t| !t.columns.is_empty());
            let schema = match (existing, locked) {
                (existing, Some(locked)) => {
                    merge_schema(existing.as_ref(), locked.clone(), &[]).ok()?
                }
                (Some(existing), None) => existing,
                (None, None) => last.as_ref()?.get(i)?.clone(),
            };
            expected.push(schema);
        }
        Some(expected)
    }

    /// `on_new_field` for one table: the columns of `found` that the
    /// schema lock lacks are added (and logged), dropped, or fail the
    /// partition.
    fn new_fields(
        &self,
        day: NaiveDate,
        table: &str,
        logical: &str,
        locked: &TableSchema,
        found: &mut TableSchema,
        policy: crate::spec::NewFieldPolicy,
    ) -> Result<(), PartitionError> {
        use crate::spec::NewFieldPolicy;
        let new: Vec<String> = found
            .columns
            .iter()
            .filter(|c| locked.get(&c.name).is_none())
            .map(|c| c.name.clone())
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let lock_file = format!("schemas/tables/{}.json", self.plan.name);
        match policy {
            NewFieldPolicy::Add => {
                tracing::warn!(
                    pipeline = %self.plan.name, partition = %day, %table, columns = %new.join(", "),
                    "new columns, not in {lock_file}: added to the table (on_new_field: add); record them with `etl schema lock`"
                );
            }
            NewFieldPolicy::Ignore => {
                tracing::info!(
                    pipeline = %self.plan.name, partition = %day, %table, columns = %new.join(", "),
                    "fields not in {lock_file} are left out (on_new_field: ignore)"
                );
                found.columns.retain(|c| locked.get(&c.name).is_some());
            }
            NewFieldPolicy::Fail => {
                return Err(PartitionError::fatal(format!(
                    "table `{table}` has columns that {lock_file} lacks for `{logical}`: {} (on_new_field: fail); \
                     review them, then record them with `etl schema lock --date {day}`, or set `on_new_field: add` or `ignore`",
                    new.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Creates or widens one table and replaces its partition `day` with
    /// the rows file; the rows the partition now holds.
    #[allow(clippy::too_many_arguments)]
    async fn load_table(
        &self,
        warehouse: &Warehouse,
        dataset: &str,
        table: &str,
        is_root: bool,
        day: NaiveDate,
        rows_path: &Path,
        rows: u64,
        encoded: Option<u64>,
        schema: &TableSchema,
        dir: &Path,
    ) -> anyhow::Result<u64> {
        match warehouse {
            Warehouse::Bigquery { sink, lock } => {
                let WarehousePlan::Bigquery {
                    partition_column,
                    clustering,
                    replace,
                    ..
                } = &self.plan.warehouse
                else {
                    unreachable!("a BigQuery warehouse has a BigQuery plan")
                };
                // Clustering names the root table's columns.
                let clustering: &[String] = if is_root { clustering } else { &[] };
                {
                    let _guard = lock.lock().await;
                    sink.ensure_table(dataset, table, schema, partition_column, clustering)
                        .await?;
                }
                Ok(sink
                    .replace_partition(
                        dataset,
                        table,
                        day,
                        rows_path,
                        rows,
                        schema,
                        partition_column,
                        *replace,
                    )
                    .await?)
            }
            Warehouse::Parquet { store } => {
                let dataset = format!("{dataset}{table}");
                if let Some(rows) = encoded {
                    // Encoded during the extract, against this schema.
                    crate::sink::parquet::publish(store, &dataset, day, &parquet_file(dir, table))
                        .await?;
                    return Ok(rows);
                }
                let local = parquet_file(dir, table);
                let scratch = local.parent().expect("a folder");
                std::fs::create_dir_all(scratch)?;
                Ok(crate::sink::parquet::replace_partition(
                    store, &dataset, day, rows_path, schema, scratch,
                )
                .await?)
            }
        }
    }

    /// The rendered root table: `(dataset, table)` for BigQuery; for
    /// Parquet the path's folder (ending in `/`, or empty) and last segment,
    /// so that child tables are its siblings.
    fn warehouse_names(
        &self,
        target: &PartitionTarget,
    ) -> Result<(String, String), PartitionError> {
        let vars = Vars::partition(
            &self.plan.name,
            &self.plan.source.collection,
            target.day,
            target.start.fixed_offset(),
            target.end.fixed_offset(),
        );
        let render = |t: &str| {
            self.templates
                .render(t, &vars)
                .map_err(PartitionError::fatal)
        };
        match &self.plan.warehouse {
            WarehousePlan::Bigquery { dataset, table, .. } => {
                Ok((render(dataset)?, render(table)?))
            }
            WarehousePlan::Parquet { path, .. } => {
                let path = render(path)?;
                let path = path.trim_end_matches('/');
                Ok(match path.rsplit_once('/') {
                    Some((folder, last)) => (format!("{folder}/"), last.to_owned()),
                    None => (String::new(), path.to_owned()),
                })
            }
        }
    }
}

/// The `_id` of a document, for messages.
fn doc_id(doc: &bson::RawDocument) -> String {
    match doc.get("_id") {
        Ok(Some(v)) => bson::Bson::try_from(v)
            .map(|b| b.to_string())
            .unwrap_or_else(|_| "?".into()),
        _ => "without _id".into(),
    }
}

/// Widens the inferred schema to fit the table that exists: a column keeps
/// the table's type when the data fits it (INT64 into FLOAT64, anything into
/// STRING); new columns are appended. A column whose data needs a wider type
/// than the table has is an error, because BigQuery cannot retype in place.
///
/// `null_only` names the columns that held only nulls this partition: their
/// STRING type is a placeholder, so they take whatever type the table has.
pub fn merge_schema(
    existing: Option<&TableSchema>,
    inferred: TableSchema,
    null_only: &[String],
) -> Result<TableSchema, PartitionError> {
    let Some(existing) = existing else {
        return Ok(inferred);
    };
    let mut out = existing.clone();
    for col in inferred.columns {
        match existing.get(&col.name) {
            None => out.columns.push(col),
            Some(_) if null_only.contains(&col.name) => {}
            Some(have)
                if have.kind == ColumnType::Record
                    && col.kind == ColumnType::Record
                    && have.repeated == col.repeated =>
            {
                // New fields are appended; known ones must fit.
                let inner = merge_schema(
                    Some(&TableSchema {
                        columns: have.fields.clone(),
                    }),
                    TableSchema {
                        columns: col.fields,
                    },
                    &[],
                )
                .map_err(|e| PartitionError::fatal(format!("in RECORD `{}`: {}", col.name, e.message)))?;
                let at = out
                    .columns
                    .iter()
                    .position(|c| c.name == col.name)
                    .expect("the column exists");
                out.columns[at].fields = inner.columns;
            }
            Some(have) if fits(col.kind, have.kind) && col.repeated == have.repeated => {}
            Some(have) => {
                return Err(PartitionError::fatal(format!(
                    "type conflict in column `{}`: the table has {}{}, this partition's data needs {}{}; \
                     declare the column's type in `flatten.columns` so every day converts to it",
                    col.name,
                    if have.repeated { "REPEATED " } else { "" },
                    have.kind.bigquery_name(),
                    if col.repeated { "REPEATED " } else { "" },
                    col.kind.bigquery_name()
                )))
            }
        }
    }
    Ok(out)
}

fn fits(data: ColumnType, column: ColumnType) -> bool {
    data == column
        || column == ColumnType::String
        || (data == ColumnType::Int64 && column == ColumnType::Float64)
        || (data == ColumnType::Numeric && column == ColumnType::Bignumeric)
}

/// Where pass 2 writes.
struct SpoolOutput {
    /// One rows file per table.
    rows: Vec<PathBuf>,
    /// Rejected documents.
    rejects: PathBuf,
    /// The tables' names, for reject records.
    names: Vec<String>,
}

/// What pass 2 wrote.
struct Flattening {
    /// Rows per table.
    rows: Vec<u64>,
    /// Documents rejected.
    rejected: u64,
    /// Per table, the rows of its local Parquet file when the rows were
    /// encoded as they were written; empty otherwise.
    encoded: Vec<u64>,
}

/// Pass 2: the spool's documents to NDJSON rows, one file per table; see
/// [`RowsOut`].
fn flatten_spool(
    tables: &Tables,
    spool: &Path,
    output: &SpoolOutput,
    schemas: &[TableSchema],
    day: NaiveDate,
) -> Result<Flattening, PartitionError> {
    let mut input = BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(spool).map_err(|e| io("cannot open", spool, e))?,
    );
    let mut out = RowsOut::create(tables, output, schemas, day, None)?;
    let mut doc = Vec::with_capacity(16 * 1024);
    loop {
        if input
            .fill_buf()
            .map_err(|e| io("cannot read", spool, e))?
            .is_empty()
        {
            break;
        }
        let mut len = [0u8; 4];
        input
            .read_exact(&mut len)
            .map_err(|e| io("cannot read", spool, e))?;
        let size = i32::from_le_bytes(len) as usize;
        doc.clear();
        doc.extend_from_slice(&len);
        doc.resize(size, 0);
        input
            .read_exact(&mut doc[4..])
            .map_err(|e| io("cannot read", spool, e))?;
        let raw = bson::RawDocument::from_bytes(&doc).map_err(|e| io("corrupt spool", spool, e))?;
        out.document(raw)?;
    }
    out.finish()
}

/// Pass 2's output files: each document's rows appended to its tables'
/// NDJSON files. A document with a type conflict under `on_type_conflict:
/// reject` goes whole, as canonical Extended JSON, to the rejects file with
/// the reason, and none of its rows are written.
struct RowsOut<'a> {
    tables: &'a Tables,
    output: &'a SpoolOutput,
    writers: Vec<crate::flatten::RowWriter<'a>>,
    day: NaiveDate,
    files: Vec<BufWriter<std::fs::File>>,
    rejects: Option<BufWriter<std::fs::File>>,
    bufs: Vec<Vec<u8>>,
    rows: Vec<u64>,
    rejected: u64,
    /// Under a Parquet warehouse, during the extract: each table's
    /// Parquet file, written instead of its NDJSON file.
    encoders: Vec<crate::sink::parquet::Encoder>,
}

impl<'a> RowsOut<'a> {
    /// `parquet`: each table's rows go into that Parquet file instead of
    /// its NDJSON file (the Parquet file is all a Parquet warehouse loads:
    /// the day's NDJSON would be a gigabyte of writes per million orders
    /// for nothing).
    fn create(
        tables: &'a Tables,
        output: &'a SpoolOutput,
        schemas: &[TableSchema],
        day: NaiveDate,
        parquet: Option<&[PathBuf]>,
    ) -> Result<Self, PartitionError> {
        let writers = tables.row_writers(schemas).map_err(|e| {
            PartitionError::fatal(format!("table `{}`: {}", output.names[e.table], e.source))
        })?;
        let (files, encoders) = match parquet {
            None => (
                output
                    .rows
                    .iter()
                    .map(|path| {
                        std::fs::File::create(path)
                            .map(|f| BufWriter::with_capacity(1 << 20, f))
                            .map_err(|e| io("cannot create", path, e))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Vec::new(),
            ),
            Some(parquet) => (
                Vec::new(),
                schemas
                    .iter()
                    .zip(parquet)
                    .map(|(schema, path)| {
                        if let Some(dir) = path.parent() {
                            std::fs::create_dir_all(dir)
                                .map_err(|e| io("cannot create", dir, e))?;
                        }
                        crate::sink::parquet::Encoder::create(schema, path, day)
                            .map_err(|e| PartitionError::fatal(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self {
            tables,
            output,
            writers,
            day,
            files,
            rejects: None,
            bufs: vec![Vec::with_capacity(16 * 1024); output.rows.len()],
            rows: vec![0; output.rows.len()],
            rejected: 0,
            encoders,
        })
    }

    /// One document's rows, or its reject record.
    fn document(&mut self, raw: &bson::RawDocument) -> Result<(), PartitionError> {
        let output = self.output;
        match self
            .tables
            .write_rows_with(raw, self.day, &mut self.writers, &mut self.bufs)
        {
            Ok(()) => {}
            Err(RowError {
                table,
                source: source @ FlattenError::Conflict { .. },
            }) => {
                let FlattenError::Conflict { path, .. } = &source else {
                    unreachable!("matched above")
                };
                let out = match &mut self.rejects {
                    Some(out) => out,
                    None => self.rejects.insert(BufWriter::new(
                        std::fs::File::create(&output.rejects)
                            .map_err(|e| io("cannot create", &output.rejects, e))?,
                    )),
                };
                let line = reject_record(
                    &output.names[table],
                    &self.tables.tables()[table].path,
                    path,
                    &source.to_string(),
                    raw,
                )?;
                out.write_all(&line)
                    .map_err(|e| io("cannot write", &output.rejects, e))?;
                self.rejected += 1;
                return Ok(());
            }
            Err(e) => {
                return Err(PartitionError::fatal(format!(
                    "flattening document {}: table `{}`: {}",
                    doc_id(raw),
                    output.names[e.table],
                    e.source
                )))
            }
        }
        for (buf, count) in self.bufs.iter().zip(&mut self.rows) {
            // Rows end in a newline and hold none inside.
            *count += memchr::memchr_iter(b'\n', buf).count() as u64;
        }
        for ((buf, file), path) in self.bufs.iter().zip(&mut self.files).zip(&output.rows) {
            if !buf.is_empty() {
                file.write_all(buf)
                    .map_err(|e| io("cannot write", path, e))?;
            }
        }
        for (buf, encoder) in self.bufs.iter().zip(&mut self.encoders) {
            encoder
                .rows(buf)
                .map_err(|e| PartitionError::fatal(e.to_string()))?;
        }
        for buf in &mut self.bufs {
            buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Flattening, PartitionError> {
        for (file, path) in self.files.iter_mut().zip(&self.output.rows) {
            file.flush().map_err(|e| io("cannot write", path, e))?;
        }
        if let Some(mut out) = self.rejects {
            out.flush()
                .map_err(|e| io("cannot write", &self.output.rejects, e))?;
        }
        let encoded = self
            .encoders
            .into_iter()
            .map(|e| e.finish().map_err(|e| PartitionError::fatal(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Flattening {
            rows: self.rows,
            rejected: self.rejected,
            encoded,
        })
    }
}

/// One line of `_rejects.jsonl`: where and why, then the whole document.
fn reject_record(
    table: &str,
    table_path: &str,
    path: &str,
    reason: &str,
    doc: &bson::RawDocument,
) -> Result<Vec<u8>, PartitionError> {
    // The path is relative to the table's row: give it in the document's
    // terms too, with `[*]` for each exploded array.
    let in_document = if table_path == "$" {
        path.to_owned()
    } else {
        format!("{table_path}[*]{}", &path[1..])
    };
    let mut line = Vec::with_capacity(doc.as_bytes().len() * 2);
    line.extend_from_slice(b"{\"table\":");
    crate::extjson::write_json_string(table, &mut line);
    line.extend_from_slice(b",\"path\":");
    crate::extjson::write_json_string(&in_document, &mut line);
    line.extend_from_slice(b",\"reason\":");
    crate::extjson::write_json_string(reason, &mut line);
    line.extend_from_slice(b",\"document\":");
    crate::extjson::write_canonical(doc, &mut line)
        .map_err(|e| PartitionError::fatal(format!("rejecting document {}: {e}", doc_id(doc))))?;
    line.extend_from_slice(b"}\n");
    Ok(line)
}

/// The raw archive being written: compressed, counted and hashed on the way
/// to disk.
struct RawArchive {
    path: PathBuf,
    inner: Encoder,
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Hashing>),
    Zstd(zstd::Encoder<'static, Hashing>),
    Plain(Hashing),
}

struct Hashing {
    file: BufWriter<std::fs::File>,
    hash: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl RawArchive {
    fn create(path: &Path, compression: Compression) -> Result<Self, PartitionError> {
        let file = std::fs::File::create(path).map_err(|e| io("cannot create", path, e))?;
        let sink = Hashing {
            file: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        // A gzip header carries no timestamp or name here (flate2 writes
        // mtime 0), so equal content gives equal bytes.
        let inner = match compression {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => {
                Encoder::Zstd(zstd::Encoder::new(sink, 3).map_err(|e| io("zstd", path, e))?)
            }
            Compression::None => Encoder::Plain(sink),
        };
        Ok(Self {
            path: path.to_owned(),
            inner,
        })
    }

    fn write(&mut self, line: &[u8]) -> Result<(), PartitionError> {
        let r = match &mut self.inner {
            Encoder::Gzip(w) => w.write_all(line),
            Encoder::Zstd(w) => w.write_all(line),
            Encoder::Plain(w) => w.write_all(line),
        };
        r.map_err(|e| io("cannot write", &self.path, e))
    }

    /// Closes the archive: its compressed size and sha256.
    fn finish(self) -> Result<(u64, String), PartitionError> {
        let path = self.path;
        let mut sink = match self.inner {
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
            Encoder::Plain(w) => Ok(w),
        }
        .map_err(|e| io("cannot write", &path, e))?;
        sink.flush().map_err(|e| io("cannot write", &path, e))?;
        Ok((sink.bytes, hex::encode(sink.hash.finalize())))
    }
}

/// The count that ran beside the cursor.
async fn join_count(
    counting: &mut tokio::task::JoinHandle<Result<u64, SourceError>>,
) -> Result<u64, PartitionError> {
    match counting.await {
        Ok(n) => Ok(n?),
        Err(e) => Err(PartitionError::fatal(format!("the count: {e}"))),
    }
}

/// Pass 2 during the extract, on a thread of its own, against the schemas
/// the day is expected to end with ([`PipelineRuntime::expected_schemas`]),
/// so that a day is not read back from the spool after its extract.
///
/// Pass 2's output is a function of the documents and of the schemas' set
/// of columns, so the rows are kept only when the day's schemas, known
/// after the extract, have exactly the expected columns ([`same_columns`]);
/// otherwise they are dropped and pass 2 runs over the spool. Under a
/// Parquet warehouse it encodes each table's Parquet file instead, whose
/// bytes also depend on the columns' order, so there the schemas must be
/// exactly the ones expected (the lock's order: see
/// [`crate::flatten::adopt_locked_types`]). It never fails
/// the partition: an error stops it, and pass 2 over the spool meets the
/// error again and reports it.
struct Speculation {
    expected: Vec<TableSchema>,
    /// Whether it writes Parquet files rather than NDJSON.
    parquet: bool,
    chunks: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: tokio::task::JoinHandle<Option<Flattening>>,
}

impl Speculation {
    /// `parquet`: under a Parquet warehouse, each table's local Parquet
    /// file, encoded as the rows are written.
    fn start(
        tables: &Arc<Tables>,
        output: &Arc<SpoolOutput>,
        expected: Vec<TableSchema>,
        parquet: Option<Vec<PathBuf>>,
        day: NaiveDate,
    ) -> Self {
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_parquet = parquet.is_some();
        let thread = tokio::task::spawn_blocking({
            let (tables, output, schemas, stop) = (
                tables.clone(),
                output.clone(),
                expected.clone(),
                stop.clone(),
            );
            move || {
                let mut out =
                    RowsOut::create(&tables, &output, &schemas, day, parquet.as_deref()).ok()?;
                while let Some(chunk) = rx.blocking_recv() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return None;
                    }
                    for doc in chunk_documents(&chunk) {
                        out.document(doc.ok()?).ok()?;
                    }
                }
                out.finish().ok()
            }
        });
        Self {
            expected,
            parquet: is_parquet,
            chunks: Some(chunks),
            stop,
            thread,
        }
    }

    /// Hands a chunk of the extract over; waits while the thread is
    /// [`CHUNKS_IN_FLIGHT`] chunks behind. Once the thread has stopped, the
    /// chunks go nowhere.
    async fn send(&mut self, chunk: Arc<Vec<u8>>) {
        if let Some(tx) = &self.chunks {
            if tx.send(chunk).await.is_err() {
                self.chunks = None;
            }
        }
    }

    /// The rows written, if the day's `schemas` are the ones expected and
    /// the thread got through every document. Parquet files (`encoded`
    /// Some for each table) are kept only if every schema is exactly the
    /// one expected, column order included: the order is the file's.
    async fn finish(mut self, schemas: &[TableSchema]) -> Option<(Flattening, Vec<Option<u64>>)> {
        self.chunks = None;
        let keep = self.expected.len() == schemas.len()
            && self.expected.iter().zip(schemas).all(|(a, b)| {
                if self.parquet {
                    a == b
                } else {
                    same_columns(a, b)
                }
            });
        if !keep {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let written = self.thread.await.ok().flatten().filter(|_| keep)?;
        let encoded = (0..schemas.len())
            .map(|i| written.encoded.get(i).copied())
            .collect();
        Some((written, encoded))
    }
}

/// Whether pass 2 writes the same rows against `a` as against `b`: the same
/// columns, in any order. Pass 2 finds a column by its name, and by its
/// name without case when that fails; with two names equal without case,
/// which one that finds depends on the order, so then only the same order
/// will do.
fn same_columns(a: &TableSchema, b: &TableSchema) -> bool {
    if a.columns.len() != b.columns.len() {
        return false;
    }
    let lowercase: std::collections::HashSet<String> = a
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    if lowercase.len() != a.columns.len() {
        return a == b;
    }
    sorted_columns(a) == sorted_columns(b)
}

fn sorted_columns(s: &TableSchema) -> Vec<&crate::table::Column> {
    let mut columns: Vec<&crate::table::Column> = s.columns.iter().collect();
    columns.sort_by(|x, y| x.name.cmp(&y.name));
    columns
}

/// Table `table`'s local Parquet file in staging folder `dir`.
fn parquet_file(dir: &Path, table: &str) -> PathBuf {
    crate::sink::parquet::local_file(&dir.join(format!("parquet-{table}")))
}

/// The documents of a chunk of concatenated BSON documents.
fn chunk_documents(
    chunk: &[u8],
) -> impl Iterator<Item = Result<&bson::RawDocument, bson::raw::Error>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = chunk.get(at..at + 4)?;
        let len = i32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
        let doc = chunk.get(at..at + len).map_or_else(
            || bson::RawDocument::from_bytes(&chunk[at..]),
            bson::RawDocument::from_bytes,
        );
        at = if doc.is_ok() { at + len } else { chunk.len() };
        Some(doc)
    })
}

/// Bytes of BSON handed to the writer thread at a time: large enough that
/// the hand-over costs nothing, small enough that memory stays bounded
/// (at most [`CHUNKS_IN_FLIGHT`] + 2 chunks whatever the partition size).
const CHUNK_BYTES: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

/// The extract's writer thread: appends chunks of concatenated BSON
/// documents to the spool, and each document's canonical Extended JSON
/// line to the compressed, hashed raw archive.
struct ExtractWriter {
    chunks: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
    thread: tokio::task::JoinHandle<Result<(u64, u64, String), PartitionError>>,
}

impl ExtractWriter {
    fn start(
        spool_path: &Path,
        raw_path: &Path,
        compression: Compression,
    ) -> Result<Self, PartitionError> {
        let mut spool = BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(spool_path).map_err(|e| io("cannot create", spool_path, e))?,
        );
        let mut raw = RawArchive::create(raw_path, compression)?;
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let spool_path = spool_path.to_owned();
        let thread = tokio::task::spawn_blocking(move || {
            let mut line = Vec::with_capacity(16 * 1024);
            let mut lines = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                spool
                    .write_all(&chunk)
                    .map_err(|e| io("cannot write", &spool_path, e))?;
                for doc in chunk_documents(&chunk) {
                    let doc =
                        doc.map_err(|e| PartitionError::fatal(format!("document #{lines}: {e}")))?;
                    line.clear();
                    crate::extjson::write_canonical(doc, &mut line)
                        .map_err(|e| PartitionError::fatal(format!("document #{lines}: {e}")))?;
                    line.push(b'\n');
                    raw.write(&line)?;
                    lines += 1;
                }
            }
            spool
                .flush()
                .map_err(|e| io("cannot write", &spool_path, e))?;
            drop(spool);
            let (bytes, sha256) = raw.finish()?;
            Ok((lines, bytes, sha256))
        });
        Ok(Self {
            chunks: Some(chunks),
            thread,
        })
    }

    /// Hands a chunk over; waits while the thread is [`CHUNKS_IN_FLIGHT`]
    /// chunks behind. A thread that failed reports its error here.
    async fn send(&mut self, chunk: Arc<Vec<u8>>) -> Result<(), PartitionError> {
        let sent = match &self.chunks {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped early, which only an error does: report it.
        self.chunks = None;
        match (&mut self.thread).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(PartitionError::fatal(
                "the extract's writer thread stopped early",
            )),
            Err(e) => Err(PartitionError::fatal(format!(
                "the extract's writer thread: {e}"
            ))),
        }
    }

    /// Waits for the thread: the lines written, the archive's compressed
    /// size and its sha256.
    async fn finish(mut self) -> Result<(u64, u64, String), PartitionError> {
        self.chunks = None;
        self.thread
            .await
            .map_err(|e| PartitionError::fatal(format!("the extract's writer thread: {e}")))?
    }
}

/// The manifest next to the raw object. Nothing in it depends on the clock,
/// so a rerun of unchanged data writes the same bytes.
fn manifest(
    plan: &PipelinePlan,
    target: &PartitionTarget,
    documents: u64,
    bytes: u64,
    sha256: &str,
    compression: Compression,
    rejected: u64,
) -> Vec<u8> {
    let filter = bson::Bson::Document(target.filter.clone()).into_canonical_extjson();
    let m = serde_json::json!({
        "pipeline": plan.name,
        "database": plan.source.database,
        "collection": plan.source.collection,
        "partition": {
            "day": target.day.to_string(),
            "start": target.start.to_rfc3339(),
            "end": target.end.to_rfc3339(),
            "field": plan.partition.field,
        },
        "filter": filter,
        "object": target.lake_path,
        "format": "ndjson-canonical-extjson",
        "compression": serde_json::to_value(compression).expect("an enum serializes"),
        "documents": documents,
        "bytes": bytes,
        "sha256": sha256,
        "rejected": rejected,
        "rejects_object": if rejected > 0 { Some(&target.rejects_path) } else { None },
        "spec_hash": plan.spec_hash,
        "engine_version": env!("CARGO_PKG_VERSION"),
    });
    let mut out = serde_json::to_vec_pretty(&m).expect("JSON");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn schema(cols: &[(&str, ColumnType)]) -> TableSchema {
        TableSchema {
            columns: cols
                .iter()
                .map(|(n, k)| Column {
                    name: (*n).into(),
                    kind: *k,
                    repeated: false,
                    fields: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn merge_keeps_wider_table_types_and_appends_new_columns() {
        let table = schema(&[
            ("_ds", ColumnType::Date),
            ("points", ColumnType::String),
            ("score", ColumnType::Float64),
        ]);
        let data = schema(&[
            ("_ds", ColumnType::Date),
            ("points", ColumnType::Int64),
            ("score", ColumnType::Int64),
            ("new", ColumnType::Bool),
        ]);
        let merged = merge_schema(Some(&table), data, &[]).unwrap();
        assert_eq!(
            merged,
            schema(&[
                ("_ds", ColumnType::Date),
                ("points", ColumnType::String),
                ("score", ColumnType::Float64),
                ("new", ColumnType::Bool)
            ])
        );
    }

    #[test]
    fn columns_null_all_day_take_the_table_type() {
        let table = schema(&[("points", ColumnType::Int64)]);
        let merged = merge_schema(
            Some(&table),
            schema(&[("points", ColumnType::String)]),
            &["points".to_owned()],
        )
        .unwrap();
        assert_eq!(merged, table);
    }

    #[test]
    fn merge_refuses_to_narrow_a_column() {
        let table = schema(&[("points", ColumnType::Int64)]);
        let e =
            merge_schema(Some(&table), schema(&[("points", ColumnType::String)]), &[]).unwrap_err();
        assert!(e.message.starts_with("type conflict in column `points`: the table has INT64, this partition's data needs STRING"), "{}", e.message);
    }

    #[test]
    fn raw_archives_are_deterministic_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut outs = Vec::new();
            for name in ["a", "b"] {
                let p = dir.path().join(name);
                let mut w = RawArchive::create(&p, c).unwrap();
                w.write(b"{\"a\":1}\n").unwrap();
                let (bytes, sha) = w.finish().unwrap();
                let data = std::fs::read(&p).unwrap();
                assert_eq!(bytes, data.len() as u64);
                assert_eq!(sha, hex::encode(Sha256::digest(&data)));
                outs.push(data);
            }
            assert_eq!(outs[0], outs[1], "{c:?}");
        }
    }
}
