//! One BSON value: its natural column type, and its NDJSON form in a column
//! of any type.
//!
//! [`natural_kind`] is what pass 1 records; [`write_as`] is what pass 2
//! writes. They agree: a value always converts to the type its column ends
//! up with after coercion (its own type, INT64 into FLOAT64, NUMERIC into
//! BIGNUMERIC, anything into STRING), so a drifted document never fails a
//! load. Explicit columns use the same [`write_as`] to reach their declared
//! type, and get NULL when a value does not convert.
//!
//! Conversions, by target type (anything not listed is NULL):
//! - `STRING`: strings as they are; numbers as their JSON text; booleans as
//!   `true`/`false`; dates and BSON timestamps as RFC 3339 text in UTC with
//!   microseconds; ObjectIds as 24 hex digits; Decimal128 as its exact
//!   decimal text; UUID binaries (subtype 3 or 4, 16 bytes) as
//!   `8-4-4-4-12` lowercase hex, other binaries as base64; documents, arrays
//!   and every other type as relaxed Extended JSON text.
//! - `INT64`: integers; doubles, decimals and numeric strings (`"120"`,
//!   `"1.2e3"`) only when their value is an integer that fits (no silent
//!   rounding); booleans as 1/0.
//! - `FLOAT64`: any finite number, numeric strings.
//! - `NUMERIC`/`BIGNUMERIC`: integers, doubles, decimals and numeric
//!   strings, rounded half away from zero to 9 (38) fraction digits like
//!   BigQuery's `CAST`, NULL when the integer part has more than 29 (38)
//!   digits.
//! - `BOOL`: booleans; integers (non-zero is true); `"true"`/`"false"` in
//!   any case.
//! - `TIMESTAMP`: dates, BSON timestamps (their seconds), ObjectIds (their
//!   creation time), RFC 3339 strings and `YYYY-MM-DD` strings (midnight UTC).
//! - `DATE`: the UTC date of the same values.
//! - `BYTES`: binaries of any subtype, strings (their UTF-8 bytes).
//! - `JSON`: any value, as relaxed Extended JSON text.
//!
//! NaN and infinite doubles and decimals, and dates outside
//! 0001-01-01..9999-12-31, fit only `STRING` (and `JSON`): elsewhere they
//! are a type conflict, never a silent NULL.

use bson::raw::RawBinaryRef;
use bson::spec::BinarySubtype;
use chrono::{DateTime, NaiveDate, Utc};

use crate::extjson::{self, ExtJsonError, Value};
use crate::spec::ColumnType;

use super::rules::RuleNode;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in milliseconds: the
/// range of BigQuery's TIMESTAMP and DATE.
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Digits before and after the point in NUMERIC and BIGNUMERIC. BIGNUMERIC
/// holds a few 39-digit integers too; 38 keeps the check simple and safe.
const NUMERIC_DIGITS: (usize, usize) = (29, 9);
const BIGNUMERIC_DIGITS: (usize, usize) = (38, 38);

/// A value found in a document, with what the flattener knows about it.
#[derive(Clone, Copy)]
pub(crate) struct Leaf<'a> {
    /// The value.
    pub value: Value<'a>,
    /// Excludes that reach inside this document or array, removed from its
    /// JSON text.
    pub prune: Option<&'a RuleNode>,
}

impl<'a> Leaf<'a> {
    pub fn new(value: Value<'a>) -> Self {
        Leaf { value, prune: None }
    }
}

/// The column type a value asks for by itself; None for null. NaN,
/// infinities and dates outside 0001..9999 ask for STRING.
///
/// Inlined into pass 1, which asks it of every value; a decimal's own
/// question is out of line.
#[inline]
pub(crate) fn natural_kind(value: Value<'_>) -> Option<ColumnType> {
    // NaN, infinities and dates out of range fit no other type: as text
    // nothing is lost, and `on_type_conflict` decides the rest.
    if super::conflict::unrepresentable(value).is_some() {
        return Some(ColumnType::String);
    }
    Some(match value {
        Value::Double(_) => ColumnType::Float64,
        Value::String(_) => ColumnType::String,
        Value::Document(_) | Value::Array(_) => ColumnType::Json,
        Value::Boolean(_) => ColumnType::Bool,
        Value::Null => return None,
        Value::Int32(_) | Value::Int64(_) => ColumnType::Int64,
        Value::DateTime(_) | Value::Timestamp(_) => ColumnType::Timestamp,
        Value::ObjectId(_) => ColumnType::String,
        Value::Binary(b) if is_uuid(b) => ColumnType::String,
        Value::Binary(_) => ColumnType::Bytes,
        Value::Decimal128(d) => decimal_kind(d)?,
        // Regex, JavaScript (with or without scope), Symbol, DbPointer,
        // MinKey, MaxKey, Undefined: their relaxed Extended JSON text.
        _ => ColumnType::String,
    })
}

/// The column type of a (finite) decimal: NUMERIC, BIGNUMERIC or STRING,
/// by its digits.
#[inline(never)]
fn decimal_kind(d: bson::Decimal128) -> Option<ColumnType> {
    let dec = Decimal::parse(&d.to_string())?;
    Some(if dec.fits(NUMERIC_DIGITS) {
        ColumnType::Numeric
    } else if dec.fits(BIGNUMERIC_DIGITS) {
        ColumnType::Bignumeric
    } else {
        ColumnType::String
    })
}

/// The type of a column that has seen values of types `a` and `b`: the
/// `coerce` policy.
pub(crate) fn merge_kinds(a: ColumnType, b: ColumnType) -> ColumnType {
    use ColumnType::*;
    match (a, b) {
        _ if a == b => a,
        (Int64, Float64) | (Float64, Int64) => Float64,
        (Numeric, Bignumeric) | (Bignumeric, Numeric) => Bignumeric,
        _ => String,
    }
}

fn is_uuid(b: RawBinaryRef<'_>) -> bool {
    matches!(b.subtype, BinarySubtype::Uuid | BinarySubtype::UuidOld) && b.bytes.len() == 16
}

/// Appends `leaf` as the JSON value of a `kind` column; false (and nothing
/// appended) when the value is NULL in that type.
pub(crate) fn write_as(
    leaf: Leaf<'_>,
    kind: ColumnType,
    out: &mut Vec<u8>,
) -> Result<bool, ExtJsonError> {
    let v = leaf.value;
    if matches!(v, Value::Null) {
        return Ok(false);
    }
    Ok(match kind {
        ColumnType::String => return write_text(leaf, out),
        ColumnType::Json => {
            write_json_text(leaf, out)?;
            true
        }
        ColumnType::Int64 => match as_i64(v) {
            Some(i) => {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                true
            }
            None => false,
        },
        ColumnType::Float64 => match as_f64(v) {
            Some(f) => {
                extjson::write_json_f64(f, out);
                true
            }
            None => false,
        },
        ColumnType::Numeric => write_decimal(v, NUMERIC_DIGITS, out),
        ColumnType::Bignumeric => write_decimal(v, BIGNUMERIC_DIGITS, out),
        ColumnType::Bool => match as_bool(v) {
            Some(b) => {
                out.extend_from_slice(if b { b"true" } else { b"false" });
                true
            }
            None => false,
        },
        ColumnType::Timestamp => match as_micros(v) {
            Some(us) => {
                out.push(b'"');
                write_timestamp_micros(us, out);
                out.push(b'"');
                true
            }
            None => false,
        },
        ColumnType::Date => match as_micros(v) {
            Some(us) => {
                let days = us.div_euclid(86_400_000_000);
                let (y, m, d) = extjson::civil_from_days(days);
                out.push(b'"');
                extjson::write_date_parts(y, m, d, out);
                out.push(b'"');
                true
            }
            None => false,
        },
        // Objects reach RECORD fields one field at a time (see `row`).
        ColumnType::Record => false,
        ColumnType::Bytes => match v {
            Value::Binary(b) => {
                out.push(b'"');
                extjson::write_base64(b.bytes, out);
                out.push(b'"');
                true
            }
            Value::String(s) => {
                out.push(b'"');
                extjson::write_base64(s.as_bytes(), out);
                out.push(b'"');
                true
            }
            _ => false,
        },
    })
}

/// A value in its column's type, for typed columns (`crate::rows`): what
/// [`write_as`] writes as NDJSON text, before it is text. Values of
/// variable length (STRING, JSON, BYTES, and NUMERIC/BIGNUMERIC as their
/// plain decimal) are bytes the caller's buffer holds, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    /// STRING, JSON: UTF-8 text.
    Text(usize, usize),
    /// BYTES: the bytes themselves (the NDJSON row form writes them as
    /// base64).
    Bytes(usize, usize),
    /// NUMERIC and BIGNUMERIC: plain decimal text (`-42.5`), within the
    /// column type's digits.
    Decimal(usize, usize),
    Int64(i64),
    Float64(f64),
    Bool(bool),
    /// TIMESTAMP: microseconds since the epoch, UTC.
    Micros(i64),
    /// DATE: days since 1970-01-01.
    Days(i32),
}

/// `leaf` in a `kind` column, typed: [`write_as`] without the text. None
/// (and nothing appended to `text`) exactly when [`write_as`] writes
/// nothing.
pub(crate) fn convert(
    leaf: Leaf<'_>,
    kind: ColumnType,
    text: &mut Vec<u8>,
) -> Result<Option<Scalar>, ExtJsonError> {
    let v = leaf.value;
    if matches!(v, Value::Null) {
        return Ok(None);
    }
    let start = text.len();
    Ok(match kind {
        ColumnType::String => {
            write_raw_text(leaf, text)?;
            Some(Scalar::Text(start, text.len()))
        }
        ColumnType::Json => {
            write_raw_json(leaf, text)?;
            Some(Scalar::Text(start, text.len()))
        }
        ColumnType::Int64 => as_i64(v).map(Scalar::Int64),
        ColumnType::Float64 => as_f64(v).map(Scalar::Float64),
        ColumnType::Numeric | ColumnType::Bignumeric => {
            let digits = if kind == ColumnType::Numeric {
                NUMERIC_DIGITS
            } else {
                BIGNUMERIC_DIGITS
            };
            decimal_of(v, digits).map(|d| {
                d.write_plain(text);
                Scalar::Decimal(start, text.len())
            })
        }
        ColumnType::Bool => as_bool(v).map(Scalar::Bool),
        ColumnType::Timestamp => as_micros(v).map(Scalar::Micros),
        // Within 0001..9999 the days fit an i32 with room to spare.
        ColumnType::Date => {
            as_micros(v).map(|us| Scalar::Days(us.div_euclid(86_400_000_000) as i32))
        }
        ColumnType::Record => None,
        ColumnType::Bytes => match v {
            Value::Binary(b) => {
                text.extend_from_slice(b.bytes);
                Some(Scalar::Bytes(start, text.len()))
            }
            Value::String(s) => {
                text.extend_from_slice(s.as_bytes());
                Some(Scalar::Bytes(start, text.len()))
            }
            _ => None,
        },
    })
}

/// The STRING form's text, unquoted: what [`write_text`] writes inside
/// its JSON string.
fn write_raw_text(leaf: Leaf<'_>, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    match leaf.value {
        Value::String(s) => crate::extjson::extend_short(out, s.as_bytes()),
        Value::Int32(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Int64(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Double(f) if f.is_finite() => extjson::write_json_f64(f, out),
        Value::Double(f) => out.extend_from_slice(if f.is_nan() {
            b"NaN"
        } else if f > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        }),
        Value::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::DateTime(_) | Value::Timestamp(_) => match as_micros(leaf.value) {
            Some(us) => write_timestamp_micros(us, out),
            None => write_raw_json(leaf, out)?,
        },
        Value::ObjectId(oid) => extjson::write_hex(&oid.bytes(), out),
        Value::Decimal128(d) => out.extend_from_slice(d.to_string().as_bytes()),
        Value::Binary(b) if is_uuid(b) => write_uuid(b.bytes, out),
        Value::Binary(b) => extjson::write_base64(b.bytes, out),
        _ => write_raw_json(leaf, out)?,
    }
    Ok(())
}

/// The relaxed Extended JSON text of the value: what [`write_json_text`]
/// embeds in its JSON string.
fn write_raw_json(leaf: Leaf<'_>, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    match leaf.prune {
        None => extjson::write_value::<false>(leaf.value, out, 0),
        Some(rule) => {
            let bson = leaf.value.to_bson()?;
            let json = rule.prune(bson).into_relaxed_extjson();
            serde_json::to_writer(&mut *out, &json).expect("a JSON value serializes into a Vec");
            Ok(())
        }
    }
}

/// The STRING form.
fn write_text(leaf: Leaf<'_>, out: &mut Vec<u8>) -> Result<bool, ExtJsonError> {
    match leaf.value {
        Value::String(s) => extjson::write_json_string(s, out),
        Value::Int32(i) => quoted(out, |o| {
            o.extend_from_slice(itoa::Buffer::new().format(i).as_bytes())
        }),
        Value::Int64(i) => quoted(out, |o| {
            o.extend_from_slice(itoa::Buffer::new().format(i).as_bytes())
        }),
        Value::Double(f) if f.is_finite() => quoted(out, |o| extjson::write_json_f64(f, o)),
        Value::Double(f) => extjson::write_json_string(
            if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            },
            out,
        ),
        Value::Boolean(b) => out.extend_from_slice(if b { b"\"true\"" } else { b"\"false\"" }),
        Value::DateTime(_) | Value::Timestamp(_) => match as_micros(leaf.value) {
            Some(us) => quoted(out, |o| write_timestamp_micros(us, o)),
            // Outside 0001..9999: its Extended JSON, `{"$date": ...}`.
            None => write_json_text(leaf, out)?,
        },
        Value::ObjectId(oid) => quoted(out, |o| extjson::write_hex(&oid.bytes(), o)),
        // Exact text: `NaN`, `Infinity` and `-Infinity` included.
        Value::Decimal128(d) => extjson::write_json_string(&d.to_string(), out),
        Value::Binary(b) if is_uuid(b) => quoted(out, |o| write_uuid(b.bytes, o)),
        Value::Binary(b) => quoted(out, |o| extjson::write_base64(b.bytes, o)),
        _ => write_json_text(leaf, out)?,
    }
    Ok(true)
}

fn quoted(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    write(out);
    out.push(b'"');
}

/// The relaxed Extended JSON text of the value, as one JSON string.
fn write_json_text(leaf: Leaf<'_>, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    match leaf.prune {
        None => {
            extjson::write_embedded_json(out, |o| extjson::write_value::<false>(leaf.value, o, 0))
        }
        Some(rule) => {
            // Rare: an exclude reaches inside this value. Prune a copy.
            let bson = leaf.value.to_bson()?;
            let json = rule.prune(bson).into_relaxed_extjson();
            extjson::write_embedded_json(out, |o| {
                serde_json::to_writer(&mut *o, &json).expect("a JSON value serializes into a Vec");
                Ok(())
            })
        }
    }
}

fn write_uuid(bytes: &[u8], out: &mut Vec<u8>) {
    for (i, range) in [0..4, 4..6, 6..8, 8..10, 10..16].into_iter().enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        extjson::write_hex(&bytes[range], out);
    }
}

fn as_i64(v: Value<'_>) -> Option<i64> {
    match v {
        Value::Int32(i) => Some(i64::from(i)),
        Value::Int64(i) => Some(i),
        Value::Double(f) => f64_to_i64(f),
        Value::Boolean(b) => Some(i64::from(b)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| Decimal::parse(s)?.to_i64())
        }
        Value::Decimal128(d) => Decimal::parse(&d.to_string())?.to_i64(),
        _ => None,
    }
}

fn f64_to_i64(f: f64) -> Option<i64> {
    // 2^63 is exact as a double; anything below it and integral fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

fn as_f64(v: Value<'_>) -> Option<f64> {
    let f = match v {
        Value::Int32(i) => f64::from(i),
        Value::Int64(i) => i as f64,
        Value::Double(f) => f,
        Value::String(s) => {
            let s = s.trim();
            // Rust also parses `inf` and `NaN`; only numbers are wanted.
            Decimal::parse(s)?;
            s.parse().ok()?
        }
        Value::Decimal128(d) => {
            let s = d.to_string();
            Decimal::parse(&s)?;
            s.parse().ok()?
        }
        _ => return None,
    };
    f.is_finite().then_some(f)
}

fn as_bool(v: Value<'_>) -> Option<bool> {
    match v {
        Value::Boolean(b) => Some(b),
        Value::Int32(i) => Some(i != 0),
        Value::Int64(i) => Some(i != 0),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                Some(true)
            } else if s.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Microseconds since the epoch, within 0001-01-01..9999-12-31.
fn as_micros(v: Value<'_>) -> Option<i64> {
    let us = match v {
        Value::DateTime(ms) => ms.checked_mul(1000)?,
        Value::Timestamp(ts) => i64::from(ts.time) * 1_000_000,
        Value::ObjectId(oid) => oid.timestamp().timestamp_millis() * 1000,
        Value::String(s) => parse_instant(s.trim())?,
        _ => return None,
    };
    (MIN_MS * 1000..=MAX_MS * 1000 + 999)
        .contains(&us)
        .then_some(us)
}

fn parse_instant(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// `2020-06-01T12:00:00.123000Z`: BigQuery's TIMESTAMP in JSON loads.
pub(crate) fn write_timestamp_micros(us: i64, out: &mut Vec<u8>) {
    let ms = us.div_euclid(1000);
    let millis = extjson::write_datetime_seconds(ms, out);
    let micros = millis * 1000 + us.rem_euclid(1000) as u32;
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// Whether `v` is a number, or a string of one, too long for a NUMERIC
/// (or BIGNUMERIC) column `kind`: why [`write_as`] refused it.
pub(crate) fn too_long_for(v: Value<'_>, kind: ColumnType) -> bool {
    let digits = match kind {
        ColumnType::Numeric => NUMERIC_DIGITS,
        ColumnType::Bignumeric => BIGNUMERIC_DIGITS,
        _ => return false,
    };
    let dec = match v {
        Value::Int32(i) => Decimal::parse(itoa::Buffer::new().format(i)),
        Value::Int64(i) => Decimal::parse(itoa::Buffer::new().format(i)),
        Value::Double(f) if f.is_finite() => Decimal::parse(ryu::Buffer::new().format_finite(f)),
        Value::Decimal128(d) => Decimal::parse(&d.to_string()),
        Value::String(s) => Decimal::parse(s.trim()),
        _ => None,
    };
    dec.is_some_and(|d| !d.round(digits.1).fits(digits))
}

fn write_decimal(v: Value<'_>, digits: (usize, usize), out: &mut Vec<u8>) -> bool {
    match decimal_of(v, digits) {
        Some(d) => {
            out.push(b'"');
            d.write_plain(out);
            out.push(b'"');
            true
        }
        None => false,
    }
}

/// `v` as a decimal of at most `digits`, rounded like BigQuery's `CAST`;
/// None when it is no number or too long.
fn decimal_of(v: Value<'_>, digits: (usize, usize)) -> Option<Decimal> {
    let dec = match v {
        Value::Int32(i) => Decimal::parse(itoa::Buffer::new().format(i)),
        Value::Int64(i) => Decimal::parse(itoa::Buffer::new().format(i)),
        Value::Double(f) if f.is_finite() => {
            // The shortest text that reads back as `f`, as BigQuery's CAST.
            Decimal::parse(ryu::Buffer::new().format_finite(f))
        }
        Value::Decimal128(d) => Decimal::parse(&d.to_string()),
        Value::String(s) => Decimal::parse(s.trim()),
        _ => None,
    };
    dec.map(|d| d.round(digits.1)).filter(|d| d.fits(digits))
}

/// A finite decimal number: `coefficient × 10^exponent`, the coefficient's
/// digits without leading or trailing zeros (empty for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]`, the forms of JSON
    /// numbers, Decimal128 text and most numeric strings. NaN, infinities
    /// and anything else are None.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let mut i = 0;
        let negative = match b.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::with_capacity(b.len());
        let mut exponent: i64 = 0;
        let mut seen_digit = false;
        while i < b.len() && b[i].is_ascii_digit() {
            digits.push(b[i]);
            seen_digit = true;
            i += 1;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                digits.push(b[i]);
                exponent -= 1;
                seen_digit = true;
                i += 1;
            }
        }
        if !seen_digit {
            return None;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            let exp_text = &s[i..];
            let e: i64 = exp_text
                .strip_prefix('+')
                .unwrap_or(exp_text)
                .parse()
                .ok()?;
            if e.abs() > 100_000 {
                return None;
            }
            exponent += e;
            i = b.len();
        }
        if i != b.len() {
            return None;
        }
        let lead = digits.iter().take_while(|&&d| d == b'0').count();
        digits.drain(..lead);
        while digits.last() == Some(&b'0') {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            exponent = 0;
        }
        Some(Decimal {
            negative: negative && !digits.is_empty(),
            digits,
            exponent,
        })
    }

    fn integer_digits(&self) -> usize {
        (self.digits.len() as i64 + self.exponent).max(0) as usize
    }

    fn fraction_digits(&self) -> usize {
        (-self.exponent).max(0) as usize
    }

    fn fits(&self, (int, frac): (usize, usize)) -> bool {
        self.integer_digits() <= int && self.fraction_digits() <= frac
    }

    /// Rounded half away from zero to `scale` fraction digits.
    fn round(mut self, scale: usize) -> Self {
        let frac = self.fraction_digits();
        if frac <= scale {
            return self;
        }
        let drop = frac - scale;
        if drop > self.digits.len() {
            return Decimal {
                negative: false,
                digits: Vec::new(),
                exponent: 0,
            };
        }
        let keep = self.digits.len() - drop;
        let round_up = self.digits[keep] >= b'5';
        self.digits.truncate(keep);
        self.exponent += drop as i64;
        if round_up {
            let mut i = self.digits.len();
            loop {
                if i == 0 {
                    self.digits.insert(0, b'1');
                    break;
                }
                i -= 1;
                if self.digits[i] == b'9' {
                    self.digits[i] = b'0';
                } else {
                    self.digits[i] += 1;
                    break;
                }
            }
        }
        // Renormalize: no trailing zeros, zero has no sign.
        while self.digits.last() == Some(&b'0') {
            self.digits.pop();
            self.exponent += 1;
        }
        let lead = self.digits.iter().take_while(|&&d| d == b'0').count();
        self.digits.drain(..lead);
        if self.digits.is_empty() {
            self.negative = false;
            self.exponent = 0;
        }
        self
    }

    fn to_i64(&self) -> Option<i64> {
        if self.fraction_digits() > 0 || self.integer_digits() > 19 {
            return None;
        }
        let mut text = Vec::with_capacity(21);
        self.write_plain(&mut text);
        std::str::from_utf8(&text).ok()?.parse().ok()
    }

    /// Plain notation, no exponent: `-42.5`, `0.000000001`, `1200`.
    fn write_plain(&self, out: &mut Vec<u8>) {
        if self.digits.is_empty() {
            out.push(b'0');
            return;
        }
        if self.negative {
            out.push(b'-');
        }
        let len = self.digits.len() as i64;
        if self.exponent >= 0 {
            out.extend_from_slice(&self.digits);
            out.extend(std::iter::repeat_n(b'0', self.exponent as usize));
        } else if -self.exponent < len {
            let point = (len + self.exponent) as usize;
            out.extend_from_slice(&self.digits[..point]);
            out.push(b'.');
            out.extend_from_slice(&self.digits[point..]);
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-self.exponent - len) as usize));
            out.extend_from_slice(&self.digits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, RawDocumentBuf};

    fn as_kind(value: bson::Bson, kind: ColumnType) -> Option<String> {
        let raw = RawDocumentBuf::from_document(&doc! { "v": value }).unwrap();
        let v = raw.get("v").unwrap().unwrap();
        let mut out = Vec::new();
        write_as(Leaf::new(v.into()), kind, &mut out)
            .unwrap()
            .then(|| String::from_utf8(out).unwrap())
    }

    fn dec(s: &str) -> bson::Bson {
        bson::Bson::Decimal128(s.parse().unwrap())
    }

    #[test]
    fn strings_convert_to_numbers_only_when_exact() {
        use ColumnType::*;
        assert_eq!(as_kind("120".into(), Int64).as_deref(), Some("120"));
        assert_eq!(as_kind(" 1.2e3 ".into(), Int64).as_deref(), Some("1200"));
        assert_eq!(as_kind("5.5".into(), Int64), None);
        assert_eq!(as_kind("abc".into(), Int64), None);
        assert_eq!(as_kind(5.0.into(), Int64).as_deref(), Some("5"));
        assert_eq!(as_kind(5.5.into(), Int64), None);
        assert_eq!(as_kind("5.50".into(), Float64).as_deref(), Some("5.5"));
        assert_eq!(as_kind("NaN".into(), Float64), None);
        assert_eq!(as_kind(7.into(), Float64).as_deref(), Some("7.0"));
    }

    #[test]
    fn decimals_are_exact_plain_text_and_round_like_bigquery() {
        use ColumnType::*;
        assert_eq!(
            as_kind(dec("-42.50"), Numeric).as_deref(),
            Some("\"-42.5\"")
        );
        assert_eq!(
            as_kind(dec("1E-9"), Numeric).as_deref(),
            Some("\"0.000000001\"")
        );
        assert_eq!(as_kind(dec("1E-10"), Numeric).as_deref(), Some("\"0\""));
        assert_eq!(
            as_kind(dec("1E-10"), Bignumeric).as_deref(),
            Some("\"0.0000000001\"")
        );
        assert_eq!(
            as_kind(dec("0.0000000005"), Numeric).as_deref(),
            Some("\"0.000000001\"")
        );
        assert_eq!(as_kind(dec("-0"), Numeric).as_deref(), Some("\"0\""));
        assert_eq!(as_kind(dec("9.99E+2"), Numeric).as_deref(), Some("\"999\""));
        assert_eq!(
            as_kind(dec("1.234567890123456789012345678901234E+37"), Numeric),
            None
        );
        assert_eq!(
            as_kind(dec("1.234567890123456789012345678901234E+37"), Bignumeric).as_deref(),
            Some("\"12345678901234567890123456789012340000\"")
        );
        assert_eq!(as_kind(dec("NaN"), Numeric), None);
        // Text holds what no number type can (issue 10).
        assert_eq!(as_kind(dec("NaN"), String).as_deref(), Some("\"NaN\""));
        assert_eq!(
            as_kind(dec("-Infinity"), String).as_deref(),
            Some("\"-Infinity\"")
        );
        assert_eq!(as_kind(dec("5.00"), String).as_deref(), Some("\"5.00\""));
        assert_eq!(as_kind(0.1.into(), Numeric).as_deref(), Some("\"0.1\""));
        assert_eq!(
            as_kind("19.999999999999".into(), Numeric).as_deref(),
            Some("\"20\"")
        );
    }

    #[test]
    fn decimal_kinds_follow_their_range() {
        let kind = |s: &str| natural_kind(Value::Decimal128(s.parse().unwrap()));
        assert_eq!(kind("19.99"), Some(ColumnType::Numeric));
        assert_eq!(kind("1E-10"), Some(ColumnType::Bignumeric));
        assert_eq!(
            kind("9.999999999999999999999999999999999E+6144"),
            Some(ColumnType::String)
        );
        // They fit no number type: text.
        assert_eq!(kind("NaN"), Some(ColumnType::String));
        assert_eq!(kind("-Infinity"), Some(ColumnType::String));
    }

    #[test]
    fn instants_have_microseconds_and_a_range() {
        use ColumnType::*;
        let at = |ms| bson::Bson::DateTime(bson::DateTime::from_millis(ms));
        assert_eq!(
            as_kind(at(1_591_012_800_123), Timestamp).as_deref(),
            Some("\"2020-06-01T12:00:00.123000Z\"")
        );
        assert_eq!(
            as_kind(at(-1), Timestamp).as_deref(),
            Some("\"1969-12-31T23:59:59.999000Z\"")
        );
        assert_eq!(as_kind(at(MIN_MS), Date).as_deref(), Some("\"0001-01-01\""));
        assert_eq!(as_kind(at(MIN_MS - 1), Timestamp), None);
        assert_eq!(as_kind(at(MAX_MS + 1), Timestamp), None);
        assert_eq!(
            as_kind(at(i64::MAX), String).as_deref(),
            Some(r#""{\"$date\":{\"$numberLong\":\"9223372036854775807\"}}""#)
        );
        let ts = bson::Bson::Timestamp(bson::Timestamp {
            time: 1_590_969_600,
            increment: 1,
        });
        assert_eq!(
            as_kind(ts, Timestamp).as_deref(),
            Some("\"2020-06-01T00:00:00.000000Z\"")
        );
        assert_eq!(
            as_kind("2020-06-01T14:00:00.5+02:00".into(), Timestamp).as_deref(),
            Some("\"2020-06-01T12:00:00.500000Z\"")
        );
        assert_eq!(
            as_kind("2020-06-01".into(), Date).as_deref(),
            Some("\"2020-06-01\"")
        );
        assert_eq!(as_kind("yesterday".into(), Date), None);
    }

    #[test]
    fn binaries_are_uuids_or_base64() {
        let uuid = bson::Binary {
            subtype: BinarySubtype::Uuid,
            bytes: hex::decode("550e8400e29b41d4a716446655440000").unwrap(),
        };
        assert_eq!(
            as_kind(uuid.clone().into(), ColumnType::String).as_deref(),
            Some("\"550e8400-e29b-41d4-a716-446655440000\"")
        );
        assert_eq!(
            as_kind(uuid.into(), ColumnType::Bytes).as_deref(),
            Some("\"VQ6EAOKbQdSnFkRmVUQAAA==\"")
        );
        let generic = bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![1, 2, 3, 4],
        };
        assert_eq!(
            natural_kind(Value::Binary(generic.as_raw_binary())),
            Some(ColumnType::Bytes)
        );
        assert_eq!(
            as_kind(generic.into(), ColumnType::String).as_deref(),
            Some("\"AQIDBA==\"")
        );
    }

    #[test]
    fn coercion_widens_numbers_and_falls_back_to_string() {
        use ColumnType::*;
        assert_eq!(merge_kinds(Int64, Float64), Float64);
        assert_eq!(merge_kinds(Numeric, Bignumeric), Bignumeric);
        assert_eq!(merge_kinds(Int64, String), String);
        assert_eq!(merge_kinds(Bool, Int64), String);
        assert_eq!(merge_kinds(Json, Json), Json);
        assert_eq!(as_kind(true.into(), String).as_deref(), Some("\"true\""));
        assert_eq!(as_kind(2.5.into(), String).as_deref(), Some("\"2.5\""));
        assert_eq!(
            as_kind(bson::Bson::Array(vec![1.into(), "a".into()]), String).as_deref(),
            Some(r#""[1,\"a\"]""#)
        );
        assert_eq!(
            as_kind(bson::Bson::MinKey, String).as_deref(),
            Some(r#""{\"$minKey\":1}""#)
        );
    }
}
