//! Leases: which worker runs a pipeline's day, kept in the state store
//! beside the ledger, so that workers on many machines (Airflow retries,
//! overlapping cron runs, Kubernetes pods) share one backfill safely.
//!
//! A lease is a series of generations,
//! `leases/<pipeline>/<day>/<generation>.json`, each written with a
//! conditional put that fails when the object exists (`PutMode::Create`).
//! Only conditional creation is needed, because local files support
//! nothing more (no `PutMode::Update`); GCS, Azure and S3 (with
//! `aws_conditional_put`) have it too. The latest generation says who
//! holds the day and until when:
//! - to take a free day, or one whose latest generation has expired (its
//!   worker was killed), a worker creates the next generation; of two
//!   workers trying at once, one creates it and the other sees it taken;
//! - the holder renews by creating the next generation itself; if another
//!   worker took the day over in between, the renewal fails to create and
//!   the holder knows it lost the day;
//! - the holder releases by creating a generation that has expired
//!   already, then removes the older ones.
//!
//! A worker that was killed (SIGKILL, the OOM killer) cannot release its
//! days. When its lease names this host and this PID namespace and its
//! process is gone, the next worker takes the day at once instead of
//! waiting for the lease to expire; elsewhere the expiry decides.
//!
//! What a lease does not guarantee: a holder stopped for longer than the
//! lease (a paused VM) can lose the day to another worker and still finish
//! before it notices. Each day's work replaces whole objects and whole
//! partitions, so the worst case is the same day loaded twice with the
//! same rows, never rows lost or doubled.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Clock;
use crate::sink::lake::{LakeError, Store};

/// One generation of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The worker: host, process and run.
    pub owner: String,
    /// Until when it holds the day, unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A day this worker holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pipeline: String,
    day: NaiveDate,
    generation: u64,
    /// Until when it holds the day.
    pub expires_at: DateTime<Utc>,
}

/// What [`Leases::acquire`] found.
#[derive(Debug, Clone)]
pub enum Acquired {
    /// The day is this worker's.
    Held(Lease),
    /// Another worker holds it.
    Busy(LeaseRecord),
}

/// The leases of one worker.
pub struct Leases {
    store: Store,
    owner: String,
    ttl: chrono::Duration,
    clock: Arc<dyn Clock>,
}

impl Leases {
    /// Leases in `store` held by `owner` for `ttl` at a time.
    pub fn new(store: Store, owner: String, ttl: chrono::Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            owner,
            ttl,
            clock,
        }
    }

    /// How long a lease lasts unless renewed.
    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// Who this worker is, as its leases say.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn folder(pipeline: &str, day: NaiveDate) -> String {
        format!("leases/{pipeline}/{day}")
    }

    fn key(pipeline: &str, day: NaiveDate, generation: u64) -> String {
        format!("{}/{generation:010}.json", Self::folder(pipeline, day))
    }

    /// The latest generation and its record; generation 0 when there is
    /// none. A record that does not parse counts as expired.
    async fn latest(
        &self,
        pipeline: &str,
        day: NaiveDate,
    ) -> Result<(u64, Option<LeaseRecord>), LakeError> {
        let Some(rel) = self.store.list(&Self::folder(pipeline, day)).await?.pop() else {
            return Ok((0, None));
        };
        let generation = rel
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        let record = self
            .store
            .get(&rel)
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok((generation, record))
    }

    /// Creates generation `generation` for this worker, expiring `ttl`
    /// from now (or now, to release): false when another worker created
    /// it first.
    async fn create(
        &self,
        pipeline: &str,
        day: NaiveDate,
        generation: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, LakeError> {
        let record = LeaseRecord {
            owner: self.owner.clone(),
            expires_at,
        };
        let bytes = serde_json::to_vec_pretty(&record).expect("a lease serializes");
        self.store
            .put_if_absent(&Self::key(pipeline, day, generation), bytes)
            .await
    }

    /// Takes day `day` of `pipeline` unless another worker holds it.
    pub async fn acquire(&self, pipeline: &str, day: NaiveDate) -> Result<Acquired, LakeError> {
        loop {
            let now = self.clock.now();
            let (generation, record) = self.latest(pipeline, day).await?;
            if let Some(r) = record.filter(|r| r.expires_at > now) {
                if !owner_is_gone(&r.owner) {
                    return Ok(Acquired::Busy(r));
                }
                tracing::info!(%pipeline, %day, owner = %r.owner, "taking over a lease whose process is gone from this host");
            }
            let expires_at = now + self.ttl;
            if self
                .create(pipeline, day, generation + 1, expires_at)
                .await?
            {
                return Ok(Acquired::Held(Lease {
                    pipeline: pipeline.to_owned(),
                    day,
                    generation: generation + 1,
                    expires_at,
                }));
            }
            // Another worker created that generation first: look again.
        }
    }

    /// Extends `lease` by the lease time; false when another worker took
    /// the day over meanwhile.
    pub async fn renew(&self, lease: &mut Lease) -> Result<bool, LakeError> {
        let expires_at = self.clock.now() + self.ttl;
        let next = lease.generation + 1;
        if !self
            .create(&lease.pipeline, lease.day, next, expires_at)
            .await?
        {
            return Ok(false);
        }
        let previous = Self::key(&lease.pipeline, lease.day, lease.generation);
        lease.generation = next;
        lease.expires_at = expires_at;
        self.store.delete(&previous).await?;
        Ok(true)
    }

    /// Whether `lease` is still the latest generation.
    pub async fn holds(&self, lease: &Lease) -> Result<bool, LakeError> {
        let (generation, record) = self.latest(&lease.pipeline, lease.day).await?;
        Ok(generation == lease.generation
            && record.is_some_and(|r| r.owner == self.owner && r.expires_at > self.clock.now()))
    }

    /// Gives the day back: the next worker may take it at once.
    pub async fn release(&self, lease: Lease) -> Result<(), LakeError> {
        let next = lease.generation + 1;
        if self
            .create(&lease.pipeline, lease.day, next, self.clock.now())
            .await?
        {
            for rel in self
                .store
                .list(&Self::folder(&lease.pipeline, lease.day))
                .await?
            {
                if rel != Self::key(&lease.pipeline, lease.day, next) {
                    self.store.delete(&rel).await?;
                }
            }
        }
        Ok(())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid`), which
/// tells two containers with the same host name apart; None off Linux.
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let link = link.to_str()?;
    Some(link.strip_prefix("pid:[")?.strip_suffix(']')?.to_owned())
}

/// This worker's name in its leases: host, process id, the instant it
/// started, a count of the runs this process started (so that no two runs
/// share one) and, on Linux, its PID namespace.
pub fn worker_name(started: DateTime<Utc>) -> String {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut name = format!(
        "{}:{}:{}:{run}",
        host_name(),
        std::process::id(),
        started.format("%Y%m%dT%H%M%S%.3fZ")
    );
    if let Some(ns) = pid_namespace() {
        name.push_str(&format!(":pidns{ns}"));
    }
    name
}

/// Whether `owner` (a [`worker_name`]) is a process of this host and PID
/// namespace that no longer exists: killed without releasing its days.
/// Anything it cannot tell (another host, another namespace, an old name
/// without a namespace) is not gone; a reused PID looks alive, which only
/// means waiting for the lease to expire.
pub fn owner_is_gone(owner: &str) -> bool {
    let fields: Vec<&str> = owner.split(':').collect();
    let [host, pid, _, _, ns] = fields[..] else {
        return false;
    };
    let (Some(ns), Some(here), Ok(pid)) = (
        ns.strip_prefix("pidns"),
        pid_namespace(),
        pid.parse::<u32>(),
    ) else {
        return false;
    };
    host == host_name() && ns == here && process_is_gone(pid)
}

/// Whether process `pid` of this PID namespace is gone (and is not this
/// one).
fn process_is_gone(pid: u32) -> bool {
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the staging folder `name` (`run-<pid>-<started>-<n>-pidns<ns>`,
/// from [`worker_name`]) belongs to a process of this PID namespace that
/// is gone. A folder without a namespace is never judged gone.
pub fn staging_run_is_gone(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("run-") else {
        return false;
    };
    let (Some((pid, _)), Some((_, ns))) = (rest.split_once('-'), rest.rsplit_once("-pidns")) else {
        return false;
    };
    match (pid.parse::<u32>(), pid_namespace()) {
        (Ok(pid), Some(here)) => ns == here && process_is_gone(pid),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_worker_of_this_host_is_gone_and_others_are_not() {
        let me = worker_name(Utc::now());
        assert!(!owner_is_gone(&me), "this process is alive: {me}");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = me.replacen(&format!(":{}:", std::process::id()), &format!(":{pid}:"), 1);
        assert!(owner_is_gone(&dead), "{dead}");
        let elsewhere = dead.replacen(&host_name(), "another-host", 1);
        assert!(!owner_is_gone(&elsewhere), "{elsewhere}");
        let other_namespace = format!("{}:pidns1", dead.rsplit_once(':').unwrap().0);
        assert!(!owner_is_gone(&other_namespace), "{other_namespace}");
        let old_name = dead.rsplit_once(':').unwrap().0.to_owned();
        assert!(!owner_is_gone(&old_name), "{old_name}");

        // Staging folders are named after the worker, without the host.
        let folder =
            |owner: &str| format!("run-{}", owner.split_once(':').unwrap().1.replace(':', "-"));
        assert!(staging_run_is_gone(&folder(&dead)), "{}", folder(&dead));
        assert!(!staging_run_is_gone(&folder(&me)));
        assert!(!staging_run_is_gone(&folder(&other_namespace)));
        assert!(!staging_run_is_gone(&folder(&old_name)));
    }
    use crate::engine::FixedClock;

    fn day() -> NaiveDate {
        "2020-06-01".parse().unwrap()
    }

    fn leases(store: &Store, owner: &str, clock: &Arc<FixedClock>) -> Leases {
        Leases::new(
            store.clone(),
            owner.to_owned(),
            chrono::Duration::seconds(60),
            clock.clone(),
        )
    }

    /// Local files: the store leases live in for workers of one machine,
    /// and the one without conditional updates.
    fn local() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let store = Store::open(url.as_str(), &Default::default()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_held_day_is_busy_for_others_until_it_is_released() {
        let (_dir, store) = local();
        let clock = Arc::new(FixedClock::at("2026-11-23T00:00:00Z".parse().unwrap()));
        let (a, b) = (leases(&store, "a", &clock), leases(&store, "b", &clock));
        let Acquired::Held(lease) = a.acquire("users", day()).await.unwrap() else {
            panic!("a free day is taken");
        };
        match b.acquire("users", day()).await.unwrap() {
            Acquired::Busy(r) => {
                assert_eq!(r.owner, "a");
                assert_eq!(r.expires_at, lease.expires_at);
            }
            other => panic!("{other:?}"),
        }
        assert!(a.holds(&lease).await.unwrap());
        a.release(lease).await.unwrap();
        assert!(matches!(
            b.acquire("users", day()).await.unwrap(),
            Acquired::Held(_)
        ));
        assert_eq!(
            store.list("leases/users/2020-06-01").await.unwrap().len(),
            2,
            "the release and b's lease; older generations are removed"
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_holder_learns_it() {
        let (_dir, store) = local();
        let clock = Arc::new(FixedClock::at("2026-11-23T00:00:00Z".parse().unwrap()));
        let (a, b) = (leases(&store, "a", &clock), leases(&store, "b", &clock));
        let Acquired::Held(mut killed) = a.acquire("users", day()).await.unwrap() else {
            panic!()
        };
        clock.advance(chrono::Duration::seconds(30));
        assert!(a.renew(&mut killed).await.unwrap(), "renewed in time");
        clock.advance(chrono::Duration::seconds(61));
        let Acquired::Held(taken) = b.acquire("users", day()).await.unwrap() else {
            panic!("an expired lease is free")
        };
        assert!(!a.holds(&killed).await.unwrap());
        assert!(!a.renew(&mut killed).await.unwrap(), "a lost the day to b");
        assert!(b.holds(&taken).await.unwrap());
    }

    #[tokio::test]
    async fn of_many_workers_taking_a_day_at_once_one_gets_it() {
        let (_dir, store) = local();
        let clock = Arc::new(FixedClock::at("2026-11-23T00:00:00Z".parse().unwrap()));
        let workers: Vec<Leases> = (0..8)
            .map(|i| leases(&store, &format!("w{i}"), &clock))
            .collect();
        let got =
            futures::future::join_all(workers.iter().map(|w| w.acquire("users", day()))).await;
        let held = got
            .iter()
            .filter(|g| matches!(g, Ok(Acquired::Held(_))))
            .count();
        assert_eq!(held, 1, "{got:?}");
    }
}
