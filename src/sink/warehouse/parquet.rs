//! [`Warehouse`] as a Hive-style Parquet dataset in an object store:
//! `<dataset>/dt=2020-06-01/part-00000.parquet`, one folder per day.
//!
//! A day is replaced by writing its one file, then deleting any other
//! object in its folder: readers of the folder see the old file or the
//! new one under the same name. The count is read back from the footers
//! of the folder's files.
//!
//! One schema per dataset (issue 29): a reader that takes a dataset's
//! schema from one of its files (a Hive-partitioned external table, a
//! `read_parquet` without union) must find every column in every file.
//! So the dataset keeps a schema of its own, as a BigQuery table does:
//! [`Warehouse::prepare`] widens it and [`Warehouse::schema`] reads it,
//! and the engine writes each day, an empty one included, with all of its
//! columns (null where the day has no value). It lives beside the
//! datasets, in `_etl/schemas/<table>/<version>.json`, never inside a
//! dataset's folder, where a reader would take it for data; each widening
//! creates the next version, conditionally, so two days widening at once
//! both land. A day with no rows in a dataset that has no file yet writes
//! none: its file could carry only `_ds` and the spec's declared columns,
//! a schema no later day has.

use std::path::Path;

use chrono::NaiveDate;

use super::{DayRows, ReadRows, Table, Warehouse, WarehouseError};
use crate::sink::lake::Store;
use crate::sink::parquet::{
    arrow_schema, local_schema, matching_values, read_rows, row_count, ParquetError,
};
use crate::spec::ColumnType;
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

    /// Deletes every object in day `day`'s folder.
    async fn clear(&self, table: &Table, day: NaiveDate) -> Result<(), ParquetError> {
        for stale in self.store.list(&Self::folder(table, day)).await? {
            self.store.delete(&stale).await?;
        }
        Ok(())
    }

    /// Whether the dataset of `table` holds any object (asked on empty
    /// days only: it lists the dataset).
    async fn has_files(&self, table: &Table) -> Result<bool, ParquetError> {
        let dataset = Self::dataset(table);
        Ok(!self.store.list(dataset.trim_matches('/')).await?.is_empty())
    }

    /// The folder of `table`'s schema versions: beside the datasets.
    fn schema_folder(table: &Table) -> String {
        format!("{}_etl/schemas/{}", table.dataset, table.name)
    }

    /// The newest version of `table`'s schema, and its number.
    async fn versioned_schema(
        &self,
        table: &Table,
    ) -> Result<Option<(u64, TableSchema)>, ParquetError> {
        let newest = self
            .store
            .list(&Self::schema_folder(table))
            .await?
            .into_iter()
            .filter_map(|rel| {
                let n = rel
                    .rsplit('/')
                    .next()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, rel))
            })
            .max();
        let Some((n, rel)) = newest else {
            return Ok(None);
        };
        let Some(bytes) = self.store.get(&rel).await? else {
            return Ok(None);
        };
        let schema = serde_json::from_slice(&bytes).map_err(|e| ParquetError::Read {
            file: self.store.display(&rel),
            message: format!("not a table schema: {e}"),
        })?;
        Ok(Some((n, schema)))
    }

    async fn count(&self, table: &Table, day: NaiveDate) -> Result<u64, ParquetError> {
        let mut total = 0;
        for rel in self.store.list(&Self::folder(table, day)).await? {
            total += row_count(&self.store, &rel).await?;
        }
        Ok(total)
    }
}

/// `have` with the columns of `schema` it lacks appended, and the fields
/// a RECORD of both lacks in `have` appended to it; None when `have`
/// lacks nothing. Types are never changed: the engine's merge has made
/// the day's schema fit the dataset's.
/// `name TYPE, ...`, for a message.
fn fields_text(fields: &arrow_schema::Fields) -> String {
    fields
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn widened(have: &TableSchema, schema: &TableSchema) -> Option<TableSchema> {
    let mut out = have.clone();
    let mut changed = false;
    for c in &schema.columns {
        match out.columns.iter_mut().find(|o| o.name == c.name) {
            None => {
                out.columns.push(c.clone());
                changed = true;
            }
            Some(o) if o.kind == ColumnType::Record && c.kind == ColumnType::Record => {
                let inner = widened(
                    &TableSchema {
                        columns: o.fields.clone(),
                    },
                    &TableSchema {
                        columns: c.fields.clone(),
                    },
                );
                if let Some(inner) = inner {
                    o.fields = inner.columns;
                    changed = true;
                }
            }
            Some(_) => {}
        }
    }
    changed.then_some(out)
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
    /// The dataset's schema: its newest version, which every file written
    /// since carries whole.
    async fn schema(&self, table: &Table) -> Result<Option<TableSchema>, WarehouseError> {
        Ok(self.versioned_schema(table).await?.map(|(_, s)| s))
    }

    /// Widens the dataset's schema by creating its next version; a version
    /// created meanwhile by another day is read and widened in turn. A
    /// day's folder appears with its file.
    async fn prepare(&self, table: &Table, schema: &TableSchema) -> Result<(), WarehouseError> {
        use crate::sink::lake::Created;
        loop {
            let (n, next) = match self.versioned_schema(table).await? {
                None => (1, schema.clone()),
                Some((n, have)) => match widened(&have, schema) {
                    Some(next) => (n + 1, next),
                    None => return Ok(()),
                },
            };
            let rel = format!("{}/{n:06}.json", Self::schema_folder(table));
            let bytes = serde_json::to_vec_pretty(&next).expect("a schema serializes");
            match self
                .store
                .create_or_put(&rel, bytes)
                .await
                .map_err(ParquetError::from)?
            {
                Created::Yes => return Ok(()),
                Created::AlreadyExists | Created::Precondition => continue,
            }
        }
    }

    async fn replace_day(
        &self,
        table: &Table,
        day: NaiveDate,
        rows: &DayRows,
        schema: &TableSchema,
    ) -> Result<u64, WarehouseError> {
        if rows.rows == 0 && !self.has_files(table).await? {
            self.clear(table, day).await?;
            return Ok(self.count(table, day).await?);
        }
        // A file of other columns would break the dataset's one schema
        // for every reader: it never gets in.
        let have = local_schema(&rows.parquet)?;
        let want = arrow_schema(schema);
        if have.fields() != want.fields() {
            return Err(ParquetError::Convert {
                day,
                message: format!(
                    "`{}` does not hold the columns of table `{}`: it has {}, the table {}",
                    rows.parquet.display(),
                    table.name,
                    fields_text(have.fields()),
                    fields_text(want.fields()),
                ),
            }
            .into());
        }
        self.publish(table, day, &rows.parquet).await?;
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
    use crate::table::Column;
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

    fn table(name: &str) -> Table {
        Table {
            dataset: "warehouse/".into(),
            name: name.into(),
            root: true,
        }
    }

    /// Issue 29, part 7: the dataset's schema only grows, by versions
    /// beside the dataset, and days widening it at once all land.
    #[tokio::test]
    async fn the_schema_grows_by_versions_beside_the_dataset() {
        let store = memory();
        let datasets = ParquetDatasets::new(store.clone());
        let users = table("users");
        assert_eq!(datasets.schema(&users).await.unwrap(), None);
        let narrow = TableSchema::of(&[("_ds", ColumnType::Date), ("id", ColumnType::Int64)]);
        datasets.prepare(&users, &narrow).await.unwrap();
        datasets.prepare(&users, &narrow).await.unwrap();
        // Columns the schema has, of another type or missing, change nothing.
        datasets
            .prepare(&users, &TableSchema::of(&[("id", ColumnType::String)]))
            .await
            .unwrap();
        assert_eq!(datasets.schema(&users).await.unwrap(), Some(narrow.clone()));
        let mut address = Column::new("address", ColumnType::Record);
        address.fields = vec![Column::new("city", ColumnType::String)];
        let mut wide = TableSchema::of(&[("_ds", ColumnType::Date), ("name", ColumnType::String)]);
        wide.columns.push(address.clone());
        let days: Vec<TableSchema> = (0..4)
            .map(|i| {
                let mut s = wide.clone();
                s.columns[2]
                    .fields
                    .push(Column::new(format!("f{i}"), ColumnType::Int64));
                s
            })
            .collect();
        futures::future::try_join_all(days.iter().map(|s| datasets.prepare(&users, s)))
            .await
            .unwrap();
        let now = datasets.schema(&users).await.unwrap().unwrap();
        let names: Vec<&str> = now.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_ds", "id", "name", "address"]);
        let mut fields: Vec<&str> = now.columns[3]
            .fields
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            ["city", "f0", "f1", "f2", "f3"],
            "no widening is lost"
        );
        let listed = store.list("warehouse").await.unwrap();
        assert!(
            listed
                .iter()
                .all(|rel| rel.starts_with("warehouse/_etl/schemas/users/")),
            "{listed:?}"
        );
        assert_eq!(
            datasets.schema(&table("other")).await.unwrap(),
            None,
            "each table has its own"
        );
    }

    /// A day without rows writes a file of the dataset's schema, but no
    /// file while the dataset has none: that file would carry only the
    /// columns a day without documents knows of.
    #[tokio::test]
    async fn an_empty_day_writes_no_file_before_the_first() {
        let scratch = tempfile::tempdir().unwrap();
        let store = memory();
        let datasets = ParquetDatasets::new(store.clone());
        let users = table("users");
        let schema = conformance::schema(false);
        let none = conformance::rows(scratch.path(), "empty", &schema, &[], None);
        let (d1, d2, d3) = (
            "2020-06-01".parse().unwrap(),
            "2020-06-02".parse().unwrap(),
            "2020-06-03".parse().unwrap(),
        );
        datasets.prepare(&users, &schema).await.unwrap();
        assert_eq!(
            datasets
                .replace_day(&users, d1, &none, &schema)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store.list("warehouse/users").await.unwrap(),
            Vec::<String>::new()
        );
        let one = conformance::rows(
            scratch.path(),
            "one",
            &schema,
            &[r#"{"_ds":"2020-06-02","id":1}"#.to_owned()],
            None,
        );
        assert_eq!(
            datasets
                .replace_day(&users, d2, &one, &schema)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            datasets
                .replace_day(&users, d3, &none, &schema)
                .await
                .unwrap(),
            0
        );
        let (columns, rows) = read_rows(
            &store,
            "warehouse/users/dt=2020-06-03/part-00000.parquet",
            10,
        )
        .await
        .unwrap();
        assert_eq!(columns, ["_ds", "id", "name"]);
        assert!(rows.is_empty());
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
        let rows = conformance::rows(
            dir.path(),
            "rows",
            &schema,
            &[
                r#"{"_ds":"2020-06-01","id":9007199254740993,"name":"Zoë","price":"19.99"}"#
                    .to_owned(),
                r#"{"_ds":"2020-06-01","id":2}"#.to_owned(),
            ],
            None,
        );
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
