//! `etl test`: a spec's flatten test cases, run offline.
//!
//! Each case's documents go through both passes of every table, exactly as
//! a partition's documents do ([`Tables::flatten_all_rejecting`]), and the
//! rows are compared with the expected ones. A failure says, per table and
//! row, which columns differ and how, with NULL spelled out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::flatten::Tables;
use crate::spec::TestCaseSpec;

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// What differs, one line each; empty when the case passed.
    pub differences: Vec<String>,
}

impl CaseResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Runs `case` through `tables`, whose root table is named `root`.
/// `default_ds` is the day rows get when the case names none.
pub fn run_case(
    tables: &Tables,
    root: &str,
    case: &TestCaseSpec,
    default_ds: NaiveDate,
) -> CaseResult {
    let mut result = CaseResult {
        name: case.name.clone(),
        differences: Vec::new(),
    };
    let ds = match &case.ds {
        None => default_ds,
        Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => d,
            Err(e) => {
                result.differences.push(format!("invalid ds `{d}`: {e}"));
                return result;
            }
        },
    };
    let docs = match crate::extjson::parse_documents(&case.documents) {
        Ok(d) => d,
        Err(e) => {
            result.differences.push(e);
            return result;
        }
    };
    let (flattened, rejected) = match tables.flatten_all_rejecting(&docs, ds) {
        Ok(out) => out,
        Err(e) => {
            result.differences.push(format!("flattening failed: {e}"));
            return result;
        }
    };
    let names = tables.names(root);
    let got_rejected: Vec<usize> = rejected.iter().map(|r| r.index).collect();
    if got_rejected != case.rejected {
        let mut line = format!(
            "rejected documents: expected {:?}, got {got_rejected:?}",
            case.rejected
        );
        for r in &rejected {
            let _ = write!(line, "; documents[{}]: {}", r.index, r.source);
        }
        result.differences.push(line);
    }
    for (table, want) in &case.expect {
        let Some(at) = names.iter().position(|n| n == table) else {
            result.differences.push(format!(
                "no table `{table}`: this spec makes {}",
                crate::spec::backticked(&names)
            ));
            continue;
        };
        let got: Vec<Map<String, Value>> = String::from_utf8_lossy(&flattened[at].rows)
            .lines()
            .map(|l| match serde_json::from_str(l) {
                Ok(Value::Object(m)) => m,
                _ => unreachable!("rows are JSON objects"),
            })
            .collect();
        compare_rows(table, want, &got, &mut result.differences);
    }
    result
}

/// Row by row: a missing or extra row, or each column that differs.
fn compare_rows(
    table: &str,
    want: &[Map<String, Value>],
    got: &[Map<String, Value>],
    out: &mut Vec<String>,
) {
    if want.len() != got.len() {
        out.push(format!(
            "{table}: expected {} rows, got {}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let mut keys: BTreeMap<&str, ()> = BTreeMap::new();
        for k in w.keys().chain(g.keys()) {
            if k == crate::table::DS_COLUMN && !w.contains_key(k) {
                continue;
            }
            keys.insert(k, ());
        }
        for key in keys.keys() {
            let (a, b) = (w.get(*key), g.get(*key));
            if a == b || (a == Some(&Value::Null) && b.is_none()) {
                continue;
            }
            let show = |v: Option<&Value>| v.map_or("NULL".to_owned(), Value::to_string);
            out.push(format!(
                "{table} row {i}: {key}: expected {}, got {}",
                show(a),
                show(b)
            ));
        }
    }
    for (i, g) in got.iter().enumerate().skip(want.len()) {
        out.push(format!(
            "{table} row {i}: unexpected {}",
            Value::Object(g.clone())
        ));
    }
    for (i, w) in want.iter().enumerate().skip(got.len()) {
        out.push(format!(
            "{table} row {i}: missing {}",
            Value::Object(w.clone())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(yaml: &str) -> TestCaseSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn tables(yaml: &str) -> Tables {
        Tables::new(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 6, 1).unwrap()
    }

    #[test]
    fn a_matching_case_passes_and_ds_is_only_compared_when_listed() {
        let t = tables("arrays: { rules: [{ path: $.items, policy: explode }] }");
        let c = case(
            r#"
            name: one order
            documents: [{ _id: 1, items: [{ sku: a }], note: null }]
            expect:
              o: [{ _id: 1, note: null }]
              o__items: [{ _ds: "2020-06-01", _root_id: "1", _idx: 0, sku: a }]
            "#,
        );
        let r = run_case(&t, "o", &c, day());
        assert!(r.passed(), "{:?}", r.differences);
    }

    #[test]
    fn differences_name_table_row_column_and_both_values() {
        let t = tables("on_type_conflict: reject");
        let c = case(
            r#"
            name: drift
            documents: [{ n: 1 }, { n: 2 }, { n: "x" }, { n: 4 }]
            expect:
              o: [{ n: 1 }, { n: 3 }]
              nope: []
            "#,
        );
        let r = run_case(&t, "o", &c, day());
        assert_eq!(
            r.differences,
            [
                "rejected documents: expected [], got [2]; documents[2]: `$.n` is a STRING value, but column `n` is INT64",
                "no table `nope`: this spec makes `o`",
                "o: expected 2 rows, got 3",
                "o row 1: n: expected 3, got 2",
                "o row 2: unexpected {\"_ds\":\"2020-06-01\",\"n\":4}",
            ]
        );
    }

    #[test]
    fn bad_documents_are_reported_not_panicked_on() {
        let t = tables("{}");
        let c = case("{ name: bad, documents: [[1]], expect: {} }");
        let r = run_case(&t, "o", &c, day());
        assert_eq!(r.differences, ["documents[0] is not an object"]);
    }
}
