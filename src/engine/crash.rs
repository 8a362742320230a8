//! Crash points, for the crash trials (`tests/stack_crash.rs` and
//! `stack/crash-trials.sh`): with `ETL_CRASH_AT=NAME` (or `NAME:N`) the
//! process aborts the first (or N-th) time it reaches point `NAME`, as a
//! SIGKILL there would stop it: no destructor, no ledger write, no
//! cleanup. Unset, a point costs one load of a value read once.
//!
//! The points are the moments where a crash could lose or double data:
//! - `extract`: each document read (N picks which);
//! - `lake_uploaded`: a day's raw object, rejects and manifest are in the
//!   lake; its warehouse load may still be running;
//! - `bigquery_script`: the staging script that replaces a BigQuery
//!   partition has been sent, and is running on the server;
//! - `loaded`: the lake and the warehouse are done, the ledger not yet.
//!
//! The outage tests (`tests/stack_outage.rs`) need a day stopped half way
//! instead: with `ETL_HOLD_AT=NAME[:N]` and `ETL_HOLD_FILE=PATH`, the
//! process creates PATH at that arrival and waits, holding its cursor and
//! its staging files, until PATH is removed. The test stops a server in
//! between.
//!
//! Both exist only with the `test-hooks` feature, which `stack/test.sh`
//! builds with: in a release build every point is an empty function, and
//! no environment variable can stop a real run.

#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "test-hooks")]
use std::sync::OnceLock;
use std::time::Duration;

/// The points a trial may name.
pub const POINTS: [&str; 4] = ["extract", "lake_uploaded", "bigquery_script", "loaded"];

/// `NAME[:N]`, as `ETL_CRASH_AT` and `ETL_HOLD_AT` give it.
#[cfg(feature = "test-hooks")]
fn parse_arrival(v: String) -> Option<(String, u64)> {
    match v.split_once(':') {
        Some((name, n)) => Some((name.to_owned(), n.parse().ok()?)),
        None => Some((v, 1)),
    }
}

/// One armed point: where it is, read once, and how often it was reached.
#[cfg(feature = "test-hooks")]
struct Armed {
    at: OnceLock<Option<(String, u64)>>,
    hits: AtomicU64,
}

#[cfg(feature = "test-hooks")]
impl Armed {
    const fn new() -> Self {
        Self {
            at: OnceLock::new(),
            hits: AtomicU64::new(0),
        }
    }

    /// Whether this arrival at `name` is the one `var` names.
    fn due(&self, var: &str, name: &str) -> bool {
        let at = self
            .at
            .get_or_init(|| parse_arrival(std::env::var(var).ok()?));
        match at {
            Some((armed, n)) if armed == name => self.hits.fetch_add(1, Ordering::SeqCst) + 1 == *n,
            _ => false,
        }
    }
}

#[cfg(feature = "test-hooks")]
static CRASH: Armed = Armed::new();
#[cfg(feature = "test-hooks")]
static HOLD: Armed = Armed::new();

/// Whether this arrival at `name` is the one to crash at.
#[cfg(feature = "test-hooks")]
fn due(name: &str) -> bool {
    CRASH.due("ETL_CRASH_AT", name)
}

/// Never, without the `test-hooks` feature.
#[cfg(not(feature = "test-hooks"))]
fn due(_name: &str) -> bool {
    false
}

/// Whether this arrival at `name` is the one to hold at.
#[cfg(feature = "test-hooks")]
fn hold_due(name: &str) -> bool {
    HOLD.due("ETL_HOLD_AT", name)
}

/// Never, without the `test-hooks` feature.
#[cfg(not(feature = "test-hooks"))]
fn hold_due(_name: &str) -> bool {
    false
}

/// Waits here, when `ETL_HOLD_AT` names this arrival at `name`, until the
/// file `ETL_HOLD_FILE`, which it creates, is removed.
pub async fn hold(name: &str) {
    if !hold_due(name) {
        return;
    }
    let Some(file) = std::env::var_os("ETL_HOLD_FILE") else {
        return;
    };
    let file = std::path::PathBuf::from(file);
    if let Err(e) = std::fs::write(&file, name) {
        eprintln!("hold point `{name}`: cannot create {}: {e}", file.display());
        return;
    }
    eprintln!(
        "hold point `{name}` reached: waiting until {} is removed (ETL_HOLD_AT)",
        file.display()
    );
    while file.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn abort(name: &str) -> ! {
    eprintln!("crash point `{name}` reached: aborting (ETL_CRASH_AT)");
    std::process::abort()
}

/// Aborts here when `ETL_CRASH_AT` names this arrival at `name`.
pub fn point(name: &str) {
    if due(name) {
        abort(name);
    }
}

/// Runs `work`; when `ETL_CRASH_AT` names this arrival at `name`, aborts
/// while it is under way instead (after it has run for a moment), as a
/// crash during a server-side job would.
pub async fn during<T>(name: &str, work: impl std::future::Future<Output = T>) -> T {
    if !due(name) {
        return work.await;
    }
    tokio::select! {
        out = work => {
            // Done before the moment passed: crash right after it instead.
            let _ = out;
            abort(name)
        }
        _ = tokio::time::sleep(Duration::from_millis(30)) => abort(name),
    }
}

#[cfg(all(test, not(feature = "test-hooks")))]
mod tests {
    /// A release build ignores the variables: `cargo test --lib` without
    /// the feature checks it (`stack/test.sh` builds with the feature).
    #[test]
    fn without_the_feature_no_point_is_ever_due() {
        std::env::set_var("ETL_CRASH_AT", "extract");
        std::env::set_var("ETL_HOLD_AT", "extract");
        assert!(!super::due("extract"));
        assert!(!super::hold_due("extract"));
    }
}
