//! The warehouse contract: where a day's flat rows go.
//!
//! The engine knows a warehouse only through [`Warehouse`]. An
//! implementation promises, for every table and day:
//!
//! 1. **The day is replaced atomically.** After [`Warehouse::replace_day`]
//!    the day holds exactly the rows given, and no reader sees a mix of
//!    the old and the new rows. A replace that fails leaves the day as it
//!    was.
//! 2. **The count is the target's.** `replace_day` returns the rows the
//!    day holds afterwards, read back from the warehouse, not the rows it
//!    was handed: the engine reconciles against it, so it must be able to
//!    differ.
//! 3. **Reruns are idempotent.** The same rows replaced twice leave the
//!    same day; other days are never touched.
//! 4. **Errors say whether to retry.** [`WarehouseError::is_transient`] is
//!    true only when running the same step again may succeed.
//!
//! [`conformance`] checks every clause against a live implementation; the
//! Parquet dataset runs it in the unit tests, BigQuery on the emulator in
//! `tests/stack_bigquery.rs`. Adding a warehouse means implementing the
//! trait, opening it in `engine::runtime`, and passing that suite.
//! [`Warehouse::read_day`] is how `etl preview` reads rows back; the suite
//! checks that it returns the rows a replace loaded.
//!
//! - [`bigquery`]: BigQuery tables, one DAY partition per day.
//! - [`parquet`]: a Hive-style Parquet dataset in an object store.

pub mod bigquery;
pub mod conformance;
pub mod parquet;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::NaiveDate;

use crate::table::TableSchema;

/// One output table of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Where tables live: a BigQuery dataset; for Parquet the folder of
    /// the pipeline's datasets (ending in `/`, or empty).
    pub dataset: String,
    /// The table: its BigQuery table id, or its dataset's last segment.
    pub name: String,
    /// The pipeline's root table, rather than a child table of an
    /// exploded array (clustering applies to the root table only).
    pub root: bool,
}

/// A day's rows for one table: a local Parquet file of the schema they
/// are loaded with, as the row path ([`crate::rows`]) writes it.
#[derive(Debug, Clone)]
pub struct DayRows {
    /// The Parquet file.
    pub parquet: PathBuf,
    /// Rows in the file.
    pub rows: u64,
}

/// Rows read back from a day: its columns in the table's order, and each
/// row in the format of [`crate::table`] (a NULL column left out), as a
/// load would take them again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadRows {
    /// The table's columns, in order.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Why a warehouse step failed.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct WarehouseError {
    source: Box<dyn std::error::Error + Send + Sync>,
    transient: bool,
}

impl WarehouseError {
    /// A failure, and whether running the step again may succeed.
    pub fn new(
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        transient: bool,
    ) -> Self {
        Self {
            source: source.into(),
            transient,
        }
    }

    /// Whether running the same step again may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// Per value, the days whose rows hold it: see [`Warehouse::days_holding`].
pub type DaysHolding = BTreeMap<String, BTreeSet<NaiveDate>>;

/// Where a pipeline's rows go.
///
/// # Contract
///
/// For every table and day: [`Self::replace_day`] replaces the day
/// atomically (a failed replace leaves it as it was), returns the rows the
/// day holds read back from the warehouse, and is idempotent; other days
/// are never touched; [`Self::read_day`] gives back the rows the last
/// replace loaded; [`Self::prepare`] is idempotent and only adds
/// columns; every error says by [`WarehouseError::is_transient`] whether a
/// retry may help. [`conformance::run`] checks each clause.
#[async_trait::async_trait]
pub trait Warehouse: Send + Sync {
    /// The table's columns, or None when it does not exist or the
    /// warehouse keeps no schema of its own.
    async fn schema(&self, table: &Table) -> Result<Option<TableSchema>, WarehouseError>;

    /// Creates the table, or widens it to every column of `schema`.
    /// Idempotent; never drops or retypes a column.
    async fn prepare(&self, table: &Table, schema: &TableSchema) -> Result<(), WarehouseError>;

    /// Replaces day `day` of the table with `rows` of `schema` (already
    /// [prepared](Self::prepare)); returns the rows the day now holds,
    /// read back from the warehouse.
    async fn replace_day(
        &self,
        table: &Table,
        day: NaiveDate,
        rows: &DayRows,
        schema: &TableSchema,
    ) -> Result<u64, WarehouseError>;

    /// The rows day `day` of the table holds.
    async fn count_day(&self, table: &Table, day: NaiveDate) -> Result<u64, WarehouseError>;

    /// The days of the table holding a row whose `column`, as text, is one
    /// of `values`, by value: what `etl watch` asks when a change does not
    /// tell its document's day (a delete without a pre-image). None when
    /// this warehouse cannot say.
    async fn days_holding(
        &self,
        _table: &Table,
        _column: &str,
        _values: &BTreeSet<String>,
    ) -> Result<Option<DaysHolding>, WarehouseError> {
        Ok(None)
    }

    /// Up to `limit` rows of day `day`, read back from the warehouse in
    /// the order of the columns `order_by` that the table has. A dataset
    /// that keeps its rows in the order they were loaded (Parquet) may
    /// return that order: the engine loads a day sorted by its keys. A day
    /// or a table that does not exist reads as no rows (and perhaps no
    /// columns).
    async fn read_day(
        &self,
        table: &Table,
        day: NaiveDate,
        order_by: &[&str],
        limit: usize,
    ) -> Result<ReadRows, WarehouseError>;
}
