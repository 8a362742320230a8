//! `etl` moves MongoDB collections into a data lake and a warehouse, one
//! daily partition at a time, driven by one YAML spec per collection.
//!
//! # Layout
//!
//! - [`spec`]: the YAML contract. serde + schemars types for the project file
//!   (`etl.yaml`) and pipeline specs, loading with located diagnostics, and
//!   the semantic checks behind `etl validate`. Only this module touches YAML.
//! - [`plan`]: the validated, resolved form of a spec (no serde): connections
//!   of the active profile, partition ranges and the MongoDB filter of each
//!   day. Built by one pure `check()`: no network, no clock.
//! - [`template`]: the strict minijinja environment for paths, table names
//!   and connection fields (`ds`, `env()`, `secret()`, ...).
//! - [`table`]: output table schemas and the NDJSON row format between the
//!   flattener and the sinks.
//! - [`redact`]: display helpers that keep passwords out of every message.
//! - [`secrets`]: `age`-encrypted secrets, decrypted in memory when used.
//! - [`credentials`]: which Google credentials a connection uses: a
//!   service-account secret, an emulator, or application defaults.
//! - [`source`]: the MongoDB reader: raw documents off a cursor, retries
//!   classified.
//! - [`extjson`]: MongoDB Extended JSON written straight from raw BSON (the lake's lines).
//! - [`flatten`]: pure and synchronous: documents into NDJSON rows and their
//!   table schemas, one per output table (child tables from `explode`).
//! - [`infer`]: `etl infer`'s profile of a collection and its draft spec.
//! - [`lock`]: schema lock files, the reviewed columns of each output table.
//! - [`testing`]: `etl test`, a spec's flatten test cases run offline.
//! - [`sink`]: the lake (`object_store`), BigQuery, and Parquet datasets.
//! - [`engine`]: the partition loop: extract, archive, flatten, load,
//!   reconcile, and the run ledger.
//! - [`demo`]: the deterministic demo-data generator behind `etl demo`.
//! - [`cli`]: clap commands and diagnostic rendering; `main.rs` stays thin.
//! - [`exit`]: the process exit codes, in one place.

pub mod cli;
pub mod credentials;
pub mod demo;
pub mod engine;
pub mod exit;
pub mod extjson;
pub mod flatten;
pub mod infer;
pub mod lock;
pub mod plan;
pub mod redact;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod spec;
pub mod table;
pub mod template;
pub mod testing;
