//! `etl k8s`: the manifests a user applies, checked against the Kubernetes
//! schemas offline, and the Indexed Job's day arithmetic run through
//! `etl plan` one index at a time. Issue 12, part 3.

mod common;

use std::path::PathBuf;
use std::process::Command;

use chrono::NaiveDate;
use common::{text, Project};
use serde::Deserialize;
use serde_json::Value;

const IMAGE: &str = "ghcr.io/acme/etl:1.4.0";
const PIPELINES: [&str; 3] = [
    "pipelines/orders.yaml",
    "pipelines/products.yaml",
    "pipelines/users.yaml",
];

/// The Kubernetes versions the manifests are checked against: 1.33, the
/// first in which every field they use is GA (`backoffLimitPerIndex`; the
/// CronJob `timeZone` since 1.27, `podFailurePolicy` since 1.31), and the
/// newest that kubernetes-validate ships.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

/// The repository's project with a shared state store, and the age files
/// the `prod` profile decrypts (encrypted to a key of the test's own).
fn prod_project() -> Project {
    prod_project_and_identity().0
}

/// [`prod_project`], and the identity that opens its secrets.
fn prod_project_and_identity() -> (Project, String) {
    let p = Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    p.edit("etl.yaml", "url: .etl/state", "url: gs://acme-etl-state");
    let identity = p.ok(&["secrets", "keygen"]);
    let recipient = identity
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# public key: "))
        .expect("keygen prints the public key first")
        .to_owned();
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "acme-analytics",
        "private_key_id": "0123456789abcdef",
        "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n",
        "client_email": "etl@acme-analytics.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    for (name, plaintext) in [
        ("mongo_uri", "mongodb://etl:pw@db.example:27017/".to_owned()),
        ("gcp_sa", key.to_string()),
    ] {
        p.write("plain.txt", &plaintext);
        let enc = p.etl(&["secrets", "encrypt", "--recipient", &recipient, "plain.txt"]);
        assert!(enc.status.success(), "{}", text(&enc));
        std::fs::create_dir_all(p.path().join("secrets")).unwrap();
        std::fs::write(p.path().join(format!("secrets/{name}.age")), &enc.stdout).unwrap();
    }
    std::fs::remove_file(p.path().join("plain.txt")).unwrap();
    (p, identity)
}

/// `etl --profile prod k8s PIPELINES... extra`, which must succeed: its
/// objects and its stderr.
fn manifests(p: &Project, extra: &[&str]) -> (Vec<Value>, String) {
    let mut args = vec!["--profile", "prod", "k8s", "--image", IMAGE];
    args.extend(PIPELINES);
    args.extend(extra);
    let out = p.etl(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    (documents(&stdout), String::from_utf8(out.stderr).unwrap())
}

/// The documents of a YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("each document is YAML"))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} `{name}` among {}", names(objects)))
}

fn names(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| {
            format!(
                "{} {}\n",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

/// `stack/venv/bin/kubernetes-validate`, or a failure that says how to get it.
fn validator() -> PathBuf {
    let bin = common::root().join("stack/venv/bin/kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: run `stack/python.sh` (it installs the pinned kubernetes-validate into stack/venv), or the tests through `stack/test.sh`",
        bin.display()
    );
    bin
}

/// Validates `files` offline, strictly (an unknown field is an error),
/// against Kubernetes `version`: Ok with the report when every object
/// passed. kubernetes-validate only warns about a kind it has no schema
/// for; here that is a failure too.
fn kubernetes_validate(files: &[PathBuf], version: &str) -> Result<String, String> {
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let report = text(&out);
    let passed = report
        .lines()
        .filter(|l| l.starts_with("INFO ") && l.contains(" passed "))
        .count();
    let others = report.lines().any(|l| !l.starts_with("INFO "));
    if out.status.success() && !others && passed == files.len() {
        Ok(report)
    } else {
        Err(report)
    }
}

/// `objects`, one file each, in a new folder.
fn write_each(objects: &[Value]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let files = objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let f = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&f, yaml(o)).unwrap();
            f
        })
        .collect();
    (dir, files)
}

/// `object` without its pods' project files (every pod mounts them all).
fn without_files(object: &Value) -> Value {
    let mut o = object.clone();
    let spec = if o["kind"] == "CronJob" {
        &mut o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &mut o["spec"]["template"]["spec"]
    };
    spec["volumes"][0]["configMap"]["items"] = Value::Null;
    spec["containers"][0]["volumeMounts"] = Value::Null;
    o
}

/// The ConfigMap with each file replaced by its path, after
/// checking that it holds exactly that file of the project.
fn config_map_checked(p: &Project, cm: &Value) -> Value {
    let mut cm = cm.clone();
    for section in ["data", "binaryData"] {
        let Some(map) = cm[section].as_object_mut() else {
            continue;
        };
        for (key, value) in map.iter_mut() {
            let path = key_path(key);
            let on_disk = std::fs::read(p.path().join(&path)).unwrap();
            let held = match section {
                "data" => value.as_str().unwrap().as_bytes().to_vec(),
                _ => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(value.as_str().unwrap())
                        .unwrap()
                }
            };
            assert!(
                held == on_disk,
                "{section}.{key} is not {path} as it is on disk"
            );
            // Not the bytes: age files differ at each encryption.
            *value = format!("[{path}, as on disk]").into();
        }
    }
    cm
}

/// The project path a ConfigMap key stands for.
fn key_path(key: &str) -> String {
    for (prefix, dir) in [
        ("pipelines.", "pipelines/"),
        ("schemas.tables.", "schemas/tables/"),
        ("secrets.", "secrets/"),
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return format!("{dir}{rest}");
        }
    }
    key.to_owned()
}

#[test]
fn the_manifests_of_the_shipped_pipelines_with_a_backfill() {
    let p = prod_project();
    let (objects, stderr) = manifests(
        &p,
        &[
            "--namespace",
            "etl",
            "--start",
            "2020-06-25",
            "--end",
            "2020-07-04",
            "--parallel",
            "4",
        ],
    );
    insta::assert_snapshot!(names(&objects), @r"
    ConfigMap etl-project
    CronJob etl-orders
    CronJob etl-products
    CronJob etl-users
    Job etl-orders-backfill-20200625-20200704
    Job etl-products-backfill-20200625-20200704
    Job etl-users-backfill-20200625-20200704
    ");
    insta::assert_snapshot!(stderr, @r"
    the pods read the age identity from the Secret `etl-age-identity` (key `identity`), which `etl k8s` never writes; create it once with:
      kubectl create secret generic etl-age-identity --namespace etl --from-file=identity=$HOME/.config/etl/identity.txt
    ");

    // The other pipelines' objects are the users' with their name.
    for other in ["orders", "products"] {
        for (kind, name) in [
            ("CronJob", "etl-{}"),
            ("Job", "etl-{}-backfill-20200625-20200704"),
        ] {
            let theirs = yaml(&without_files(find(
                &objects,
                kind,
                &name.replace("{}", other),
            )));
            let users = yaml(&without_files(find(
                &objects,
                kind,
                &name.replace("{}", "users"),
            )));
            assert_eq!(theirs, users.replace("users", other), "{kind} of {other}");
        }
    }
    let shown = format!(
        "{}---\n{}---\n{}",
        yaml(&config_map_checked(&p, &objects[0])),
        yaml(find(&objects, "CronJob", "etl-users")),
        yaml(find(
            &objects,
            "Job",
            "etl-users-backfill-20200625-20200704"
        )),
    );
    insta::assert_snapshot!("manifests_of_the_shipped_pipelines", shown);
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let p = prod_project();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("k8s");
    let mut args = vec!["--profile", "prod", "k8s", "--image", IMAGE];
    args.extend(PIPELINES);
    let dir_arg = dir.display().to_string();
    args.extend([
        "--start",
        "2020-06-25",
        "--end",
        "2020-07-04",
        "--out",
        &dir_arg,
    ]);
    let run = p.etl(&args);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let listed: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed,
        [
            "configmap-etl-project.yaml",
            "cronjob-etl-orders.yaml",
            "cronjob-etl-products.yaml",
            "cronjob-etl-users.yaml",
            "job-etl-orders-backfill-20200625-20200704.yaml",
            "job-etl-products-backfill-20200625-20200704.yaml",
            "job-etl-users-backfill-20200625-20200704.yaml",
        ]
    );
    for version in KUBERNETES_VERSIONS {
        if let Err(report) = kubernetes_validate(&files, version) {
            panic!("the manifests do not validate against Kubernetes {version}:\n{report}");
        }
    }
    // The same output, byte for byte, on stdout.
    let mut stream_args = args.clone();
    stream_args.truncate(stream_args.len() - 2);
    let stream = p.ok(&stream_args);
    let from_files: String = files
        .iter()
        .map(|f| format!("---\n{}", std::fs::read_to_string(f).unwrap()))
        .collect();
    assert_eq!(stream, from_files);
}

#[test]
fn the_validation_rejects_broken_manifests() {
    let p = prod_project();
    let (objects, _) = manifests(&p, &["--start", "2020-06-25", "--end", "2020-07-04"]);
    let job = find(&objects, "Job", "etl-users-backfill-20200625-20200704").clone();
    let (_dir, good) = write_each(std::slice::from_ref(&job));
    kubernetes_validate(&good, KUBERNETES_VERSIONS[0]).expect("the Job as written validates");

    let mut typo = job.clone();
    typo["spec"]["completionsMode"] = "Indexed".into();
    let mut wrong_type = job.clone();
    wrong_type["spec"]["parallelism"] = "four".into();
    let mut unknown_kind = job.clone();
    unknown_kind["kind"] = "Jobs".into();
    let mut misplaced = job;
    misplaced["spec"]["template"]["spec"]["containers"][0]["timeZone"] = "UTC".into();
    for (what, broken, expected) in [
        ("an unknown field", typo, "completionsMode"),
        ("a wrong type", wrong_type, "'four' is not of type"),
        (
            "an unknown kind",
            unknown_kind,
            "Couldn't find schema for kind Jobs",
        ),
        ("a field in the wrong object", misplaced, "timeZone"),
    ] {
        let (_dir, files) = write_each(&[broken]);
        match kubernetes_validate(&files, KUBERNETES_VERSIONS[0]) {
            Ok(report) => panic!("{what} passed:\n{report}"),
            Err(report) => assert!(report.contains(expected), "{what}: {report}"),
        }
    }
}

/// A pod's filesystem as the kubelet would make it from `pod`'s volumes
/// and mounts: each ConfigMap file at its mount path under `dir` (which
/// stands for `/`), and the identity Secret's file holding `identity`.
fn pod_files(dir: &std::path::Path, cm: &Value, pod: &Value, identity: &str) {
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    let items = volume("project")["configMap"]["items"].as_array().unwrap();
    for m in pod["containers"][0]["volumeMounts"].as_array().unwrap() {
        let to = dir.join(m["mountPath"].as_str().unwrap().trim_start_matches('/'));
        let bytes = match m["name"].as_str().unwrap() {
            "project" => {
                let sub = &m["subPath"];
                let item = items.iter().find(|i| &i["path"] == sub).unwrap();
                let key = item["key"].as_str().unwrap();
                match (&cm["data"][key], &cm["binaryData"][key]) {
                    (Value::String(t), _) => t.as_bytes().to_vec(),
                    (_, Value::String(b)) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(b).unwrap()
                    }
                    _ => panic!("the ConfigMap has no key `{key}`"),
                }
            }
            "age-identity" => {
                let secret = &volume("age-identity")["secret"];
                assert_eq!(secret["items"][0]["key"], "identity");
                let to = to.join(secret["items"][0]["path"].as_str().unwrap());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::write(to, identity).unwrap();
                continue;
            }
            _ => {
                std::fs::create_dir_all(&to).unwrap();
                continue;
            }
        };
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

#[test]
fn a_pod_finds_the_whole_project_and_opens_its_secrets() {
    let (p, identity) = prod_project_and_identity();
    let (objects, _) = manifests(&p, &[]);
    let pod =
        &find(&objects, "CronJob", "etl-users")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let root = tempfile::tempdir().unwrap();
    pod_files(root.path(), &objects[0], pod, &identity);
    // The container's environment and arguments, with `/` at `root`.
    let at_root = |v: &str| v.replacen('/', &format!("{}/", root.path().display()), 1);
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .map(|a| {
            if a.starts_with('/') {
                at_root(a)
            } else {
                a.to_owned()
            }
        })
        .collect();
    assert_eq!(args[0], "run");
    let workdir = at_root(container["workingDir"].as_str().unwrap());
    let in_pod = |cmd: &[&str]| {
        let mut c = common::etl_command(std::path::Path::new(&workdir));
        for e in container["env"].as_array().unwrap() {
            c.env(
                e["name"].as_str().unwrap(),
                at_root(e["value"].as_str().unwrap()),
            );
        }
        c.args(cmd).output().unwrap()
    };
    // Everything `etl run` reads before it connects: the specs, the locks,
    // the secrets, decrypted with the identity from the Secret's mount.
    let validate = in_pod(&["validate", "--decrypt", &args[1]]);
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    let plan = in_pod(&["plan", &args[1], "--date", "2020-06-25"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("profile `prod`") && plan.contains("lock       up to date"),
        "{plan}"
    );
}

/// Runs pod `index` of `job` as `etl plan` (the same arguments, `run`
/// swapped for `plan`, the pod's paths for the project's): the day it
/// covers, or the failed command.
fn planned_day(p: &Project, job: &Value, index: &str) -> Result<NaiveDate, std::process::Output> {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let profile = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ETL_PROFILE")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut args = vec!["--profile".to_owned(), profile];
    for a in container["args"].as_array().unwrap() {
        let a = a.as_str().unwrap();
        match a {
            "run" => args.push("plan".into()),
            "--log-format=json" => {}
            _ => args.push(
                a.replace("$(JOB_COMPLETION_INDEX)", index)
                    .replace("/etl/", ""),
            ),
        }
    }
    let out = p.etl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    if !out.status.success() {
        return Err(out);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains(" partition from "))
        .unwrap_or_else(|| panic!("no partition line:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    // "1 partition from D to D (today is ...):"
    assert!(
        words[0] == "1" && words[4] == "to" && words[3] == words[5],
        "{line}"
    );
    Ok(words[3].parse().unwrap())
}

/// Every index of the Job's pods, through `etl plan`: the days cover
/// `first..=last` once each, and the index after the last is refused: its
/// error.
fn assert_indexes_cover(p: &Project, job: &Value, first: &str, last: &str) -> String {
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let days: Vec<NaiveDate> = (0..completions)
        .map(|i| {
            planned_day(p, job, &i.to_string())
                .unwrap_or_else(|o| panic!("index {i}: {}", text(&o)))
        })
        .collect();
    let (first, last): (NaiveDate, NaiveDate) = (first.parse().unwrap(), last.parse().unwrap());
    let expected: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    assert_eq!(days, expected, "indexes 0..{completions}");
    let past = planned_day(p, job, &completions.to_string()).expect_err("the index after the last");
    assert_eq!(past.status.code(), Some(2), "{}", text(&past));
    let err = String::from_utf8_lossy(&past.stderr);
    err.lines().take(3).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_indexed_job_runs_each_day_of_its_range_once() {
    let p = prod_project();
    let (objects, _) = manifests(&p, &["--start", "2020-06-25", "--end", "2020-07-04"]);
    let job = find(&objects, "Job", "etl-users-backfill-20200625-20200704");
    assert_eq!(job["spec"]["completions"], 10);
    let refused = assert_indexes_cover(&p, job, "2020-06-25", "2020-07-04");
    insta::assert_snapshot!(refused, @r"
    error: `--day-index 10` is past the end of the range 2020-06-25 to 2020-07-04: its 10 days have indexes 0 to 9

    hint: an Indexed Job over this range has `completions: 10`, one per day
    ");
}

#[test]
fn the_indexed_job_in_a_timezone_with_a_clock_change() {
    let p = prod_project();
    p.edit(
        "pipelines/users.yaml",
        "  timezone: UTC",
        "  timezone: Europe/Paris",
    );
    // Across the end of summer time (25 October) and a month end.
    let (objects, _) = manifests(&p, &["--start", "2020-10-20", "--end", "2020-11-02"]);
    let job = find(&objects, "Job", "etl-users-backfill-20201020-20201102");
    assert_eq!(job["spec"]["completions"], 14);
    assert_eq!(
        find(&objects, "CronJob", "etl-users")["spec"]["timeZone"],
        "Europe/Paris"
    );
    assert_indexes_cover(&p, job, "2020-10-20", "2020-11-02");
    // Index 5 is 25 October, 25 hours long in Paris: the clock goes back.
    let out = p.etl(&[
        "--profile",
        "prod",
        "plan",
        "pipelines/users.yaml",
        "--start=2020-10-20",
        "--end=2020-11-02",
        "--day-index=5",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2020-10-25  [2020-10-25T00:00:00+02:00, 2020-10-26T00:00:00+01:00)"),
        "{stdout}"
    );
}

#[test]
fn a_backfill_past_yesterday_is_clamped_like_a_run() {
    let p = prod_project();
    // Today is 2026-11-23 in the tests.
    let (objects, stderr) = manifests(&p, &["--start", "2026-11-20", "--end", "2026-11-30"]);
    let job = find(&objects, "Job", "etl-users-backfill-20261120-20261122");
    assert_eq!(job["spec"]["completions"], 3);
    assert!(
        stderr.contains("notice: pipeline `users`: the range is clamped to end on 2026-11-22"),
        "{stderr}"
    );
    let none = p.etl(&[
        "--profile",
        "prod",
        "k8s",
        "--image",
        IMAGE,
        "pipelines/users.yaml",
        "--start",
        "2026-11-23",
        "--end",
        "2026-11-30",
    ]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(
        text(&none).contains(
            "error: pipeline `users`: the backfill from 2026-11-23 to 2026-11-30 has no day to run"
        ),
        "{}",
        text(&none)
    );
}

#[test]
fn usage_errors_exit_2_and_say_what_to_do() {
    let p = prod_project();
    let no_image = p.etl(&["--profile", "prod", "k8s", "pipelines/users.yaml"]);
    assert_eq!(no_image.status.code(), Some(2));
    assert!(
        text(&no_image)
            .contains("the following required arguments were not provided:\n  --image <IMAGE>"),
        "{}",
        text(&no_image)
    );

    let bad_names = p.etl(&[
        "--profile",
        "prod",
        "k8s",
        "--image",
        IMAGE,
        "pipelines/users.yaml",
        "--namespace",
        "Data_Team",
        "--identity-secret",
        "age key",
    ]);
    assert_eq!(bad_names.status.code(), Some(2));
    insta::assert_snapshot!(String::from_utf8_lossy(&bad_names.stderr), @r"
    error: `--namespace Data_Team` is not a valid Kubernetes name

    hint: use lowercase letters, digits and `-`, starting and ending with a letter or digit

    error: `--identity-secret age key` is not a valid Kubernetes name

    hint: use lowercase letters, digits and `-`, starting and ending with a letter or digit

    no manifest was written
    ");

    // The prod profile decrypts secrets whose age files are not there.
    std::fs::remove_file(p.path().join("secrets/gcp_sa.age")).unwrap();
    let no_secret = p.etl(&[
        "--profile",
        "prod",
        "k8s",
        "--image",
        IMAGE,
        "pipelines/users.yaml",
    ]);
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(
        text(&no_secret).contains(
            "error: secret `gcp_sa`: `secrets/gcp_sa.age` does not exist, and the pods need it"
        ),
        "{}",
        text(&no_secret)
    );
}

#[test]
fn a_local_state_store_is_refused_unless_allowed() {
    // The repository's etl.yaml, as shipped, in the tests' `files` profile:
    // `state.url: .etl/state`, and the stores in folders.
    let p = Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    let refused = p.etl(&["k8s", "--image", IMAGE, "pipelines/users.yaml"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stdout.is_empty());
    insta::assert_snapshot!(String::from_utf8_lossy(&refused.stderr), @r"
    warning: connection `lake` of profile `files` is a local folder (`.etl/lake`): in a pod that is the pod's own disk, and what is written there is lost when the pod ends

    hint: give it a `gs://`, `s3://` or `az://` URL in that profile, or use another profile (`--profile`)

    error: etl.yaml: `state.url` is `.etl/state`, a folder on the pod's own disk: each pod would keep a ledger of its own that ends with it, so every CronJob run would redo every day since `start_date`, and leases could not keep the pods of a backfill apart

    hint: point `state.url` in etl.yaml at a store every pod reaches, such as `gs://bucket/etl-state` (see docs/operations.md), or pass --allow-local-state to write the manifests anyway

    no manifest was written
    ");

    let allowed = p.etl(&[
        "k8s",
        "--image",
        IMAGE,
        "pipelines/users.yaml",
        "--allow-local-state",
    ]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    let err = String::from_utf8_lossy(&allowed.stderr);
    assert!(
        err.contains("warning: etl.yaml: `state.url` is `.etl/state`")
            && err.contains("(written anyway: --allow-local-state)"),
        "{err}"
    );
    // The files profile decrypts nothing: no identity Secret to mount.
    let objects = documents(&String::from_utf8_lossy(&allowed.stdout));
    let pod =
        &find(&objects, "CronJob", "etl-users")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["project", "work", "tmp"]);
    assert!(!err.contains("kubectl create secret"), "{err}");
    let (_dir, files) = write_each(&objects);
    kubernetes_validate(&files, KUBERNETES_VERSIONS[0]).unwrap_or_else(|r| panic!("{r}"));
}

#[test]
fn pipeline_names_become_kubernetes_names() {
    let p = prod_project();
    let spec = p.read("pipelines/users.yaml");
    // The users spec under another name; its test cases name the root
    // table, which is the pipeline's.
    let renamed = |name: &str| {
        let named = common::edited(
            "users.yaml",
            &spec,
            "version: 1\n",
            &format!("version: 1\nname: {name}\n"),
        );
        common::edited(
            "users.yaml",
            &named,
            "expect:\n      users:",
            &format!("expect:\n      {name}:"),
        )
    };
    p.write("pipelines/user_events.yaml", &renamed("user_events"));
    let out = p.etl(&[
        "--profile",
        "prod",
        "k8s",
        "--image",
        IMAGE,
        "pipelines/user_events.yaml",
        "--start",
        "2020-06-25",
        "--end",
        "2020-06-25",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let objects = documents(&String::from_utf8_lossy(&out.stdout));
    let cron = find(&objects, "CronJob", "etl-user-events");
    assert_eq!(cron["metadata"]["labels"]["etl/pipeline"], "user_events");
    let job = find(
        &objects,
        "Job",
        "etl-user-events-backfill-20200625-20200625",
    );
    assert_eq!(job["spec"]["completions"], 1);
    let (_dir, files) = write_each(&objects);
    kubernetes_validate(&files, KUBERNETES_VERSIONS[0]).unwrap_or_else(|r| panic!("{r}"));

    // `user-events` would take the same Kubernetes name.
    p.write("pipelines/user-events.yaml", &renamed("user-events"));
    let clash = p.etl(&[
        "--profile",
        "prod",
        "k8s",
        "--image",
        IMAGE,
        "pipelines/user-events.yaml",
        "pipelines/user_events.yaml",
    ]);
    assert_eq!(clash.status.code(), Some(2), "{}", text(&clash));
    assert!(
        text(&clash).contains("error: pipelines `user-events` and `user_events` would both be named `etl-user-events` in Kubernetes"),
        "{}",
        text(&clash)
    );
}
