//! `etl` moves MongoDB collections into a data lake and a warehouse, one
//! daily partition at a time, driven by one YAML spec per collection.
//!
//! # Layout
//!
//! The spec, checked and resolved:
//! - [`spec`]: the YAML contract. serde + schemars types for the project file
//!   (`etl.yaml`) and pipeline specs, loading with located diagnostics, and
//!   the semantic checks behind `etl validate`. Only this module touches YAML.
//! - [`plan`]: the validated, resolved form of a spec (no serde): connections
//!   of the active profile, partition ranges and the MongoDB filter of each
//!   day. Built by one pure `check()`: no network, no clock.
//! - [`template`]: the strict minijinja environment for paths, table names
//!   and connection fields (`ds`, `env()`, `secret()`, ...).
//! - [`lock`]: schema lock files, the reviewed columns of each output table.
//!
//! A day's data, in the order it flows:
//! - [`source`]: the [`source::Source`] contract (a day's documents and
//!   their count) and MongoDB, its implementation. **A new source** (a
//!   replay from the lake) implements it in a file beside `source/mongo.rs`.
//! - [`extjson`]: raw BSON as MongoDB Extended JSON (the lake's lines), the
//!   raw-BSON walk the flattener uses, and calendar arithmetic.
//! - [`flatten`]: pure and synchronous: documents into rows and their table
//!   schemas, one per output table (child tables from `explode`). One walk
//!   writes a row in either format of its row-format contract
//!   (`flatten/out.rs`): typed values for [`rows`], or NDJSON text (the
//!   readable row format of `etl test` and of the tests); the same walk
//!   infers the schema too when the engine knows the day's schemas ahead
//!   (`flatten/riding.rs`).
//! - [`table`]: output table schemas and the NDJSON row format.
//! - [`rows`]: the typed row path: the flattener's values straight into
//!   Arrow builders, one per column, then record batches of bounded size,
//!   then Parquet files, which both warehouses load (rules compiled once,
//!   then staged rows, builders, batches, encoders).
//! - [`sink`]: the lake (`sink::lake`: the store, the raw archive, the
//!   manifest) and the [`sink::warehouse::Warehouse`] contract (replace a
//!   day, count it, read it back for `etl preview`) with its conformance
//!   suite. **A new warehouse** implements that trait in
//!   `sink/warehouse/`, passes `sink::warehouse::conformance`, and gets one
//!   arm in `engine/runtime.rs`.
//! - [`engine`]: a run of many days (`engine/mod.rs`: retries, shutdown,
//!   the ledger) and one day as stages: `extract`, `schemas` (resolve),
//!   `rows` (flatten), the load, `reconcile`, in order in `engine/day.rs`.
//!   **A new step of a day** is a stage module there, called from `day.rs`.
//!   `engine/watch.rs` turns change streams into dirty days
//!   (`engine/dirty.rs`) that a run redoes; `engine/verify.rs` counts
//!   MongoDB against the ledger and finds the documents in no day.
//!
//! Around them:
//! - [`redact`]: display helpers that keep passwords out of every message.
//! - [`secrets`]: `age`-encrypted secrets, decrypted in memory when used.
//! - [`credentials`]: which Google credentials a connection uses: a
//!   service-account secret, an emulator, or application defaults.
//! - [`infer`]: `etl infer`'s profile of a collection and its draft spec.
//! - [`testing`]: `etl test`, a spec's flatten test cases run offline.
//! - [`demo`]: the deterministic demo-data generator behind `etl demo`.
//! - [`notify`]: after a run, an email and a Slack-shaped webhook saying
//!   how it went, as `notify:` in `etl.yaml` sets them.
//! - [`schedule`]: `etl schedule`'s daemon: each pipeline's cron, and a
//!   catch-up run when one falls due, on an injected timeline.
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
pub mod notify;
pub mod plan;
pub mod redact;
pub mod rows;
pub mod schedule;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod spec;
pub mod table;
pub mod template;
pub mod testing;
