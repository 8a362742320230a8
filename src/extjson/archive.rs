//! The raw archive's lines: one document each, as canonical Extended JSON
//! when that text parses back to the very same BSON bytes, and otherwise
//! as the bytes themselves, `{"$bson":"<base64>"}`.
//!
//! Canonical Extended JSON cannot hold everything MongoDB stores
//! (docs/types.md lists each case): strings or keys that are not UTF-8, a
//! key starting with `$` (read back, `{"$oid": ...}` is an ObjectId, not a
//! document), a duplicate key, a NaN's payload, a Decimal128 in a
//! non-canonical encoding, regular expression options out of order. The
//! writers note such a loss in a thread-local flag as they meet it, so a
//! document pays nothing for the check beyond the write itself.
//!
//! The fallback line cannot be mistaken for a document: a document whose
//! canonical form would start `{"$bson":` has a key starting with `$`, so
//! it is written as bytes itself.

use std::cell::Cell;

use base64::Engine as _;
use bson::{RawDocument, RawDocumentBuf};

const BYTES_PREFIX: &[u8] = b"{\"$bson\":\"";

thread_local! {
    /// Why the document being written would not read back the same.
    static LOSS: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Notes that the text being written would lose `what`.
pub(super) fn lossy(what: &'static str) {
    LOSS.with(|l| {
        if l.get().is_none() {
            l.set(Some(what));
        }
    });
}

/// How a document went into the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLine {
    /// As canonical Extended JSON.
    Text,
    /// As its BSON bytes, and why: the text would have lost this.
    Bytes(String),
}

/// Appends `doc`'s archive line, without the newline. Never fails: a
/// document the text cannot hold, including one that is not valid BSON
/// inside (invalid UTF-8), is kept as its bytes.
pub fn write_archive_line(doc: &RawDocument, out: &mut Vec<u8>) -> ArchiveLine {
    LOSS.with(|l| l.set(None));
    let start = out.len();
    let why = match super::write_canonical(doc, out) {
        Ok(()) => match LOSS.with(Cell::take) {
            None => return ArchiveLine::Text,
            Some(what) => what.to_owned(),
        },
        Err(e) => e.to_string(),
    };
    out.truncate(start);
    out.extend_from_slice(BYTES_PREFIX);
    super::write_base64(doc.as_bytes(), out);
    out.extend_from_slice(b"\"}");
    ArchiveLine::Bytes(why)
}

/// The document of an archive line (with or without its newline).
pub fn read_archive_line(line: &[u8]) -> Result<RawDocumentBuf, String> {
    let line = line.trim_ascii_end();
    if let Some(rest) = line.strip_prefix(BYTES_PREFIX) {
        let b64 = rest
            .strip_suffix(b"\"}")
            .ok_or("a `$bson` line that does not end in `\"}`")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("a `$bson` line that is not base64: {e}"))?;
        // Framing only: the bytes were kept because something inside may
        // not be valid (invalid UTF-8), and they are given back as they were.
        return RawDocumentBuf::from_bytes(bytes).map_err(|e| format!("a `$bson` line: {e}"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    super::parse_documents(std::slice::from_ref(&json))
        .map(|mut d| d.pop().expect("one document"))
        .map_err(|e| e.replace("documents[0]", "the document"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn round_trip(bytes: &[u8]) -> (ArchiveLine, String) {
        let doc = RawDocument::from_bytes(bytes).unwrap();
        let mut line = Vec::new();
        let kind = write_archive_line(doc, &mut line);
        let back = read_archive_line(&line).unwrap();
        assert_eq!(back.as_bytes(), bytes, "{}", String::from_utf8_lossy(&line));
        (kind, String::from_utf8(line).unwrap())
    }

    #[test]
    fn plain_documents_are_canonical_text() {
        let raw =
            RawDocumentBuf::from_document(&doc! { "a": 1, "b": { "c": [1.5, "x"] } }).unwrap();
        let (kind, line) = round_trip(raw.as_bytes());
        assert_eq!(kind, ArchiveLine::Text);
        assert!(line.starts_with("{\"a\":{\"$numberInt\":\"1\"}"), "{line}");
    }

    #[test]
    fn what_the_text_cannot_hold_is_kept_as_bytes() {
        let dollar = RawDocumentBuf::from_document(&doc! { "x": { "$oid": 1, "_id": 2 } }).unwrap();
        assert_eq!(
            round_trip(dollar.as_bytes()).0,
            ArchiveLine::Bytes("a key starting with `$`".into())
        );
        let nan =
            RawDocumentBuf::from_document(&doc! { "n": f64::from_bits(0x7ff8_0000_0000_0001) })
                .unwrap();
        assert_eq!(
            round_trip(nan.as_bytes()).0,
            ArchiveLine::Bytes("a NaN with a payload".into())
        );
        let mut bad = RawDocumentBuf::from_document(&doc! { "s": { "t": "ab" } })
            .unwrap()
            .into_bytes();
        let at = bad.windows(2).position(|w| w == b"ab").unwrap();
        bad[at] = 0xff;
        let (kind, line) = round_trip(&bad);
        assert!(line.starts_with("{\"$bson\":\""), "{line}");
        match kind {
            ArchiveLine::Bytes(why) => {
                assert!(why.starts_with("malformed BSON at `$.s`: utf-8"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let mut dup = RawDocumentBuf::new();
        dup.append("a", 1);
        dup.append("a", 2);
        assert_eq!(
            round_trip(dup.as_bytes()).0,
            ArchiveLine::Bytes("a duplicate key".into())
        );
        // The loss of one document does not stick to the next.
        let plain = RawDocumentBuf::from_document(&doc! { "a": 1 }).unwrap();
        assert_eq!(round_trip(plain.as_bytes()).0, ArchiveLine::Text);
    }

    #[test]
    fn a_document_shaped_like_the_fallback_is_kept_as_bytes() {
        let raw = RawDocumentBuf::from_document(&doc! { "$bson": "AAAA" }).unwrap();
        let (kind, line) = round_trip(raw.as_bytes());
        assert!(matches!(kind, ArchiveLine::Bytes(_)), "{line}");
    }
}
