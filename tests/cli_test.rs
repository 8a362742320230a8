//! `etl test` as a user runs it: the shipped pipelines' cases, a failing
//! case's differences, and cases that do not validate.

mod common;

use common::{etl, transcript};

use common::TODAY;

#[test]
fn the_shipped_pipelines_cases_pass() {
    let out = etl(&["test"], TODAY);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    insta::assert_snapshot!(transcript(&out));
}

#[test]
fn a_failing_case_shows_each_difference_and_exits_1() {
    let out = etl(&["test", "tests/fixtures/etl_test/failing.yaml"], TODAY);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(transcript(&out));
}

#[test]
fn cases_that_do_not_validate_are_located_and_exit_2() {
    let out = etl(&["test", "tests/fixtures/etl_test/bad_cases.yaml"], TODAY);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(transcript(&out));
    // `etl validate` reports the same mistakes.
    let validate = etl(
        &["validate", "tests/fixtures/etl_test/bad_cases.yaml"],
        TODAY,
    );
    assert_eq!(validate.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&validate.stderr).contains("tests[0].expect.order"));
}
