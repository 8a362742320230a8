//! A table's columns as Arrow builders, one per column: a REPEATED column
//! is a `ListBuilder`, a REPEATED RECORD a `ListBuilder` of a
//! `StructBuilder`. Staged rows ([`super::staged`]) are appended once
//! their document is whole, and cut into record batches of exactly
//! [`BATCH_ROWS`] rows (the last one shorter), whatever the documents'
//! boundaries: the batches, and so the file, depend only on the rows.

use std::sync::Arc;

use arrow_array::builder::{
    make_builder, ArrayBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::types::{Decimal128Type, Decimal256Type};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};

use super::staged::{Event, Staged};
use super::BATCH_ROWS;
use crate::flatten::Scalar;

/// No value for the column in this row: NULL.
const UNSET: usize = usize::MAX;

/// One table's builders; see the module.
pub(crate) struct TableColumns {
    schema: SchemaRef,
    builders: Vec<Box<dyn ArrayBuilder>>,
    /// Rows in the builders.
    rows: usize,
    /// Per column, the event holding its value in the row being appended.
    cells: Vec<usize>,
    /// Per field of the record being appended, its value.
    fields: Vec<Option<Scalar>>,
}

impl TableColumns {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        let builders = schema
            .fields()
            .iter()
            .map(|f| make_builder(f.data_type(), BATCH_ROWS))
            .collect();
        Self {
            cells: vec![UNSET; schema.fields().len()],
            schema,
            builders,
            rows: 0,
            fields: Vec::new(),
        }
    }

    /// Appends the rows of `staged`; each batch of [`BATCH_ROWS`] rows
    /// filled on the way is pushed to `full`.
    pub(crate) fn append(
        &mut self,
        staged: &Staged,
        full: &mut Vec<RecordBatch>,
    ) -> Result<(), String> {
        let events = &staged.events[..];
        let mut i = 0;
        while i < events.len() {
            debug_assert_eq!(events[i], Event::Row);
            i += 1;
            self.cells.fill(UNSET);
            loop {
                match events[i] {
                    Event::RowEnd => break,
                    Event::Set { slot, .. } => {
                        self.cells[slot as usize] = i;
                        i += 1;
                    }
                    Event::ListStart { slot } => {
                        self.cells[slot as usize] = i;
                        while events[i] != Event::ListEnd {
                            i += 1;
                        }
                        i += 1;
                    }
                    other => return Err(format!("a row holds {other:?} outside an array")),
                }
            }
            i += 1;
            for (c, builder) in self.builders.iter_mut().enumerate() {
                let field = self.schema.field(c);
                append_cell(
                    builder.as_mut(),
                    field.data_type(),
                    events,
                    self.cells[c],
                    &staged.text,
                    &mut self.fields,
                )
                .map_err(|e| format!("column `{}`: {e}", field.name()))?;
            }
            self.rows += 1;
            if self.rows == BATCH_ROWS {
                full.push(self.batch()?);
            }
        }
        Ok(())
    }

    /// The rows appended since the last batch, as a batch; None when there
    /// are none.
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>, String> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.batch().map(Some)
    }

    fn batch(&mut self) -> Result<RecordBatch, String> {
        self.rows = 0;
        let arrays = self.builders.iter_mut().map(|b| b.finish()).collect();
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

/// Appends the value of one column of one row: the event at `at`, or NULL.
fn append_cell(
    builder: &mut dyn ArrayBuilder,
    data_type: &DataType,
    events: &[Event],
    at: usize,
    text: &[u8],
    fields: &mut Vec<Option<Scalar>>,
) -> Result<(), String> {
    match data_type {
        DataType::List(item) => {
            let list = downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(builder)?;
            if at == UNSET {
                list.append(false);
                return Ok(());
            }
            let mut j = at + 1;
            match item.data_type() {
                DataType::Struct(types) => {
                    let records = downcast::<StructBuilder>(list.values().as_mut())?;
                    while events[j] != Event::ListEnd {
                        if events[j] != Event::RecordStart {
                            return Err(format!("{:?} in an array of records", events[j]));
                        }
                        j += 1;
                        fields.clear();
                        fields.resize(types.len(), None);
                        while let Event::Field { at, value } = events[j] {
                            fields[at as usize] = Some(value);
                            j += 1;
                        }
                        if events[j] != Event::RecordEnd {
                            return Err(format!("{:?} in a record", events[j]));
                        }
                        j += 1;
                        for ((b, t), value) in records
                            .field_builders_mut()
                            .iter_mut()
                            .zip(types.iter())
                            .zip(fields.iter())
                        {
                            append_scalar(b.as_mut(), t.data_type(), *value, text)?;
                        }
                        records.append(true);
                    }
                }
                t => {
                    while let Event::Item(value) = events[j] {
                        append_scalar(list.values().as_mut(), t, Some(value), text)?;
                        j += 1;
                    }
                    if events[j] != Event::ListEnd {
                        return Err(format!("{:?} in an array", events[j]));
                    }
                }
            }
            list.append(true);
            Ok(())
        }
        t => match events.get(at) {
            Some(Event::Set { value, .. }) => append_scalar(builder, t, Some(*value), text),
            None => append_scalar(builder, t, None, text),
            Some(other) => Err(format!("{other:?} for a {t} column")),
        },
    }
}

fn downcast<T: ArrayBuilder>(builder: &mut dyn ArrayBuilder) -> Result<&mut T, String> {
    builder
        .as_any_mut()
        .downcast_mut::<T>()
        .ok_or_else(|| format!("no {} builder", std::any::type_name::<T>()))
}

/// Appends `value` (None: NULL) to a builder of `data_type`.
fn append_scalar(
    builder: &mut dyn ArrayBuilder,
    data_type: &DataType,
    value: Option<Scalar>,
    text: &[u8],
) -> Result<(), String> {
    let str_at = |start: usize, end: usize| {
        simdutf8::basic::from_utf8(&text[start..end]).map_err(|e| format!("text is not UTF-8: {e}"))
    };
    match (data_type, value) {
        (DataType::Utf8, Some(Scalar::Text(s, e))) => {
            downcast::<StringBuilder>(builder)?.append_value(str_at(s, e)?)
        }
        (DataType::Utf8, None) => downcast::<StringBuilder>(builder)?.append_null(),
        (DataType::Int64, v) => {
            let b = downcast::<Int64Builder>(builder)?;
            match v {
                Some(Scalar::Int64(i)) => b.append_value(i),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in an INT64 column")),
            }
        }
        (DataType::Float64, v) => {
            let b = downcast::<Float64Builder>(builder)?;
            match v {
                Some(Scalar::Float64(f)) => b.append_value(f),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in a FLOAT64 column")),
            }
        }
        (DataType::Boolean, v) => {
            let b = downcast::<BooleanBuilder>(builder)?;
            match v {
                Some(Scalar::Bool(x)) => b.append_value(x),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in a BOOL column")),
            }
        }
        (DataType::Timestamp(..), v) => {
            let b = downcast::<TimestampMicrosecondBuilder>(builder)?;
            match v {
                Some(Scalar::Micros(us)) => b.append_value(us),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in a TIMESTAMP column")),
            }
        }
        (DataType::Date32, v) => {
            let b = downcast::<Date32Builder>(builder)?;
            match v {
                Some(Scalar::Days(d)) => b.append_value(d),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in a DATE column")),
            }
        }
        // The plain decimal text through arrow's own parser, as arrow-json
        // reads a decimal: the same value to the last digit.
        (DataType::Decimal128(p, s), v) => {
            let b = downcast::<Decimal128Builder>(builder)?;
            match v {
                Some(Scalar::Decimal(start, end)) => b.append_value(
                    arrow_cast::parse::parse_decimal::<Decimal128Type>(str_at(start, end)?, *p, *s)
                        .map_err(|e| e.to_string())?,
                ),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in a NUMERIC column")),
            }
        }
        (DataType::Decimal256(p, s), v) => {
            let b = downcast::<Decimal256Builder>(builder)?;
            match v {
                Some(Scalar::Decimal(start, end)) => b.append_value(
                    arrow_cast::parse::parse_decimal::<Decimal256Type>(str_at(start, end)?, *p, *s)
                        .map_err(|e| e.to_string())?,
                ),
                None => b.append_null(),
                Some(other) => return Err(format!("{other:?} in a BIGNUMERIC column")),
            }
        }
        // A RECORD that is not REPEATED: pass 2 never fills one.
        (DataType::Struct(types), None) => {
            let b = downcast::<StructBuilder>(builder)?;
            for (f, t) in b.field_builders_mut().iter_mut().zip(types.iter()) {
                append_scalar(f.as_mut(), t.data_type(), None, text)?;
            }
            b.append(false);
        }
        (DataType::List(_), None) => {
            downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(builder)?.append(false)
        }
        (t, Some(v)) => return Err(format!("{v:?} in a {t} column")),
        (t, None) => return Err(format!("no NULL for a {t} column")),
    }
    Ok(())
}

/// The Arrow schema of a table, shared by its batches.
pub(crate) fn schema_ref(schema: &crate::table::TableSchema) -> SchemaRef {
    Arc::new(crate::sink::parquet::arrow_schema(schema))
}
