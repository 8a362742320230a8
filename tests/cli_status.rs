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
