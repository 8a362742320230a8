//! Where pass 2 writes a row: the contract between the walk, which decides
//! the column of every value, and a row format.
//!
//! Two formats keep it: typed values staged for Arrow columns
//! (`crate::rows`, the Parquet files both warehouses load) and NDJSON text
//! (`Vec<u8>`, the readable format of [`crate::table`]: `etl test`'s rows,
//! and the reference the typed path is held to in its tests). The walk
//! is the same for both, so they can never disagree on which value lands
//! in which column, or on which value is NULL.
//!
//! # Contract
//!
//! - A row is [`RowOut::start_row`], values, [`RowOut::end_row`].
//! - A value method that returns false has written nothing: the value is
//!   NULL in that column's type.
//! - [`RowOut::rollback`] to a [`RowOut::mark`] forgets everything written
//!   since, whole rows included: a document that fails leaves no trace.
//! - A column written twice in one row keeps its last value (as a JSON
//!   object with a repeated key reads).

use chrono::{Datelike, NaiveDate};

use crate::extjson::{self, ExtJsonError};
use crate::spec::ColumnType;

use super::row::{OutColumn, OutField};
use super::value::{write_as, Leaf};

/// A row format pass 2 writes into; see the module's contract.
pub(crate) trait RowOut {
    /// A position to roll back to.
    type Mark: Copy;
    /// The current position.
    fn mark(&self) -> Self::Mark;
    /// Forgets everything written after `to`.
    fn rollback(&mut self, to: Self::Mark);
    /// Starts a row of day `ds`; `ds_slot` is the `_ds` column, if the
    /// schema has it.
    fn start_row(&mut self, ds: NaiveDate, ds_slot: Option<u32>);
    /// Ends the row.
    fn end_row(&mut self);
    /// `leaf` as the value of column `slot` (not REPEATED), in the
    /// column's type.
    fn value(
        &mut self,
        slot: u32,
        column: &OutColumn,
        leaf: Leaf<'_>,
    ) -> Result<bool, ExtJsonError>;
    /// A JSON value that is not Extended JSON, as column `slot`'s JSON
    /// text (the column is STRING or JSON).
    fn json_text(&mut self, slot: u32, column: &OutColumn, value: &serde_json::Value);
    /// A TIMESTAMP column's value.
    fn timestamp(&mut self, slot: u32, column: &OutColumn, micros: i64);
    /// Starts the array of REPEATED column `slot`. An array with no
    /// element is rolled back by the caller: it is NULL.
    fn list_start(&mut self, slot: u32, column: &OutColumn);
    /// An element of the array, in `kind`; `first` when no element has
    /// been written yet.
    fn list_item(
        &mut self,
        kind: ColumnType,
        leaf: Leaf<'_>,
        first: bool,
    ) -> Result<bool, ExtJsonError>;
    /// Ends the array.
    fn list_end(&mut self);
    /// Starts an element of a REPEATED RECORD array.
    fn record_start(&mut self, first: bool);
    /// Field `at` of the element; `first` when no field has been written.
    fn record_field(
        &mut self,
        at: usize,
        field: &OutField,
        leaf: Leaf<'_>,
        first: bool,
    ) -> Result<bool, ExtJsonError>;
    /// Ends the element.
    fn record_end(&mut self);
}

/// NDJSON text: one JSON object per row, NULLs left out.
impl RowOut for Vec<u8> {
    type Mark = usize;

    fn mark(&self) -> usize {
        self.len()
    }

    fn rollback(&mut self, to: usize) {
        self.truncate(to);
    }

    fn start_row(&mut self, ds: NaiveDate, _ds_slot: Option<u32>) {
        self.extend_from_slice(b"{\"_ds\":\"");
        extjson::write_date_parts(i64::from(ds.year()), ds.month(), ds.day(), self);
        self.push(b'"');
    }

    fn end_row(&mut self) {
        self.extend_from_slice(b"}\n");
    }

    #[inline]
    fn value(
        &mut self,
        _slot: u32,
        column: &OutColumn,
        leaf: Leaf<'_>,
    ) -> Result<bool, ExtJsonError> {
        let mark = self.len();
        self.extend_from_slice(&column.prefix);
        if write_as(leaf, column.kind, self)? {
            return Ok(true);
        }
        self.truncate(mark);
        Ok(false)
    }

    fn json_text(&mut self, _slot: u32, column: &OutColumn, value: &serde_json::Value) {
        self.extend_from_slice(&column.prefix);
        extjson::write_embedded_json::<std::convert::Infallible>(self, |o| {
            serde_json::to_writer(&mut *o, value).expect("a JSON value serializes into a Vec");
            Ok(())
        })
        .expect("infallible");
    }

    fn timestamp(&mut self, _slot: u32, column: &OutColumn, micros: i64) {
        self.extend_from_slice(&column.prefix);
        self.push(b'"');
        super::value::write_timestamp_micros(micros, self);
        self.push(b'"');
    }

    fn list_start(&mut self, _slot: u32, column: &OutColumn) {
        self.extend_from_slice(&column.prefix);
        self.push(b'[');
    }

    #[inline]
    fn list_item(
        &mut self,
        kind: ColumnType,
        leaf: Leaf<'_>,
        first: bool,
    ) -> Result<bool, ExtJsonError> {
        let at = self.len();
        if !first {
            self.push(b',');
        }
        if write_as(leaf, kind, self)? {
            return Ok(true);
        }
        self.truncate(at);
        Ok(false)
    }

    fn list_end(&mut self) {
        self.push(b']');
    }

    fn record_start(&mut self, first: bool) {
        if !first {
            self.push(b',');
        }
        self.push(b'{');
    }

    fn record_field(
        &mut self,
        _at: usize,
        field: &OutField,
        leaf: Leaf<'_>,
        first: bool,
    ) -> Result<bool, ExtJsonError> {
        let mark = self.len();
        if !first {
            self.push(b',');
        }
        self.extend_from_slice(&field.prefix);
        if write_as(leaf, field.kind, self)? {
            return Ok(true);
        }
        self.truncate(mark);
        Ok(false)
    }

    fn record_end(&mut self) {
        self.push(b'}');
    }
}
