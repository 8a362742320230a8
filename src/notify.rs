//! Notifications after a run, as `notify:` in `etl.yaml` sets them: an
//! email over SMTP (`lettre`) and a JSON POST shaped like a Slack incoming
//! webhook's.
//!
//! A notification is a by-product of a run: one that cannot be sent is
//! logged, with the server it tried, and the run's exit code stays the
//! run's. Secrets (the SMTP password, the webhook URL) are read from the
//! secret store when sent, and never appear in a message or a log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::{DayOutcome, RunReport};
use crate::spec::{EmailNotifySpec, NotifyOn, NotifySpec, SmtpTls, WebhookNotifySpec};
use crate::template::{Templates, Vars};

/// How long one notification may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What every channel says about one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// True when a day failed, stopped or was not started.
    pub failed: bool,
    /// One line: the outcome and the counts.
    pub subject: String,
    /// The whole message, plain text.
    pub text: String,
}

/// Where a pipeline's rerun command starts: `etl run pipelines/orders.yaml`,
/// by pipeline name.
pub type RerunCommands = BTreeMap<String, String>;

/// Per pipeline, what the run did.
#[derive(Debug, Default)]
struct Counts {
    done: u64,
    skipped: u64,
    failed: u64,
    documents: u64,
    rows: u64,
    rejected: u64,
}

fn n(v: u64) -> String {
    indicatif::HumanCount(v).to_string()
}

impl Message {
    /// The message about `report`. `report_page` is where `--report` wrote
    /// the page, if it did; `at` is when the run ended.
    pub fn of(
        report: &RunReport,
        rerun: &RerunCommands,
        report_page: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        let mut per: BTreeMap<&str, Counts> = BTreeMap::new();
        let mut failures = Vec::new();
        for out in &report.outcomes {
            let (pipeline, day) = out.key();
            let c = per.entry(pipeline).or_default();
            match out {
                DayOutcome::Done(r) => {
                    c.done += 1;
                    c.documents += r.raw_lines.or(r.source_count).unwrap_or(0);
                    c.rows += r.warehouse_rows.unwrap_or(0);
                    c.rejected += r.rejected.unwrap_or(0);
                }
                DayOutcome::Skipped(_) | DayOutcome::Elsewhere { .. } => c.skipped += 1,
                DayOutcome::Failed(r) | DayOutcome::Interrupted(r) => {
                    c.failed += 1;
                    let what = if matches!(out, DayOutcome::Failed(_)) {
                        "failed"
                    } else {
                        "stopped"
                    };
                    let error = r.error.as_deref().unwrap_or("stopped before it ended");
                    failures.push((pipeline, day, format!("{what}: {error}")));
                }
                DayOutcome::NotStarted { .. } => {
                    c.failed += 1;
                    failures.push((pipeline, day, "not started".to_owned()));
                }
            }
        }
        let failed = !report.ok();
        let days: u64 = per.values().map(|c| c.done + c.skipped + c.failed).sum();
        let bad: u64 = per.values().map(|c| c.failed).sum();
        let names: Vec<&str> = per.keys().copied().collect();
        let subject = if failed {
            let which: Vec<&str> = per
                .iter()
                .filter(|(_, c)| c.failed > 0)
                .map(|(p, _)| *p)
                .collect();
            format!("etl: {bad} of {days} days failed ({})", which.join(", "))
        } else {
            let s = if days == 1 { "" } else { "s" };
            format!("etl: {days} day{s} done ({})", names.join(", "))
        };

        let mut t = String::new();
        let _ = writeln!(t, "{subject}");
        let _ = writeln!(t, "Run ended {}.", at.format("%Y-%m-%d %H:%M:%S UTC"));
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<16} {:>6} {:>8} {:>7} {:>12} {:>12} {:>9}",
            "pipeline", "done", "skipped", "failed", "documents", "rows", "rejected"
        );
        for (p, c) in &per {
            let _ = writeln!(
                t,
                "{:<16} {:>6} {:>8} {:>7} {:>12} {:>12} {:>9}",
                p,
                n(c.done),
                n(c.skipped),
                n(c.failed),
                n(c.documents),
                n(c.rows),
                n(c.rejected)
            );
        }
        if !failures.is_empty() {
            let _ = writeln!(t);
            let _ = writeln!(t, "Failed days:");
            for (p, day, error) in &failures {
                let _ = writeln!(t, "  {p} {day}: {error}");
                if let Some(cmd) = rerun.get(*p) {
                    let _ = writeln!(t, "    rerun: {cmd} --date {day}");
                }
            }
        }
        if report.interrupted {
            let _ = writeln!(t);
            let _ = writeln!(t, "The run was interrupted; the same command finishes it.");
        }
        let _ = writeln!(t);
        match report_page {
            Some(page) => {
                let _ = writeln!(t, "Report: {page}");
            }
            None => {
                let _ = writeln!(t, "A page of every day: `etl report`.");
            }
        }
        Message {
            failed,
            subject,
            text: t,
        }
    }

    /// The webhook body: Slack's `text` (shown in notifications, and by
    /// tools without blocks) and `blocks`, the table kept monospaced.
    pub fn slack_json(&self) -> serde_json::Value {
        let body = self
            .text
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .trim_end();
        serde_json::json!({
            "text": self.subject,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.subject}},
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("```\n{body}\n```")}},
            ],
        })
    }
}

/// Whether a notifier with triggers `on` speaks after a run that `failed`.
pub fn wanted(on: &[NotifyOn], failed: bool) -> bool {
    on.iter().any(|t| match t {
        NotifyOn::Always => true,
        NotifyOn::Failure => failed,
        NotifyOn::Success => !failed,
    })
}

/// What became of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `email to a@example.com via smtp.example.com:587`, or `webhook`.
    pub channel: String,
    /// Why it was not sent.
    pub error: Option<String>,
}

/// Sends `message` through every notifier whose triggers want it, one
/// after the other. Never fails: the results say what happened, for the
/// caller to print or log.
pub async fn send(
    notifiers: &[NotifySpec],
    templates: &Arc<Templates>,
    message: &Message,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    for notifier in notifiers {
        if !wanted(notifier.on(), message.failed) {
            continue;
        }
        let result = match notifier {
            NotifySpec::Email(e) => {
                let (e, templates, message) = (e.clone(), templates.clone(), message.clone());
                let channel = format!("email to {} via {}:{}", e.to.join(", "), e.host, e.port);
                let r = tokio::task::spawn_blocking(move || email(&e, &templates, &message))
                    .await
                    .unwrap_or_else(|j| Err(format!("the sending task failed: {j}")));
                Sent {
                    channel,
                    error: r.err(),
                }
            }
            NotifySpec::Webhook(w) => Sent {
                channel: format!("webhook (secret `{}`)", w.url_secret),
                error: webhook(w, templates, message).await.err(),
            },
        };
        sent.push(result);
    }
    sent
}

/// One email. Blocking: lettre's synchronous transport, on a blocking
/// thread.
fn email(e: &EmailNotifySpec, templates: &Templates, message: &Message) -> Result<(), String> {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{SmtpTransport, Transport};

    let vars = Vars::default();
    let host = templates.render(&e.host, &vars)?;
    let parse = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|err| format!("`{a}` is not an email address: {err}"))
    };
    let mut builder = lettre::Message::builder()
        .from(parse(&e.from)?)
        .subject(&message.subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &e.to {
        builder = builder.to(parse(to)?);
    }
    let mail = builder
        .body(message.text.clone())
        .map_err(|err| format!("cannot build the email: {err}"))?;

    let tls_params = || {
        let mut params = TlsParameters::builder(host.clone());
        if let Some(file) = &e.ca_file {
            let pem = std::fs::read(file).map_err(|err| format!("cannot read {file}: {err}"))?;
            let ca = Certificate::from_pem(&pem)
                .map_err(|err| format!("{file} is not a PEM certificate: {err}"))?;
            params = params.add_root_certificate(ca);
        }
        params
            .build()
            .map_err(|err| format!("TLS set-up for {host}: {err}"))
    };
    let login = e.username.is_some() && e.password_secret.is_some();
    let tls = match e.tls {
        // With a login, STARTTLS is required: "when offered" would send the
        // password in clear text to anyone who strips the offer (issue 29).
        SmtpTls::Auto if login => Tls::Required(tls_params()?),
        SmtpTls::Auto => Tls::Opportunistic(tls_params()?),
        SmtpTls::Starttls => Tls::Required(tls_params()?),
        SmtpTls::Tls => Tls::Wrapper(tls_params()?),
        SmtpTls::None if login && !is_loopback(&host) => {
            return Err(format!(
                "refusing to send the SMTP password to {host} without TLS (`tls: none` allows a login only to a loopback relay); use `tls: starttls` or `tls: tls`"
            ))
        }
        SmtpTls::None => Tls::None,
    };
    let mut transport = SmtpTransport::builder_dangerous(&host)
        .port(e.port)
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let (Some(user), Some(secret)) = (&e.username, &e.password_secret) {
        let user = templates.render(user, &vars)?;
        let password = templates.secret(secret)?;
        transport = transport.credentials(Credentials::new(user, password.expose().to_owned()));
    }
    transport
        .build()
        .send(&mail)
        .map(|_| ())
        .map_err(|err| format!("SMTP server {host}:{}: {err}", e.port))
}

/// Whether `host` is this machine: `localhost` or a loopback address,
/// where a password sent without TLS never crosses a network.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One webhook POST. Its URL is a secret: errors name the secret, never
/// the URL.
async fn webhook(
    w: &WebhookNotifySpec,
    templates: &Templates,
    message: &Message,
) -> Result<(), String> {
    let url = templates.secret(&w.url_secret)?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .post(url.expose().trim())
        .json(&message.slack_json())
        .send()
        .await
        .map_err(|e| {
            format!(
                "POST to the URL in secret `{}`: {}",
                w.url_secret,
                e.without_url()
            )
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(format!(
        "the URL in secret `{}` answered {status}: {body}",
        w.url_secret
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PartitionRecord, Status};
    use chrono::NaiveDate;

    fn record(
        pipeline: &str,
        day: &str,
        status: Status,
        docs: u64,
        error: Option<&str>,
    ) -> PartitionRecord {
        let at = DateTime::parse_from_rfc3339("2020-06-11T00:00:00Z")
            .unwrap()
            .to_utc();
        PartitionRecord {
            unconverted: Default::default(),
            pipeline: pipeline.into(),
            day: day.parse::<NaiveDate>().unwrap(),
            status,
            spec_hash: "h".into(),
            engine_version: "0".into(),
            source_count: Some(docs),
            raw_lines: Some(docs),
            raw_bytes: Some(100),
            raw_sha256: None,
            warehouse_rows: (status == Status::Done).then_some(docs),
            rejected: None,
            child_rows: BTreeMap::new(),
            lake_object: "x".into(),
            warehouse_target: "y".into(),
            started_at: at,
            finished_at: at,
            attempts: 1,
            error: error.map(Into::into),
        }
    }

    fn report(outcomes: Vec<DayOutcome>) -> RunReport {
        RunReport {
            outcomes,
            ..Default::default()
        }
    }

    #[test]
    fn triggers_follow_the_outcome() {
        use NotifyOn::*;
        assert!(wanted(&[Failure], true));
        assert!(!wanted(&[Failure], false));
        assert!(wanted(&[Failure, Success], false));
        assert!(!wanted(&[Success], true));
        assert!(wanted(&[Always], false) && wanted(&[Always], true));
    }

    #[test]
    fn a_failed_run_names_its_days_their_errors_and_the_rerun_command() {
        let r = report(vec![
            DayOutcome::Done(record("orders", "2020-06-01", Status::Done, 1200, None)),
            DayOutcome::Failed(record(
                "orders",
                "2020-06-02",
                Status::Failed,
                0,
                Some("BigQuery at http://127.0.0.1:1: connection refused"),
            )),
            DayOutcome::Skipped(record("users", "2020-06-01", Status::Done, 300, None)),
        ]);
        let rerun = RerunCommands::from([(
            "orders".to_owned(),
            "etl run pipelines/orders.yaml".to_owned(),
        )]);
        let at = DateTime::parse_from_rfc3339("2020-06-11T00:05:00Z")
            .unwrap()
            .to_utc();
        let m = Message::of(&r, &rerun, Some(".etl/report.html"), at);
        assert!(m.failed);
        assert_eq!(m.subject, "etl: 1 of 3 days failed (orders)");
        insta::assert_snapshot!(m.text, @r"
        etl: 1 of 3 days failed (orders)
        Run ended 2020-06-11 00:05:00 UTC.

        pipeline           done  skipped  failed    documents         rows  rejected
        orders                1        0       1        1,200        1,200         0
        users                 0        1       0            0            0         0

        Failed days:
          orders 2020-06-02: failed: BigQuery at http://127.0.0.1:1: connection refused
            rerun: etl run pipelines/orders.yaml --date 2020-06-02

        Report: .etl/report.html
        ");
        let json = m.slack_json();
        assert_eq!(json["text"], "etl: 1 of 3 days failed (orders)");
        let section = json["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.starts_with("```\nRun ended"), "{section}");
        assert!(section.contains("rerun: etl run pipelines/orders.yaml --date 2020-06-02"));
    }

    #[test]
    fn a_run_with_every_day_done_is_a_success() {
        let r = report(vec![DayOutcome::Done(record(
            "users",
            "2020-06-01",
            Status::Done,
            300,
            None,
        ))]);
        let at = DateTime::parse_from_rfc3339("2020-06-11T00:05:00Z")
            .unwrap()
            .to_utc();
        let m = Message::of(&r, &RerunCommands::new(), None, at);
        assert!(!m.failed);
        assert_eq!(m.subject, "etl: 1 day done (users)");
        assert!(m.text.contains("A page of every day: `etl report`."));
    }
}
