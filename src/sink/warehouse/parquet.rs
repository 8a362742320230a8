//! [`Warehouse`] as a Hive-style Parquet dataset in an object store:
//! `<dataset>/dt=2020-06-01/part-00000.parquet`, one folder per day.
//!
//! A day is replaced by writing its one file, then deleting any other
//! object in its folder: readers of the folder see the old file or the
//! new one under the same name. The count is read back from the footers
//! of the folder's files.

use std::path::Path;

use chrono::NaiveDate;

use super::{DayRows, ReadRows, Table, Warehouse, WarehouseError};
use crate::sink::lake::Store;
use crate::sink::parquet::{matching_values, read_rows, row_count, write_local, ParquetError};
use crate::table::TableSchema;

/// A pipeline's Parquet datasets, under one store.
#[derive(Debug, Clone)]
pub struct ParquetDatasets {
    store: Store,
}

impl ParquetDatasets {
    /// Datasets in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The dataset folder of `table`, relative to the store.
    fn dataset(table: &Table) -> String {
        format!("{}{}", table.dataset, table.name)
    }

    /// The folder of day `day`.
    fn folder(table: &Table, day: NaiveDate) -> String {
        format!("{}/dt={day}", Self::dataset(table).trim_matches('/'))
    }

    /// Replaces day `day` of `table` with the local Parquet file `local`.
    async fn publish(
        &self,
        table: &Table,
        day: NaiveDate,
        local: &Path,
    ) -> Result<(), ParquetError> {
        let folder = Self::folder(table, day);
        let target = format!("{folder}/part-00000.parquet");
        self.store.upload(local, &target).await?;
        for stale in self.store.list(&folder).await? {
            if stale != target {
                self.store.delete(&stale).await?;
            }
        }
        Ok(())
    }

    async fn count(&self, table: &Table, day: NaiveDate) -> Result<u64, ParquetError> {
        let mut total = 0;
        for rel in self.store.list(&Self::folder(table, day)).await? {
            total += row_count(&self.store, &rel).await?;
        }
        Ok(total)
    }
}

impl From<ParquetError> for WarehouseError {
    fn from(e: ParquetError) -> Self {
        let transient = match &e {
            ParquetError::Store(lake) => lake.is_transient(),
            ParquetError::Convert { .. } | ParquetError::Read { .. } => false,
        };
        WarehouseError::new(e, transient)
    }
}

#[async_trait::async_trait]
impl Warehouse for ParquetDatasets {
    fn wants_parquet(&self) -> bool {
        true
    }

    /// Each day's file carries its own schema; the dataset keeps none.
    async fn schema(&self, _table: &Table) -> Result<Option<TableSchema>, WarehouseError> {
        Ok(None)
    }

    /// Nothing to create: a day's folder appears with its file.
    async fn prepare(&self, _table: &Table, _schema: &TableSchema) -> Result<(), WarehouseError> {
        Ok(())
    }

    async fn replace_day(
        &self,
        table: &Table,
        day: NaiveDate,
        rows: &DayRows,
        schema: &TableSchema,
    ) -> Result<u64, WarehouseError> {
        let local = match &rows.parquet {
            Some(encoded) => encoded.clone(),
            None => {
                let (ndjson, schema) = (rows.ndjson.clone(), schema.clone());
                let local = ndjson.with_extension("parquet");
                let out = local.clone();
                tokio::task::spawn_blocking(move || write_local(&ndjson, &schema, &out, day))
                    .await
                    .map_err(|e| ParquetError::Convert {
                        day,
                        message: e.to_string(),
                    })??;
                local
            }
        };
        self.publish(table, day, &local).await?;
        Ok(self.count(table, day).await?)
    }

    async fn count_day(&self, table: &Table, day: NaiveDate) -> Result<u64, WarehouseError> {
        Ok(self.count(table, day).await?)
    }

    /// Reads `column` of every day's files: the cost of a scan of that
    /// column, paid only for changes that tell no day.
    async fn days_holding(
        &self,
        table: &Table,
        column: &str,
        values: &std::collections::BTreeSet<String>,
    ) -> Result<Option<super::DaysHolding>, WarehouseError> {
        let mut out = super::DaysHolding::new();
        let dataset = Self::dataset(table);
        for rel in self
            .store
            .list(dataset.trim_matches('/'))
            .await
            .map_err(ParquetError::from)?
        {
            let Some(day) = rel
                .split('/')
                .find_map(|p| p.strip_prefix("dt="))
                .and_then(|d| d.parse::<NaiveDate>().ok())
            else {
                continue;
            };
            for value in matching_values(&self.store, &rel, column, values).await? {
                out.entry(value).or_default().insert(day);
            }
        }
        Ok(Some(out))
    }

    /// The day's files in name order, each in the order it was written:
    /// the order the engine loaded, so `order_by` is already kept.
    async fn read_day(
        &self,
        table: &Table,
        day: NaiveDate,
        _order_by: &[&str],
        limit: usize,
    ) -> Result<ReadRows, WarehouseError> {
        let mut out = ReadRows::default();
        let mut files = self
            .store
            .list(&Self::folder(table, day))
            .await
            .map_err(ParquetError::from)?;
        files.sort();
        for rel in files {
            if out.rows.len() >= limit {
                break;
            }
            let (columns, rows) = read_rows(&self.store, &rel, limit - out.rows.len()).await?;
            if out.columns.is_empty() {
                out.columns = columns;
            }
            out.rows.extend(rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::*;
    use crate::spec::ColumnType;
    use object_store::memory::InMemory;
    use std::sync::Arc;

    fn memory() -> Store {
        Store::from_parts(
            Arc::new(InMemory::new()),
            object_store::path::Path::from(""),
            "memory://".into(),
        )
    }

    #[tokio::test]
    async fn keeps_the_warehouse_contract() {
        let scratch = tempfile::tempdir().unwrap();
        let datasets = ParquetDatasets::new(memory());
        let table = Table {
            dataset: "warehouse/".into(),
            name: "users".into(),
            root: true,
        };
        conformance::run(
            &datasets,
            &table,
            scratch.path(),
            conformance::Skip::NOTHING,
        )
        .await;
    }

    #[tokio::test]
    async fn values_arrive_with_their_types_and_stale_files_go() {
        let schema = TableSchema::of(&[
            ("_ds", ColumnType::Date),
            ("id", ColumnType::Int64),
            ("name", ColumnType::String),
            ("price", ColumnType::Numeric),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let ndjson = dir.path().join("rows.ndjson");
        std::fs::write(
            &ndjson,
            concat!(
                r#"{"_ds":"2020-06-01","id":9007199254740993,"name":"Zoë","price":"19.99"}"#,
                "\n",
                r#"{"_ds":"2020-06-01","id":2}"#,
                "\n",
            ),
        )
        .unwrap();
        let store = memory();
        store
            .put("users/dt=2020-06-01/part-00001.parquet", b"stale".to_vec())
            .await
            .unwrap();
        let datasets = ParquetDatasets::new(store.clone());
        let table = Table {
            dataset: String::new(),
            name: "users".into(),
            root: true,
        };
        let day = "2020-06-01".parse().unwrap();
        let rows = DayRows {
            ndjson,
            rows: 2,
            parquet: None,
        };
        assert_eq!(
            datasets
                .replace_day(&table, day, &rows, &schema)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store.list("users").await.unwrap(),
            vec!["users/dt=2020-06-01/part-00000.parquet"]
        );
        let bytes = store
            .get("users/dt=2020-06-01/part-00000.parquet")
            .await
            .unwrap()
            .unwrap();
        let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let ids = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 9_007_199_254_740_993);
        let price = batch
            .column(3)
            .as_any()
            .downcast_ref::<arrow_array::Decimal128Array>()
            .unwrap();
        assert_eq!(price.value_as_string(0), "19.990000000");
        assert!(batch.column(2).is_null(1));
    }
}
