//! Progress for people: a bar per running partition on a terminal, plain
//! log lines elsewhere (CI logs, files, `--log-format json`).

use std::time::Instant;

use chrono::NaiveDate;

use super::ledger::PartitionRecord;

/// Starts a progress display per partition.
pub trait Progress: Send + Sync {
    /// A partition starts.
    fn start(&self, pipeline: &str, day: NaiveDate) -> Box<dyn Bar>;
}

/// One partition's progress.
pub trait Bar: Send + Sync {
    /// `done` of `total` documents extracted; `total` is None until the
    /// count, which runs beside the extract, answers.
    fn documents(&self, done: u64, total: Option<u64>);
    /// The partition ended.
    fn finish(&self, record: &PartitionRecord);
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

impl Progress for TerminalProgress {
    fn start(&self, pipeline: &str, day: NaiveDate) -> Box<dyn Bar> {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        // Until the count arrives there is no length to draw a bar against.
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>24} {spinner} {msg}")
                .expect("a valid template"),
        );
        bar.set_prefix(format!("{pipeline} {day}"));
        bar.set_message("counting documents");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Box::new(TerminalBar {
            bar,
            counted: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

struct TerminalBar {
    bar: indicatif::ProgressBar,
    counted: std::sync::atomic::AtomicBool,
}

impl Bar for TerminalBar {
    fn documents(&self, done: u64, total: Option<u64>) {
        if !self
            .counted
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {pos}/{len} docs {per_sec:.0} {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            self.bar.set_message("");
        }
        self.bar.set_length(total.unwrap_or(done).max(done));
        self.bar.set_position(done);
    }

    fn finish(&self, record: &PartitionRecord) {
        match &record.error {
            None => self.bar.finish_with_message("done"),
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

    fn finish(&self, _record: &PartitionRecord) {}
}
