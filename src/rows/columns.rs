//! A table's columns as Arrow builders, one per column: a REPEATED column
//! is a `ListBuilder`, a REPEATED RECORD a `ListBuilder` of a
//! `StructBuilder`. Each column's builder is typed once, when the table
//! starts ([`ColumnBuilder`]), so a value reaches its builder without a
//! downcast; a shape pass 2 never fills (a RECORD that is not REPEATED)
//! goes through arrow's `make_builder` and takes NULLs. Staged rows ([`super::staged`]) are appended once
//! their document is whole, and cut into record batches of exactly
//! [`BATCH_ROWS`] rows (the last one shorter), whatever the documents'
//! boundaries: the batches, and so the file, depend only on the rows.

use std::any::Any;
use std::sync::Arc;

use arrow_array::builder::{
    make_builder, ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::types::{Decimal128Type, Decimal256Type};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};

use super::staged::{Event, Staged};
use super::BATCH_ROWS;
use crate::flatten::Scalar;

/// No value for the column in this row: NULL.
const UNSET: usize = usize::MAX;

/// One table's builders; see the module.
pub(crate) struct TableColumns {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
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
            .map(|f| ColumnBuilder::new(f))
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
                builder
                    .append(
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
        let arrays = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

/// One column's builder, typed for what pass 2 writes.
enum ColumnBuilder {
    Scalar(ScalarBuilder),
    /// REPEATED.
    List(ListBuilder<ScalarBuilder>),
    /// REPEATED RECORD: its fields are [`ScalarBuilder`]s.
    Records(ListBuilder<StructBuilder>),
    /// Anything else, through [`make_builder`] and a downcast per value.
    Other(Box<dyn ArrayBuilder>),
}

impl ColumnBuilder {
    fn new(field: &Field) -> Self {
        let data_type = field.data_type();
        let other = || ColumnBuilder::Other(make_builder(data_type, BATCH_ROWS));
        match data_type {
            DataType::List(item) => match item.data_type() {
                DataType::Struct(fields) => {
                    let builders: Option<Vec<Box<dyn ArrayBuilder>>> = fields
                        .iter()
                        .map(|f| {
                            ScalarBuilder::new(f.data_type())
                                .map(|b| Box::new(b) as Box<dyn ArrayBuilder>)
                        })
                        .collect();
                    match builders {
                        Some(builders) => ColumnBuilder::Records(
                            ListBuilder::with_capacity(
                                StructBuilder::new(fields.clone(), builders),
                                BATCH_ROWS,
                            )
                            .with_field(item.clone()),
                        ),
                        None => other(),
                    }
                }
                t => match ScalarBuilder::new(t) {
                    Some(b) => ColumnBuilder::List(
                        ListBuilder::with_capacity(b, BATCH_ROWS).with_field(item.clone()),
                    ),
                    None => other(),
                },
            },
            t => ScalarBuilder::new(t).map_or_else(other, ColumnBuilder::Scalar),
        }
    }

    /// Appends the value of one column of one row: the event at `at`, or
    /// NULL.
    fn append(
        &mut self,
        data_type: &DataType,
        events: &[Event],
        at: usize,
        text: &[u8],
        fields: &mut Vec<Option<Scalar>>,
    ) -> Result<(), String> {
        match self {
            ColumnBuilder::Scalar(b) => match events.get(at) {
                Some(Event::Set { value, .. }) => b.append(Some(*value), text),
                None => b.append(None, text),
                Some(other) => Err(format!("{other:?} for a {data_type} column")),
            },
            ColumnBuilder::List(list) => {
                if at == UNSET {
                    list.append(false);
                    return Ok(());
                }
                let mut j = at + 1;
                while let Event::Item(value) = events[j] {
                    list.values().append(Some(value), text)?;
                    j += 1;
                }
                if events[j] != Event::ListEnd {
                    return Err(format!("{:?} in an array", events[j]));
                }
                list.append(true);
                Ok(())
            }
            ColumnBuilder::Records(list) => {
                if at == UNSET {
                    list.append(false);
                    return Ok(());
                }
                let records = list.values();
                let n = records.num_fields();
                let mut j = at + 1;
                while events[j] != Event::ListEnd {
                    if events[j] != Event::RecordStart {
                        return Err(format!("{:?} in an array of records", events[j]));
                    }
                    j += 1;
                    fields.clear();
                    fields.resize(n, None);
                    while let Event::Field { at, value } = events[j] {
                        fields[at as usize] = Some(value);
                        j += 1;
                    }
                    if events[j] != Event::RecordEnd {
                        return Err(format!("{:?} in a record", events[j]));
                    }
                    j += 1;
                    for (k, value) in fields.iter().enumerate() {
                        records
                            .field_builder::<ScalarBuilder>(k)
                            .ok_or("a record field without its builder")?
                            .append(*value, text)?;
                    }
                    records.append(true);
                }
                list.append(true);
                Ok(())
            }
            ColumnBuilder::Other(b) => append_cell(b.as_mut(), data_type, events, at, text, fields),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Scalar(b) => b.finish(),
            ColumnBuilder::List(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Records(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Other(b) => b.finish(),
        }
    }
}

/// A builder of one of the scalar types a table's columns have.
#[derive(Debug)]
enum ScalarBuilder {
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Decimal128(Decimal128Builder, u8, i8),
    Decimal256(Decimal256Builder, u8, i8),
    Micros(TimestampMicrosecondBuilder),
    Days(Date32Builder),
}

impl ScalarBuilder {
    fn new(data_type: &DataType) -> Option<Self> {
        let n = BATCH_ROWS;
        Some(match data_type {
            DataType::Utf8 => Self::Utf8(StringBuilder::with_capacity(n, 1024)),
            DataType::Binary => Self::Binary(BinaryBuilder::with_capacity(n, 1024)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(n)),
            DataType::Float64 => Self::Float64(Float64Builder::with_capacity(n)),
            DataType::Boolean => Self::Bool(BooleanBuilder::with_capacity(n)),
            DataType::Decimal128(p, s) => Self::Decimal128(
                Decimal128Builder::with_capacity(n).with_data_type(data_type.clone()),
                *p,
                *s,
            ),
            DataType::Decimal256(p, s) => Self::Decimal256(
                Decimal256Builder::with_capacity(n).with_data_type(data_type.clone()),
                *p,
                *s,
            ),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Self::Micros(
                TimestampMicrosecondBuilder::with_capacity(n).with_data_type(data_type.clone()),
            ),
            DataType::Date32 => Self::Days(Date32Builder::with_capacity(n)),
            _ => return None,
        })
    }

    /// Appends `value`, None as NULL. Inlined into the loop over a row's
    /// columns, which calls it for every value of every row.
    #[inline(always)]
    fn append(&mut self, value: Option<Scalar>, text: &[u8]) -> Result<(), String> {
        let Some(value) = value else {
            self.append_null();
            return Ok(());
        };
        match (self, value) {
            (Self::Utf8(b), Scalar::Text(start, end)) => b.append_value(utf8(text, start, end)?),
            (Self::Binary(b), Scalar::Bytes(start, end)) => b.append_value(&text[start..end]),
            (Self::Int64(b), Scalar::Int64(i)) => b.append_value(i),
            (Self::Float64(b), Scalar::Float64(f)) => b.append_value(f),
            (Self::Bool(b), Scalar::Bool(x)) => b.append_value(x),
            (Self::Micros(b), Scalar::Micros(us)) => b.append_value(us),
            (Self::Days(b), Scalar::Days(d)) => b.append_value(d),
            // The plain decimal text through arrow's own parser, as
            // arrow-json reads a decimal: the same value to the last digit.
            (Self::Decimal128(b, p, s), Scalar::Decimal(start, end)) => b.append_value(
                arrow_cast::parse::parse_decimal::<Decimal128Type>(utf8(text, start, end)?, *p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            (Self::Decimal256(b, p, s), Scalar::Decimal(start, end)) => b.append_value(
                arrow_cast::parse::parse_decimal::<Decimal256Type>(utf8(text, start, end)?, *p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            (b, v) => return Err(b.mismatch(v)),
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn mismatch(&self, v: Scalar) -> String {
        format!("{v:?} in a {} column", self.finish_cloned().data_type())
    }

    fn append_null(&mut self) {
        match self {
            Self::Utf8(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
            Self::Decimal128(b, ..) => b.append_null(),
            Self::Decimal256(b, ..) => b.append_null(),
            Self::Micros(b) => b.append_null(),
            Self::Days(b) => b.append_null(),
        }
    }

    fn inner(&self) -> &dyn ArrayBuilder {
        match self {
            Self::Utf8(b) => b,
            Self::Binary(b) => b,
            Self::Int64(b) => b,
            Self::Float64(b) => b,
            Self::Bool(b) => b,
            Self::Decimal128(b, ..) => b,
            Self::Decimal256(b, ..) => b,
            Self::Micros(b) => b,
            Self::Days(b) => b,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            Self::Utf8(b) => b,
            Self::Binary(b) => b,
            Self::Int64(b) => b,
            Self::Float64(b) => b,
            Self::Bool(b) => b,
            Self::Decimal128(b, ..) => b,
            Self::Decimal256(b, ..) => b,
            Self::Micros(b) => b,
            Self::Days(b) => b,
        }
    }
}

/// So that a `ListBuilder` and a `StructBuilder` hold them.
impl ArrayBuilder for ScalarBuilder {
    fn len(&self) -> usize {
        self.inner().len()
    }

    fn finish(&mut self) -> ArrayRef {
        self.inner_mut().finish()
    }

    fn finish_cloned(&self) -> ArrayRef {
        self.inner().finish_cloned()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_box_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Staged text as a `str`: short ASCII text, most of it, checked in a few
/// word compares (see [`crate::extjson::utf8`]).
#[inline]
fn utf8(text: &[u8], start: usize, end: usize) -> Result<&str, String> {
    crate::extjson::utf8(&text[start..end]).ok_or_else(|| "text is not UTF-8".to_owned())
}

/// Appends the value of one column of one row to a builder of any type:
/// the event at `at`, or NULL.
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
    let str_at = |start: usize, end: usize| utf8(text, start, end);
    match (data_type, value) {
        (DataType::Utf8, Some(Scalar::Text(s, e))) => {
            downcast::<StringBuilder>(builder)?.append_value(str_at(s, e)?)
        }
        (DataType::Utf8, None) => downcast::<StringBuilder>(builder)?.append_null(),
        (DataType::Binary, Some(Scalar::Bytes(s, e))) => {
            downcast::<BinaryBuilder>(builder)?.append_value(&text[s..e])
        }
        (DataType::Binary, None) => downcast::<BinaryBuilder>(builder)?.append_null(),
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
