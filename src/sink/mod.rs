//! Sinks: where partitions go.
//!
//! - [`lake`]: the raw archive and its manifest, through `object_store`.
//! - [`parquet`]: a Hive-style Parquet dataset, through `object_store`.
//! - [`bigquery`]: BigQuery tables, partition by partition.

pub mod bigquery;
pub mod lake;
pub mod parquet;
