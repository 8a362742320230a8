//! A pipeline's plan and the clients its days share, opened on first use:
//! the source, the lake, the warehouse. This is where a plan's
//! connections become a [`Source`] and a [`Warehouse`]; adding either
//! means one more arm here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tokio::sync::OnceCell;

use super::day::PartitionError;
use super::extract::{doc_id, DayReader};
use crate::credentials::{self, ServiceAccount};
use crate::flatten::Tables;
use crate::plan::{
    BigqueryConnection, PartitionTarget, PipelinePlan, Secrets, StoreConnection, WarehousePlan,
};
use crate::sink::bigquery::BigQuerySink;
use crate::sink::lake::Store;
use crate::sink::warehouse::{self, Table, Warehouse};
use crate::source::{MongoSource, ReadOptions, Source};
use crate::spec::LoadFrom;
use crate::table::TableSchema;
use crate::template::{Templates, Vars};

/// A pipeline's plan plus the clients its partitions share.
pub struct PipelineRuntime {
    /// The plan the clients are opened from.
    pub plan: PipelinePlan,
    templates: Arc<Templates>,
    source: OnceCell<Box<dyn Source>>,
    lake: OnceCell<Store>,
    warehouse: OnceCell<Box<dyn Warehouse>>,
    /// The credentials each opened connection used, by connection name.
    credentials: std::sync::Mutex<BTreeMap<String, credentials::Source>>,
    /// The schemas the last partition of this run ended with: the next
    /// one's guess when there is no better one
    /// ([`Self::expected_schemas`]).
    pub(super) last_schemas: std::sync::Mutex<Option<Vec<TableSchema>>>,
    /// Days read back from the lake's raw objects (`etl replay`) instead
    /// of MongoDB: the raw object and its manifest are left as they are.
    pub(super) replay: bool,
}

impl PipelineRuntime {
    /// A runtime of `plan`, its connections' fields rendered by
    /// `templates` (real secrets, decrypted when a client opens).
    pub fn new(plan: PipelinePlan, templates: Arc<Templates>) -> Self {
        Self {
            plan,
            templates,
            source: OnceCell::new(),
            lake: OnceCell::new(),
            warehouse: OnceCell::new(),
            credentials: Default::default(),
            last_schemas: Default::default(),
            replay: false,
        }
    }

    /// A runtime whose days are read back from the lake's raw objects, each
    /// checked against its manifest, and never from MongoDB (`etl replay`).
    pub fn replay(plan: PipelinePlan, templates: Arc<Templates>) -> Self {
        Self {
            replay: true,
            ..Self::new(plan, templates)
        }
    }

    /// A runtime whose days read from `source` instead of the plan's
    /// source connection.
    #[cfg(test)]
    pub(crate) fn with_source(
        plan: PipelinePlan,
        templates: Arc<Templates>,
        source: Box<dyn Source>,
    ) -> Self {
        let rt = Self::new(plan, templates);
        rt.source
            .set(source)
            .ok()
            .expect("a new runtime has no source");
        rt
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
        service_account(&self.templates, name)
    }

    fn render(&self, t: &str) -> Result<String, PartitionError> {
        self.templates
            .render(t, &Vars::default())
            .map_err(PartitionError::fatal)
    }

    /// Day `day`'s rendered names: lake objects, filter, warehouse target.
    pub(super) fn target(&self, day: NaiveDate) -> Result<PartitionTarget, PartitionError> {
        self.plan
            .target(day, &self.templates)
            .map_err(PartitionError::fatal)
    }

    /// The flatten rules, compiled when the plan was checked.
    pub(super) fn tables(&self) -> &Arc<Tables> {
        &self.plan.tables
    }

    pub(super) async fn source(&self) -> Result<&dyn Source, PartitionError> {
        let source = self
            .source
            .get_or_try_init(|| async {
                if self.replay {
                    let lake = self.lake().await?.clone();
                    return Ok(Box::new(crate::source::LakeSource::new(lake)) as Box<dyn Source>);
                }
                let source = self.mongo().await?;
                Ok::<Box<dyn Source>, PartitionError>(Box::new(source))
            })
            .await?;
        Ok(source.as_ref())
    }

    /// A new client of the plan's MongoDB collection, read as the spec
    /// says (`etl watch` has one of its own, beside the days', and
    /// `etl validate --connect` one to check the collection).
    pub async fn mongo(&self) -> Result<MongoSource, PartitionError> {
        let connection = &self.plan.source.connection;
        let uri = self.render(&connection.uri_template)?;
        let source = MongoSource::connect(
            &uri,
            &connection.app_name,
            &self.plan.source.database,
            &self.plan.source.collection,
        )
        .await?
        .with_read_options(ReadOptions {
            batch_size: self.plan.source.batch_size,
            max_time: self.plan.source.max_time_ms.map(Duration::from_millis),
            projection: self.plan.source.projection.clone(),
        });
        self.used(
            &self.plan.source.connection_name,
            credentials::Source::MongoUri(self.plan.source.connection.secret_names()),
        );
        Ok(source)
    }

    fn open_store(&self, name: &str, conn: &StoreConnection) -> Result<Store, PartitionError> {
        let (store, source) = open_store_connection(&self.templates, conn)?;
        self.used(name, source);
        Ok(store)
    }

    pub(super) async fn lake(&self) -> Result<&Store, PartitionError> {
        self.lake
            .get_or_try_init(|| async {
                self.open_store(&self.plan.lake.connection_name, &self.plan.lake.connection)
            })
            .await
    }

    pub(super) async fn warehouse(&self) -> Result<&dyn Warehouse, PartitionError> {
        let warehouse = self
            .warehouse
            .get_or_try_init(|| async {
                match &self.plan.warehouse {
                    WarehousePlan::Bigquery {
                        connection,
                        connection_name,
                        partition_column,
                        clustering,
                        replace,
                        load_from,
                        ..
                    } => {
                        let sink = self.open_bigquery(connection_name, connection).await?;
                        let mut bq = warehouse::bigquery::BigQuery::new(
                            sink,
                            partition_column,
                            clustering,
                            *replace,
                        );
                        if *load_from == LoadFrom::Bucket {
                            // The plan checked that the lake is a `gs://` bucket.
                            bq = bq.with_bucket(self.lake().await?.clone());
                        }
                        Ok::<Box<dyn Warehouse>, PartitionError>(Box::new(bq))
                    }
                    WarehousePlan::Parquet {
                        connection,
                        connection_name,
                        ..
                    } => Ok(Box::new(warehouse::parquet::ParquetDatasets::new(
                        self.open_store(connection_name, connection)?,
                    )) as Box<dyn Warehouse>),
                }
            })
            .await?;
        Ok(warehouse.as_ref())
    }

    /// The BigQuery project of the plan's warehouse, opened as a run opens
    /// it (one token fetched, so missing credentials fail here); None for
    /// a Parquet warehouse. `etl validate --connect` reads the tables'
    /// metadata through it.
    pub async fn bigquery(&self) -> Result<Option<BigQuerySink>, PartitionError> {
        match &self.plan.warehouse {
            WarehousePlan::Bigquery {
                connection,
                connection_name,
                ..
            } => Ok(Some(self.open_bigquery(connection_name, connection).await?)),
            WarehousePlan::Parquet { .. } => Ok(None),
        }
    }

    async fn open_bigquery(
        &self,
        connection_name: &str,
        connection: &BigqueryConnection,
    ) -> Result<BigQuerySink, PartitionError> {
        let BigqueryConnection {
            project,
            location,
            endpoint,
            credentials,
        } = connection;
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
        Ok(sink)
    }

    /// The store of the plan's lake, opened as a run opens it.
    pub async fn lake_store(&self) -> Result<Store, PartitionError> {
        Ok(self.lake().await?.clone())
    }

    /// The store of a Parquet warehouse, opened as a run opens it; None
    /// for BigQuery.
    pub fn parquet_store(&self) -> Result<Option<Store>, PartitionError> {
        match &self.plan.warehouse {
            WarehousePlan::Parquet {
                connection,
                connection_name,
                ..
            } => Ok(Some(self.open_store(connection_name, connection)?)),
            WarehousePlan::Bigquery { .. } => Ok(None),
        }
    }

    /// Pass 1 alone over day `day`'s documents, streamed from the source
    /// into `builders` (from [`Tables::schema_builders`]): what `etl
    /// schema lock` learns from data. Returns the documents read.
    pub async fn infer_day(
        &self,
        day: NaiveDate,
        builders: &mut [crate::flatten::SchemaBuilder],
    ) -> Result<u64, PartitionError> {
        let tables = self.tables().clone();
        self.scan_day(day, &mut |doc| {
            tables.infer(doc, builders).map_err(|e| {
                PartitionError::fatal(format!("flattening document {}: {e}", doc_id(doc)))
            })
        })
        .await
    }

    /// Calls `f` with each of day `day`'s documents, streamed in `_id`
    /// order, as the run reads them. Returns the documents read.
    pub async fn scan_day(
        &self,
        day: NaiveDate,
        f: &mut (dyn FnMut(&bson::RawDocument) -> Result<(), PartitionError> + Send),
    ) -> Result<u64, PartitionError> {
        let target = self.target(day)?;
        let mut reader = DayReader::open(self.source().await?, &target, false).await?;
        while let Some(doc) = reader.next().await? {
            f(doc)?;
        }
        Ok(reader.finish().await?.0)
    }

    /// The compiled flatten rules of every table.
    pub async fn flatten_tables(&self) -> Result<Arc<Tables>, PartitionError> {
        Ok(self.tables().clone())
    }

    /// The names of the pipeline's warehouse tables on day `day`, root
    /// first: what [`Self::preview`] takes the index of.
    pub fn table_names(&self, day: NaiveDate) -> Result<Vec<String>, PartitionError> {
        Ok(self.tables_on(day)?.into_iter().map(|t| t.name).collect())
    }

    /// The pipeline's warehouse tables on day `day` (their names may
    /// depend on it), root first, each with its dataset.
    pub fn tables_on(&self, day: NaiveDate) -> Result<Vec<Table>, PartitionError> {
        let target = self.target(day)?;
        self.warehouse_tables(&target, self.tables())
    }

    /// Up to `limit` rows of warehouse table `i` (of [`Self::table_names`])
    /// on day `day`, read back from the warehouse in key order, with the
    /// rows the day holds: what `etl preview` shows.
    pub async fn preview(
        &self,
        day: NaiveDate,
        i: usize,
        limit: usize,
    ) -> Result<Preview, PartitionError> {
        let target = self.target(day)?;
        let tables = self.warehouse_tables(&target, self.tables())?;
        let table = &tables[i];
        let order_by = self.tables().key_columns(i);
        let warehouse = self.warehouse().await?;
        let failed = |e: warehouse::WarehouseError| {
            PartitionError::fatal(format!("reading `{}` back: {e}", table.name))
        };
        let rows = warehouse
            .read_day(table, day, &order_by, limit)
            .await
            .map_err(failed)?;
        let count = warehouse.count_day(table, day).await.map_err(failed)?;
        let place = match &self.plan.warehouse {
            WarehousePlan::Bigquery { connection, .. } => format!(
                "BigQuery table `{}.{}.{}`",
                connection.project, table.dataset, table.name
            ),
            WarehousePlan::Parquet { connection, .. } => format!(
                "Parquet files in `{}/{}{}/dt={day}`",
                connection.url.trim_end_matches('/'),
                table.dataset,
                table.name
            ),
        };
        Ok(Preview {
            table: table.name.clone(),
            place,
            count,
            order_by,
            rows,
        })
    }

    /// Day `target`'s warehouse tables, root first: BigQuery tables of the
    /// rendered dataset; for Parquet, datasets in the rendered path's
    /// folder, so that child tables are its siblings.
    pub(super) fn warehouse_tables(
        &self,
        target: &PartitionTarget,
        tables: &Tables,
    ) -> Result<Vec<Table>, PartitionError> {
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
        let (dataset, root) = match &self.plan.warehouse {
            WarehousePlan::Bigquery { dataset, table, .. } => (render(dataset)?, render(table)?),
            WarehousePlan::Parquet { path, .. } => {
                let path = render(path)?;
                let path = path.trim_end_matches('/');
                match path.rsplit_once('/') {
                    Some((folder, last)) => (format!("{folder}/"), last.to_owned()),
                    None => (String::new(), path.to_owned()),
                }
            }
        };
        Ok(tables
            .names(&root)
            .into_iter()
            .enumerate()
            .map(|(i, name)| Table {
                dataset: dataset.clone(),
                name,
                root: i == 0,
            })
            .collect())
    }
}

/// The service account in secret `name`, decrypted now, in memory.
fn service_account(
    templates: &Templates,
    name: Option<&String>,
) -> Result<Option<ServiceAccount>, PartitionError> {
    let Some(name) = name else { return Ok(None) };
    let json = templates.secret(name).map_err(PartitionError::fatal)?;
    ServiceAccount::from_secret(name, json)
        .map(Some)
        .map_err(|e| PartitionError::fatal(format!("{e}; {}", credentials::KeyError::HINT)))
}

/// An object-store connection opened: its options rendered (secrets
/// decrypted now, in memory), its service account handed to
/// `object_store`; and where its credentials came from.
pub fn open_store_connection(
    templates: &Templates,
    conn: &StoreConnection,
) -> Result<(Store, credentials::Source), PartitionError> {
    let StoreConnection {
        url,
        options,
        credentials,
    } = conn;
    let mut rendered = BTreeMap::new();
    for (k, v) in options {
        let value = templates
            .render(v, &Vars::default())
            .map_err(PartitionError::fatal)?;
        rendered.insert(k.clone(), value);
    }
    let account = service_account(templates, credentials.as_ref())?;
    if let Some(a) = &account {
        // object_store takes the key's JSON itself: no file is written.
        rendered.insert(
            "google_service_account_key".to_owned(),
            a.json.expose().to_owned(),
        );
    }
    let source =
        credentials::Source::object_store(account.as_ref(), url, credentials::Adc::from_process);
    let store = Store::open(url, &rendered).map_err(|e| PartitionError::fatal(e.to_string()))?;
    Ok((store, source))
}

/// Rows of one table and day, read back from the warehouse.
#[derive(Debug)]
pub struct Preview {
    /// The table's name.
    pub table: String,
    /// Where the rows were read, for people.
    pub place: String,
    /// Rows the day holds.
    pub count: u64,
    /// The key columns the rows are ordered by.
    pub order_by: Vec<&'static str>,
    /// The rows read: the first of the day's, in key order.
    pub rows: warehouse::ReadRows,
}
