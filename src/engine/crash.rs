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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The points a trial may name.
pub const POINTS: [&str; 4] = ["extract", "lake_uploaded", "bigquery_script", "loaded"];

fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("ETL_CRASH_AT").ok()?;
            let (name, n) = match v.split_once(':') {
                Some((name, n)) => (name.to_owned(), n.parse().ok()?),
                None => (v, 1),
            };
            Some((name, n))
        })
        .as_ref()
}

/// Whether this arrival at `name` is the one to crash at.
fn due(name: &str) -> bool {
    static HITS: AtomicU64 = AtomicU64::new(0);
    match armed() {
        Some((armed, n)) if armed == name => HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n,
        _ => false,
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
