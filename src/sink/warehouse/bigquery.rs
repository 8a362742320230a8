//! [`Warehouse`] on BigQuery: a table per output table, DAY-partitioned on
//! the partition column; the work is [`BigQuerySink`]'s.

use chrono::NaiveDate;
use tokio::sync::Mutex;

use super::{DayRows, ReadRows, Table, Warehouse, WarehouseError};
use crate::sink::bigquery::{BigQueryError, BigQuerySink};
use crate::spec::ReplaceMode;
use crate::table::TableSchema;

/// A pipeline's BigQuery tables.
#[derive(Debug)]
pub struct BigQuery {
    sink: BigQuerySink,
    partition_column: String,
    clustering: Vec<String>,
    replace: ReplaceMode,
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
            schema_changes: Mutex::new(()),
        }
    }
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
        Ok(self
            .sink
            .replace_partition(
                &table.dataset,
                &table.name,
                day,
                &rows.ndjson,
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
