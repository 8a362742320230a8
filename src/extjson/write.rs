//! The writers: JSON strings, and documents or values as canonical or
//! relaxed Extended JSON v2, byte-identical to the bson crate's route (see
//! the [contract](super)). Also the relaxed form as a [`serde_json::Value`],
//! for JSONPath.

use std::io::Write as _;

use base64::Engine as _;
use bson::raw::{RawBinaryRef, RawBsonRef, RawDocument};
use serde_json::ser::Formatter as _;

use super::raw::{elements, has_key_before, KeyFilter, Value};
use super::time::write_rfc3339_trimmed;
use super::{ExtJsonError, MAX_NESTING};

/// First millisecond of the year 10000: relaxed Extended JSON writes dates
/// from the epoch up to here as RFC 3339 text, others as `$numberLong`.
const RELAXED_DATE_END_MS: i64 = 253_402_300_800_000;

/// Appends `doc` as canonical Extended JSON v2, without a trailing newline:
/// exactly `Bson::Document(doc.to_document()?).into_canonical_extjson()`
/// serialized by serde_json.
pub fn write_canonical(doc: &RawDocument, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    guarded(out, |out| write_doc::<true>(doc, out, 0))
}

/// Appends `doc` as relaxed Extended JSON v2: exactly
/// `Bson::Document(doc.to_document()?).into_relaxed_extjson()` serialized by
/// serde_json.
pub fn write_relaxed(doc: &RawDocument, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    guarded(out, |out| write_doc::<false>(doc, out, 0))
}

/// Appends one value as relaxed Extended JSON v2: exactly
/// `Bson::try_from(value)?.into_relaxed_extjson()` serialized by serde_json.
pub fn write_relaxed_value(value: RawBsonRef<'_>, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    guarded(out, |out| write_value::<false>(value.into(), out, 0))
}

/// Appends one value as canonical Extended JSON v2.
pub fn write_canonical_value(value: RawBsonRef<'_>, out: &mut Vec<u8>) -> Result<(), ExtJsonError> {
    guarded(out, |out| write_value::<true>(value.into(), out, 0))
}

/// `doc` as a relaxed Extended JSON [`serde_json::Value`], equal to
/// `Bson::Document(doc.to_document()?).into_relaxed_extjson()`, built
/// without the intermediate `bson::Document`. For JSONPath queries.
pub fn to_relaxed_value(doc: &RawDocument) -> Result<serde_json::Value, ExtJsonError> {
    relaxed_doc_value(doc, 0)
}

/// Appends `s` as a JSON string literal, escaped exactly as serde_json
/// escapes it: `"` `\` and the control characters below U+0020 only, with
/// the short forms `\b \t \n \f \r` and lowercase `\u00XX` otherwise.
#[inline]
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    write_json_string_contents(s.as_bytes(), out);
    out.push(b'"');
}

/// The escaped contents of a JSON string, without the quotes. `bytes` must
/// be UTF-8; only ASCII bytes are ever escaped, so the output stays UTF-8.
#[inline]
pub(crate) fn write_json_string_contents(bytes: &[u8], out: &mut Vec<u8>) {
    if !may_need_escape(bytes) {
        super::extend_short(out, bytes);
        return;
    }
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs escaping, as in
        // almost all text, rather than a table look-up per byte.
        if let Some(word) = bytes.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape = ESCAPE[b as usize];
        i += 1;
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i - 1]);
        start = i;
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends the JSON text that `write` produces as one JSON *string* holding
/// it (what a `JSON` column looks like in a BigQuery NDJSON row). The text is
/// written in place, then its `"` and `\` are escaped by shifting it right
/// once, so no scratch buffer is needed. `write` must produce JSON text,
/// which never holds raw control characters.
pub(crate) fn write_embedded_json<E>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    out.push(b'"');
    let start = out.len();
    write(out)?;
    let end = out.len();
    let extra = memchr::memchr2_iter(b'"', b'\\', &out[start..end]).count();
    if extra > 0 {
        out.resize(end + extra, 0);
        // Walk backwards so every byte moves right before it is overwritten.
        let mut dst = end + extra;
        let mut src = end;
        while src > start {
            src -= 1;
            let b = out[src];
            dst -= 1;
            out[dst] = b;
            if b == b'"' || b == b'\\' {
                dst -= 1;
                out[dst] = b'\\';
            }
        }
    }
    out.push(b'"');
    Ok(())
}

/// Whether one of the eight bytes of `word` is `"`, `\\` or a control
/// character below U+0020: the bytes [`ESCAPE`] escapes. Never false when
/// one is (a rare true for none only costs the byte-wise look).
#[inline]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below n (n <= 128) sets its high bit in (w - n) & !w.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH != 0;
    below(word, 0x20)
        || below(word ^ (ONES * u64::from(b'"')), 1)
        || below(word ^ (ONES * u64::from(b'\\')), 1)
}

/// False when no byte of `bytes` needs escaping, as for almost every key
/// and string: the archive writes each of them, most are short, and a
/// byte-wise look at the last few bytes cost more than the rest. The bytes
/// are read as whole words, the last one overlapping the one before, and
/// below eight bytes as one word ([`super::raw::short_word`]) filled with
/// spaces, which are never escaped.
#[inline]
fn may_need_escape(bytes: &[u8]) -> bool {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let n = bytes.len();
    if n < 8 {
        return n > 0 && needs_escape(super::raw::short_word(bytes, SPACES));
    }
    let at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 < n {
        if needs_escape(at(i)) {
            return true;
        }
        i += 8;
    }
    needs_escape(at(n - 8))
}

/// serde_json's escape table: 0 means "copy as is", `u` means `\u00XX`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

fn guarded(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), ExtJsonError>,
) -> Result<(), ExtJsonError> {
    let mark = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

// ---------------------------------------------------------------------------
// The writers
// ---------------------------------------------------------------------------

fn write_doc<const CANONICAL: bool>(
    doc: &RawDocument,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), ExtJsonError> {
    if depth > MAX_NESTING {
        return Err(ExtJsonError::too_deep());
    }
    let start = out.len();
    out.push(b'{');
    let mut keys = KeyFilter::default();
    for (i, item) in elements(doc).enumerate() {
        let (key, value) = item?;
        if keys.insert(key) && has_key_before(doc, key, i) {
            out.truncate(start);
            super::archive::lossy("a duplicate key");
            return write_doc_through_crate::<CANONICAL>(doc, out);
        }
        if key.starts_with('$') {
            // Read back, `{"$oid": ...}` and the like are values, not keys.
            super::archive::lossy("a key starting with `$`");
        }
        if i > 0 {
            out.push(b',');
        }
        write_json_string(key, out);
        out.push(b':');
        write_value::<CANONICAL>(value, out, depth + 1).map_err(|e| e.under_key(key))?;
    }
    out.push(b'}');
    Ok(())
}

fn write_array<const CANONICAL: bool>(
    array: &RawDocument,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), ExtJsonError> {
    if depth > MAX_NESTING {
        return Err(ExtJsonError::too_deep());
    }
    out.push(b'[');
    for (i, item) in elements(array).enumerate() {
        let (_, value) = item.map_err(|e| e.under_index(i))?;
        if i > 0 {
            out.push(b',');
        }
        write_value::<CANONICAL>(value, out, depth + 1).map_err(|e| e.under_index(i))?;
    }
    out.push(b']');
    Ok(())
}

#[inline]
pub(crate) fn write_value<const CANONICAL: bool>(
    value: Value<'_>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), ExtJsonError> {
    match value {
        Value::String(s) => write_json_string(s, out),
        Value::Int32(i) => {
            if CANONICAL {
                out.extend_from_slice(b"{\"$numberInt\":\"");
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                out.extend_from_slice(b"\"}");
            } else {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            }
        }
        Value::Int64(i) => {
            if CANONICAL {
                out.extend_from_slice(b"{\"$numberLong\":\"");
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                out.extend_from_slice(b"\"}");
            } else {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            }
        }
        Value::Double(f) => write_double::<CANONICAL>(f, out),
        Value::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
        Value::ObjectId(oid) => {
            out.extend_from_slice(b"{\"$oid\":\"");
            write_hex(&oid.bytes(), out);
            out.extend_from_slice(b"\"}");
        }
        Value::DateTime(ms) => write_date::<CANONICAL>(ms, out),
        Value::Document(d) => write_doc::<CANONICAL>(d, out, depth)?,
        Value::Array(a) => write_array::<CANONICAL>(a, out, depth)?,
        Value::Binary(b) => write_binary(b, out),
        rare => {
            let raw = rare
                .to_raw_ref()
                .expect("documents and arrays are matched above");
            write_value_through_crate::<CANONICAL>(raw, out)?
        }
    }
    Ok(())
}

fn write_double<const CANONICAL: bool>(f: f64, out: &mut Vec<u8>) {
    // bson's `into_canonical_extjson`: normal values use Rust's `Display`
    // (never an exponent) plus `.0` when integral, zeros are spelled out,
    // and everything else (NaN, infinities, subnormals) falls through to the
    // relaxed form.
    if CANONICAL {
        if f.is_normal() {
            out.extend_from_slice(b"{\"$numberDouble\":\"");
            write_display_f64(f, out);
            if f.fract() == 0.0 {
                out.extend_from_slice(b".0");
            }
            out.extend_from_slice(b"\"}");
            return;
        }
        if f == 0.0 {
            out.extend_from_slice(if f.is_sign_negative() {
                b"{\"$numberDouble\":\"-0.0\"}"
            } else {
                b"{\"$numberDouble\":\"0.0\"}"
            });
            return;
        }
    }
    if f.is_nan() {
        if f.to_bits() & !(1 << 63) != f64::NAN.to_bits() {
            super::archive::lossy("a NaN with a payload");
        }
        out.extend_from_slice(if f.is_sign_negative() {
            b"{\"$numberDouble\":\"-NaN\"}"
        } else {
            b"{\"$numberDouble\":\"NaN\"}"
        });
    } else if f.is_infinite() {
        out.extend_from_slice(if f.is_sign_negative() {
            b"{\"$numberDouble\":\"-Infinity\"}"
        } else {
            b"{\"$numberDouble\":\"Infinity\"}"
        });
    } else {
        write_json_f64(f, out);
    }
}

/// A finite double as Rust's `Display` writes it (`format!("{f}")`): the
/// shortest digits that read back as `f`, in plain notation, never an
/// exponent (`1e21` is `1000000000000000000000`, `1e-7` is `0.0000001`).
///
/// The digits come from ryu, which finds the same shortest, closest digits
/// as `Display` in a fraction of the time: the archive writes every double
/// of every document this way, and `Display` was 2% of a run's CPU. The
/// two differ only on a tie, a double exactly halfway between two shortest
/// candidates (ryu rounds it to even, `Display` up), and a tie needs 16
/// significant digits or more: a double's neighbours are 2^-52 of it
/// apart, so dropping a last digit 5 can only stay within half of that at
/// such a length. Doubles of 15 digits or more go to `Display` itself (the
/// tests compare the two on millions of doubles of every length).
pub(crate) fn write_display_f64(f: f64, out: &mut Vec<u8>) {
    /// Shortest digits from this length on may be a tie: see above.
    const TIE_DIGITS: usize = 15;
    if write_short_decimal(f, out) {
        return;
    }
    let mut buffer = ryu::Buffer::new();
    // `1.2345e-7`, `-123.45`, `1e21`, `100.0`: a sign, digits with or
    // without a point, and an exponent.
    let text = buffer.format_finite(f).as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(e) => (
            &text[..e],
            std::str::from_utf8(&text[e + 1..])
                .ok()
                .and_then(|x| x.parse::<i32>().ok())
                .expect("ryu writes a decimal exponent"),
        ),
        None => (text, 0),
    };
    // The digits d1 d2 ... dn, and where the point goes: the value is
    // 0.d1d2...dn x 10^point.
    let mut digits = [0u8; 32];
    let mut n = 0;
    let mut point = None;
    for &b in mantissa {
        if b == b'.' {
            point = Some(n);
        } else {
            digits[n] = b;
            n += 1;
        }
    }
    let mut point = point.unwrap_or(n) as i32 + exponent;
    let lead = digits[..n].iter().take_while(|&&d| d == b'0').count();
    let digits = &digits[lead..n];
    point -= lead as i32;
    let zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &digits[..digits.len() - zeros];
    if digits.len() >= TIE_DIGITS {
        write!(out, "{f}").expect("writing to a Vec cannot fail");
        return;
    }
    if negative {
        out.push(b'-');
    }
    let len = digits.len() as i32;
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point < len {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    } else {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (point - len) as usize));
    }
}

/// `f` as [`write_display_f64`] writes it, when it is a decimal of at most
/// six places below 2^50 / 10^6 (about 10^9), as prices, amounts and
/// coordinates are; false, with nothing written, for any other double.
///
/// Most doubles in documents are such decimals, and for them one multiply,
/// one divide and an integer's digits replace ryu's search (ryu was 3% of a
/// run's instructions). Why the digits are Display's: let m be the integer
/// nearest f x 10^6. If m / 10^6 (one correctly rounded division of two
/// exact doubles) is f, the decimal m x 10^-6 reads back as f. f's
/// neighbours are at most |f| x 2^-52 apart, so every decimal that reads
/// back as f lies within 2^50 x 2^-53 = 1/8 of f x 10^6 in millionths:
/// there is no other one with six places or fewer, and the shortest digits
/// are m's with its trailing zeros dropped. One candidate, so no tie
/// either. Such a decimal is never a halfway point between two doubles
/// (one with a power of two below would need 54 significant bits, and m
/// has 50), so the boundaries, where parsers and ryu could disagree, never
/// come up.
#[inline]
fn write_short_decimal(f: f64, out: &mut Vec<u8>) -> bool {
    const SCALE: f64 = 1e6;
    const PLACES: usize = 6;
    const LIMIT: f64 = (1u64 << 50) as f64;
    let scaled = f * SCALE;
    if !scaled.is_finite() || scaled.abs() >= LIMIT {
        return false;
    }
    let m = scaled.round();
    if m / SCALE != f || m == 0.0 {
        return false;
    }
    if m < 0.0 {
        out.push(b'-');
    }
    // Below 2^50, so exact as an integer.
    let m = m.abs() as u64;
    let (whole, fraction) = (m / 1_000_000, m % 1_000_000);
    out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    if fraction != 0 {
        let mut places = [b'0'; PLACES];
        let mut rest = fraction;
        for place in places.iter_mut().rev() {
            *place = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let zeros = places.iter().rev().take_while(|&&d| d == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&places[..PLACES - zeros]);
    }
    true
}

/// A finite double as serde_json writes a JSON number.
#[inline]
pub(crate) fn write_json_f64(f: f64, out: &mut Vec<u8>) {
    serde_json::ser::CompactFormatter
        .write_f64(out, f)
        .expect("writing to a Vec cannot fail");
}

fn write_date<const CANONICAL: bool>(ms: i64, out: &mut Vec<u8>) {
    if !CANONICAL && (0..RELAXED_DATE_END_MS).contains(&ms) {
        out.extend_from_slice(b"{\"$date\":\"");
        write_rfc3339_trimmed(ms, out);
        out.extend_from_slice(b"\"}");
    } else {
        out.extend_from_slice(b"{\"$date\":{\"$numberLong\":\"");
        out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        out.extend_from_slice(b"\"}}");
    }
}

fn write_binary(b: RawBinaryRef<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"$binary\":{\"base64\":\"");
    write_base64(b.bytes, out);
    out.extend_from_slice(b"\",\"subType\":\"");
    write_hex(&[u8::from(b.subtype)], out);
    out.extend_from_slice(b"\"}}");
}

/// Standard base64 with padding, as bson's `base64::encode`.
pub(crate) fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("the buffer has room for the padded encoding");
    out.truncate(start + written);
}

/// Lowercase hex.
pub(crate) fn write_hex(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // An ObjectId's 12 bytes, most of the time: one append, not 24.
    for piece in bytes.chunks(16) {
        let mut text = [0u8; 32];
        for (pair, &b) in text.chunks_exact_mut(2).zip(piece) {
            pair[0] = HEX[(b >> 4) as usize];
            pair[1] = HEX[(b & 0xf) as usize];
        }
        out.extend_from_slice(&text[..2 * piece.len()]);
    }
}

fn write_value_through_crate<const CANONICAL: bool>(
    value: RawBsonRef<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ExtJsonError> {
    match value {
        RawBsonRef::Decimal128(d)
            if d.to_string()
                .parse::<bson::Decimal128>()
                .ok()
                .map(|p| p.bytes())
                != Some(d.bytes()) =>
        {
            super::archive::lossy("a Decimal128 in a non-canonical encoding");
        }
        RawBsonRef::RegularExpression(r)
            if !r.options.as_bytes().windows(2).all(|w| w[0] < w[1]) =>
        {
            super::archive::lossy("regular expression options out of order");
        }
        _ => {}
    }
    let bson = bson::Bson::try_from(value).map_err(ExtJsonError::malformed)?;
    write_bson_through_crate::<CANONICAL>(bson, out);
    Ok(())
}

fn write_doc_through_crate<const CANONICAL: bool>(
    doc: &RawDocument,
    out: &mut Vec<u8>,
) -> Result<(), ExtJsonError> {
    let doc = bson::Document::try_from(doc).map_err(ExtJsonError::malformed)?;
    write_bson_through_crate::<CANONICAL>(bson::Bson::Document(doc), out);
    Ok(())
}

/// `bson` as the crate writes it: its Extended JSON value, serialized by
/// serde_json.
fn write_bson_through_crate<const CANONICAL: bool>(bson: bson::Bson, out: &mut Vec<u8>) {
    let json = if CANONICAL {
        bson.into_canonical_extjson()
    } else {
        bson.into_relaxed_extjson()
    };
    serde_json::to_writer(&mut *out, &json).expect("a JSON value serializes into a Vec");
}

// ---------------------------------------------------------------------------
// serde_json values, for JSONPath
// ---------------------------------------------------------------------------

fn relaxed_doc_value(doc: &RawDocument, depth: usize) -> Result<serde_json::Value, ExtJsonError> {
    if depth > MAX_NESTING {
        return Err(ExtJsonError::too_deep());
    }
    let mut map = serde_json::Map::new();
    for item in elements(doc) {
        let (key, value) = item?;
        let value = relaxed_value(value, depth + 1).map_err(|e| e.under_key(key))?;
        // A duplicate key keeps its first position and takes the last value,
        // as `bson::Document` does.
        map.insert(key.to_owned(), value);
    }
    Ok(serde_json::Value::Object(map))
}

fn relaxed_value(value: Value<'_>, depth: usize) -> Result<serde_json::Value, ExtJsonError> {
    use serde_json::Value as Json;
    Ok(match value {
        Value::String(s) => Json::String(s.to_owned()),
        Value::Int32(i) => Json::from(i),
        Value::Int64(i) => Json::from(i),
        Value::Double(f) if f.is_finite() => Json::from(f),
        Value::Boolean(b) => Json::Bool(b),
        Value::Null => Json::Null,
        Value::Document(d) => relaxed_doc_value(d, depth)?,
        Value::Array(a) => {
            if depth > MAX_NESTING {
                return Err(ExtJsonError::too_deep());
            }
            let mut items = Vec::new();
            for (i, item) in elements(a).enumerate() {
                let (_, v) = item.map_err(|e| e.under_index(i))?;
                items.push(relaxed_value(v, depth + 1).map_err(|e| e.under_index(i))?);
            }
            Json::Array(items)
        }
        other => {
            // Every other type is a small object; write it once and parse
            // it back rather than mirror each shape twice.
            let mut text = Vec::with_capacity(64);
            write_value::<false>(other, &mut text, depth)?;
            serde_json::from_slice(&text).expect("the writers produce valid JSON")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson, Document, RawDocumentBuf};
    use proptest::prelude::*;

    /// The word-at-a-time escaping is serde_json's, whatever the length of
    /// the text and wherever its escapes sit.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let pieces = [
            "a", "\"", "\\", "\n", "\u{1}", "\u{1f}", " ", "~", "\u{7f}", "é", "€", "😀",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let text: String = (0..len)
                .map(|k| {
                    let r = x.rotate_left(k as u32 * 5);
                    // Mostly plain letters, as real text is.
                    if r % 5 == 0 {
                        pieces[(r >> 8) as usize % pieces.len()]
                    } else {
                        "b"
                    }
                })
                .collect();
            let mut out = Vec::new();
            write_json_string(&text, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
        // Every ASCII byte at every place of every short length: the
        // clean check reads them as words, halves and single bytes.
        for b in 0..=0x7f_u8 {
            for (len, at) in (1..=17).flat_map(|len| (0..len).map(move |at| (len, at))) {
                let mut text = "x".repeat(len);
                text.replace_range(at..at + 1, &char::from(b).to_string());
                let mut out = Vec::new();
                write_json_string(&text, &mut out);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&text).unwrap()
                );
            }
        }
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        write_hex(&bytes, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), hex::encode(&bytes));
    }

    /// [`write_display_f64`] is `Display`, byte for byte: on every power
    /// of ten and its neighbours, on decimals as documents hold them
    /// (prices, coordinates), and on millions of doubles of any bits.
    #[test]
    fn doubles_are_written_as_display_writes_them() {
        let check = |f: f64| {
            if !f.is_finite() || f == 0.0 {
                return;
            }
            let mut out = Vec::new();
            write_display_f64(f, &mut out);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                format!("{f}"),
                "bits {:#018x}",
                f.to_bits()
            );
        };
        for e in -330..=310 {
            let p = format!("1e{e}").parse::<f64>().unwrap();
            for f in [p, -p, p * 1.5, p * 9.999_999, p / 3.0] {
                for g in [
                    f,
                    f64::from_bits(f.to_bits() + 1),
                    f64::from_bits(f.to_bits() - 1),
                ] {
                    check(g);
                }
            }
        }
        for k in 0..200_000 {
            let k = f64::from(k);
            check(k / 100.0);
            check(k / 1e6 - 0.05);
            check(k * 0.1);
            check(k);
        }
        // Around the short decimals' limit, 2^50 millionths.
        let limit = (1u64 << 50) as f64 / 1e6;
        for f in [limit, limit / 10.0, limit / 100.0] {
            let mut g = f;
            for _ in 0..100 {
                check(g);
                g = f64::from_bits(g.to_bits() - 1);
            }
            check(f.floor() + 0.5);
            check(f.floor() - 0.123_456);
            check(f64::from_bits(f.to_bits() + 1));
        }
        for f in [
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            9_007_199_254_740_993.0,
            0.1 + 0.2,
            0.000_001,
            0.000_000_1,
            999_999.999_999,
            1_000_000.000_001,
        ] {
            check(f);
            check(-f);
        }
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..3_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            check(f);
            // The same double cut to 1..17 significant digits: most of
            // those take ryu's route, where random bits (17 digits) do not.
            if f.is_finite() {
                check(format!("{f:.*e}", i % 17).parse().unwrap());
            }
        }
    }

    /// The decimals documents hold take the short route, and those it
    /// cannot prove go to ryu (the test above checks both against Display).
    #[test]
    fn short_decimals_skip_ryu() {
        let short = |f: f64| {
            let mut out = Vec::new();
            write_short_decimal(f, &mut out).then(|| String::from_utf8(out).unwrap())
        };
        assert_eq!(short(12.34).as_deref(), Some("12.34"));
        assert_eq!(short(-0.05).as_deref(), Some("-0.05"));
        assert_eq!(short(52.520_001).as_deref(), Some("52.520001"));
        assert_eq!(short(100.0).as_deref(), Some("100"));
        assert_eq!(short(1_000_000_000.5).as_deref(), Some("1000000000.5"));
        for f in [0.1 + 0.2, 1e-7, 1.0 / 3.0, 2e9, f64::NAN, f64::INFINITY] {
            assert_eq!(short(f), None, "{f}");
        }
    }

    fn crate_canonical(doc: &Document) -> String {
        Bson::Document(doc.clone())
            .into_canonical_extjson()
            .to_string()
    }

    fn crate_relaxed(doc: &Document) -> String {
        Bson::Document(doc.clone())
            .into_relaxed_extjson()
            .to_string()
    }

    fn ours(doc: &RawDocument, canonical: bool) -> String {
        let mut out = Vec::new();
        if canonical {
            write_canonical(doc, &mut out).unwrap();
        } else {
            write_relaxed(doc, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn assert_same(doc: &Document) {
        let raw = RawDocumentBuf::from_document(doc).unwrap();
        assert_eq!(
            ours(&raw, true),
            crate_canonical(doc),
            "canonical of {doc:?}"
        );
        assert_eq!(ours(&raw, false), crate_relaxed(doc), "relaxed of {doc:?}");
        let value = to_relaxed_value(&raw).unwrap();
        assert_eq!(value.to_string(), crate_relaxed(doc), "value of {doc:?}");
    }

    /// Every document of `tests/fixtures/bson/edge_cases.bson`, raw.
    fn edge_cases() -> Vec<RawDocumentBuf> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bson/edge_cases.bson"
        );
        let bytes = std::fs::read(path).unwrap();
        crate::extjson::concatenated(&bytes)
            .map(|d| d.unwrap().to_raw_document_buf())
            .collect()
    }

    #[test]
    fn edge_case_fixtures_are_byte_identical() {
        let docs = edge_cases();
        assert_eq!(docs.len(), 25);
        for raw in &docs {
            let doc = raw.to_document().unwrap();
            assert_same(&doc);
        }
    }

    #[test]
    fn demo_documents_are_byte_identical() {
        let opts = crate::demo::DemoOptions::default();
        let docs = crate::demo::users(&opts)
            .chain(crate::demo::orders(&opts))
            .chain(crate::demo::products(&opts));
        let mut out = Vec::new();
        for doc in docs {
            let raw = RawDocumentBuf::from_document(&doc).unwrap();
            out.clear();
            write_canonical(&raw, &mut out).unwrap();
            assert_eq!(std::str::from_utf8(&out).unwrap(), crate_canonical(&doc));
            out.clear();
            write_relaxed(&raw, &mut out).unwrap();
            assert_eq!(std::str::from_utf8(&out).unwrap(), crate_relaxed(&doc));
        }
    }

    #[test]
    fn doubles_follow_the_crate_quirks() {
        for f in [
            0.0,
            -0.0,
            1.0,
            -1.5,
            3.0,
            1e21,
            1e300,
            1e-300,
            5e-324,
            2.2250738585072014e-308,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_same(&doc! { "f": f, "a": [f] });
        }
    }

    #[test]
    fn dates_follow_the_crate_around_every_edge() {
        for ms in [
            i64::MIN,
            -62_135_596_800_000,
            -1,
            0,
            1,
            10,
            100,
            120,
            999,
            1_590_969_600_000,
            1_591_055_999_999,
            RELAXED_DATE_END_MS - 1,
            RELAXED_DATE_END_MS,
            i64::MAX,
        ] {
            assert_same(&doc! { "d": bson::DateTime::from_millis(ms) });
        }
    }

    #[test]
    fn duplicate_keys_keep_the_first_position_and_the_last_value() {
        // `doc!` cannot hold a duplicate key; build the bytes by hand.
        let mut raw = RawDocumentBuf::new();
        raw.append("a", 1);
        raw.append("b", "x");
        raw.append("a", 2);
        let mut inner = RawDocumentBuf::new();
        inner.append("k", true);
        inner.append("k", false);
        raw.append("inner", inner);
        let doc = raw.to_document().unwrap();
        assert_eq!(
            ours(&raw, true),
            r#"{"a":{"$numberInt":"2"},"b":"x","inner":{"k":false}}"#
        );
        assert_eq!(ours(&raw, true), crate_canonical(&doc));
        assert_eq!(ours(&raw, false), crate_relaxed(&doc));
        assert_eq!(
            to_relaxed_value(&raw).unwrap().to_string(),
            crate_relaxed(&doc)
        );
    }

    #[test]
    fn rare_types_go_through_the_crate() {
        let doc = doc! {
            "ts": bson::Timestamp { time: 1, increment: 2 },
            "re": bson::Regex { pattern: "a/b".into(), options: "xi".into() },
            "code": bson::Bson::JavaScriptCode("f()".into()),
            "scoped": bson::JavaScriptCodeWithScope { code: "g()".into(), scope: doc! { "x": 1, "d": 1.5 } },
            "min": bson::Bson::MinKey,
            "max": bson::Bson::MaxKey,
            "undef": bson::Bson::Undefined,
            "sym": bson::Bson::Symbol("s".into()),
            "dec": "12.50".parse::<bson::Decimal128>().unwrap(),
        };
        assert_same(&doc);
    }

    #[test]
    fn errors_leave_the_buffer_untouched_and_name_the_path() {
        // An invalid UTF-8 string inside `a.b`.
        let mut raw = RawDocumentBuf::from_document(&doc! { "a": { "b": "xy" } })
            .unwrap()
            .into_bytes();
        let at = raw.windows(2).position(|w| w == b"xy").unwrap();
        raw[at] = 0xff;
        let raw = RawDocumentBuf::from_bytes(raw).unwrap();
        let mut out = b"keep".to_vec();
        let err = write_canonical(&raw, &mut out).unwrap_err();
        assert_eq!(out, b"keep");
        // The element is unreadable, so its key is unknown: the path stops
        // at the document holding it.
        assert!(
            err.to_string().starts_with("malformed BSON at `$.a`"),
            "{err}"
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_an_error() {
        let mut doc = doc! { "leaf": 1 };
        for _ in 0..MAX_NESTING + 2 {
            doc = doc! { "d": doc };
        }
        let raw = RawDocumentBuf::from_document(&doc).unwrap();
        let err = write_canonical(&raw, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ExtJsonError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn embedded_json_is_one_json_string() {
        let mut out = b"x".to_vec();
        write_embedded_json::<()>(&mut out, |o| {
            o.extend_from_slice(br#"{"a":"q\"\\"}"#);
            Ok(())
        })
        .unwrap();
        let text: String = serde_json::from_slice(&out[1..]).unwrap();
        assert_eq!(text, r#"{"a":"q\"\\"}"#);
    }

    fn arb_bson() -> impl Strategy<Value = Bson> {
        let leaf = prop_oneof![
            any::<String>().prop_map(Bson::String),
            any::<i32>().prop_map(Bson::Int32),
            any::<i64>().prop_map(Bson::Int64),
            any::<f64>().prop_map(Bson::Double),
            any::<u64>().prop_map(|b| Bson::Double(f64::from_bits(b))),
            any::<bool>().prop_map(Bson::Boolean),
            Just(Bson::Null),
            any::<i64>().prop_map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms))),
            (0i64..RELAXED_DATE_END_MS)
                .prop_map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms))),
            any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(t, bytes)| {
                let subtype = bson::spec::BinarySubtype::from(if t == 2 { 0 } else { t });
                Bson::Binary(bson::Binary { subtype, bytes })
            }),
            any::<[u8; 16]>().prop_map(|b| Bson::Decimal128(bson::Decimal128::from_bytes(b))),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Bson::Array),
                proptest::collection::vec(("[^\u{0}]{0,6}", inner), 0..6)
                    .prop_map(|kv| { Bson::Document(kv.into_iter().collect()) }),
            ]
        })
    }

    /// A document with every type the fast reader decodes, and a few it
    /// leaves to the crate.
    fn sample() -> Vec<u8> {
        let doc = doc! {
            "s": "text", "i": 1, "l": 2_i64, "d": 1.5, "b": true, "n": null,
            "o": { "x": [1, "two", { "y": bson::DateTime::from_millis(5) }] },
            "id": bson::oid::ObjectId::from_bytes([7; 12]),
            "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2] },
            "ts": bson::Timestamp { time: 3, increment: 4 },
            "dec": "1.5".parse::<bson::Decimal128>().unwrap(),
            "re": bson::Regex { pattern: "p".into(), options: "i".into() },
            "after": "the regex",
        };
        RawDocumentBuf::from_document(&doc).unwrap().into_bytes()
    }

    proptest! {
        // Failures print their minimal case; nothing is written to the tree.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Corrupted bytes: whatever the crate makes of them, so do we.
        #[test]
        fn damaged_documents_fail_as_the_crate_fails(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        ) {
            let mut bytes = sample();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let Ok(raw) = RawDocument::from_bytes(&bytes) else { return Ok(()) };
            let ours = {
                let mut out = Vec::new();
                write_canonical(raw, &mut out).map(|()| String::from_utf8(out).unwrap())
            };
            match Document::try_from(raw) {
                Ok(doc) => prop_assert_eq!(ours.unwrap(), crate_canonical(&doc)),
                Err(_) => prop_assert!(ours.is_err()),
            }
        }

        #[test]
        fn any_document_is_byte_identical(
            kv in proptest::collection::vec(("[^\u{0}]{0,8}", arb_bson()), 0..8)
        ) {
            let doc: Document = kv.into_iter().collect();
            let raw = RawDocumentBuf::from_document(&doc).unwrap();
            prop_assert_eq!(ours(&raw, true), crate_canonical(&doc));
            prop_assert_eq!(ours(&raw, false), crate_relaxed(&doc));
            prop_assert_eq!(to_relaxed_value(&raw).unwrap().to_string(), crate_relaxed(&doc));
        }
    }
}
