//! `etl secrets` and secrets in templates: values are encrypted on disk,
//! decrypted only in memory, and never printed unless asked.

mod common;

use std::path::Path;
use std::process::Output;

use common::text;

const MARKER: &str = "Pa55-MARKER-7c1e";

fn etl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::etl_command(dir)
        .env("ETL_PROFILE", common::TEST_PROFILE)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A project whose prod Mongo URI is an age secret holding a password.
fn project() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    std::fs::copy(root.join("etl.yaml"), dir.path().join("etl.yaml")).unwrap();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::copy(
        root.join("pipelines/users.yaml"),
        dir.path().join("pipelines/users.yaml"),
    )
    .unwrap();

    let keygen = etl(dir.path(), &["secrets", "keygen"], &[]);
    assert!(keygen.status.success(), "{}", text(&keygen));
    let identity = String::from_utf8(keygen.stdout).unwrap();
    let recipient = identity
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# public key: ")
        .to_owned();
    assert!(recipient.starts_with("age1"), "{identity}");
    std::fs::write(
        dir.path().join("uri.txt"),
        format!("mongodb://etl:{MARKER}@db.example:27017/?authSource=admin"),
    )
    .unwrap();
    let enc = etl(
        dir.path(),
        &["secrets", "encrypt", "--recipient", &recipient, "uri.txt"],
        &[],
    );
    assert!(enc.status.success(), "{}", text(&enc));
    std::fs::write(dir.path().join("secrets/mongo_uri.age"), &enc.stdout).unwrap();
    std::fs::remove_file(dir.path().join("uri.txt")).unwrap();
    assert!(
        !String::from_utf8_lossy(&enc.stdout).contains(MARKER),
        "the age file holds no plaintext"
    );
    (dir, identity)
}

#[test]
fn secrets_round_trip_and_stay_hidden() {
    let (dir, identity) = project();
    let d = dir.path();
    let id = [("ETL_AGE_IDENTITY", identity.as_str())];

    let list = etl(d, &["secrets", "list"], &[]);
    let out = text(&list);
    assert!(
        out.contains("mongo_uri") && out.contains("age, 1 X25519 recipient"),
        "{out}"
    );
    assert!(
        out.contains("gcp_sa") && out.contains("unreadable"),
        "{out}"
    );

    let shown = etl(d, &["secrets", "show", "mongo_uri"], &id);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
    assert!(
        text(&shown).starts_with("mongo_uri: *** ("),
        "{}",
        text(&shown)
    );
    assert!(!text(&shown).contains(MARKER));

    let revealed = etl(d, &["secrets", "show", "mongo_uri", "--reveal"], &id);
    assert!(text(&revealed).contains(MARKER), "{}", text(&revealed));

    // The plan of the prod profile, which reads the secret, never shows it.
    let plan = etl(
        d,
        &[
            "--profile",
            "prod",
            "plan",
            "pipelines/users.yaml",
            "--date",
            "2020-06-01",
        ],
        &id,
    );
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(!text(&plan).contains(MARKER), "{}", text(&plan));
    let validate = etl(d, &["validate"], &id);
    assert!(!text(&validate).contains(MARKER), "{}", text(&validate));
}

#[test]
fn secret_errors_name_the_secret_and_exit_2() {
    let (dir, _) = project();
    let d = dir.path();
    let no_key = etl(d, &["secrets", "show", "mongo_uri"], &[]);
    assert_eq!(no_key.status.code(), Some(2));
    assert!(
        text(&no_key).contains(
            "secret `mongo_uri` cannot be decrypted: no age identity or passphrase is configured"
        ),
        "{}",
        text(&no_key)
    );

    let other = String::from_utf8(etl(d, &["secrets", "keygen"], &[]).stdout).unwrap();
    let wrong = etl(
        d,
        &["secrets", "show", "mongo_uri"],
        &[("ETL_AGE_IDENTITY", &other)],
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong).contains("cannot be decrypted with the configured key"),
        "{}",
        text(&wrong)
    );

    let unknown = etl(
        d,
        &["secrets", "show", "nope"],
        &[("ETL_AGE_IDENTITY", &other)],
    );
    assert!(
        text(&unknown)
            .contains("unknown secret `nope` (known: `gcp_sa`, `gcs_local`, `mongo_uri`)"),
        "{}",
        text(&unknown)
    );

    let bad = etl(
        d,
        &["secrets", "encrypt", "--recipient", "age1nope", "etl.yaml"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).contains("invalid recipient `age1nope`"),
        "{}",
        text(&bad)
    );

    // A run that needs the secret fails on the key, before touching any server.
    let run = etl(
        d,
        &[
            "--profile",
            "prod",
            "run",
            "pipelines/users.yaml",
            "--date",
            "2020-06-01",
            "--retries",
            "0",
        ],
        &[("ETL_AGE_IDENTITY", &other)],
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    let run = text(&run);
    assert!(
        run.contains("error: secret `mongo_uri` (")
            && run.contains("cannot be decrypted with the configured key"),
        "{run}"
    );
    assert!(
        run.contains("error: secret `gcp_sa`: cannot read "),
        "{run}"
    );
    assert!(
        run.contains("nothing was run: 2 of the 2 secrets its pipelines need cannot be decrypted"),
        "{run}"
    );
    assert!(
        !run.contains("pipeline   day"),
        "no partition started: {run}"
    );
    assert!(!run.contains(MARKER));

    // A truncated file is named as such, with what to do.
    let file = d.join("secrets/mongo_uri.age");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..40]).unwrap();
    let cut = etl(
        d,
        &["secrets", "show", "mongo_uri"],
        &[("ETL_AGE_IDENTITY", &other)],
    );
    assert_eq!(cut.status.code(), Some(2));
    let cut = text(&cut);
    assert!(cut.contains("is not a valid age file"), "{cut}");
    assert!(
        cut.contains("hint: the file is damaged or truncated"),
        "{cut}"
    );
}

/// `validate` checks every secret the profile uses without a key;
/// `--decrypt` proves the key opens them. Both place each error where the
/// project file uses the secret.
#[test]
fn validate_checks_secret_files_and_decrypt_proves_the_key() {
    let (dir, identity) = project();
    let d = dir.path();
    let id = [("ETL_AGE_IDENTITY", identity.as_str())];
    // The local profile uses no secret: nothing to check, no key needed.
    let local = etl(d, &["validate"], &[]);
    assert_eq!(local.status.code(), Some(0), "{}", text(&local));

    // prod: gcp_sa has no file; mongo_uri is fine without decrypting.
    let files = etl(d, &["--profile", "prod", "validate"], &[]);
    // With --decrypt and a key that is not the recipient: both fail.
    let other = String::from_utf8(etl(d, &["secrets", "keygen"], &[]).stdout).unwrap();
    let wrong = etl(
        d,
        &["--profile", "prod", "validate", "--decrypt"],
        &[("ETL_AGE_IDENTITY", &other)],
    );
    // A corrupt gcp_sa, and the right key.
    std::fs::write(
        d.join("secrets/gcp_sa.age"),
        "age-encryption.org/v1\n-> X25519 AAAA\n",
    )
    .unwrap();
    let corrupt = etl(d, &["--profile", "prod", "validate", "--decrypt"], &id);
    // A readable gcp_sa that is not a service-account key.
    let recipient = identity
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# public key: ");
    let enc = etl(
        d,
        &["secrets", "encrypt", "--recipient", recipient, "etl.yaml"],
        &[],
    );
    std::fs::write(d.join("secrets/gcp_sa.age"), &enc.stdout).unwrap();
    let not_a_key = etl(d, &["--profile", "prod", "validate", "--decrypt"], &id);

    let root = d.canonicalize().unwrap().display().to_string();
    let shown: Vec<String> = [&files, &wrong, &corrupt, &not_a_key]
        .iter()
        .map(|o| {
            format!(
                "exit: {}\n{}",
                o.status.code().unwrap_or(-1),
                text(o).replace(&root, "[DIR]")
            )
        })
        .collect();
    insta::assert_snapshot!(shown.join("\n=====\n"));
}
