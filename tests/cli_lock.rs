//! `etl schema lock` and the lock in `etl plan`, offline: a spec change
//! shows as a difference, `--check` fails on it, a refresh records it.

mod common;

use common::{etl_in, transcript};

const TODAY: &str = "2026-11-23";

/// The project with its pipelines and locks, in a folder of its own.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    std::fs::copy(root.join("etl.yaml"), dir.path().join("etl.yaml")).unwrap();
    for sub in ["pipelines", "schemas/tables"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
        }
    }
    dir
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
    let spec = dir.path().join("pipelines/orders.yaml");
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "  columns:\n    # Some documents",
        "  columns:\n    - { name: shipping_fee, path: $.shipping.fee, type: numeric }\n    # Some documents",
    );
    let text = text.replace(
        "              - path: $.discounts\n                policy: repeated",
        "              - path: $.discounts\n                policy: explode",
    );
    std::fs::write(&spec, text).unwrap();

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
