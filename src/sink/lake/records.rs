//! The small records a day leaves in the lake beside its raw object: the
//! manifest, and one line per rejected document. Nothing in them depends
//! on the clock, so a rerun of unchanged data writes the same bytes.

use crate::plan::{PartitionTarget, PipelinePlan};
use crate::spec::Compression;

/// What a day's raw object holds.
#[derive(Debug, Clone, Copy)]
pub struct RawSummary<'a> {
    /// Documents (lines).
    pub documents: u64,
    /// Compressed bytes.
    pub bytes: u64,
    /// sha256 of the compressed bytes.
    pub sha256: &'a str,
    /// How it is compressed.
    pub compression: Compression,
    /// Documents sent to the rejects object.
    pub rejected: u64,
    /// Values that did not convert to their columns' types (NULL in their
    /// rows), by `table.column`; each is a line of the unconverted object.
    pub unconverted: &'a std::collections::BTreeMap<String, u64>,
}

/// The manifest next to the raw object.
pub fn manifest(plan: &PipelinePlan, target: &PartitionTarget, raw: RawSummary<'_>) -> Vec<u8> {
    let filter = bson::Bson::Document(target.filter.clone()).into_canonical_extjson();
    let m = serde_json::json!({
        "pipeline": plan.name,
        "database": plan.source.database,
        "collection": plan.source.collection,
        "partition": {
            "day": target.day.to_string(),
            "start": target.start.to_rfc3339(),
            "end": target.end.to_rfc3339(),
            "field": plan.partition.field,
        },
        "filter": filter,
        "object": target.lake_path,
        "format": "ndjson-canonical-extjson",
        "compression": serde_json::to_value(raw.compression).expect("an enum serializes"),
        "documents": raw.documents,
        "bytes": raw.bytes,
        "sha256": raw.sha256,
        "rejected": raw.rejected,
        "rejects_object": if raw.rejected > 0 { Some(&target.rejects_path) } else { None },
        "unconverted": raw.unconverted,
        "unconverted_object": if raw.unconverted.is_empty() { None } else { Some(&target.unconverted_path) },
        "spec_hash": plan.spec_hash,
        "engine_version": env!("CARGO_PKG_VERSION"),
    });
    let mut out = serde_json::to_vec_pretty(&m).expect("JSON");
    out.push(b'\n');
    out
}

/// One line of `_unconverted.jsonl`: a value that did not convert to its
/// column's type, so that its row holds NULL there: the document's `_id`
/// (canonical Extended JSON), the table and column, and what it held.
pub fn unconverted_record(
    table: &str,
    column: &str,
    found: &str,
    expected: &str,
    doc: &bson::RawDocument,
) -> Vec<u8> {
    let id = doc
        .get("_id")
        .ok()
        .flatten()
        .and_then(|v| bson::Bson::try_from(v).ok())
        .map_or(serde_json::Value::Null, bson::Bson::into_canonical_extjson);
    let mut line = serde_json::to_vec(&serde_json::json!({
        "_id": id,
        "table": table,
        "column": column,
        "found": found,
        "expected": expected,
    }))
    .expect("JSON");
    line.push(b'\n');
    line
}

/// One line of `_rejects.jsonl`: the table, where in the document (with
/// `[*]` for each exploded array), why, then the whole document as its
/// raw archive line has it (canonical Extended JSON, or `{"$bson": ...}`).
pub fn reject_record(
    table: &str,
    table_path: &str,
    path: &str,
    reason: &str,
    doc: &bson::RawDocument,
) -> Vec<u8> {
    // The path is relative to the table's row.
    let in_document = if table_path == "$" {
        path.to_owned()
    } else {
        format!("{table_path}[*]{}", &path[1..])
    };
    let mut line = Vec::with_capacity(doc.as_bytes().len() * 2);
    line.extend_from_slice(b"{\"table\":");
    crate::extjson::write_json_string(table, &mut line);
    line.extend_from_slice(b",\"path\":");
    crate::extjson::write_json_string(&in_document, &mut line);
    line.extend_from_slice(b",\"reason\":");
    crate::extjson::write_json_string(reason, &mut line);
    line.extend_from_slice(b",\"document\":");
    crate::extjson::write_archive_line(doc, &mut line);
    line.extend_from_slice(b"}\n");
    line
}
