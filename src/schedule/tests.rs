//! The daemon's decisions under a timeline that runs ten minutes a second, with
//! tokio's clock paused so that a second passes at once. The runner is a
//! recording fake with the ledger's one rule (a done day is skipped): the
//! engine under a real signal is `tests/stack_engine.rs`'s.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::engine::{PartitionRecord, Status};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Ten minutes a second: tokio's timers tick in milliseconds, so a
/// daemon wakes at most 0.6 s of its time late.
const SPEED: f64 = 600.0;

fn record(pipeline: &str, day: NaiveDate, status: Status, error: Option<&str>) -> PartitionRecord {
    PartitionRecord {
        unconverted: Default::default(),
        pipeline: pipeline.into(),
        day,
        status,
        spec_hash: "h".into(),
        engine_version: "test".into(),
        source_count: Some(1),
        raw_lines: Some(1),
        raw_bytes: Some(1),
        raw_sha256: None,
        warehouse_rows: Some(1),
        rejected: None,
        child_rows: BTreeMap::new(),
        lake_object: String::new(),
        warehouse_target: String::new(),
        started_at: DateTime::<Utc>::MIN_UTC,
        finished_at: DateTime::<Utc>::MIN_UTC,
        attempts: 1,
        error: error.map(str::to_owned),
    }
}

/// Runs catch-ups against a ledger in memory: each day from `start` to the
/// day before `now` (in the pipeline's timezone) not done yet is done,
/// unless `fail` says it fails that many more times.
struct Fake {
    pipelines: Vec<(String, Tz)>,
    start: NaiveDate,
    done: Mutex<BTreeMap<(String, NaiveDate), u32>>,
    fail: Mutex<BTreeMap<(String, NaiveDate), u32>>,
    /// (pipelines, now) of each run.
    calls: Mutex<Vec<(Vec<String>, DateTime<Utc>)>>,
    /// How long each run takes, in the timeline's time.
    takes: chrono::Duration,
    timeline: Arc<ScaledTimeline>,
}

impl Fake {
    fn new(entries: &[Entry], timeline: Arc<ScaledTimeline>) -> Self {
        Self {
            pipelines: entries.iter().map(|e| (e.pipeline.clone(), e.tz)).collect(),
            start: day("2020-06-01"),
            done: Mutex::default(),
            fail: Mutex::default(),
            calls: Mutex::default(),
            takes: chrono::Duration::zero(),
            timeline,
        }
    }

    fn times_done(&self) -> BTreeMap<(String, NaiveDate), u32> {
        self.done.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<(Vec<String>, DateTime<Utc>)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Runner for Fake {
    fn run<'a>(
        &'a self,
        due: &'a [usize],
        now: DateTime<Utc>,
        shutdown: &'a Shutdown,
    ) -> BoxFuture<'a, Result<RunReport, String>> {
        Box::pin(async move {
            let names: Vec<String> = due.iter().map(|&i| self.pipelines[i].0.clone()).collect();
            self.calls.lock().unwrap().push((names, now));
            let mut report = RunReport::default();
            if !self.takes.is_zero() {
                tokio::select! {
                    _ = self.timeline.sleep_until(now + self.takes) => {}
                    _ = shutdown.requested() => {
                        report.interrupted = true;
                        return Ok(report);
                    }
                }
            }
            for &i in due {
                let (name, tz) = &self.pipelines[i];
                let today = now.with_timezone(tz).date_naive();
                for d in self.start.iter_days().take_while(|d| *d < today) {
                    let key = (name.clone(), d);
                    let mut done = self.done.lock().unwrap();
                    if done.contains_key(&key) {
                        report.outcomes.push(DayOutcome::Skipped(record(
                            name,
                            d,
                            Status::Done,
                            None,
                        )));
                        continue;
                    }
                    let mut fail = self.fail.lock().unwrap();
                    match fail.get_mut(&key) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            report.outcomes.push(DayOutcome::Failed(record(
                                name,
                                d,
                                Status::Failed,
                                Some("connection reset"),
                            )));
                        }
                        _ => {
                            *done.entry(key).or_default() += 1;
                            report.outcomes.push(DayOutcome::Done(record(
                                name,
                                d,
                                Status::Done,
                                None,
                            )));
                        }
                    }
                }
            }
            Ok(report)
        })
    }
}

fn entries() -> Vec<Entry> {
    vec![
        Entry::new("users", "0 0 * * *", chrono_tz::UTC).unwrap(),
        // 06:30 in Paris: 04:30 UTC in June.
        Entry::new("orders", "30 6 * * *", chrono_tz::Europe::Paris).unwrap(),
    ]
}

const NO_RETRIES: Retries = Retries {
    times: 0,
    delay: chrono::Duration::zero(),
};

/// Runs `daemon` until the timeline reaches `until`, then stops it; the
/// decisions it logged.
async fn run_until(
    daemon: Daemon,
    runner: Arc<Fake>,
    timeline: Arc<ScaledTimeline>,
    until: DateTime<Utc>,
) -> Vec<Event> {
    let (trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(async move {
        let mut events = Vec::new();
        daemon
            .run(runner.as_ref(), &shutdown, &mut |e| events.push(e))
            .await;
        events
    });
    timeline.sleep_until(until).await;
    trigger.request();
    task.await.unwrap()
}

#[test]
fn a_fire_loads_the_day_before_it_in_the_pipelines_timezone() {
    let [users, orders] = <[Entry; 2]>::try_from(entries()).ok().unwrap();
    let after = at("2020-06-03T12:00:00Z");
    assert_eq!(users.next_fire(after), at("2020-06-04T00:00:00Z"));
    assert_eq!(
        users.day_loaded_at(users.next_fire(after)),
        day("2020-06-03")
    );
    assert_eq!(orders.next_fire(after), at("2020-06-04T04:30:00Z"));
    assert_eq!(
        orders.day_loaded_at(orders.next_fire(after)),
        day("2020-06-03")
    );
    // Strictly after: a daemon that wakes at a fire does not fire twice.
    assert_eq!(
        users.next_fire(at("2020-06-04T00:00:00Z")),
        at("2020-06-05T00:00:00Z")
    );
    // Paris at midnight is 22:00 UTC the day before; it loads Paris's
    // yesterday, not UTC's.
    let paris = Entry::new("p", "0 0 * * *", chrono_tz::Europe::Paris).unwrap();
    let fire = paris.next_fire(at("2020-06-03T12:00:00Z"));
    assert_eq!(fire, at("2020-06-03T22:00:00Z"));
    assert_eq!(paris.day_loaded_at(fire), day("2020-06-03"));
    assert!(Entry::new("x", "61 * * * *", chrono_tz::UTC)
        .err()
        .unwrap()
        .contains("x: invalid cron `61 * * * *`"));
}

#[tokio::test(start_paused = true)]
async fn days_pass_and_each_pipeline_runs_when_its_cron_falls_due() {
    let timeline = Arc::new(ScaledTimeline::new(at("2020-06-03T12:00:00Z"), SPEED));
    let fake = Arc::new(Fake::new(&entries(), timeline.clone()));
    let daemon = Daemon::new(entries(), timeline.clone(), NO_RETRIES);
    let events = run_until(daemon, fake.clone(), timeline, at("2020-06-06T12:00:00Z")).await;

    // One catch-up of both on start, then each at its own fire.
    let calls: Vec<(Vec<String>, String)> = fake
        .calls()
        .into_iter()
        .map(|(p, at)| (p, at.format("%m-%dT%H:%M").to_string()))
        .collect();
    let call = |p: &[&str], at: &str| (p.iter().map(|s| s.to_string()).collect(), at.to_string());
    assert_eq!(
        calls,
        vec![
            call(&["users", "orders"], "06-03T12:00"),
            call(&["users"], "06-04T00:00"),
            call(&["orders"], "06-04T04:30"),
            call(&["users"], "06-05T00:00"),
            call(&["orders"], "06-05T04:30"),
            call(&["users"], "06-06T00:00"),
            call(&["orders"], "06-06T04:30"),
        ]
    );
    // Every day up to the last fire's yesterday, each done once.
    let done = fake.times_done();
    for p in ["users", "orders"] {
        let days: Vec<String> = done
            .iter()
            .filter(|((name, _), _)| name == p)
            .map(|((_, d), n)| format!("{d}x{n}"))
            .collect();
        assert_eq!(
            days,
            [
                "2020-06-01x1",
                "2020-06-02x1",
                "2020-06-03x1",
                "2020-06-04x1",
                "2020-06-05x1"
            ],
            "{p}"
        );
    }
    // The log says what was decided, in order, in words.
    let log: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert_eq!(
        log[..6],
        [
            "schedule: started at 2020-06-03 12:00:00 UTC with 2 pipeline(s); catching up the days missed so far",
            "users: catch-up on start: running every day not done through 2020-06-02",
            "orders: catch-up on start: running every day not done through 2020-06-02",
            "users: done 2 days, 2020-06-01..2020-06-02; 0 already done; 0 failed",
            "orders: done 2 days, 2020-06-01..2020-06-02; 0 already done; 0 failed",
            "users: next run at 2020-06-04 00:00:00 UTC (cron `0 0 * * *`, UTC); it loads through 2020-06-03",
        ]
    );
    assert!(log.contains(&"orders: next run at 2020-06-04 04:30:00 UTC (cron `30 6 * * *`, Europe/Paris); it loads through 2020-06-03".to_owned()), "{log:#?}");
    assert!(
        log.contains(
            &"users: due at 2020-06-05 00:00:00 UTC: running every day not done through 2020-06-04"
                .to_owned()
        ),
        "{log:#?}"
    );
    assert!(
        log.contains(&"users: done 2020-06-04; 3 already done; 0 failed".to_owned()),
        "{log:#?}"
    );
    assert_eq!(log.last().unwrap(), "schedule: stopped");
}

#[tokio::test(start_paused = true)]
async fn a_failed_day_is_retried_then_left_to_the_next_fire() {
    let timeline = Arc::new(ScaledTimeline::new(at("2020-06-03T12:00:00Z"), SPEED));
    let users = vec![Entry::new("users", "0 0 * * *", chrono_tz::UTC).unwrap()];
    let fake = Arc::new(Fake::new(&users, timeline.clone()));
    // 06-02 fails on start and on its one retry, then works.
    fake.fail
        .lock()
        .unwrap()
        .insert(("users".into(), day("2020-06-02")), 2);
    let retries = Retries {
        times: 1,
        delay: chrono::Duration::minutes(10),
    };
    let daemon = Daemon::new(users, timeline.clone(), retries);
    let events = run_until(daemon, fake.clone(), timeline, at("2020-06-04T12:00:00Z")).await;

    let log: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert_eq!(
        log[..8],
        [
            "schedule: started at 2020-06-03 12:00:00 UTC with 1 pipeline(s); catching up the days missed so far",
            "users: catch-up on start: running every day not done through 2020-06-02",
            "users: done 2020-06-01; 0 already done; 1 failed\n  failed 2020-06-02: connection reset",
            "users: retry 1 of 1 at 2020-06-03 12:10:00 UTC",
            "users: retry: running every day not done through 2020-06-02",
            "users: done none; 1 already done; 1 failed\n  failed 2020-06-02: connection reset",
            "users: retries spent; the failed days run again at the next fire, 2020-06-04 00:00:00 UTC",
            "users: next run at 2020-06-04 00:00:00 UTC (cron `0 0 * * *`, UTC); it loads through 2020-06-03",
        ]
    );
    assert_eq!(
        log[9], "users: done 2 days, 2020-06-02..2020-06-03; 1 already done; 0 failed",
        "{log:#?}"
    );
    let times: Vec<u32> = fake.times_done().into_values().collect();
    assert_eq!(times, [1, 1, 1], "06-01, 06-02 and 06-03, once each");
}

#[tokio::test(start_paused = true)]
async fn a_run_that_outlasts_its_fires_covers_them() {
    let timeline = Arc::new(ScaledTimeline::new(at("2020-06-03T12:00:00Z"), SPEED));
    let users = vec![Entry::new("users", "0 * * * *", chrono_tz::UTC).unwrap()];
    let mut fake = Fake::new(&users, timeline.clone());
    // Each run takes 2.5 hours of an hourly cron.
    fake.takes = chrono::Duration::minutes(150);
    let fake = Arc::new(fake);
    let daemon = Daemon::new(users, timeline.clone(), NO_RETRIES);
    let events = run_until(daemon, fake.clone(), timeline, at("2020-06-03T16:00:00Z")).await;
    let due: Vec<String> = events
        .iter()
        .filter(|e| matches!(e, Event::Due { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        due,
        [
            "users: catch-up on start: running every day not done through 2020-06-02",
            "users: due at 2020-06-03 14:00:00 UTC: running every day not done through 2020-06-02 (1 earlier fire(s) fell while a run was going; this run covers them)",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_run_says_its_days_were_interrupted() {
    let timeline = Arc::new(ScaledTimeline::new(at("2020-06-03T12:00:00Z"), SPEED));
    let users = vec![Entry::new("users", "0 0 * * *", chrono_tz::UTC).unwrap()];
    let mut fake = Fake::new(&users, timeline.clone());
    fake.takes = chrono::Duration::days(30);
    let fake = Arc::new(fake);
    let daemon = Daemon::new(users, timeline.clone(), NO_RETRIES);
    let events = run_until(daemon, fake.clone(), timeline, at("2020-06-04T12:00:00Z")).await;
    assert_eq!(
        events.last().unwrap().to_string(),
        "schedule: stopped; the running days were recorded `interrupted` and run at the next start"
    );
    assert!(fake.times_done().is_empty());
}
