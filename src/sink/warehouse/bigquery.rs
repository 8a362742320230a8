//! [`Warehouse`] on BigQuery: a table per output table, DAY-partitioned on
//! the partition column; the work is [`BigQuerySink`]'s.
//!
//! A day's rows are the Parquet file the row path wrote ([`DayRows`]),
//! loaded against the schema of the lock.
//!
//! With a bucket ([`BigQuery::with_bucket`], `load_from: bucket`) a day's
//! Parquet file is staged in the lake's bucket under
//! `_load/<dataset>/<table>/<day>/<attempt>.parquet` and loaded from there,
//! then deleted whatever the load did. A process that dies in between
//! leaves an object that nothing reads; the next attempt at the day
//! deletes whatever is under its folder before staging its own.

use chrono::NaiveDate;
use tokio::sync::Mutex;

use super::{DayRows, ReadRows, Table, Warehouse, WarehouseError};
use crate::sink::bigquery::{BigQueryError, BigQuerySink, LoadSource};
use crate::sink::lake::{LakeError, Store};
use crate::spec::ReplaceMode;
use crate::table::TableSchema;

/// A pipeline's BigQuery tables.
#[derive(Debug)]
pub struct BigQuery {
    sink: BigQuerySink,
    partition_column: String,
    clustering: Vec<String>,
    replace: ReplaceMode,
    /// Where rows are staged for BigQuery to read them (a `gs://` lake);
    /// None sends them in the load request.
    bucket: Option<Store>,
    /// Table creation and schema changes happen one day at a time.
    schema_changes: Mutex<()>,
}

impl BigQuery {
    /// Tables in `sink`'s project, partitioned on `partition_column`; the
    /// root table is clustered on `clustering`.
    pub fn new(
        sink: BigQuerySink,
        partition_column: &str,
        clustering: &[String],
        replace: ReplaceMode,
    ) -> Self {
        Self {
            sink,
            partition_column: partition_column.to_owned(),
            clustering: clustering.to_vec(),
            replace,
            bucket: None,
            schema_changes: Mutex::new(()),
        }
    }

    /// Loads from `bucket` (a `gs://` store, the lake) instead of sending
    /// the rows in the request.
    pub fn with_bucket(mut self, bucket: Store) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// Stages `rows` in `bucket`, replaces the day from there, and deletes
    /// the staged object.
    async fn replace_day_from_bucket(
        &self,
        bucket: &Store,
        table: &Table,
        day: NaiveDate,
        rows: &DayRows,
        schema: &TableSchema,
    ) -> Result<u64, WarehouseError> {
        let dir = stage_dir(&table.dataset, &table.name, day);
        // What an attempt that died before its clean-up left.
        for left in bucket.list(&dir).await.map_err(lake_error)? {
            bucket.delete(&left).await.map_err(lake_error)?;
            tracing::info!(object = %bucket.display(&left), "staged rows of an earlier attempt deleted");
        }
        let rel = format!("{dir}/{}.parquet", uuid::Uuid::new_v4().simple());
        let uri = bucket.gs_uri(&rel).ok_or_else(|| {
            WarehouseError::new(
                format!(
                    "`load_from: bucket` needs a `gs://` lake, not `{}`",
                    bucket.display("")
                ),
                false,
            )
        })?;
        bucket
            .upload(&rows.parquet, &rel)
            .await
            .map_err(lake_error)?;
        let loaded = self
            .sink
            .replace_partition_from(
                &table.dataset,
                &table.name,
                day,
                LoadSource::Uri(&uri),
                rows.rows,
                schema,
                &self.partition_column,
                self.replace,
            )
            .await;
        if let Err(e) = bucket.delete(&rel).await {
            tracing::warn!(error = %e, object = %uri, "cannot delete the staged rows; the next run of the day does");
        }
        Ok(loaded?)
    }
}

/// The folder of a day's staged rows in the bucket: one per table and day,
/// so an attempt knows what an earlier one may have left.
fn stage_dir(dataset: &str, table: &str, day: NaiveDate) -> String {
    format!("_load/{dataset}/{table}/{day}")
}

fn lake_error(e: LakeError) -> WarehouseError {
    let transient = e.is_transient();
    WarehouseError::new(e, transient)
}

impl From<BigQueryError> for WarehouseError {
    fn from(e: BigQueryError) -> Self {
        let transient = e.is_transient();
        WarehouseError::new(e, transient)
    }
}

#[async_trait::async_trait]
impl Warehouse for BigQuery {
    async fn schema(&self, table: &Table) -> Result<Option<TableSchema>, WarehouseError> {
        Ok(self.sink.table_schema(&table.dataset, &table.name).await?)
    }

    async fn prepare(&self, table: &Table, schema: &TableSchema) -> Result<(), WarehouseError> {
        let clustering: &[String] = if table.root { &self.clustering } else { &[] };
        let _one_at_a_time = self.schema_changes.lock().await;
        Ok(self
            .sink
            .ensure_table(
                &table.dataset,
                &table.name,
                schema,
                &self.partition_column,
                clustering,
            )
            .await?)
    }

    async fn replace_day(
        &self,
        table: &Table,
        day: NaiveDate,
        rows: &DayRows,
        schema: &TableSchema,
    ) -> Result<u64, WarehouseError> {
        // A day without rows sends no load job, so nothing is staged.
        if let (Some(bucket), true) = (&self.bucket, rows.rows > 0) {
            return self
                .replace_day_from_bucket(bucket, table, day, rows, schema)
                .await;
        }
        Ok(self
            .sink
            .replace_partition(
                &table.dataset,
                &table.name,
                day,
                &rows.parquet,
                rows.rows,
                schema,
                &self.partition_column,
                self.replace,
            )
            .await?)
    }

    async fn read_day(
        &self,
        table: &Table,
        day: NaiveDate,
        order_by: &[&str],
        limit: usize,
    ) -> Result<ReadRows, WarehouseError> {
        // Ordering by a column the table lacks would fail the query.
        let Some(schema) = self.sink.table_schema(&table.dataset, &table.name).await? else {
            return Ok(ReadRows::default());
        };
        let order_by: Vec<&str> = order_by
            .iter()
            .copied()
            .filter(|c| schema.get(c).is_some())
            .collect();
        Ok(self
            .sink
            .read_partition(
                &table.dataset,
                &table.name,
                day,
                &self.partition_column,
                &order_by,
                limit,
            )
            .await?)
    }

    async fn days_holding(
        &self,
        table: &Table,
        column: &str,
        values: &std::collections::BTreeSet<String>,
    ) -> Result<Option<super::DaysHolding>, WarehouseError> {
        Ok(Some(
            self.sink
                .days_holding(
                    &table.dataset,
                    &table.name,
                    &self.partition_column,
                    column,
                    values,
                )
                .await?,
        ))
    }

    async fn count_day(&self, table: &Table, day: NaiveDate) -> Result<u64, WarehouseError> {
        Ok(self
            .sink
            .count_partition(&table.dataset, &table.name, day, &self.partition_column)
            .await?)
    }
}
