//! `etl schema lock` and the lock in `etl plan`, offline: a spec change
//! shows as a difference, `--check` fails on it, a refresh records it.

mod common;

use common::{etl_in, transcript};

use common::TODAY;

/// The project with its pipelines and locks, in a folder of its own.
fn project() -> common::Project {
    common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"])
}

#[test]
fn the_committed_locks_are_up_to_date() {
    let out = etl_in(&common::root(), &["schema", "lock", "--check"], TODAY);
    insta::assert_snapshot!(transcript(&out), @r"
    exit: 0
    --- stdout
    orders: schemas/tables/orders.json is up to date
    products: schemas/tables/products.json is up to date
    users: schemas/tables/users.json is up to date
    --- stderr
    ");
}

#[test]
fn a_spec_change_shows_in_plan_fails_the_check_and_a_refresh_records_it() {
    let dir = project();
    dir.edit(
        "pipelines/orders.yaml",
        "  columns:\n    # Some documents",
        "  columns:\n    - { name: shipping_fee, path: $.shipping.fee, type: numeric }\n    # Some documents",
    );
    dir.edit(
        "pipelines/orders.yaml",
        "              - path: $.discounts\n                policy: repeated",
        "              - path: $.discounts\n                policy: explode",
    );

    let plan = etl_in(
        dir.path(),
        &["plan", "pipelines/orders.yaml", "--date", "2020-06-01"],
        TODAY,
    );
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let lock_lines: Vec<&str> = plan
        .lines()
        .skip_while(|l| !l.starts_with("  lock"))
        .take_while(|l| l.starts_with("  lock") || l.starts_with("    "))
        .collect();
    insta::assert_snapshot!(lock_lines.join("\n"), @r"
      lock       2 changes the spec makes, not in the lock yet (run `etl schema lock`):
        + orders.shipping_fee NUMERIC
        + table orders__items__discounts
    ");

    let check = etl_in(
        dir.path(),
        &["schema", "lock", "--check", "pipelines/orders.yaml"],
        TODAY,
    );
    insta::assert_snapshot!(transcript(&check), @r"
    exit: 1
    --- stdout
    orders: schemas/tables/orders.json is out of date:
      + orders.shipping_fee NUMERIC
      + table orders__items__discounts
    hint: review the changes, then run `etl schema lock` (add `--start`/`--end` to learn columns from data) and commit the files
    --- stderr
    ");

    let refresh = etl_in(
        dir.path(),
        &["schema", "lock", "pipelines/orders.yaml"],
        TODAY,
    );
    assert_eq!(refresh.status.code(), Some(0), "{}", transcript(&refresh));
    let lock: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("schemas/tables/orders.json")).unwrap(),
    )
    .unwrap();
    let discounts: Vec<&str> = lock["tables"]["orders__items__discounts"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        discounts,
        ["_ds", "_root_id", "_parent_key", "_idx", "value"]
    );
    let again = etl_in(
        dir.path(),
        &["schema", "lock", "--check", "pipelines/orders.yaml"],
        TODAY,
    );
    assert_eq!(again.status.code(), Some(0), "{}", transcript(&again));
}
