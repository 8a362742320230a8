//! `etl validate`, `etl plan` and `etl schema` as a user runs them.

mod common;

use common::{etl, transcript};

use common::TODAY;

#[test]
fn shipped_specs_are_valid() {
    let out = etl(&["validate"], TODAY);
    insta::assert_snapshot!(transcript(&out), @r"
    exit: 0
    --- stdout
    ok: 4 files valid
    --- stderr
    ");
}

#[test]
fn every_invalid_fixture_is_reported_in_one_run() {
    let mut files: Vec<String> = std::fs::read_dir(common::root().join("tests/fixtures/invalid"))
        .unwrap()
        .map(|e| {
            format!(
                "tests/fixtures/invalid/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = etl(&args, TODAY);
    assert_eq!(out.status.code(), Some(2), "spec errors exit with 2");
    insta::assert_snapshot!(transcript(&out));
}

/// Each mistake, the place it is reported and what it says.
#[test]
fn each_mistake_names_its_location_and_what_was_expected() {
    let cases: &[(&str, &str, &str)] = &[
        ("unknown_key", ":6:3: source: unknown field `colection`", "hint: did you mean `collection`?"),
        ("wrong_type", ":7:15: source.batch_size: expected integer or null, found a string", ""),
        ("bad_enum", ":10:9: partition.kind: unknown value `datetime`, expected one of `date`", "hint: did you mean `date`?"),
        ("missing_field", ":8:1: partition: missing field `start_date`", ""),
        ("unknown_connection", ":4:15: source.connection: unknown connection `mongodb` in profile `local`", "hint: did you mean `mongo`?"),
        ("wrong_connection_type", ":22:17: sinks.lake.connection: connection `warehouse` is of type `bigquery`, but the lake sink needs type `object_store`", "hint:"),
        ("bad_jsonpath", ":16:13: flatten.columns[0].path: invalid JSONPath `$.[`", "hint: JSONPath starts at `$`"),
        ("bad_template", ":23:11: sinks.lake.path: undefined variable in template", ""),
        ("bad_date", ":12:15: partition.start_date: invalid date `2020-13-01`", "expected `YYYY-MM-DD`"),
        ("bad_timezone", ":11:13: partition.timezone: unknown timezone `Europe/Pari`", "hint: did you mean `Europe/Paris`?"),
        ("bad_cron", ":29:11: schedule: invalid cron expression `0 0 * *`", "hint: five fields"),
        ("duplicate_column", ":18:13: flatten.columns[1].name: column `user_key` is produced twice", ""),
        ("excluded_partition_field", ":20:7: flatten.exclude[1]: `$.created_at` excludes the partition field `created_at`", ""),
        ("same_path_every_day", ":23:11: sinks.lake.path: the lake path is the same for every day", "hint: put the day in the path"),
        ("unknown_secret", ":28:12: sinks.warehouse.table: unknown secret `nope` (known: `gcp_sa`, `gcs_local`, `mongo_uri`)", ""),
        ("bad_warehouse_field", ":28:5: sinks.warehouse: unknown field `tabel`", "hint: did you mean `table`?"),
        ("bad_column_name", ":15:13: flatten.columns[0].name: invalid column name `1st key`", "hint: BigQuery column names"),
        ("rule_inside_explode", ":11:1: flatten: `$.items.price` lies inside the exploded array `$.items`", "hint: move the rule into the explode rule's `flatten`"),
        ("yaml_syntax", ":6:13: (document): did not find expected ',' or ']'", ""),
        ("wrong_version", ":2:10: version: unsupported version `2`, expected `1`", ""),
    ];
    assert!(cases.len() >= 12);
    for (name, located, extra) in cases {
        let file = format!("tests/fixtures/invalid/{name}.yaml");
        let out = etl(&["validate", &file], TODAY);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("error: {file}{located}")),
            "{name}: expected `{located}` in:\n{stderr}"
        );
        assert!(
            stderr.contains(extra),
            "{name}: expected `{extra}` in:\n{stderr}"
        );
    }
}

#[test]
fn several_mistakes_in_one_file_are_all_reported() {
    let out = etl(
        &["validate", "tests/fixtures/invalid/many_errors.yaml"],
        TODAY,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for m in [
        "unknown field `colection`",
        "missing field `collection`",
        "unknown value `datetime`",
        "source.batch_size: expected integer",
    ] {
        assert!(stderr.contains(m), "missing `{m}` in:\n{stderr}");
    }
    assert!(stderr.ends_with("4 errors in 1 of 2 files\n"), "{stderr}");
}

#[test]
fn json_diagnostics_for_ci_and_editors() {
    let out = etl(
        &[
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/bad_timezone.yaml",
        ],
        TODAY,
    );
    assert_eq!(out.status.code(), Some(2));
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!(diags, @r#"
    [
      {
        "severity": "error",
        "file": "tests/fixtures/invalid/bad_timezone.yaml",
        "line": 11,
        "column": 13,
        "path": "partition.timezone",
        "message": "unknown timezone `Europe/Pari`, expected an IANA name such as `UTC` or `Europe/Paris`",
        "hint": "did you mean `Europe/Paris`?"
      }
    ]
    "#);
}

#[test]
fn plan_shows_each_day_filter_paths_and_target() {
    // The shipped default profile, as a user sees it (tests run `files`).
    let out = etl(
        &[
            "--profile",
            "local",
            "plan",
            "pipelines/users.yaml",
            "pipelines/orders.yaml",
            "pipelines/products.yaml",
            "--start",
            "2020-06-01",
            "--end",
            "2020-06-02",
        ],
        TODAY,
    );
    insta::assert_snapshot!(transcript(&out));
}

#[test]
fn plan_clamps_to_yesterday_with_a_notice() {
    let out = etl(
        &[
            "plan",
            "pipelines/users.yaml",
            "--start",
            "2020-06-09",
            "--end",
            "2020-06-30",
        ],
        "2020-06-11",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("notice: the range is clamped to end on 2020-06-10: today (2020-06-11) and later are never extracted"), "{stdout}");
    assert!(
        stdout.contains("2 partitions from 2020-06-09 to 2020-06-10"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("\n  2020-06-11"),
        "today must not be planned:\n{stdout}"
    );
}

#[test]
fn plan_defaults_to_start_date_through_yesterday() {
    let out = etl(&["plan", "pipelines/users.yaml"], "2020-06-04");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 partitions from 2020-06-01 to 2020-06-03 (today is 2020-06-04)"),
        "{stdout}"
    );
}

#[test]
fn plan_for_prod_masks_secrets() {
    let out = etl(
        &[
            "--profile",
            "prod",
            "plan",
            "pipelines/users.yaml",
            "--date",
            "2020-06-01",
        ],
        TODAY,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("source     mongo `***`"), "{stdout}");
    assert!(
        stdout.contains(
            "raw        gs://acme-data-lake/raw/users/dt=2020-06-01/users-20200601.jsonl.gz"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("bigquery acme-analytics.etl_demo.users$20200601"),
        "{stdout}"
    );
}

#[test]
fn plan_rejects_an_invalid_spec_with_exit_2() {
    let out = etl(&["plan", "tests/fixtures/invalid/bad_timezone.yaml"], TODAY);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown timezone `Europe/Pari`"));
}

#[test]
fn unknown_profile_is_a_usage_error() {
    let out = etl(
        &["--profile", "staging", "plan", "pipelines/users.yaml"],
        TODAY,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "unknown profile `staging`, expected one of `fast`, `files`, `local`, `prod`"
        ),
        "{stderr}"
    );
}

#[test]
fn committed_schemas_are_fresh() {
    let out = etl(&["schema", "--check", "schemas"], TODAY);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the committed schemas are stale: run `cargo run -- schema --write schemas`\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Leases need conditional puts, which `object_store` gives on S3 only
/// when told: a shared `s3://` ledger without `aws_conditional_put` is
/// refused where it is written, not discovered as a failure of every day.
#[test]
fn an_s3_state_store_without_conditional_puts_is_refused_with_the_option_to_add() {
    let p = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    p.edit(
        "etl.yaml",
        "  url: .etl/state\n",
        "  url: s3://acme-etl-state/etl\n",
    );
    let out = p.etl(&["validate", "pipelines/users.yaml"]);
    insta::assert_snapshot!(transcript(&out));

    p.edit(
        "etl.yaml",
        "  url: s3://acme-etl-state/etl\n",
        "  url: s3://acme-etl-state/etl\n  options:\n    aws_region: eu-west-1\n    aws_conditional_put: etag\n",
    );
    let out = p.etl(&["validate", "pipelines/users.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));

    // A profile's own state store is checked where it is written, and
    // only that profile uses it.
    p.edit(
        "etl.yaml",
        "  files:\n    connections:\n",
        "  files:\n    state:\n      url: s3://acme-etl-state/files\n    connections:\n",
    );
    let out = p.etl(&["validate", "pipelines/users.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(": profiles.files.state.url: an `s3://` state store needs conditional puts for the day leases, and `profiles.files.state.options` has no `aws_conditional_put`"),
        "{err}"
    );
    let plan = p.etl(&["plan", "pipelines/users.yaml"]);
    assert_eq!(plan.status.code(), Some(2), "{}", common::text(&plan));
}

/// `notify:` mistakes are found before a run, each where it is written:
/// an address that is not one, a login without its secret, a secret that
/// is not declared, triggers that never fire.
#[test]
fn notify_mistakes_are_located_with_a_hint() {
    let p = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    let yaml = p.read("etl.yaml")
        + "
notify:
  - type: email
    host: smtp.example.com
    username: etl-bot
    from: etl at example.com
    to: []
  - type: webhook
    on: []
    url_secret: slack_hook
";
    p.write("etl.yaml", &yaml);
    let out = p.etl(&["validate", "pipelines/users.yaml"]);
    insta::assert_snapshot!(transcript(&out));

    // Fixed: a relay that needs no login, and a declared secret.
    let fixed = p
        .read("etl.yaml")
        .replace("    username: etl-bot\n", "")
        .replace("etl at example.com", "etl <etl@example.com>")
        .replace("to: []", "to: [data@example.com]")
        .replace("on: []", "on: [failure, success]")
        .replace(
            "secrets:\n",
            "secrets:\n  slack_hook:\n    file: secrets/slack_hook.age\n",
        );
    p.write("etl.yaml", &fixed);
    let keygen = p.etl(&["secrets", "keygen"]);
    let recipient = String::from_utf8_lossy(&keygen.stderr)
        .trim()
        .strip_prefix("recipient: ")
        .unwrap()
        .to_owned();
    p.write("hook.txt", "http://127.0.0.1:9/hook");
    let sealed = p.etl(&["secrets", "encrypt", "--recipient", &recipient, "hook.txt"]);
    assert!(sealed.status.success(), "{}", common::text(&sealed));
    std::fs::create_dir_all(p.path().join("secrets")).unwrap();
    std::fs::write(p.path().join("secrets/slack_hook.age"), &sealed.stdout).unwrap();
    let out = p.etl(&["validate", "pipelines/users.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
}

/// Issue 29: `tls: none` with a login sends the password in clear text,
/// so it is refused for any host but a loopback relay.
#[test]
fn a_password_without_tls_is_refused_unless_the_relay_is_loopback() {
    let p = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    let email = |host: &str| {
        format!(
            "
notify:
  - type: email
    host: {host}
    tls: none
    username: etl-bot
    password_secret: smtp_password
    from: etl <etl@example.com>
    to: [data@example.com]
"
        )
    };
    let base = p.read("etl.yaml").replace(
        "secrets:\n",
        "secrets:\n  smtp_password:\n    file: secrets/smtp_password.age\n",
    );
    p.write("etl.yaml", &(base.clone() + &email("smtp.example.com")));
    let out = p.etl(&["validate", "pipelines/users.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("notify[0].tls: `tls: none` with a password would send it to `smtp.example.com` in clear text"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: use `tls: starttls`"), "{stderr}");

    for host in ["127.0.0.1", "localhost", "\"::1\""] {
        p.write("etl.yaml", &(base.clone() + &email(host)));
        let out = p.etl(&["validate", "pipelines/users.yaml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("clear text"), "{host}: {stderr}");
    }
}

/// Issue 29: a child table is named from its array's path, and a path key
/// such as `../up dir` must not reach a table or a staging file name.
#[test]
fn a_child_table_name_drawn_from_an_odd_path_is_refused() {
    let p = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    let spec = p.read("pipelines/orders.yaml");
    let at = spec
        .find("      - path: $.items\n")
        .expect("the orders spec explodes $.items");
    let odd = format!(
        "{}      - path: \"$['../up dir']\"\n        policy: explode\n{}",
        &spec[..at],
        &spec[at..]
    );
    p.write("pipelines/orders.yaml", &odd);
    let out = p.etl(&["validate", "pipelines/orders.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("flatten.arrays.rules: the child table of `$['../up dir']` would be named `orders__../up dir`, which is not a valid table name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: set `table:` on the array's rule"),
        "{stderr}"
    );
}
