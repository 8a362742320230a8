//! One document's rows as typed values, held until the whole document has
//! flattened: a document rejected half way through its rows (a type
//! conflict under `reject`, invalid UTF-8 in a child row) leaves nothing
//! in any table, as the NDJSON path truncates its buffers.
//!
//! The rows are a flat list of events, the walk's [`RowOut`] calls in
//! order, and one buffer of text; rolling back truncates both. Appending
//! them to the builders ([`super::columns`]) replays the events.

use chrono::NaiveDate;

use crate::extjson::ExtJsonError;
use crate::flatten::{convert, Leaf, OutColumn, OutField, RowOut, Scalar};
use crate::spec::ColumnType;

/// One step of a staged row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    /// A row starts.
    Row,
    /// Column `slot`'s value (the last one of a row wins).
    Set {
        slot: u32,
        value: Scalar,
    },
    /// Column `slot`'s array: `Item`s or `Record...RecordEnd`s up to
    /// `ListEnd`.
    ListStart {
        slot: u32,
    },
    Item(Scalar),
    ListEnd,
    RecordStart,
    /// Field `at` of the record.
    Field {
        at: u32,
        value: Scalar,
    },
    RecordEnd,
    /// The row ends.
    RowEnd,
}

/// One table's staged rows; see the module.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    pub(crate) events: Vec<Event>,
    /// The bytes of text values ([`Scalar::Text`], [`Scalar::Decimal`]).
    pub(crate) text: Vec<u8>,
}

impl Staged {
    /// Forgets every row, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.events.clear();
        self.text.clear();
    }

    /// The rows staged.
    pub(crate) fn rows(&self) -> usize {
        self.events.iter().filter(|e| **e == Event::RowEnd).count()
    }

    fn set(&mut self, slot: u32, kind: ColumnType, leaf: Leaf<'_>) -> Result<bool, ExtJsonError> {
        Ok(match convert(leaf, kind, &mut self.text)? {
            Some(value) => {
                self.events.push(Event::Set { slot, value });
                true
            }
            None => false,
        })
    }
}

/// Days from 1970-01-01 to `day`.
pub(crate) fn epoch_days(day: NaiveDate) -> i32 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days() as i32
}

impl RowOut for Staged {
    type Mark = (usize, usize);

    fn mark(&self) -> (usize, usize) {
        (self.events.len(), self.text.len())
    }

    fn rollback(&mut self, (events, text): (usize, usize)) {
        self.events.truncate(events);
        self.text.truncate(text);
    }

    fn start_row(&mut self, ds: NaiveDate, ds_slot: Option<u32>) {
        self.events.push(Event::Row);
        if let Some(slot) = ds_slot {
            self.events.push(Event::Set {
                slot,
                value: Scalar::Days(epoch_days(ds)),
            });
        }
    }

    fn end_row(&mut self) {
        self.events.push(Event::RowEnd);
    }

    #[inline]
    fn value(
        &mut self,
        slot: u32,
        column: &OutColumn,
        leaf: Leaf<'_>,
    ) -> Result<bool, ExtJsonError> {
        self.set(slot, column.kind, leaf)
    }

    fn json_text(&mut self, slot: u32, _column: &OutColumn, value: &serde_json::Value) {
        let start = self.text.len();
        serde_json::to_writer(&mut self.text, value).expect("a JSON value serializes into a Vec");
        self.events.push(Event::Set {
            slot,
            value: Scalar::Text(start, self.text.len()),
        });
    }

    fn timestamp(&mut self, slot: u32, _column: &OutColumn, micros: i64) {
        self.events.push(Event::Set {
            slot,
            value: Scalar::Micros(micros),
        });
    }

    fn list_start(&mut self, slot: u32, _column: &OutColumn) {
        self.events.push(Event::ListStart { slot });
    }

    #[inline]
    fn list_item(
        &mut self,
        kind: ColumnType,
        leaf: Leaf<'_>,
        _first: bool,
    ) -> Result<bool, ExtJsonError> {
        Ok(match convert(leaf, kind, &mut self.text)? {
            Some(value) => {
                self.events.push(Event::Item(value));
                true
            }
            None => false,
        })
    }

    fn list_end(&mut self) {
        self.events.push(Event::ListEnd);
    }

    fn record_start(&mut self, _first: bool) {
        self.events.push(Event::RecordStart);
    }

    fn record_field(
        &mut self,
        at: usize,
        field: &OutField,
        leaf: Leaf<'_>,
        _first: bool,
    ) -> Result<bool, ExtJsonError> {
        Ok(match convert(leaf, field.kind, &mut self.text)? {
            Some(value) => {
                self.events.push(Event::Field {
                    at: at as u32,
                    value,
                });
                true
            }
            None => false,
        })
    }

    fn record_end(&mut self) {
        self.events.push(Event::RecordEnd);
    }
}
