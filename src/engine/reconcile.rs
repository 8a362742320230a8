//! Stage 5, reconcile: the day's counts checked against each other. Pure:
//! the numbers in, a verdict out.

use super::day::PartitionError;

/// After the extract: every document read is one line of the raw
/// archive, and the source counts what was read. The day is in the past,
/// so its documents should not change while it is read; if they did, the
/// day must run again, which a retry does.
pub(super) fn extract(source_count: u64, read: u64, archived: u64) -> Result<(), PartitionError> {
    if archived != read {
        return Err(PartitionError::fatal(format!(
            "the raw archive has {archived} lines for {read} documents read"
        )));
    }
    if source_count != read {
        return Err(PartitionError::transient(format!(
            "reconciliation failed: the source counted {source_count} documents, {read} were read (source.count): documents changed during the extract; nothing was loaded"
        )));
    }
    Ok(())
}

/// A day's counts once it is loaded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loaded<'a> {
    /// The source's count.
    pub source_count: u64,
    /// Lines of the raw archive.
    pub raw_lines: u64,
    /// Documents rejected whole.
    pub rejected: u64,
    /// Per table, root first: its name, the rows written for it, and the
    /// rows the warehouse says the day holds.
    pub tables: &'a [(String, u64, u64)],
}

/// After the load: every document is one root row or one rejected
/// document, and every table holds the rows written for it.
pub(super) fn load(day: chrono::NaiveDate, c: Loaded<'_>) -> Result<(), PartitionError> {
    let (_, root_written, root_loaded) = &c.tables[0];
    if c.source_count != c.raw_lines
        || c.raw_lines != root_loaded + c.rejected
        || root_written != root_loaded
    {
        return Err(PartitionError::fatal(format!(
            "reconciliation failed: {} documents read, the source counted {}; {root_loaded} warehouse rows and {} rejected",
            c.raw_lines, c.source_count, c.rejected
        )));
    }
    for (name, written, loaded) in &c.tables[1..] {
        if written != loaded {
            return Err(PartitionError::fatal(format!(
                "reconciliation failed: table `{name}` holds {loaded} rows for {day}, {written} were written"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> chrono::NaiveDate {
        "2020-06-01".parse().unwrap()
    }

    #[test]
    fn an_extract_that_lost_or_gained_documents_is_refused() {
        assert!(extract(5, 5, 5).is_ok());
        let e = extract(5, 5, 4).unwrap_err();
        assert_eq!(
            e.message,
            "the raw archive has 4 lines for 5 documents read"
        );
        assert!(!e.transient);
        let e = extract(6, 5, 5).unwrap_err();
        assert!(
            e.transient,
            "documents changing under the read is worth a retry"
        );
        assert!(
            e.message
                .starts_with("reconciliation failed: the source counted 6 documents, 5 were read"),
            "{}",
            e.message
        );
    }

    #[test]
    fn every_document_is_a_root_row_or_a_reject() {
        let tables = [
            ("orders".to_owned(), 8, 8),
            ("orders_items".to_owned(), 20, 20),
        ];
        let ok = Loaded {
            source_count: 10,
            raw_lines: 10,
            rejected: 2,
            tables: &tables,
        };
        assert!(load(day(), ok).is_ok());

        let short = [
            ("orders".to_owned(), 8, 7),
            ("orders_items".to_owned(), 20, 20),
        ];
        let e = load(
            day(),
            Loaded {
                tables: &short,
                ..ok
            },
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "reconciliation failed: 10 documents read, the source counted 10; 7 warehouse rows and 2 rejected"
        );
        assert!(!e.transient);
    }

    #[test]
    fn a_child_table_must_hold_the_rows_written() {
        let tables = [
            ("orders".to_owned(), 10, 10),
            ("orders_items".to_owned(), 20, 19),
        ];
        let e = load(
            day(),
            Loaded {
                source_count: 10,
                raw_lines: 10,
                rejected: 0,
                tables: &tables,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "reconciliation failed: table `orders_items` holds 19 rows for 2020-06-01, 20 were written"
        );
    }
}
