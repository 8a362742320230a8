//! Query results back into rows: BigQuery answers `jobs.query` with a
//! schema and rows of `{"f": [{"v": …}]}` cells holding text, which this
//! turns into the row format of [`crate::table`], typed by the schema.

use serde_json::{Map, Value};

use crate::table::JsonRow;

/// The rows of a `jobs.query` (or `getQueryResults`) answer, in the row
/// format of [`crate::table`]: a NULL cell is left out of its row. Also the
/// columns, in order. An answer without `rows` (no row matched) gives none.
pub(super) fn decode(resp: &Value) -> Result<(Vec<String>, Vec<JsonRow>), String> {
    let fields = resp["schema"]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let columns = fields
        .iter()
        .map(|f| field_name(f).map(str::to_owned))
        .collect::<Result<_, _>>()?;
    let rows = match resp.get("rows") {
        None | Some(Value::Null) => Vec::new(),
        Some(rows) => rows
            .as_array()
            .ok_or_else(|| format!("`rows` is not an array: {rows}"))?
            .iter()
            .map(|row| record(&fields, row))
            .collect::<Result<_, _>>()?,
    };
    Ok((columns, rows))
}

fn field_name(field: &Value) -> Result<&str, String> {
    field["name"]
        .as_str()
        .ok_or_else(|| format!("a schema field without a name: {field}"))
}

/// A `{"f": [...]}` row or RECORD value, its cells typed by `fields`.
fn record(fields: &[Value], row: &Value) -> Result<JsonRow, String> {
    let cells = row["f"]
        .as_array()
        .ok_or_else(|| format!("a row without cells: {row}"))?;
    if cells.len() != fields.len() {
        return Err(format!(
            "a row of {} cells for {} fields: {row}",
            cells.len(),
            fields.len()
        ));
    }
    let mut out = Map::new();
    for (field, cell) in fields.iter().zip(cells) {
        let name = field_name(field)?;
        let v = &cell["v"];
        let value = if field["mode"].as_str() == Some("REPEATED") {
            // A REPEATED column is never NULL: an empty array at worst.
            let items = match v {
                Value::Null => Vec::new(),
                Value::Array(items) => items
                    .iter()
                    .map(|item| scalar(field, &item["v"]))
                    .collect::<Result<_, _>>()?,
                other => return Err(format!("`{name}` is REPEATED, but holds {other}")),
            };
            Value::Array(items)
        } else {
            scalar(field, v)?
        };
        if !value.is_null() {
            out.insert(name.to_owned(), value);
        }
    }
    Ok(out)
}

/// One value of `field`'s type.
fn scalar(field: &Value, v: &Value) -> Result<Value, String> {
    let kind = field["type"].as_str().unwrap_or_default();
    if v.is_null() {
        return Ok(Value::Null);
    }
    if matches!(kind, "RECORD" | "STRUCT") {
        let fields = field["fields"].as_array().cloned().unwrap_or_default();
        return record(&fields, v).map(Value::Object);
    }
    let name = field["name"].as_str().unwrap_or_default();
    let text = v
        .as_str()
        .ok_or_else(|| format!("`{name}` holds {v}, not text"))?;
    let bad = |what: &str| format!("`{name}`: `{text}` is not {what}");
    Ok(match kind {
        "INTEGER" | "INT64" => Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        "FLOAT" | "FLOAT64" => {
            let f: f64 = text.parse().map_err(|_| bad("a number"))?;
            // NaN and infinities have no JSON number: rows never hold them.
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        "BOOLEAN" | "BOOL" => Value::Bool(text.parse().map_err(|_| bad("true or false"))?),
        "TIMESTAMP" => {
            let micros = epoch_micros(text).ok_or_else(|| bad("a time in epoch seconds"))?;
            let mut out = Vec::new();
            crate::flatten::write_timestamp_micros(micros, &mut out);
            Value::String(String::from_utf8(out).expect("a timestamp is ASCII"))
        }
        // STRING, DATE, NUMERIC, BIGNUMERIC, BYTES (base64), JSON (text),
        // DATETIME, TIME: the text is the row format already.
        _ => Value::String(text.to_owned()),
    })
}

/// Microseconds since the epoch from BigQuery's TIMESTAMP text: seconds as
/// a decimal, `1591005600.123456` (the emulator) or `1.591005600123456E9`
/// (BigQuery), read exactly rather than through a float, which would lose
/// the last digit.
fn epoch_micros(text: &str) -> Option<i64> {
    let (mantissa, exponent) = match text.split_once(['E', 'e']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // digits × 10^(exponent − frac digits) seconds, in microseconds.
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let shift = exponent - frac.len() as i32 + 6;
    let micros = if shift >= 0 {
        digits.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else {
        // Below a microsecond: dropped, as BigQuery keeps none.
        digits / 10i128.checked_pow(shift.unsigned_abs())?
    };
    let micros = if negative { -micros } else { micros };
    i64::try_from(micros).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_read_exactly_in_both_notations() {
        for text in [
            "1591005600.123456",
            "1.591005600123456E9",
            "1591005600123456E-6",
        ] {
            assert_eq!(epoch_micros(text), Some(1_591_005_600_123_456), "{text}");
        }
        assert_eq!(epoch_micros("1.5910056E9"), Some(1_591_005_600_000_000));
        assert_eq!(epoch_micros("-1.5"), Some(-1_500_000));
        assert_eq!(epoch_micros("0"), Some(0));
        for bad in ["", ".", "1.2.3", "abc", "1E", "9E99"] {
            assert_eq!(epoch_micros(bad), None, "{bad}");
        }
    }

    /// What bigquery-emulator answered here to a SELECT of one value of
    /// each type (the NULL left out of the row, REPEATED kept as arrays).
    #[test]
    fn an_answer_decodes_into_typed_rows() {
        let resp = json!({
            "schema": {"fields": [
                {"mode": "NULLABLE", "name": "t", "type": "TIMESTAMP"},
                {"mode": "NULLABLE", "name": "d", "type": "DATE"},
                {"mode": "NULLABLE", "name": "i", "type": "INTEGER"},
                {"mode": "NULLABLE", "name": "f", "type": "FLOAT"},
                {"mode": "NULLABLE", "name": "b", "type": "BOOLEAN"},
                {"mode": "REPEATED", "name": "a", "type": "INTEGER"},
                {"fields": [{"mode": "NULLABLE", "name": "x", "type": "INTEGER"},
                            {"mode": "NULLABLE", "name": "z", "type": "STRING"}],
                 "mode": "NULLABLE", "name": "s", "type": "RECORD"},
                {"mode": "NULLABLE", "name": "n", "type": "NUMERIC"},
                {"mode": "NULLABLE", "name": "byt", "type": "BYTES"},
                {"mode": "NULLABLE", "name": "nul", "type": "STRING"},
                {"fields": [{"mode": "NULLABLE", "name": "x", "type": "INTEGER"}],
                 "mode": "REPEATED", "name": "rs", "type": "RECORD"}
            ]},
            "rows": [{"f": [
                {"v": "1591005600.123456"}, {"v": "2020-06-01"}, {"v": "1"}, {"v": "1.5"},
                {"v": "true"}, {"v": [{"v": "1"}, {"v": "2"}]}, {"v": {"f": [{"v": "1"}, {"v": "y"}]}},
                {"v": "1.25"}, {"v": "YWI="}, {"v": null}, {"v": [{"v": {"f": [{"v": "1"}]}}]}
            ]}]
        });
        let (columns, rows) = decode(&resp).unwrap();
        assert_eq!(
            columns,
            ["t", "d", "i", "f", "b", "a", "s", "n", "byt", "nul", "rs"]
        );
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({
                "t": "2020-06-01T10:00:00.123456Z", "d": "2020-06-01", "i": 1, "f": 1.5,
                "b": true, "a": [1, 2], "s": {"x": 1, "z": "y"}, "n": "1.25", "byt": "YWI=",
                "rs": [{"x": 1}]
            })
        );
    }

    #[test]
    fn no_rows_and_broken_answers() {
        let (columns, rows) =
            decode(&json!({"schema": {"fields": [{"name": "a", "type": "STRING"}]}})).unwrap();
        assert_eq!((columns, rows.len()), (vec!["a".to_owned()], 0));
        let fields = json!({"fields": [{"name": "a", "type": "INTEGER"}]});
        let e = decode(&json!({"schema": fields, "rows": [{"f": [{"v": "x"}]}]})).unwrap_err();
        assert_eq!(e, "`a`: `x` is not an integer");
        let e = decode(&json!({"schema": fields, "rows": [{"f": []}]})).unwrap_err();
        assert!(e.starts_with("a row of 0 cells for 1 fields"), "{e}");
    }
}
