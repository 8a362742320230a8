//! What a run tells people, on the local stack: `etl run --report` writes
//! a page that Chromium renders with the run's numbers on it, and
//! `notify:` sends an email to an SMTP server (aiosmtpd) and a webhook to
//! an HTTP server, both real servers on loopback started by
//! `tests/notify/sinks.py`. Neither the SMTP password nor the webhook URL
//! (age secrets) may appear in anything `etl` prints or writes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{stack, text};
use serde_json::Value;

/// The SMTP password, as the secret holds it.
const PASSWORD: &str = "smtp-Pw-LEAK-71c2";
/// The webhook's path; its last segment is the token a chat tool checks.
const HOOK: &str = "/hooks/T0001/B0002/Tok-LEAK-9e4d";
const USER: &str = "etl-bot";
const TODAY: &str = "2020-06-11";

/// `tests/notify/sinks.py`, running.
struct Sinks {
    child: Child,
    smtp: u16,
    http: u16,
    out: PathBuf,
}

/// A certificate authority and a certificate for 127.0.0.1 that it
/// signs, made with openssl in `dir`: `ca.pem`, `server.pem`, `server.key`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (stack/debian.sh installs it)");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=etl test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

impl Sinks {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    /// With `plain`, an SMTP server that offers no STARTTLS and takes a
    /// login in clear text: what a man in the middle who strips the offer
    /// looks like to the client.
    fn start_with(dir: &Path, plain: bool) -> Self {
        certificates(dir);
        let python = common::root().join("stack/venv/bin/python");
        assert!(
            python.is_file(),
            "{} is missing: run `stack/python.sh` (it installs the pinned aiosmtpd into stack/venv), or the tests through `stack/test.sh`",
            python.display()
        );
        let out = dir.join("received.jsonl");
        let mut child = Command::new(python)
            .arg(common::root().join("tests/notify/sinks.py"))
            .args([out.to_str().unwrap(), USER, PASSWORD, HOOK])
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .args(plain.then_some("plain"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut port = |name: &str| -> u16 {
            let line = lines.next().expect("sinks.py prints its ports").unwrap();
            line.strip_prefix(&format!("{name} "))
                .unwrap_or_else(|| panic!("sinks.py said {line:?}"))
                .parse()
                .unwrap()
        };
        let smtp = port("smtp");
        let http = port("http");
        Self {
            child,
            smtp,
            http,
            out,
        }
    }

    /// The webhook's URL: what the secret holds.
    fn hook_url(&self) -> String {
        format!("http://127.0.0.1:{}{HOOK}", self.http)
    }

    /// What the servers received, in order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Chromium, which `stack/debian.sh` installs.
fn chromium() -> &'static str {
    let found = Command::new("chromium").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "chromium is missing: run `stack/debian.sh` (it installs Debian's chromium), or the tests through `stack/test.sh`"
    );
    "chromium"
}

/// Chromium's headless flags: as root it needs no sandbox, and nothing
/// may reach the network (the page must need none).
fn headless() -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",
    ]);
    c
}

/// The page's DOM as Chromium builds it (`--dump-dom`).
fn dom(page: &Path) -> String {
    let out = headless()
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A screenshot of the page, kept as a test artifact in `target/tmp/`.
fn screenshot(page: &Path, name: &str) -> PathBuf {
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&png);
    let out = headless()
        .arg("--window-size=1280,2200")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        text(&out)
    );
    png
}

/// Text as the DOM serializer writes it in a text node.
fn in_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

struct Project {
    project: common::Project,
    _keys: tempfile::TempDir,
    identity: PathBuf,
}

impl Project {
    fn path(&self) -> &Path {
        self.project.path()
    }

    /// `etl` with the age identity and every crate's debug logs on.
    fn etl(&self, args: &[&str]) -> Output {
        self.project
            .command(args)
            .env("ETL_AGE_IDENTITY_FILE", &self.identity)
            .env("ETL_TODAY", TODAY)
            .env("ETL_LOG", "debug")
            .output()
            .unwrap()
    }

    /// Encrypts `plaintext` (given on stdin) into `secrets/<name>.age`.
    fn encrypt(&self, name: &str, recipient: &str, plaintext: &str) {
        use std::io::Write;
        let mut child = self
            .project
            .command(&["secrets", "encrypt", "--recipient", recipient, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(plaintext.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let file = self.path().join(format!("secrets/{name}.age"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, &out.stdout).unwrap();
    }
}

/// The shipped `products` pipeline (a Parquet warehouse) on a database of
/// its own, seeded with demo data, notifying `sinks`.
/// A project on a database of its own, `tag` telling apart the tests of
/// this process: `etl demo` drops and refills it, so a shared one lost
/// documents under another test's run.
fn project(sinks: &Sinks, ca: &Path, tag: &str) -> Project {
    let database = format!("it_report_{tag}_{}", std::process::id());
    let mut project = common::Project::with(&[
        "etl.yaml",
        "pipelines/products.yaml",
        "schemas/tables/products.json",
    ]);
    project.edit(
        "etl.yaml",
        "?directConnection=true",
        "?directConnection=true&serverSelectionTimeoutMS=2000",
    );
    project.edit(
        "pipelines/products.yaml",
        "database: shop",
        &format!("database: {database}"),
    );
    project.edit(
        "etl.yaml",
        "secrets:\n",
        "secrets:\n  smtp_password:\n    file: secrets/smtp_password.age\n  chat_webhook:\n    file: secrets/chat_webhook.age\n",
    );
    let notify = format!(
        "
notify:
  - type: email
    on: [always]
    host: 127.0.0.1
    port: {}
    ca_file: ca.pem
    username: {USER}
    password_secret: smtp_password
    from: etl <etl@example.com>
    to: [data-team@example.com, oncall@example.com]
  - type: webhook
    on: [failure]
    url_secret: chat_webhook
",
        sinks.smtp
    );
    let yaml = project.read("etl.yaml") + &notify;
    project.write("etl.yaml", &yaml);
    project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
    std::fs::copy(ca, project.path().join("ca.pem")).unwrap();

    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("identity.txt");
    let p = Project {
        project,
        _keys: keys,
        identity: identity.clone(),
    };
    let keygen = p.etl(&["secrets", "keygen"]);
    assert!(keygen.status.success(), "{}", text(&keygen));
    std::fs::write(&identity, &keygen.stdout).unwrap();
    let recipient = String::from_utf8_lossy(&keygen.stderr)
        .trim()
        .strip_prefix("recipient: ")
        .unwrap()
        .to_owned();
    p.encrypt("smtp_password", &recipient, PASSWORD);
    p.encrypt("chat_webhook", &recipient, &sinks.hook_url());

    let seed = p.etl(&[
        "demo",
        "--database",
        &database,
        "--users",
        "1",
        "--orders",
        "1",
        "--products",
        "400",
    ]);
    assert!(seed.status.success(), "{}", text(&seed));
    p
}

/// The ledger's numbers of `day`.
fn ledger(p: &Project, day: &str) -> Value {
    common::ledger_record(p.path(), "products", day)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_tells_people_by_page_email_and_webhook_and_keeps_its_exit_code() {
    stack::mongo().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sinks = Sinks::start(dir.path());
    let p = project(&sinks, &dir.path().join("ca.pem"), "page");

    // A file where 2020-06-05's lake folder goes: that day fails, with an
    // error naming the path; the nine others land.
    p.project
        .write(".etl/lake/raw/products/dt=2020-06-05", "not a folder\n");
    let first = p.etl(&[
        "run",
        "pipelines/products.yaml",
        "--retries",
        "0",
        "--report",
        "out/report.html",
    ]);
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    assert!(stdout.contains("report: out/report.html\n"), "{stdout}");
    let email_channel = format!(
        "email to data-team@example.com, oncall@example.com via 127.0.0.1:{}",
        sinks.smtp
    );
    assert!(
        stdout.contains(&format!("notified: {email_channel}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("notified: webhook (secret `chat_webhook`)\n"),
        "{stdout}"
    );

    // The ledger's numbers, which the page and the messages must show.
    let days: Vec<String> = (1..=10).map(|d| format!("2020-06-{d:02}")).collect();
    let records: Vec<Value> = days.iter().map(|d| ledger(&p, d)).collect();
    let failed = &records[4];
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap().to_owned();
    assert!(error.contains("dt=2020-06-05"), "{error}");
    let done: Vec<&Value> = records.iter().filter(|r| r["status"] == "done").collect();
    assert_eq!(done.len(), 9);
    let sum = |field: &str| {
        done.iter()
            .map(|r| r[field].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let (documents, rows, rejected) = (sum("raw_lines"), sum("warehouse_rows"), sum("rejected"));
    assert!(
        documents > 300 && rejected > 0,
        "{documents} documents, {rejected} rejected"
    );
    // The profile is not the project's default, so the command names it.
    let rerun = "etl --profile files run pipelines/products.yaml --date 2020-06-05";

    // The email, as a mail reader decodes it.
    let received = sinks.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    let email = received.iter().find(|m| m["kind"] == "email").unwrap();
    assert_eq!(
        email["login"], USER,
        "the password from the secret logged in"
    );
    assert_eq!(email["mail_from"], "etl@example.com");
    assert_eq!(
        email["rcpt_tos"],
        serde_json::json!(["data-team@example.com", "oncall@example.com"])
    );
    let headers = &email["headers"];
    assert_eq!(headers["subject"], "etl: 1 of 10 days failed (products)");
    assert_eq!(headers["from"], "etl <etl@example.com>");
    assert_eq!(headers["to"], "data-team@example.com, oncall@example.com");
    assert!(
        headers["content-type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain"),
        "{headers}"
    );
    // Mail travels with CRLF line ends; a reader shows lines.
    let body = email["body"].as_str().unwrap().replace("\r\n", "\n");
    let table_row: Vec<&str> = body
        .lines()
        .find(|l| l.starts_with("products "))
        .unwrap_or_else(|| panic!("no products row in:\n{body}"))
        .split_whitespace()
        .collect();
    let expected = [
        "products".to_owned(),
        "9".to_owned(),
        "0".to_owned(),
        "1".to_owned(),
        documents.to_string(),
        rows.to_string(),
        rejected.to_string(),
    ];
    assert_eq!(table_row, expected, "{body}");
    assert!(
        body.contains(&format!("  products 2020-06-05: failed: {error}\n")),
        "{body}"
    );
    assert!(body.contains(&format!("    rerun: {rerun}\n")), "{body}");
    assert!(body.contains("Report: out/report.html\n"), "{body}");

    // The webhook: Slack's shape, the same message.
    let hook = received.iter().find(|m| m["kind"] == "webhook").unwrap();
    assert_eq!(hook["content_type"], "application/json");
    let json = &hook["json"];
    assert_eq!(json["text"], "etl: 1 of 10 days failed (products)");
    assert_eq!(json["blocks"][0]["type"], "header");
    let section = json["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.starts_with("```\n") && section.ends_with("\n```"),
        "{section}"
    );
    assert!(section.contains(&format!("rerun: {rerun}")), "{section}");

    // The page, rendered by a browser.
    let page = p.path().join("out/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for needle in ["<script", "http://", "https://", "@import", "url("] {
        assert!(
            !html.contains(needle),
            "the page must load nothing: {needle}"
        );
    }
    let shown = dom(&page);
    assert!(
        shown.contains(r#"<h2 id="pipeline-products-title">products</h2>"#),
        "{shown}"
    );
    // Every day of the strip, the failed one marked by a symbol and a word.
    assert_eq!(
        shown
            .matches(r#"<li class="failed" title="2020-06-05: failed">"#)
            .count(),
        1
    );
    assert_eq!(shown.matches(r#"title="2020-06-"#).count(), 10, "{shown}");
    assert!(
        shown.contains(r#"<span class="sr">2020-06-05: failed</span>"#),
        "{shown}"
    );
    // The totals and the per-day table, with the ledger's numbers.
    assert!(shown.contains("<strong>1</strong> failed"), "{shown}");
    assert!(
        shown.contains(&format!("documents <strong>{documents}</strong>")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("rejected <strong>{rejected}</strong>")),
        "{shown}"
    );
    for (day, r) in days.iter().zip(&records) {
        if r["status"] != "done" {
            continue;
        }
        let (kind, symbol) = if r["rejected"].as_u64().unwrap_or(0) > 0 {
            ("rejects", "!")
        } else {
            ("done", "✓")
        };
        let row = format!(
            r#"<tr class="row-{kind}"><th scope="row">{day}</th><td><span class="badge {kind}" aria-hidden="true">{symbol}</span> {kind}</td><td class="num">{}</td><td class="num">{}</td>"#,
            r["raw_lines"], r["warehouse_rows"]
        );
        assert!(shown.contains(&row), "no row {row}\nin {shown}");
    }
    // The failure: its error and the command that reruns it.
    assert!(
        shown.contains(&format!("<pre>{}</pre>", in_text(&error))),
        "{shown}"
    );
    assert!(shown.contains(&format!("<code>{rerun}</code>")), "{shown}");
    // The schema lock's columns.
    assert!(
        shown.contains(r#"<tr><th scope="row"><code>product_id</code></th><td>INT64</td></tr>"#),
        "{shown}"
    );
    // The chart: a bar per day that ran, the failed one set apart.
    assert_eq!(shown.matches(r#"<rect class="bar""#).count(), 9, "{shown}");
    assert_eq!(
        shown.matches(r#"<rect class="bar bar-failed""#).count(),
        1,
        "{shown}"
    );
    let png = screenshot(&page, "report-failed-day.png");
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} is not a page's screenshot",
        png.display()
    );
    eprintln!("screenshot of the report: {}", png.display());

    // The SMTP server is gone and the lake is mended: the catch-up run
    // heals the day, says the email was not sent, and still exits 0. The
    // webhook only speaks on failure.
    sinks.stop();
    std::fs::remove_file(p.path().join(".etl/lake/raw/products/dt=2020-06-05")).unwrap();
    let second = p.etl(&[
        "run",
        "pipelines/products.yaml",
        "--report",
        "out/report.html",
    ]);
    let second_out = String::from_utf8_lossy(&second.stdout).into_owned();
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(
        second_err.contains(&format!(
            "warning: notification not sent: {email_channel}: SMTP server 127.0.0.1:{}: ",
            sinks.smtp
        )),
        "{second_err}"
    );
    assert!(!second_out.contains("webhook"), "{second_out}");
    assert_eq!(sinks.received().len(), 2, "nothing more was received");
    assert_eq!(ledger(&p, "2020-06-05")["status"], "done");
    let healed = dom(&page);
    assert!(healed.contains("<strong>0</strong> failed"), "{healed}");
    assert!(!healed.contains("<h3>Failures</h3>"), "{healed}");

    // `etl report --open` writes the page and hands it to $BROWSER.
    p.project.write(
        "browser.sh",
        "#!/bin/sh\nprintf '%s\\n' \"$1\" > \"$(dirname \"$0\")/opened.txt\"\n",
    );
    let browser = p.path().join("browser.sh");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&browser)
        .status()
        .unwrap();
    let open = p
        .project
        .command(&["report", "pipelines/products.yaml", "--open"])
        .env("ETL_TODAY", TODAY)
        .env("BROWSER", &browser)
        .output()
        .unwrap();
    assert!(open.status.success(), "{}", text(&open));
    let written = p.path().join(".etl/report.html");
    assert_eq!(
        String::from_utf8_lossy(&open.stdout),
        format!("wrote {}\n", written.display())
    );
    let opened = p.path().join("opened.txt");
    for _ in 0..50 {
        if opened.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap().trim(),
        written.display().to_string()
    );

    // No secret anywhere: not in what etl printed (with debug logs on),
    // nor in any file it wrote.
    let url = sinks.hook_url();
    let token = HOOK.rsplit('/').next().unwrap();
    for (what, out) in [
        ("first run", &first),
        ("second run", &second),
        ("report", &open),
    ] {
        for stream in [&out.stdout, &out.stderr] {
            for secret in [PASSWORD, url.as_str(), token] {
                assert!(!contains(stream, secret), "{what} printed a secret");
            }
        }
    }
    for (file, bytes) in common::files_under(p.path()) {
        if file.starts_with("secrets/") {
            continue;
        }
        for secret in [PASSWORD, url.as_str(), token] {
            assert!(!contains(&bytes, secret), "{file} holds a secret");
        }
    }
}

/// Issue 29: with the default `tls: auto` and a login, a server that
/// offers no STARTTLS (or whose offer was stripped) never gets the
/// password: the email is not sent, the run says why, and its exit code
/// is the day's.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_is_never_sent_to_a_server_without_starttls() {
    stack::mongo().await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = Sinks::start_with(dir.path(), true);
    let p = project(&sinks, &dir.path().join("ca.pem"), "plain_smtp");
    let out = p.etl(&["run", "pipelines/products.yaml", "--date", "2020-06-01"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stdout.contains("notified: email"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "warning: notification not sent: email to data-team@example.com, oncall@example.com via 127.0.0.1:{}",
            sinks.smtp
        )),
        "{stderr}"
    );
    assert!(!contains(&out.stdout, PASSWORD) && !contains(&out.stderr, PASSWORD));
    assert_eq!(
        sinks.received(),
        Vec::<Value>::new(),
        "nothing reached the server"
    );
}
