//! Stage 2, resolve schemas: each table's schema for the day, from what
//! the day's data has, the warehouse table, and the schema lock; and
//! before the extract, the schemas the day is expected to end with.

use chrono::NaiveDate;

use super::day::PartitionError;
use super::runtime::PipelineRuntime;
use crate::flatten::{SchemaBuilder, Tables};
use crate::sink::warehouse::{Table, Warehouse};
use crate::spec::ColumnType;
use crate::table::TableSchema;

impl PipelineRuntime {
    /// The day's schema of each table: the inferred one, with the lock's
    /// reviewed types first and its `on_new_field` applied, merged into
    /// the warehouse table's.
    pub(super) async fn resolve_schemas(
        &self,
        day: NaiveDate,
        warehouse: &dyn Warehouse,
        tables: &Tables,
        targets: &[Table],
        logical: &[String],
        inferred: Vec<SchemaBuilder>,
    ) -> Result<Vec<TableSchema>, PartitionError> {
        let mut schemas = Vec::with_capacity(targets.len());
        for (i, (table, builder)) in targets.iter().zip(inferred).enumerate() {
            let name = &table.name;
            // A warehouse that is down is transient here as everywhere:
            // the outage tests found this read failing the day at once.
            let existing = warehouse.schema(table).await?;
            for (path, column) in builder.renames() {
                tracing::warn!(
                    pipeline = %self.plan.name, partition = %day, table = %name, %path, %column,
                    "two paths flatten to one column name: this one is renamed (the name is a hash of the path, stable from day to day)"
                );
            }
            let null_only: Vec<String> = builder.null_only().map(str::to_owned).collect();
            // The lock's types come first: they are the reviewed ones.
            let locked = self
                .plan
                .lock
                .as_ref()
                .map(|l| l.table(&logical[i]).cloned().unwrap_or_default());
            let baseline = locked.as_ref().or(existing.as_ref());
            let mut found = builder.finish_against(baseline);
            if let Some(locked) = &locked {
                crate::flatten::adopt_locked_types(&mut found, locked, &null_only);
                let policy = tables.tables()[i].flattener.new_field_policy();
                self.new_fields(day, name, &logical[i], locked, &mut found, policy)?;
            }
            self.warn_maps(day, name, baseline, &found);
            // Every column the table has, not only the day's: a day
            // without documents, or without an optional field, still
            // carries them (null), so every Parquet file of a dataset has
            // the table's schema (issue 29).
            let table_columns = table_columns(existing.as_ref(), locked.as_ref());
            schemas.push(
                merge_schema(table_columns.as_ref(), found, &null_only)
                    .map_err(|e| PartitionError::fatal(format!("table `{name}`: {}", e.message)))?,
            );
        }
        *self.last_schemas.lock().expect("not poisoned") = Some(schemas.clone());
        Ok(schemas)
    }

    /// The schemas day's tables are expected to end with, known before the
    /// extract so that its rows can be written while the documents arrive
    /// (see [`super::rows::Speculation`]): per table, the schema lock's table merged into
    /// the warehouse table as the day's own merge would, else the warehouse
    /// table, else the schema the last partition of this run ended with.
    /// None when some table has no basis for a guess, or the warehouse's
    /// tables cannot be read now (the day's own merge then says why).
    pub(super) async fn expected_schemas(
        &self,
        warehouse: &dyn Warehouse,
        targets: &[Table],
        logical: &[String],
    ) -> Option<Vec<TableSchema>> {
        let last = self.last_schemas.lock().expect("not poisoned").clone();
        let mut expected = Vec::with_capacity(targets.len());
        for (i, table) in targets.iter().enumerate() {
            let existing = warehouse.schema(table).await.ok()?;
            let locked = self.plan.lock.as_ref().and_then(|l| l.table(&logical[i]));
            let schema = match table_columns(existing.as_ref(), locked) {
                Some(schema) => schema,
                None => last.as_ref()?.get(i)?.clone(),
            };
            expected.push(schema);
        }
        Some(expected)
    }

    /// `on_new_field` for one table: the columns of `found` that the
    /// schema lock lacks are added (and logged), dropped, or fail the
    /// partition.
    /// Warns when the day's new columns (against the lock, else the
    /// warehouse table, else all of them on a first day) hold an object
    /// used as a map: a column per id-like key, which grows the table with
    /// every new key (issue 28).
    fn warn_maps(
        &self,
        day: NaiveDate,
        table: &str,
        baseline: Option<&TableSchema>,
        found: &TableSchema,
    ) {
        let new: Vec<String> = found
            .columns
            .iter()
            .filter(|c| baseline.is_none_or(|b| b.get(&c.name).is_none()))
            .map(|c| c.name.clone())
            .collect();
        let separator = &self.plan.flatten.separator;
        for (parent, n, keys) in crate::infer::map_like_columns(&new, separator) {
            tracing::warn!(
                pipeline = %self.plan.name, partition = %day, %table, object = %parent, columns = n,
                "{n} new columns under `{parent}`, whose keys look like ids ({}, ...): an object used as a map adds a column per key; \
                 keep it as one JSON column with `flatten.objects: [{{path: \"$.{}\", policy: json}}]`",
                keys.join(", "),
                parent.replace(separator.as_str(), ".")
            );
        }
    }

    fn new_fields(
        &self,
        day: NaiveDate,
        table: &str,
        logical: &str,
        locked: &TableSchema,
        found: &mut TableSchema,
        policy: crate::spec::NewFieldPolicy,
    ) -> Result<(), PartitionError> {
        use crate::spec::NewFieldPolicy;
        let new: Vec<String> = found
            .columns
            .iter()
            .filter(|c| locked.get(&c.name).is_none())
            .map(|c| c.name.clone())
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let lock_file = format!("schemas/tables/{}.json", self.plan.name);
        match policy {
            NewFieldPolicy::Add => {
                tracing::warn!(
                    pipeline = %self.plan.name, partition = %day, %table, columns = %new.join(", "),
                    "new columns, not in {lock_file}: added to the table (on_new_field: add); record them with `etl schema lock`"
                );
            }
            NewFieldPolicy::Ignore => {
                tracing::info!(
                    pipeline = %self.plan.name, partition = %day, %table, columns = %new.join(", "),
                    "fields not in {lock_file} are left out (on_new_field: ignore)"
                );
                found.columns.retain(|c| locked.get(&c.name).is_some());
            }
            NewFieldPolicy::Fail => {
                return Err(PartitionError::fatal(format!(
                    "table `{table}` has columns that {lock_file} lacks for `{logical}`: {} (on_new_field: fail); \
                     review them, then record them with `etl schema lock --date {day}`, or set `on_new_field: add` or `ignore`",
                    new.join(", ")
                )))
            }
        }
        Ok(())
    }
}

/// The columns a table has whatever a day holds: the warehouse table's,
/// then the schema lock's columns it lacks, in the lock's order (a lock
/// column the table has keeps the table's type: the day's merge checks
/// the data against it). None when there is neither, or the lock has no
/// columns for the table.
pub(super) fn table_columns(
    existing: Option<&TableSchema>,
    locked: Option<&TableSchema>,
) -> Option<TableSchema> {
    let locked = locked.filter(|l| !l.columns.is_empty());
    let mut out = match (existing, locked) {
        (None, None) => return None,
        (Some(existing), _) => existing.clone(),
        (None, Some(_)) => TableSchema::default(),
    };
    for c in locked.into_iter().flat_map(|l| &l.columns) {
        if out.get(&c.name).is_none() {
            out.columns.push(c.clone());
        }
    }
    Some(out)
}

/// Widens the inferred schema to fit the table that exists: a column keeps
/// the table's type when the data fits it (INT64 into FLOAT64, anything into
/// STRING); new columns are appended. A column whose data needs a wider type
/// than the table has is an error, because BigQuery cannot retype in place.
///
/// `null_only` names the columns that held only nulls this partition: their
/// STRING type is a placeholder, so they take whatever type the table has.
pub(super) fn merge_schema(
    existing: Option<&TableSchema>,
    inferred: TableSchema,
    null_only: &[String],
) -> Result<TableSchema, PartitionError> {
    let Some(existing) = existing else {
        return Ok(inferred);
    };
    let mut out = existing.clone();
    for col in inferred.columns {
        match existing.get(&col.name) {
            None => out.columns.push(col),
            Some(_) if null_only.contains(&col.name) => {}
            Some(have)
                if have.kind == ColumnType::Record
                    && col.kind == ColumnType::Record
                    && have.repeated == col.repeated =>
            {
                // New fields are appended; known ones must fit.
                let inner = merge_schema(
                    Some(&TableSchema {
                        columns: have.fields.clone(),
                    }),
                    TableSchema {
                        columns: col.fields,
                    },
                    &[],
                )
                .map_err(|e| PartitionError::fatal(format!("in RECORD `{}`: {}", col.name, e.message)))?;
                let at = out
                    .columns
                    .iter()
                    .position(|c| c.name == col.name)
                    .expect("the column exists");
                out.columns[at].fields = inner.columns;
            }
            Some(have) if fits(col.kind, have.kind) && col.repeated == have.repeated => {}
            Some(have) => {
                return Err(PartitionError::fatal(format!(
                    "type conflict in column `{}`: the table has {}{}, this partition's data needs {}{}; \
                     declare the column's type in `flatten.columns` so every day converts to it",
                    col.name,
                    if have.repeated { "REPEATED " } else { "" },
                    have.kind.bigquery_name(),
                    if col.repeated { "REPEATED " } else { "" },
                    col.kind.bigquery_name()
                )))
            }
        }
    }
    Ok(out)
}

fn fits(data: ColumnType, column: ColumnType) -> bool {
    data == column
        || column == ColumnType::String
        || (data == ColumnType::Int64 && column == ColumnType::Float64)
        || (data == ColumnType::Numeric && column == ColumnType::Bignumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_wider_table_types_and_appends_new_columns() {
        let table = TableSchema::of(&[
            ("_ds", ColumnType::Date),
            ("points", ColumnType::String),
            ("score", ColumnType::Float64),
        ]);
        let data = TableSchema::of(&[
            ("_ds", ColumnType::Date),
            ("points", ColumnType::Int64),
            ("score", ColumnType::Int64),
            ("new", ColumnType::Bool),
        ]);
        let merged = merge_schema(Some(&table), data, &[]).unwrap();
        assert_eq!(
            merged,
            TableSchema::of(&[
                ("_ds", ColumnType::Date),
                ("points", ColumnType::String),
                ("score", ColumnType::Float64),
                ("new", ColumnType::Bool)
            ])
        );
    }

    #[test]
    fn columns_null_all_day_take_the_table_type() {
        let table = TableSchema::of(&[("points", ColumnType::Int64)]);
        let merged = merge_schema(
            Some(&table),
            TableSchema::of(&[("points", ColumnType::String)]),
            &["points".to_owned()],
        )
        .unwrap();
        assert_eq!(merged, table);
    }

    /// Issue 29, part 7: a day's schema is the table's whole, whatever
    /// the day holds. An empty day (`_ds` alone found) and a day without
    /// an optional field get every column, with the table's types.
    #[test]
    fn a_day_gets_every_column_of_the_table_and_the_lock() {
        let lock = TableSchema::of(&[
            ("_ds", ColumnType::Date),
            ("id", ColumnType::Int64),
            ("note", ColumnType::String),
            ("score", ColumnType::Float64),
        ]);
        let empty = TableSchema::of(&[("_ds", ColumnType::Date)]);
        let base = table_columns(None, Some(&lock));
        assert_eq!(
            merge_schema(base.as_ref(), empty.clone(), &[]).unwrap(),
            lock
        );

        let without_note = TableSchema::of(&[
            ("_ds", ColumnType::Date),
            ("id", ColumnType::Int64),
            ("score", ColumnType::Float64),
        ]);
        assert_eq!(
            merge_schema(base.as_ref(), without_note, &[]).unwrap(),
            lock
        );

        // The table first, in its order and types; then the lock's others.
        let table = TableSchema::of(&[
            ("_ds", ColumnType::Date),
            ("score", ColumnType::String),
            ("id", ColumnType::Int64),
        ]);
        let base = table_columns(Some(&table), Some(&lock));
        assert_eq!(
            merge_schema(base.as_ref(), empty.clone(), &[]).unwrap(),
            TableSchema::of(&[
                ("_ds", ColumnType::Date),
                ("score", ColumnType::String),
                ("id", ColumnType::Int64),
                ("note", ColumnType::String),
            ])
        );
        // Without a lock, the table's columns.
        assert_eq!(table_columns(Some(&table), None), Some(table.clone()));
        assert_eq!(
            table_columns(Some(&table), Some(&TableSchema::default())),
            Some(table)
        );
        assert_eq!(table_columns(None, Some(&TableSchema::default())), None);
        assert_eq!(table_columns(None, None), None);
    }

    #[test]
    fn merge_refuses_to_narrow_a_column() {
        let table = TableSchema::of(&[("points", ColumnType::Int64)]);
        let e = merge_schema(
            Some(&table),
            TableSchema::of(&[("points", ColumnType::String)]),
            &[],
        )
        .unwrap_err();
        assert!(e.message.starts_with("type conflict in column `points`: the table has INT64, this partition's data needs STRING"), "{}", e.message);
    }
}
