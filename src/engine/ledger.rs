//! The run ledger: one JSON record per pipeline and day, in an object store.
//!
//! Keeping it in an object store (a local folder by default) lets several
//! machines share it by pointing `state.url` at one bucket. A record is
//! written once a partition has finished, successfully or not, or was
//! interrupted by a shutdown request; a crash leaves the day "missing".
//! Either way the next catch-up run does it again.
//!
//! A record that does not parse is an error naming it
//! ([`LakeError::Corrupt`]), never a missing day: `etl status` shows it
//! `corrupt`, and a run refuses to guess what the day holds.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::sink::lake::{LakeError, Store};

/// How a partition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Extracted, archived, loaded and reconciled.
    Done,
    /// Something failed; `error` says what.
    Failed,
    /// Stopped by a shutdown request (Ctrl-C, SIGTERM) before it ended;
    /// its staging folder was removed, and the next run does it again.
    Interrupted,
}

/// What the ledger knows of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Pipeline name.
    pub pipeline: String,
    /// The day.
    pub day: NaiveDate,
    /// How it ended.
    pub status: Status,
    /// The spec hash the partition ran with.
    pub spec_hash: String,
    /// The engine version.
    pub engine_version: String,
    /// The source's own count of the day's documents: `countDocuments` over
    /// the partition filter under `source.count` (a replay: its manifest's
    /// count). None without one; records written before 0.x held the
    /// documents read here. `raw_lines` are the documents read.
    pub source_count: Option<u64>,
    /// Lines in the raw archive: the documents read, each loaded or
    /// rejected.
    pub raw_lines: Option<u64>,
    /// Compressed bytes of the raw archive.
    pub raw_bytes: Option<u64>,
    /// sha256 of the compressed raw archive.
    pub raw_sha256: Option<String>,
    /// Rows now in the warehouse partition.
    pub warehouse_rows: Option<u64>,
    /// Documents sent to the partition's `_rejects` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<u64>,
    /// Values that did not convert to their columns' types, so that their
    /// rows hold NULL there, by column (`table.column` in a child table);
    /// each is a line of the day's `_unconverted.jsonl` in the lake.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unconverted: std::collections::BTreeMap<String, u64>,
    /// Rows now in each child table's partition, by table.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub child_rows: std::collections::BTreeMap<String, u64>,
    /// The raw object's URL.
    pub lake_object: String,
    /// The warehouse target.
    pub warehouse_target: String,
    /// When the partition started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// The cause of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PartitionRecord {
    /// Wall time of the partition.
    pub fn duration(&self) -> chrono::Duration {
        self.finished_at - self.started_at
    }
}

/// The ledger at the project's state location.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
}

impl Ledger {
    /// A ledger kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn key(pipeline: &str, day: NaiveDate) -> String {
        format!("ledger/{pipeline}/{day}.json")
    }

    /// The record of one day, if any.
    pub async fn get(
        &self,
        pipeline: &str,
        day: NaiveDate,
    ) -> Result<Option<PartitionRecord>, LakeError> {
        self.store
            .get_json(&Self::key(pipeline, day), |e| {
                (
                    format!("the ledger record of `{pipeline}` {day} does not parse: {e}"),
                    format!(
                        "delete it to have the next run redo the day from MongoDB (its counts and timings are lost), or restore it from a backup; a run of `{pipeline}` stops until then"
                    ),
                )
            })
            .await
    }

    /// Writes a record, replacing the day's previous one.
    pub async fn put(&self, record: &PartitionRecord) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(record).expect("a record serializes");
        self.store
            .put(&Self::key(&record.pipeline, record.day), bytes)
            .await
    }

    /// Every record of a pipeline, by day; the first record that does not
    /// parse is an error.
    pub async fn list(
        &self,
        pipeline: &str,
    ) -> Result<BTreeMap<NaiveDate, PartitionRecord>, LakeError> {
        let (records, mut corrupt) = self.scan(pipeline).await?;
        match corrupt.pop_first() {
            Some((_, e)) => Err(e),
            None => Ok(records),
        }
    }

    /// Every record of a pipeline, by day, and apart from them the days
    /// whose record does not parse, with its error: `etl status`.
    pub async fn scan(
        &self,
        pipeline: &str,
    ) -> Result<
        (
            BTreeMap<NaiveDate, PartitionRecord>,
            BTreeMap<NaiveDate, LakeError>,
        ),
        LakeError,
    > {
        let (mut out, mut corrupt) = (BTreeMap::new(), BTreeMap::new());
        for rel in self.store.list(&format!("ledger/{pipeline}")).await? {
            let Some(day) = rel
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|d| d.parse().ok())
            else {
                continue;
            };
            match self.get(pipeline, day).await {
                Ok(Some(r)) => {
                    out.insert(day, r);
                }
                Ok(None) => {}
                Err(e @ LakeError::Corrupt { .. }) => {
                    corrupt.insert(day, e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, corrupt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::sync::Arc;

    fn record(day: &str, status: Status) -> PartitionRecord {
        let t: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
        PartitionRecord {
            unconverted: Default::default(),
            pipeline: "users".into(),
            day: day.parse().unwrap(),
            status,
            spec_hash: "h".into(),
            engine_version: "0".into(),
            source_count: Some(3),
            raw_lines: Some(3),
            raw_bytes: Some(10),
            raw_sha256: Some("s".into()),
            warehouse_rows: Some(3),
            child_rows: Default::default(),
            rejected: None,
            lake_object: "x".into(),
            warehouse_target: "y".into(),
            started_at: t,
            finished_at: t + chrono::Duration::seconds(2),
            attempts: 1,
            error: None,
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_list_by_day() {
        let store = Store::from_parts(
            Arc::new(InMemory::new()),
            object_store::path::Path::from("state"),
            "memory://state".into(),
        );
        let ledger = Ledger::new(store);
        ledger
            .put(&record("2020-06-02", Status::Failed))
            .await
            .unwrap();
        ledger
            .put(&record("2020-06-01", Status::Done))
            .await
            .unwrap();
        ledger
            .put(&record("2020-06-02", Status::Done))
            .await
            .unwrap();
        let all = ledger.list("users").await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.values().all(|r| r.status == Status::Done));
        assert_eq!(all.values().next().unwrap().duration().num_seconds(), 2);
        assert!(ledger
            .get("orders", "2020-06-01".parse().unwrap())
            .await
            .unwrap()
            .is_none());
    }

    /// Issue 29: a record that does not parse is an error naming it, not
    /// a missing day. On local files, as the default state store is.
    #[tokio::test]
    async fn a_corrupt_record_is_an_error_naming_it_not_a_missing_day() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let ledger = Ledger::new(Store::open(url.as_str(), &Default::default()).unwrap());
        ledger
            .put(&record("2020-06-01", Status::Done))
            .await
            .unwrap();
        ledger
            .put(&record("2020-06-02", Status::Done))
            .await
            .unwrap();
        let file = dir.path().join("ledger/users/2020-06-02.json");
        std::fs::write(&file, b"{\"pipeline\": \"users\", \"day\": ").unwrap();

        let e = ledger
            .get("users", "2020-06-02".parse().unwrap())
            .await
            .unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, LakeError::Corrupt { .. }), "{shown}");
        assert!(
            shown.contains(&format!("{}` is corrupt", file.display())),
            "names the file: {shown}"
        );
        assert!(
            shown.contains("\n\nhint: delete it to have the next run redo the day"),
            "{shown}"
        );
        assert_eq!(
            ledger.list("users").await.unwrap_err().to_string(),
            shown,
            "a run stops on it"
        );
        let (records, corrupt) = ledger.scan("users").await.unwrap();
        assert_eq!(
            records.keys().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["2020-06-01"]
        );
        assert_eq!(
            corrupt.keys().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["2020-06-02"]
        );
    }
}
