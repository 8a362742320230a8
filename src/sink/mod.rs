//! Sinks: where partitions go.
//!
//! - [`lake`]: the raw archive and its manifest, through `object_store`.
//! - [`warehouse`]: the contract every warehouse keeps, and its
//!   implementations: BigQuery, and Parquet datasets in an object store.
//! - [`bigquery`]: the BigQuery client behind the BigQuery warehouse.
//! - [`parquet`]: the Parquet encoding behind the Parquet warehouse.

pub mod bigquery;
pub mod lake;
pub mod parquet;
pub mod warehouse;
