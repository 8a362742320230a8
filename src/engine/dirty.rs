//! Dirty days: what `etl watch` learned from a change stream, kept in the
//! state store beside the ledger for `etl run` to redo.
//!
//! - `dirty/<pipeline>/<day>/<batch>.json`: a mark, written once per day
//!   for each batch of changes the watcher handled. Never rewritten: a run
//!   lists a day's marks before it extracts the day and removes exactly
//!   those once the day is done, so a mark written while the day runs (a
//!   change the extract may have missed) stays for the next run.
//! - `changes/<pipeline>/unknown/<batch>.json`: changes whose day could
//!   not be told, under `changes.unknown_day: record`, for `etl status`.
//! - `changes/<pipeline>/watch.json`: the resume token after the last
//!   batch whose marks are written, so a restarted watcher goes on from
//!   there: it loses nothing and repeats at most one batch.
//!
//! An unknown-change record or a `watch.json` that does not parse is an
//! error naming it ([`LakeError::Corrupt`]): read as nothing, the first
//! would hide changes from `etl status` and the second would restart the
//! watcher from now, losing the changes made meanwhile.
//!
//! Marks are plain creations and deletions of whole objects, which every
//! store (local files included) supports; two watchers of one pipeline
//! would only mark days twice.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::sink::lake::{LakeError, Store};

/// One batch's changes to one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Changes seen, by kind: `insert`, `update`, `replace`, `delete`,
    /// `moved_from` (the day a document left), `unknown_day` (marked by
    /// `changes.unknown_day: mark_recent`), `verify` (marked by `etl verify
    /// --mark`: the documents by which the day's count differs).
    pub changes: BTreeMap<String, u64>,
    /// The server's time of the batch's first change of this day.
    pub first_change_at: Option<DateTime<Utc>>,
    /// When the mark was written.
    pub marked_at: DateTime<Utc>,
}

impl Mark {
    /// Changes of every kind.
    pub fn total(&self) -> u64 {
        self.changes.values().sum()
    }
}

/// Changes whose day could not be told, from one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownChanges {
    /// How many.
    pub count: u64,
    /// The first few documents' `_id`, as Extended JSON.
    pub ids: Vec<String>,
    /// Why the day could not be told.
    pub reason: String,
    /// When they were recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Where a watcher is in its change stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// The resume token, as canonical Extended JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<serde_json::Value>,
    /// Without a token (a server that gives none before its first change):
    /// the server time, in seconds, to start from again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<u32>,
    /// When it was saved.
    pub saved_at: DateTime<Utc>,
    /// Changes handled since the watcher first started.
    pub changes: u64,
}

/// A day's marks, as [`Dirty::day`] listed them.
#[derive(Debug, Clone, Default)]
pub struct DayMarks {
    keys: Vec<String>,
    /// Changes the marks count.
    pub changes: u64,
}

impl DayMarks {
    /// Whether the day has no mark.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The dirty marks, unknown changes and watch positions of a project.
#[derive(Debug, Clone)]
pub struct Dirty {
    store: Store,
}

impl Dirty {
    /// Marks kept in `store` (the project's state store).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Writes batch `batch`'s mark of `day`.
    pub async fn mark(
        &self,
        pipeline: &str,
        day: NaiveDate,
        batch: &str,
        mark: &Mark,
    ) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(mark).expect("a mark serializes");
        self.store
            .put(&format!("dirty/{pipeline}/{day}/{batch}.json"), bytes)
            .await
    }

    /// The dirty days of a pipeline, with the changes their marks count.
    pub async fn days(&self, pipeline: &str) -> Result<BTreeMap<NaiveDate, DayMarks>, LakeError> {
        let mut out: BTreeMap<NaiveDate, DayMarks> = BTreeMap::new();
        for rel in self.store.list(&format!("dirty/{pipeline}")).await? {
            let mut parts = rel.rsplit('/');
            let (Some(_file), Some(day)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(day) = day.parse::<NaiveDate>() else {
                continue;
            };
            let marks = out.entry(day).or_default();
            marks.keys.push(rel);
        }
        for marks in out.values_mut() {
            for rel in &marks.keys {
                // A mark that does not parse still makes its day dirty.
                marks.changes += match self.store.get(rel).await? {
                    Some(b) => serde_json::from_slice::<Mark>(&b).map_or(1, |m| m.total()),
                    None => 0,
                };
            }
        }
        Ok(out)
    }

    /// The marks of one day, listed before the day is extracted.
    pub async fn day(&self, pipeline: &str, day: NaiveDate) -> Result<DayMarks, LakeError> {
        let keys = self.store.list(&format!("dirty/{pipeline}/{day}")).await?;
        Ok(DayMarks { keys, changes: 0 })
    }

    /// Removes the marks `marks` listed: the day is done with every change
    /// they stand for.
    pub async fn clear(&self, marks: &DayMarks) -> Result<(), LakeError> {
        for rel in &marks.keys {
            self.store.delete(rel).await?;
        }
        Ok(())
    }

    /// Records changes whose day could not be told.
    pub async fn record_unknown(
        &self,
        pipeline: &str,
        batch: &str,
        unknown: &UnknownChanges,
    ) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(unknown).expect("a record serializes");
        self.store
            .put(&format!("changes/{pipeline}/unknown/{batch}.json"), bytes)
            .await
    }

    /// Every recorded change of unknown day.
    pub async fn unknown(&self, pipeline: &str) -> Result<Vec<UnknownChanges>, LakeError> {
        let mut out = Vec::new();
        for rel in self
            .store
            .list(&format!("changes/{pipeline}/unknown"))
            .await?
        {
            if let Some(b) = self.store.get(&rel).await? {
                out.push(serde_json::from_slice(&b).map_err(|e| LakeError::Corrupt {
                    object: self.store.display(&rel),
                    message: format!("a record of `{pipeline}`'s changes of unknown day does not parse: {e}"),
                    hint: "its changes' days cannot be told: redo the days they may have touched with `etl run --rerun --start D --end D`, then delete it".to_owned(),
                })?);
            }
        }
        Ok(out)
    }

    /// The watcher's saved position.
    pub async fn watch_state(&self, pipeline: &str) -> Result<Option<WatchState>, LakeError> {
        self.store
            .get_json(&format!("changes/{pipeline}/watch.json"), |e| {
                (
                    format!("`{pipeline}`'s watch position does not parse: {e}"),
                    "delete it to watch from now on; the changes made since the watcher last saved its position (its `saved_at`, if readable) are then not marked: redo their days with `etl run --rerun --start D --end D`".to_owned(),
                )
            })
            .await
    }

    /// Saves the watcher's position, after the marks it covers.
    pub async fn save_watch_state(
        &self,
        pipeline: &str,
        state: &WatchState,
    ) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(state).expect("a state serializes");
        self.store
            .put(&format!("changes/{pipeline}/watch.json"), bytes)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::sync::Arc;

    fn dirty() -> Dirty {
        Dirty::new(Store::from_parts(
            Arc::new(InMemory::new()),
            object_store::path::Path::from("state"),
            "memory://state".into(),
        ))
    }

    fn mark(n: u64) -> Mark {
        Mark {
            changes: [("update".to_owned(), n)].into(),
            first_change_at: None,
            marked_at: "2026-12-05T00:00:00Z".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn a_run_clears_the_marks_it_listed_and_keeps_those_written_since() {
        let d = dirty();
        let day: NaiveDate = "2020-06-03".parse().unwrap();
        d.mark("orders", day, "b1", &mark(2)).await.unwrap();
        d.mark("orders", day, "b2", &mark(3)).await.unwrap();
        let listed = d.day("orders", day).await.unwrap();
        // A change the running day may have missed.
        d.mark("orders", day, "b3", &mark(1)).await.unwrap();
        d.clear(&listed).await.unwrap();
        let left = d.days("orders").await.unwrap();
        assert_eq!(left.keys().copied().collect::<Vec<_>>(), vec![day]);
        assert_eq!(left[&day].changes, 1);
        d.clear(&d.day("orders", day).await.unwrap()).await.unwrap();
        assert!(d.days("orders").await.unwrap().is_empty());
    }

    /// Issue 29: a `watch.json` or an unknown-change record that does not
    /// parse is an error naming the file and saying how to repair it, on
    /// local files as the default state store is.
    #[tokio::test]
    async fn corrupt_watch_positions_and_unknown_changes_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let d = Dirty::new(Store::open(url.as_str(), &Default::default()).unwrap());
        let state = WatchState {
            resume_token: None,
            start_at: Some(7),
            saved_at: "2026-12-05T00:00:00Z".parse().unwrap(),
            changes: 3,
        };
        d.save_watch_state("orders", &state).await.unwrap();
        assert_eq!(d.watch_state("orders").await.unwrap(), Some(state));
        let unknown = UnknownChanges {
            count: 2,
            ids: vec![],
            reason: "no `created_at`".into(),
            recorded_at: "2026-12-05T00:00:00Z".parse().unwrap(),
        };
        d.record_unknown("orders", "b1", &unknown).await.unwrap();
        assert_eq!(d.unknown("orders").await.unwrap(), vec![unknown]);

        let watch = dir.path().join("changes/orders/watch.json");
        std::fs::write(&watch, b"{\"saved_at\": \"2026-12").unwrap();
        let e = d.watch_state("orders").await.unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "{}` is corrupt: `orders`'s watch position does not parse",
                watch.display()
            )),
            "{e}"
        );
        assert!(
            e.contains("\n\nhint: delete it to watch from now on"),
            "{e}"
        );

        let batch = dir.path().join("changes/orders/unknown/b1.json");
        std::fs::write(&batch, b"not json").unwrap();
        let e = d.unknown("orders").await.unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}` is corrupt", batch.display())),
            "{e}"
        );
        assert!(e.contains("hint: its changes' days cannot be told"), "{e}");
    }

    #[tokio::test]
    async fn days_count_the_changes_of_every_batch_per_day() {
        let d = dirty();
        let (a, b): (NaiveDate, NaiveDate) =
            ("2020-06-01".parse().unwrap(), "2020-06-02".parse().unwrap());
        d.mark("orders", a, "b1", &mark(2)).await.unwrap();
        d.mark("orders", a, "b2", &mark(5)).await.unwrap();
        d.mark("orders", b, "b2", &mark(1)).await.unwrap();
        d.mark("users", b, "b2", &mark(9)).await.unwrap();
        let days = d.days("orders").await.unwrap();
        assert_eq!(
            days.iter()
                .map(|(k, v)| (*k, v.changes))
                .collect::<Vec<_>>(),
            vec![(a, 7), (b, 1)]
        );
    }
}
