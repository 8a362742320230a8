//! BigQuery tables, partition by partition: see [`sink`].

mod sink;

pub use sink::*;
