//! Progress for people: a line per running partition on a terminal, plain
//! log lines elsewhere (CI logs, files, `--log-format json`).
//!
//! A day goes through its phases in order, and its line says which one it
//! is in: `extract` (a bar of documents read, with their rate; rows are
//! written beside it when the day's columns are known beforehand), then
//! `flatten` when they were not, then `load` (the raw archive uploaded to
//! the lake and the rows loaded into the warehouse, at the same time),
//! then `done` or `failed`. Counts carry thousands separators and rates
//! are whole numbers: `844,000/1,000,000 docs 71,034 docs/s`.

use std::time::Instant;

use chrono::NaiveDate;
use indicatif::HumanCount;

use super::ledger::PartitionRecord;

/// Starts a progress display per partition.
pub trait Progress: Send + Sync {
    /// A partition starts.
    fn start(&self, pipeline: &str, day: NaiveDate) -> Box<dyn Bar>;
}

/// A phase of a day after its extract, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The day's documents into rows, from the local spool or raw
    /// archive: `documents` of them.
    Flatten { documents: u64 },
    /// The raw archive (`bytes` compressed) to the lake and `rows` rows to
    /// the warehouse, at once.
    Load { bytes: u64, rows: u64 },
}

/// One partition's progress.
pub trait Bar: Send + Sync {
    /// `done` of `total` documents extracted; `total` is None until the
    /// count, which runs beside the extract, answers.
    fn documents(&self, done: u64, total: Option<u64>);
    /// The extract ended and `phase` began.
    fn phase(&self, phase: Phase);
    /// During [`Phase::Load`]: the upload to the lake ended.
    fn uploaded(&self);
    /// The partition ended.
    fn finish(&self, record: &PartitionRecord);
}

/// What a line says of a phase.
fn describe(phase: Phase, uploaded: bool) -> String {
    match phase {
        Phase::Flatten { documents } => format!("flatten {} docs", HumanCount(documents)),
        Phase::Load { bytes, rows } => format!(
            "load    {} to the lake{}, {} rows to the warehouse",
            indicatif::HumanBytes(bytes),
            if uploaded { " (done)" } else { "" },
            HumanCount(rows)
        ),
    }
}

/// Bars on a terminal.
pub struct TerminalProgress {
    multi: indicatif::MultiProgress,
}

impl TerminalProgress {
    /// Bars drawn on stderr.
    pub fn new() -> Self {
        Self {
            multi: indicatif::MultiProgress::new(),
        }
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// A line's style: the pipeline and day, then `body`.
fn style(body: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(&format!("{{prefix:>24}} {body}"))
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                // The day's average so far: steadier than indicatif's
                // recent-steps estimate, which documents arriving in
                // batches of a thousand throw about.
                let secs = state.elapsed().as_secs_f64().max(1e-3);
                let _ = write!(
                    w,
                    "{} docs/s",
                    HumanCount((state.pos() as f64 / secs).round() as u64)
                );
            },
        )
        .progress_chars("=> ")
}

impl Progress for TerminalProgress {
    fn start(&self, pipeline: &str, day: NaiveDate) -> Box<dyn Bar> {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        // Until the count arrives there is no length to draw a bar against.
        bar.set_style(style("{spinner} extract {msg}"));
        bar.set_prefix(format!("{pipeline} {day}"));
        bar.set_message("querying the source");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Box::new(TerminalBar {
            bar,
            shown: std::sync::atomic::AtomicU8::new(COUNTING),
            phase: std::sync::Mutex::new(None),
        })
    }
}

/// What an extract's line shows: "querying the source" before any arrive,
/// then the documents read with a spinner, then a bar once the count
/// (`source.count`) says how many to expect.
const COUNTING: u8 = 0;
const READING: u8 = 1;
const BAR: u8 = 2;

struct TerminalBar {
    bar: indicatif::ProgressBar,
    shown: std::sync::atomic::AtomicU8,
    /// The phase after the extract, once it began.
    phase: std::sync::Mutex<Option<Phase>>,
}

impl Bar for TerminalBar {
    fn documents(&self, done: u64, total: Option<u64>) {
        let want = if total.is_some() { BAR } else { READING };
        if let Some(total) = total {
            self.bar.set_length(total.max(done));
        }
        self.bar.set_position(done);
        if self.shown.swap(want, std::sync::atomic::Ordering::Relaxed) != want {
            self.bar.set_message("");
            self.bar.set_style(style(if want == BAR {
                "extract [{bar:30}] {human_pos}/{human_len} docs {rate}"
            } else {
                "{spinner} extract {human_pos} docs {rate}"
            }));
        }
    }

    fn phase(&self, phase: Phase) {
        *self.phase.lock().expect("not poisoned") = Some(phase);
        self.bar.set_style(style("{spinner} {msg} {elapsed:>4}"));
        self.bar.set_message(describe(phase, false));
        self.bar.reset_elapsed();
    }

    fn uploaded(&self) {
        if let Some(phase) = *self.phase.lock().expect("not poisoned") {
            self.bar.set_message(describe(phase, true));
        }
    }

    fn finish(&self, record: &PartitionRecord) {
        self.bar.set_style(style("{msg}"));
        match &record.error {
            None => self.bar.finish_with_message(format!(
                "done    {} docs, {} rows in {:.1}s",
                HumanCount(record.raw_lines.or(record.source_count).unwrap_or(0)),
                HumanCount(record.warehouse_rows.unwrap_or(0)),
                record.duration().num_milliseconds() as f64 / 1000.0
            )),
            Some(e) => self.bar.abandon_with_message(format!("failed: {e}")),
        }
    }
}

/// Log lines through `tracing`, for logs and pipes.
pub struct LogProgress;

impl Progress for LogProgress {
    fn start(&self, pipeline: &str, day: NaiveDate) -> Box<dyn Bar> {
        tracing::info!(pipeline, partition = %day, "partition started");
        Box::new(LogBar {
            pipeline: pipeline.to_owned(),
            day,
            started: Instant::now(),
        })
    }
}

struct LogBar {
    pipeline: String,
    day: NaiveDate,
    started: Instant,
}

impl Bar for LogBar {
    fn documents(&self, done: u64, total: Option<u64>) {
        // One line per 50,000 documents keeps long partitions visible
        // without flooding the log.
        if done > 0 && (done % 50_000 == 0 || Some(done) == total) {
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(pipeline = %self.pipeline, partition = %self.day, documents = done, total, docs_per_sec = (done as f64 / secs).round(), "extracting");
        }
    }

    fn phase(&self, phase: Phase) {
        match phase {
            Phase::Flatten { documents } => {
                tracing::info!(pipeline = %self.pipeline, partition = %self.day, documents, "flattening")
            }
            Phase::Load { bytes, rows } => {
                tracing::info!(pipeline = %self.pipeline, partition = %self.day, raw_bytes = bytes, rows, "uploading and loading")
            }
        }
    }

    fn uploaded(&self) {
        tracing::debug!(pipeline = %self.pipeline, partition = %self.day, "raw archive uploaded");
    }

    fn finish(&self, _record: &PartitionRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_with_separators() {
        assert_eq!(
            describe(
                Phase::Flatten {
                    documents: 1_000_000
                },
                false
            ),
            "flatten 1,000,000 docs"
        );
        assert_eq!(
            describe(
                Phase::Load {
                    bytes: 12 * 1024 * 1024,
                    rows: 1_234_567
                },
                true
            ),
            "load    12.00 MiB to the lake (done), 1,234,567 rows to the warehouse"
        );
    }
}
