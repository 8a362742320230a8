//! `on_type_conflict: variant | reject`: which values fit a column's type,
//! and the names of variant columns.

use crate::extjson::Value;
use crate::spec::ColumnType;

/// Whether a value whose natural type is `value` fits a `column` column
/// without changing its meaning: the same type, INT64 into FLOAT64, or
/// NUMERIC into BIGNUMERIC.
pub(crate) fn fits(value: ColumnType, column: ColumnType) -> bool {
    use ColumnType::*;
    value == column || matches!((value, column), (Int64, Float64) | (Numeric, Bignumeric))
}

/// The variant column of `column` for values of type `kind`:
/// `<column>__v_<type>`, the type in lowercase.
pub(crate) fn variant_name(column: &str, kind: ColumnType) -> String {
    format!("{column}__v_{}", kind.bigquery_name().to_ascii_lowercase())
}

/// Why a value has no representation in any column type, if it has none:
/// NaN and infinite numbers, and dates outside 0001..9999.
///
/// Inlined: pass 1 asks this of every value, and for all but decimals the
/// answer is a compare or two.
#[inline]
pub(crate) fn unrepresentable(value: Value<'_>) -> Option<&'static str> {
    const MIN_MS: i64 = -62_135_596_800_000;
    const MAX_MS: i64 = 253_402_300_799_999;
    match value {
        Value::Double(f) if f.is_nan() => Some("NaN"),
        Value::Double(f) if f.is_infinite() => Some("an infinite number"),
        Value::Decimal128(d) => unrepresentable_decimal(d),
        Value::DateTime(ms) if !(MIN_MS..=MAX_MS).contains(&ms) => {
            Some("a date outside 0001-01-01..9999-12-31")
        }
        _ => None,
    }
}

#[inline(never)]
fn unrepresentable_decimal(d: bson::Decimal128) -> Option<&'static str> {
    let text = d.to_string();
    (text.contains("NaN") || text.contains("Inf")).then_some("a NaN or infinite decimal")
}

/// How a value's type reads in a message.
pub(crate) fn describe(kind: Option<ColumnType>) -> String {
    match kind {
        Some(k) => format!("a {} value", k.bigquery_name()),
        None => "a value".to_owned(),
    }
}
