//! `etl schedule` as a user starts it: the mistakes it refuses before it
//! starts, and the systemd unit shipped for it. The daemon itself runs in
//! `tests/stack_engine.rs` (a real signal, days loaded on the stack) and in
//! `src/schedule/tests.rs` (its decisions over simulated weeks).

mod common;

use common::{etl_command, root, transcript};

#[test]
fn a_pinned_today_or_a_clock_that_stands_still_is_refused() {
    let out = etl_command(&root())
        .args(["schedule", "pipelines/users.yaml"])
        .output()
        .unwrap();
    insta::assert_snapshot!(transcript(&out), @r"
    exit: 2
    --- stdout
    --- stderr
    error: `etl schedule` follows the clock, so `--today` (ETL_TODAY) cannot pin it

    hint: unset ETL_TODAY
    ");
    let out = etl_command(&root())
        .env_remove("ETL_TODAY")
        .args([
            "schedule",
            "pipelines/users.yaml",
            "--clock-start",
            "2020-06-03T00:00:00Z",
            "--clock-speed",
            "0",
        ])
        .output()
        .unwrap();
    insta::assert_snapshot!(transcript(&out), @r"
    exit: 2
    --- stdout
    --- stderr
    error: --clock-speed must be a positive number, not 0
    ");
}

#[test]
fn a_spec_with_a_bad_cron_schedules_nothing() {
    let p = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    p.edit(
        "pipelines/users.yaml",
        "start_date: \"2020-06-01\"\n",
        "start_date: \"2020-06-01\"\n\nschedule: \"0 25 * * *\"\n",
    );
    let out = p
        .command(&["schedule", "pipelines/users.yaml"])
        .env_remove("ETL_TODAY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pipelines/users.yaml"), "{stderr}");
    assert!(
        stderr.contains("invalid cron expression `0 25 * * *`"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was scheduled"), "{stderr}");
}

/// The shipped unit, with its paths pointed at this build and a project
/// folder, passes `systemd-analyze verify` without a single warning (it
/// prints unknown keys, bad signal names and missing binaries).
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("docs/etl-schedule.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join(".etl")).unwrap();
    let unit = unit
        .replace("/usr/local/bin/etl", env!("CARGO_BIN_EXE_etl"))
        .replace("/srv/etl", project.to_str().unwrap());
    assert!(unit.contains(&format!(
        "ExecStart={} schedule ",
        env!("CARGO_BIN_EXE_etl")
    )));
    let path = dir.path().join("etl-schedule.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze (Debian's systemd package) is needed to check the unit: {e}")
        });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    // The same check catches a mistake.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("KillSignal=SIGTERM", "KillSignal=SIGTREM"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("SIGTREM"), "{said}");
}
