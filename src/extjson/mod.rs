//! MongoDB Extended JSON v2, written straight from raw BSON.
//!
//! The lake keeps every document as one line of canonical Extended JSON, and
//! flatten stores arrays and deep objects as relaxed Extended JSON text. The
//! crate's own route (`RawDocument::to_document`, then
//! `Bson::into_canonical_extjson`, then serde_json) builds a map per object
//! and a `String` per key and value; at hundreds of MB per partition that
//! allocation dominates. These writers walk [`RawBsonRef`] values and append
//! bytes to a caller's buffer instead.
//!
//! # Contract
//!
//! The output is byte-identical to the crate's route, serialized by
//! serde_json with `preserve_order`, for every document:
//! - the common types (string, int32, int64, double, bool, null, ObjectId,
//!   date, document, array, binary) are written here, mirroring bson 2.15's
//!   `into_canonical_extjson` / `into_relaxed_extjson`, quirks included
//!   (a canonical subnormal double is a bare JSON number, as in the crate);
//! - the rare types (Decimal128, Timestamp, Regex, JavaScript code, code with
//!   scope, Symbol, DbPointer, MinKey, MaxKey, Undefined) go through the
//!   crate, one value at a time;
//! - a document with a duplicate key (legal BSON) goes through the crate as a
//!   whole, because `bson::Document` keeps such a key once, at its first
//!   position, with its last value. Detecting one costs a 256-bit Bloom
//!   filter per object, so documents without duplicates pay almost nothing.
//!
//! On error the buffer is left as it was. Nesting deeper than
//! [`MAX_NESTING`] is an error rather than a stack overflow.
//!
//! Layout: `raw` reads the elements of a raw document (and flatten walks
//! documents with it), `write` appends JSON and Extended JSON, `time` does
//! the calendar arithmetic of dates, `archive` the raw archive's lines
//! (canonical Extended JSON, or the BSON bytes where that form would lose
//! something). [`parse_documents`] goes the other way,
//! from Extended JSON to raw BSON, for test cases and locks.

mod archive;
mod raw;
mod time;
mod write;

pub use archive::{read_archive_line, write_archive_line, ArchiveLine};
pub use raw::{concatenated, lookup};
pub(crate) use raw::{
    elements, extend_short, get, has_key_before, same_key, utf8, KeyFilter, Value,
};
pub(crate) use time::{civil_from_days, write_date_parts, write_datetime_seconds};
pub use write::{
    to_relaxed_value, write_canonical, write_canonical_value, write_json_string, write_relaxed,
    write_relaxed_value,
};
pub(crate) use write::{write_base64, write_embedded_json, write_hex, write_json_f64, write_value};

/// Deepest nesting of documents and arrays the writers follow. MongoDB
/// itself stores at most 100 levels; the margin covers other producers
/// while keeping the recursion well inside a 2 MiB thread stack.
pub const MAX_NESTING: usize = 512;

/// A document that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ExtJsonError {
    /// The bytes are not valid BSON (bad length, invalid UTF-8, ...).
    #[error("malformed BSON at `{path}`: {source}")]
    Malformed {
        /// JSONPath of the value, such as `$.items[2].sku`.
        path: String,
        /// What the bson crate reported.
        #[source]
        source: bson::raw::Error,
    },
    /// Documents and arrays nest deeper than [`MAX_NESTING`].
    #[error("document nests deeper than {MAX_NESTING} levels at `{path}`")]
    TooDeep {
        /// JSONPath of the innermost value reached.
        path: String,
    },
}

impl ExtJsonError {
    fn malformed(source: bson::raw::Error) -> Self {
        let mut path = "$".to_owned();
        if let Some(key) = source.key() {
            push_key_segment(&mut path, key);
        }
        ExtJsonError::Malformed { path, source }
    }

    fn too_deep() -> Self {
        ExtJsonError::TooDeep {
            path: "$".to_owned(),
        }
    }

    /// Prefixes the path with one document key, while the error unwinds.
    fn under_key(mut self, key: &str) -> Self {
        let path = self.path_mut();
        let mut seg = String::with_capacity(key.len() + 4);
        push_key_segment(&mut seg, key);
        path.insert_str(1, &seg);
        self
    }

    /// Prefixes the path with one array index, while the error unwinds.
    fn under_index(mut self, index: usize) -> Self {
        self.path_mut().insert_str(1, &format!("[{index}]"));
        self
    }

    fn path_mut(&mut self) -> &mut String {
        match self {
            ExtJsonError::Malformed { path, .. } | ExtJsonError::TooDeep { path } => path,
        }
    }
}

/// Appends one JSONPath segment for `key`: `.key` when the key is a plain
/// identifier, else `['key']` (or `["key"]` when it holds a `'`), the forms
/// [`crate::spec::names::simple_path`] reads back.
pub(crate) fn push_key_segment(path: &mut String, key: &str) {
    let plain = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else if key.contains('\'') {
        path.push_str("[\"");
        path.push_str(key);
        path.push_str("\"]");
    } else {
        path.push_str("['");
        path.push_str(key);
        path.push_str("']");
    }
}
/// Extended JSON objects to raw BSON documents. An error names the
/// position: `documents[2] is not an object`.
pub fn parse_documents(docs: &[serde_json::Value]) -> Result<Vec<bson::RawDocumentBuf>, String> {
    docs.iter()
        .enumerate()
        .map(|(i, json)| match bson::Bson::try_from(json.clone()) {
            Ok(bson::Bson::Document(d)) => {
                bson::RawDocumentBuf::from_document(&d).map_err(|e| format!("documents[{i}]: {e}"))
            }
            Ok(_) => Err(format!("documents[{i}] is not an object")),
            Err(e) => Err(format!("documents[{i}] is not valid Extended JSON: {e}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_read_back_as_simple_paths() {
        for key in ["a", "with space", "it's", "1st", "a.b", "ключ"] {
            let mut p = "$".to_owned();
            push_key_segment(&mut p, key);
            assert_eq!(
                crate::spec::names::simple_path(&p),
                Some(vec![key.to_owned()]),
                "{p}"
            );
        }
    }

    #[test]
    fn documents_parse_from_extended_json_or_name_their_position() {
        let docs = parse_documents(&[
            serde_json::json!({"_id": {"$oid": "5ed445000000000000000000"}, "n": 1}),
        ])
        .unwrap();
        assert_eq!(
            docs[0]
                .to_document()
                .unwrap()
                .get_object_id("_id")
                .unwrap()
                .to_hex(),
            "5ed445000000000000000000"
        );
        assert_eq!(
            parse_documents(&[serde_json::json!({}), serde_json::json!([1])]).unwrap_err(),
            "documents[1] is not an object"
        );
    }
}
