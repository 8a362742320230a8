//! Load jobs and SQL, built without a server so their text can be tested,
//! and the checks on every name that goes into a URL or a statement.

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::schema::schema_json;
use super::BigQueryError;
use crate::table::TableSchema;

/// The load job for a decorator replace: `WRITE_TRUNCATE` of the data into
/// `{table}${YYYYMMDD}`. Pure, so the request can be checked without a
/// server (emulators take the decorator as part of the table name). Its
/// `jobReference` is added when it is sent. `CREATE_NEVER`, because the
/// table is created by [`BigQuerySink::ensure_table`], clustering included;
/// [`BigQuerySink::replace_partition`] therefore sends no `clustering`
/// (a load's clustering must match the table's, and omitting it keeps it).
pub fn decorator_load_job(
    project: &str,
    dataset: &str,
    table: &str,
    day: NaiveDate,
    schema: &TableSchema,
    partition_column: &str,
    clustering: &[String],
) -> Value {
    let mut load = json!({
        "destinationTable": {
            "projectId": project,
            "datasetId": dataset,
            "tableId": format!("{table}${}", day.format("%Y%m%d")),
        },
        "writeDisposition": "WRITE_TRUNCATE",
        "createDisposition": "CREATE_NEVER",
        "schema": schema_json(schema),
        "timePartitioning": {"type": "DAY", "field": partition_column},
    });
    parquet_source(&mut load);
    if !clustering.is_empty() {
        load["clustering"] = json!({ "fields": clustering });
    }
    json!({ "configuration": { "load": load } })
}

/// The load job filling a staging table.
pub(super) fn staging_load_job(
    project: &str,
    dataset: &str,
    staging: &str,
    schema: &TableSchema,
) -> Value {
    let mut load = json!({
        "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": staging},
        "writeDisposition": "WRITE_TRUNCATE",
        "createDisposition": "CREATE_NEVER",
        "schema": schema_json(schema),
    });
    parquet_source(&mut load);
    json!({ "configuration": { "load": load } })
}

/// A load's source: one Parquet file ([`crate::rows`]), read against the
/// job's `schema` (the lock's columns). `enableListInference` makes a
/// Parquet LIST a REPEATED column rather than a RECORD holding a `list`
/// of `element`s.
fn parquet_source(load: &mut Value) {
    load["sourceFormat"] = json!("PARQUET");
    load["parquetOptions"] = json!({ "enableListInference": true });
}

/// `{table}__staging_{YYYYMMDD}_{attempt}`. Each attempt at a day loads
/// into a table of its own: one left by a killed run (it expires by
/// itself) then never stands in the way of the next attempt. The emulator
/// can even leave one that it lists but cannot delete, when the client was
/// killed while it created it.
pub(super) fn staging_table_name(table: &str, day: NaiveDate, attempt: &str) -> String {
    format!("{table}__staging_{}_{attempt}", day.format("%Y%m%d"))
}

/// `` `project.dataset.table` `` for SQL; every part is checked first.
pub(super) fn table_path(project: &str, dataset: &str, table: &str) -> String {
    format!("`{project}.{dataset}.{table}`")
}

pub(super) fn delete_partition_sql(
    project: &str,
    dataset: &str,
    table: &str,
    partition_column: &str,
    day: NaiveDate,
) -> String {
    format!(
        "DELETE FROM {} WHERE `{partition_column}` = DATE '{day}'",
        table_path(project, dataset, table)
    )
}

/// The staging-mode script. Rows of other days in the staging table are
/// left out, so no other partition is ever touched.
pub(super) fn replace_script(
    project: &str,
    dataset: &str,
    table: &str,
    staging: &str,
    day: NaiveDate,
    schema: &TableSchema,
    partition_column: &str,
) -> String {
    let cols = schema
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "BEGIN TRANSACTION;\n\
         {};\n\
         INSERT INTO {} ({cols})\n  SELECT {cols} FROM {} WHERE `{partition_column}` = DATE '{day}';\n\
         COMMIT TRANSACTION;",
        delete_partition_sql(project, dataset, table, partition_column, day),
        table_path(project, dataset, table),
        table_path(project, dataset, staging),
    )
}

pub(super) fn check_project(project: &str) -> Result<(), BigQueryError> {
    let ok = !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(BigQueryError::InvalidName {
            what: "project id",
            name: project.to_owned(),
            expected: "letters, digits, `-`, `.` and `:`",
        })
    }
}

/// Dataset and table ids go into URLs and SQL, so they are checked here
/// whatever rendered them.
pub(super) fn check_names(dataset: &str, table: &str) -> Result<(), BigQueryError> {
    if dataset.is_empty()
        || dataset.len() > 1024
        || !dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(BigQueryError::InvalidName {
            what: "dataset id",
            name: dataset.to_owned(),
            expected: "letters, digits and `_`",
        });
    }
    if table.is_empty()
        || table.len() > 1024
        || !table
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(BigQueryError::InvalidName {
            what: "table id",
            name: table.to_owned(),
            expected: "letters, digits, `_` and `-`",
        });
    }
    Ok(())
}

/// `etl_{table}_{YYYYMMDD}`, cut to what a job id allows, for finding the
/// jobs of a table in the console.
pub(super) fn job_prefix(table: &str, day: &str) -> String {
    let t: String = table
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(200)
        .collect();
    format!("etl_{t}_{day}")
}

/// `errorResult`, then the other distinct messages of `errors` (BigQuery
/// puts the row-level details there).
pub(super) fn job_error_message(status: &Value) -> String {
    let fmt = |e: &Value| {
        let msg = e["message"].as_str().unwrap_or("no message");
        match e["reason"].as_str() {
            Some(r) if !r.is_empty() => format!("{r}: {msg}"),
            _ => msg.to_owned(),
        }
    };
    let mut parts = vec![fmt(&status["errorResult"])];
    for e in status["errors"].as_array().into_iter().flatten() {
        let m = fmt(e);
        if !parts.contains(&m) && parts.len() < 6 {
            parts.push(m);
        }
    }
    parts.join("; ")
}

/// Job error reasons BigQuery documents as worth a retry.
pub(super) fn is_transient_reason(reason: &str) -> bool {
    matches!(
        reason,
        "backendError" | "internalError" | "rateLimitExceeded" | "jobBackendError"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ColumnType;
    use crate::table::TableSchema;

    #[test]
    fn the_script_replaces_one_day_in_a_transaction() {
        let s = TableSchema::of(&[
            ("_ds", ColumnType::Date, false),
            ("tags", ColumnType::String, true),
        ]);
        let day = NaiveDate::from_ymd_opt(2020, 6, 1).unwrap();
        assert_eq!(
            replace_script("etl-local", "d", "t", &staging_table_name("t", day, "a1"), day, &s, "_ds"),
            "BEGIN TRANSACTION;\n\
             DELETE FROM `etl-local.d.t` WHERE `_ds` = DATE '2020-06-01';\n\
             INSERT INTO `etl-local.d.t` (`_ds`, `tags`)\n  SELECT `_ds`, `tags` FROM `etl-local.d.t__staging_20200601_a1` WHERE `_ds` = DATE '2020-06-01';\n\
             COMMIT TRANSACTION;"
        );
    }

    #[test]
    fn names_that_could_break_sql_are_refused() {
        assert!(check_names("etl_demo", "orders-2020").is_ok());
        assert!(check_names("etl_demo", "t` WHERE 1=1 --").is_err());
        assert!(check_names("etl-demo", "t").is_err());
        assert!(check_project("example.com:my-project").is_ok());
        assert!(check_project("p`").is_err());
    }

    #[test]
    fn job_errors_keep_the_row_details() {
        let status = json!({
            "state": "DONE",
            "errorResult": {"reason": "invalid", "message": "Error while reading data"},
            "errors": [
                {"reason": "invalid", "message": "Error while reading data"},
                {"reason": "invalid", "message": "Could not convert value 'abc' to integer. Field: n"}
            ]
        });
        assert_eq!(
            job_error_message(&status),
            "invalid: Error while reading data; invalid: Could not convert value 'abc' to integer. Field: n"
        );
    }
}
