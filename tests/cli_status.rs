//! `etl status` with no stack: a ledger that has nothing yet, as a table
//! and as JSON. The stack tests check both against days really loaded.

mod common;

use common::{transcript, Project};

/// A project whose users start three days before the pinned today.
fn project() -> Project {
    let p = Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    p.edit(
        "pipelines/users.yaml",
        "start_date: \"2020-06-01\"",
        "start_date: \"2026-11-20\"",
    );
    p
}

#[test]
fn an_empty_ledger_shows_every_day_missing_and_exits_1() {
    let p = project();
    let out = p.etl(&["status", "pipelines/users.yaml"]);
    insta::assert_snapshot!(transcript(&out));
    let out = p.etl(&["status", "pipelines/users.yaml", "--format", "json"]);
    insta::assert_snapshot!(transcript(&out));
}

/// Issue 29: state that does not parse is `corrupt`, named with how to
/// repair it, and fails `etl status`; a done day loaded with a spec that
/// lands other rows is `stale`. The ledger is the local-files state store,
/// written here by hand: a record from before an edit of the flatten
/// rules, one cut short, and a cut-short `watch.json`.
#[test]
fn corrupt_state_and_stale_days_are_shown_as_such() {
    let p = project();
    let record = serde_json::json!({
        "pipeline": "users",
        "day": "2026-11-20",
        "status": "done",
        "spec_hash": format!("rows-v1:{}", "0".repeat(64)),
        "engine_version": "0.1.0",
        "source_count": 12,
        "raw_lines": 12,
        "raw_bytes": 1024,
        "raw_sha256": "s",
        "warehouse_rows": 12,
        "lake_object": "file:///lake/raw/users/dt=2026-11-20/users.jsonl.gz",
        "warehouse_target": "etl_demo.users$20261120",
        "started_at": "2026-11-21T01:00:00Z",
        "finished_at": "2026-11-21T01:00:02Z",
        "attempts": 1,
    });
    p.write(
        ".etl/state/ledger/users/2026-11-20.json",
        &serde_json::to_string_pretty(&record).unwrap(),
    );
    p.write(
        ".etl/state/ledger/users/2026-11-21.json",
        "{\"pipeline\": \"users\", \"day\": \"2026-11-21\", \"sta",
    );
    p.write(".etl/state/changes/users/watch.json", "{\"saved_at\": ");
    let out = p.etl(&["status", "pipelines/users.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let shown = transcript(&out).replace(&p.path().display().to_string(), "[PROJECT]");
    insta::assert_snapshot!(shown);
    let out = p.etl(&["status", "pipelines/users.yaml", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let users = &json["pipelines"][0];
    assert_eq!(
        (&users["stale"], &users["corrupt"], &users["missing"]),
        (&1.into(), &1.into(), &1.into())
    );
    assert_eq!(users["days"][1]["status"], "corrupt");
    assert_eq!(users["corrupt_state"].as_array().unwrap().len(), 1);
}
