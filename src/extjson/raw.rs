//! The elements of a raw BSON document, read without the bson crate's
//! per-element overhead, and the duplicate-key check of the writers. The
//! flattener walks documents with the same reader.

use bson::oid::ObjectId;
use bson::raw::{RawBinaryRef, RawBsonRef, RawDocument, RawIter};
use bson::spec::BinarySubtype;

use super::ExtJsonError;

/// The documents of concatenated BSON documents: a `.bson` file (what
/// `mongodump` writes), the engine's spool, a chunk of an extract. A
/// document that does not parse ends the iteration after its error.
pub fn concatenated(
    bytes: &[u8],
) -> impl Iterator<Item = Result<&RawDocument, bson::raw::Error>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = bytes.get(at..at + 4)?;
        let len = i32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
        let doc = bytes.get(at..at + len).map_or_else(
            || RawDocument::from_bytes(&bytes[at..]),
            RawDocument::from_bytes,
        );
        at = if doc.is_ok() { at + len } else { bytes.len() };
        Some(doc)
    })
}

/// One borrowed BSON value, as [`elements`] reads it: [`RawBsonRef`], except
/// that an array is its raw document (a `RawArray` cannot be built outside
/// the bson crate) and dates are their milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Double(f64),
    String(&'a str),
    Document(&'a RawDocument),
    /// The array's document, keyed `0`, `1`, ...; keys are ignored.
    Array(&'a RawDocument),
    Binary(RawBinaryRef<'a>),
    ObjectId(ObjectId),
    Boolean(bool),
    /// Milliseconds since the epoch.
    DateTime(i64),
    Null,
    Int32(i32),
    Int64(i64),
    Timestamp(bson::Timestamp),
    Decimal128(bson::Decimal128),
    /// Regex, JavaScript, Symbol, DbPointer, MinKey, MaxKey, Undefined, as
    /// the bson crate reads them.
    Other(RawBsonRef<'a>),
}

impl<'a> From<RawBsonRef<'a>> for Value<'a> {
    fn from(v: RawBsonRef<'a>) -> Self {
        match v {
            RawBsonRef::Double(f) => Value::Double(f),
            RawBsonRef::String(s) => Value::String(s),
            RawBsonRef::Document(d) => Value::Document(d),
            RawBsonRef::Array(a) => Value::Array(
                RawDocument::from_bytes(a.as_bytes()).expect("a RawArray holds a valid document"),
            ),
            RawBsonRef::Binary(b) => Value::Binary(b),
            RawBsonRef::ObjectId(o) => Value::ObjectId(o),
            RawBsonRef::Boolean(b) => Value::Boolean(b),
            RawBsonRef::DateTime(d) => Value::DateTime(d.timestamp_millis()),
            RawBsonRef::Null => Value::Null,
            RawBsonRef::Int32(i) => Value::Int32(i),
            RawBsonRef::Int64(i) => Value::Int64(i),
            RawBsonRef::Timestamp(t) => Value::Timestamp(t),
            RawBsonRef::Decimal128(d) => Value::Decimal128(d),
            other => Value::Other(other),
        }
    }
}

impl<'a> Value<'a> {
    /// The value as the bson crate sees it, for the types handed to it;
    /// None for documents and arrays, which never are.
    pub(crate) fn to_raw_ref(self) -> Option<RawBsonRef<'a>> {
        Some(match self {
            Value::Double(f) => RawBsonRef::Double(f),
            Value::String(s) => RawBsonRef::String(s),
            Value::Binary(b) => RawBsonRef::Binary(b),
            Value::ObjectId(o) => RawBsonRef::ObjectId(o),
            Value::Boolean(b) => RawBsonRef::Boolean(b),
            Value::DateTime(ms) => RawBsonRef::DateTime(bson::DateTime::from_millis(ms)),
            Value::Null => RawBsonRef::Null,
            Value::Int32(i) => RawBsonRef::Int32(i),
            Value::Int64(i) => RawBsonRef::Int64(i),
            Value::Timestamp(t) => RawBsonRef::Timestamp(t),
            Value::Decimal128(d) => RawBsonRef::Decimal128(d),
            Value::Other(r) => r,
            Value::Document(_) | Value::Array(_) => return None,
        })
    }
}

impl Value<'_> {
    /// The value as an owned [`bson::Bson`].
    pub(crate) fn to_bson(self) -> Result<bson::Bson, ExtJsonError> {
        Ok(match self {
            Value::Document(d) => {
                bson::Bson::Document(bson::Document::try_from(d).map_err(ExtJsonError::malformed)?)
            }
            Value::Array(a) => bson::Bson::Array(
                bson::Document::try_from(a)
                    .map_err(ExtJsonError::malformed)?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect(),
            ),
            other => {
                let raw = other
                    .to_raw_ref()
                    .expect("documents and arrays are matched above");
                bson::Bson::try_from(raw).map_err(ExtJsonError::malformed)?
            }
        })
    }
}

/// The elements of `doc`, in order.
///
/// The common types are decoded here, with the same checks as the bson
/// crate (lengths, terminators, UTF-8, booleans) but without its per-element
/// overhead, which is most of the cost of a walk. At the first element of
/// another type, or anything unexpected, the rest of the document is read
/// by the crate's own iterator, so rare types and malformed bytes behave
/// exactly as the crate has them.
pub(crate) fn elements(doc: &RawDocument) -> Elements<'_> {
    Elements {
        doc,
        pos: 4,
        index: 0,
        slow: None,
    }
}

/// `bytes` as a string, if they are UTF-8. Every key and string is checked
/// on each pass over a document, and most are short ASCII: for those,
/// `is_ascii` (a few word compares) is the whole check, where std's and
/// simdutf8's (which hands short inputs to std's) cost a call and a loop
/// set-up each. Longer or non-ASCII text goes to simdutf8.
#[inline(always)]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8; `is_ascii` just checked every byte.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        utf8_not_ascii(bytes)
    }
}

#[inline(never)]
fn utf8_not_ascii(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// The length of the key at `b[from..]`, up to its 0, and whether it is
/// ASCII; None when no 0 comes before `end`.
///
/// Every element of every document starts with a key, and each pass reads
/// them all: eight bytes are looked at together, for the 0 and for a high
/// bit at once, where a plain scan took a compare and a branch a byte and
/// the ASCII check a second pass. Keys are short, so memchr's setup would
/// cost more than it saves.
#[inline]
fn cstring(b: &[u8], from: usize, end: usize) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = from;
    let mut seen = 0u64;
    while at + 8 <= end {
        let word = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        // The lowest byte flagged is the first 0 (a borrow can flag only
        // bytes above a 0); little-endian puts the first byte lowest.
        let zeros = word.wrapping_sub(ONES) & !word & HIGH;
        if zeros != 0 {
            let n = zeros.trailing_zeros() as usize / 8;
            let before = word & !(u64::MAX << (8 * n));
            return Some((at + n - from, (seen | before) & HIGH == 0));
        }
        seen |= word;
        at += 8;
    }
    let mut high = 0u8;
    for (i, &c) in b[at..end].iter().enumerate() {
        if c == 0 {
            return Some((at + i - from, seen & HIGH == 0 && high & 0x80 == 0));
        }
        high |= c;
    }
    None
}

/// Appends `bytes` to `out`. Most keys and strings of documents are short,
/// and `extend_from_slice` called libc's `memcpy` for each (about one in
/// twenty of a day's instructions went to such calls): up to 16 bytes are
/// copied here as two overlapping words or halves instead.
#[inline(always)]
pub(crate) fn extend_short(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.len() {
        0..=3 => {
            for &b in bytes {
                out.push(b);
            }
        }
        4..=7 => extend_overlapping::<4>(out, bytes),
        8..=16 => extend_overlapping::<8>(out, bytes),
        _ => out.extend_from_slice(bytes),
    }
}

/// Appends `bytes`, of `W` to `2 * W` bytes, as its first and its last `W`
/// bytes, the second written over the first where they overlap.
#[inline(always)]
fn extend_overlapping<const W: usize>(out: &mut Vec<u8>, bytes: &[u8]) {
    let (n, start) = (bytes.len(), out.len());
    let head: [u8; W] = bytes[..W].try_into().expect("W bytes");
    let tail: [u8; W] = bytes[n - W..].try_into().expect("W bytes");
    out.extend_from_slice(&head);
    out.truncate(start + n - W);
    out.extend_from_slice(&tail);
}

/// Every byte of `bytes`, fewer than eight, in one word, without copying
/// them into a buffer (which called libc's `memcpy`): as two overlapping
/// halves from four bytes on, and below that as the first, middle and last
/// byte (which are all of them), the word's other bytes from `fill`.
#[inline(always)]
pub(crate) fn short_word(bytes: &[u8], fill: u64) -> u64 {
    let n = bytes.len();
    debug_assert!(n < 8);
    let half = |i: usize| {
        u64::from(u32::from_le_bytes(
            bytes[i..i + 4].try_into().expect("4 bytes"),
        ))
    };
    match n {
        0 => fill,
        1..=3 => {
            u64::from(bytes[0])
                | u64::from(bytes[n / 2]) << 8
                | u64::from(bytes[n - 1]) << 16
                | fill << 24
        }
        _ => half(0) | half(n - 4) << 32,
    }
}

/// The embedded document `bytes`, whose first four bytes the caller read
/// as its length, `bytes.len()`, of at least 5: what
/// `RawDocument::from_bytes` returns, after the one check of its three
/// that is left (the terminator). The crate's function is not inlined, and
/// building its error was most of its cost: one call for every object and
/// array of every document, on each pass (1.4% of a day's instructions).
#[inline(always)]
fn sub_document(bytes: &[u8]) -> Option<&RawDocument> {
    debug_assert!(bytes.len() >= 5);
    debug_assert_eq!(
        i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize,
        bytes.len()
    );
    if bytes[bytes.len() - 1] != 0 {
        return None;
    }
    // SAFETY: `RawDocument` is `#[repr(transparent)]` over `[u8]` (bson
    // 2.15, src/raw/document.rs), and this is the cast its own
    // `from_bytes` makes once the same three checks passed; the test
    // `sub_documents_are_the_crates` holds the two to the same result.
    Some(unsafe { &*(bytes as *const [u8] as *const RawDocument) })
}

/// Whether two keys are equal. Keys are short, and compared at every
/// level of every path in each pass: `==` on them called libc's `memcmp`,
/// which cost more than the compare. Keys of up to 16 bytes are compared
/// here, in two overlapping words when they have 8 or more.
#[inline(always)]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |x: &[u8], at: usize| u64::from_le_bytes(x[at..at + 8].try_into().expect("8 bytes"));
    match n {
        0..=7 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// See [`elements`].
pub(crate) struct Elements<'a> {
    doc: &'a RawDocument,
    pos: usize,
    index: usize,
    slow: Option<std::iter::Skip<RawIter<'a>>>,
}

impl<'a> Elements<'a> {
    /// Decodes the element at `self.pos`; None when the crate should.
    #[inline]
    fn fast(&mut self) -> Option<(&'a str, Value<'a>)> {
        let b = self.doc.as_bytes();
        // The document's own terminator is past every value.
        let end = b.len() - 1;
        let tag = b[self.pos];
        let key_at = self.pos + 1;
        let (key_len, ascii) = cstring(b, key_at, end)?;
        let key = &b[key_at..key_at + key_len];
        let key = if ascii {
            // SAFETY: ASCII is valid UTF-8; `cstring` checked every byte.
            unsafe { std::str::from_utf8_unchecked(key) }
        } else {
            simdutf8::basic::from_utf8(key).ok()?
        };
        let at = key_at + key_len + 1;
        let fixed = |n: usize| (at + n <= end).then(|| &b[at..at + n]);
        let (value, size) = match tag {
            0x01 => (
                Value::Double(f64::from_le_bytes(fixed(8)?.try_into().ok()?)),
                8,
            ),
            0x02 => {
                let len = usize::try_from(i32::from_le_bytes(fixed(4)?.try_into().ok()?)).ok()?;
                let stop = (at + 4).checked_add(len)?;
                if len == 0 || stop > end || b[stop - 1] != 0 {
                    return None;
                }
                let s = utf8(&b[at + 4..stop - 1])?;
                (Value::String(s), 4 + len)
            }
            0x03 | 0x04 => {
                let len = usize::try_from(i32::from_le_bytes(fixed(4)?.try_into().ok()?)).ok()?;
                if len < 5 || at.checked_add(len)? > end {
                    return None;
                }
                let sub = sub_document(&b[at..at + len])?;
                let v = if tag == 0x03 {
                    Value::Document(sub)
                } else {
                    Value::Array(sub)
                };
                (v, len)
            }
            0x05 => {
                let len = usize::try_from(i32::from_le_bytes(fixed(4)?.try_into().ok()?)).ok()?;
                let subtype = *fixed(5)?.last()?;
                if subtype == 0x02 || (at + 5).checked_add(len)? > end {
                    // The old binary subtype nests a second length: rare,
                    // left to the crate.
                    return None;
                }
                let bytes = &b[at + 5..at + 5 + len];
                let subtype = BinarySubtype::from(subtype);
                (Value::Binary(RawBinaryRef { subtype, bytes }), 5 + len)
            }
            0x07 => (
                Value::ObjectId(ObjectId::from_bytes(fixed(12)?.try_into().ok()?)),
                12,
            ),
            0x08 => match fixed(1)?[0] {
                0 => (Value::Boolean(false), 1),
                1 => (Value::Boolean(true), 1),
                _ => return None,
            },
            0x09 => (
                Value::DateTime(i64::from_le_bytes(fixed(8)?.try_into().ok()?)),
                8,
            ),
            0x0A => (Value::Null, 0),
            0x10 => (
                Value::Int32(i32::from_le_bytes(fixed(4)?.try_into().ok()?)),
                4,
            ),
            0x11 => {
                let v = fixed(8)?;
                let increment = u32::from_le_bytes(v[..4].try_into().ok()?);
                let time = u32::from_le_bytes(v[4..].try_into().ok()?);
                (Value::Timestamp(bson::Timestamp { time, increment }), 8)
            }
            0x12 => (
                Value::Int64(i64::from_le_bytes(fixed(8)?.try_into().ok()?)),
                8,
            ),
            0x13 => (
                Value::Decimal128(bson::Decimal128::from_bytes(fixed(16)?.try_into().ok()?)),
                16,
            ),
            _ => return None,
        };
        self.pos = at + size;
        self.index += 1;
        Some((key, value))
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(&'a str, Value<'a>), ExtJsonError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.slow.is_none() {
            let b = self.doc.as_bytes();
            if self.pos + 1 == b.len() {
                // Only the terminator is left; `RawDocument` checked it is 0.
                return None;
            }
            if let Some(item) = self.fast() {
                return Some(Ok(item));
            }
            self.slow = Some(self.doc.iter_elements().skip(self.index));
        }
        let slow = self.slow.as_mut().expect("set above");
        let item = slow
            .next()?
            .and_then(|e| Ok((e.key(), Value::from(e.value()?))))
            .map_err(ExtJsonError::malformed);
        if item.is_err() {
            // The crate's iterator stops after an error; so do we.
            self.slow = Some(self.doc.iter_elements().skip(usize::MAX));
        }
        Some(item)
    }
}

// ---------------------------------------------------------------------------
// Duplicate keys
// ---------------------------------------------------------------------------

/// A 512-bit Bloom filter over the keys of one object. A hit is confirmed
/// by rescanning the object's earlier keys, which a document of 20 keys
/// needs about once in three.
#[derive(Default)]
pub(crate) struct KeyFilter {
    bits: [u64; 8],
}

impl KeyFilter {
    /// Records `key`; true when it may have been seen before.
    #[inline]
    pub(crate) fn insert(&mut self, key: &str) -> bool {
        let b = key.as_bytes();
        let n = b.len();
        let mut h = n as u64;
        // The first eight bytes, or all of a shorter key (its length is in
        // `h` too).
        let head = if n >= 8 {
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
        } else {
            short_word(b, 0)
        };
        h ^= head;
        if b.len() > 8 {
            let tail = u64::from_le_bytes(b[b.len() - 8..].try_into().expect("8 bytes"));
            h ^= tail.rotate_left(29);
        }
        let h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55;
        let (word, bit) = ((h >> 6) as usize, 1u64 << (h & 63));
        let seen = self.bits[word] & bit != 0;
        self.bits[word] |= bit;
        seen
    }
}

/// Whether one of the first `before` keys of `doc` is `key`.
pub(crate) fn has_key_before(doc: &RawDocument, key: &str, before: usize) -> bool {
    elements(doc)
        .take(before)
        .any(|e| e.is_ok_and(|(k, _)| same_key(k, key)))
}

/// `doc.get(key)`, read with the element reader ([`elements`]): the
/// crate's `get` decodes every element before `key` with its own iterator,
/// which was 3% of a day's instructions where each row looks up its
/// exploded arrays. On any error the crate's `get` reads the document
/// again, so that errors are the crate's.
pub(crate) fn get<'a>(
    doc: &'a RawDocument,
    key: &str,
) -> Result<Option<Value<'a>>, bson::raw::Error> {
    for item in elements(doc) {
        match item {
            Ok((k, value)) if same_key(k, key) => return Ok(Some(value)),
            Ok(_) => {}
            Err(_) => return doc.get(key).map(|v| v.map(Value::from)),
        }
    }
    Ok(None)
}

/// The value at dotted `path`, through objects only.
pub fn lookup<'a>(doc: &'a RawDocument, path: &str) -> Option<RawBsonRef<'a>> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?).ok()??;
    for part in parts {
        match value {
            RawBsonRef::Document(d) => value = d.get(part).ok()??,
            _ => return None,
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The element reader's sub-documents are the crate's: the same
    /// bytes, the same document, the same failures.
    #[test]
    fn sub_documents_are_the_crates() {
        let doc = bson::rawdoc! {
            "a": { "b": 1, "c": [1, "x", { "d": null }] },
            "e": [],
            "f": {},
        };
        let mut seen = 0;
        let mut queue = vec![doc.as_ref()];
        while let Some(d) = queue.pop() {
            for item in elements(d) {
                if let (_, Value::Document(sub) | Value::Array(sub)) = item.unwrap() {
                    let theirs = RawDocument::from_bytes(sub.as_bytes()).unwrap();
                    assert_eq!(sub, theirs);
                    assert_eq!(sub.as_bytes().as_ptr(), theirs.as_bytes().as_ptr());
                    assert_eq!(sub.as_bytes().len(), theirs.as_bytes().len());
                    assert_eq!(sub.iter().count(), theirs.iter().count());
                    queue.push(sub);
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 5);
        // A sub-document without its terminator: the reader hands the
        // element to the crate, which fails it.
        let mut bytes = bson::rawdoc! { "a": { "b": 1 } }.into_bytes();
        let inner_end = bytes.len() - 2;
        bytes[inner_end] = 1;
        let broken = RawDocument::from_bytes(&bytes).unwrap();
        assert!(elements(broken).next().unwrap().is_err());
        assert!(broken.iter().next().unwrap().is_err());
    }

    #[test]
    fn short_copies_are_copies() {
        let text: Vec<u8> = (0..40u8).collect();
        for len in 0..=40 {
            for at in 0..=(40 - len) {
                let mut out = b"before".to_vec();
                extend_short(&mut out, &text[at..at + len]);
                assert_eq!(&out[..6], b"before");
                assert_eq!(&out[6..], &text[at..at + len], "{len} bytes from {at}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Eight bytes at a time finds what a scan byte by byte finds,
        /// wherever the key starts and ends, whatever its bytes.
        #[test]
        fn a_key_is_found_as_a_byte_scan_finds_it(
            bytes in proptest::collection::vec(
                prop_oneof![3 => 1u8..0x80, 1 => Just(0u8), 1 => 0x80u8..=0xff], 0..40),
            from in 0usize..40,
            end in 0usize..40,
        ) {
            let end = end.min(bytes.len());
            let from = from.min(end);
            let scan = bytes[from..end]
                .iter()
                .position(|&c| c == 0)
                .map(|n| (n, bytes[from..from + n].is_ascii()));
            prop_assert_eq!(cstring(&bytes, from, end), scan);
        }

        /// Keys compare as `==` compares them, at every length.
        #[test]
        fn keys_compare_as_strings_do(a in "[ab\u{e9}]{0,20}", b in "[ab\u{e9}]{0,20}") {
            prop_assert_eq!(same_key(&a, &b), a == b);
            prop_assert!(same_key(&a, &a.clone()));
        }
    }
}
