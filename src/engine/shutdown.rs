//! Stopping a run on request (Ctrl-C, SIGTERM), after mini-redis: one
//! [`Trigger`] the process holds, and a [`Shutdown`] every day watches.
//! Once requested, no new day starts, and a running day stops where it is
//! and is recorded `interrupted` (see [`super::Engine::run`]).

use tokio::sync::watch;

/// Requests the shutdown its [`Shutdown`]s see.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    /// Asks every [`Shutdown`] to stop. Idempotent.
    pub fn request(&self) {
        self.0.send_replace(true);
    }
}

/// Whether the run is asked to stop, and a way to wait for it.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown and its trigger.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Shutdown(rx))
    }

    /// A shutdown that is never requested.
    pub fn never() -> Shutdown {
        Shutdown::new().1
    }

    /// Whether it has been requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until it is requested; forever when it cannot be any more.
    pub async fn requested(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_one_request() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        assert!(!shutdown.is_requested());
        let waiting = tokio::spawn(async move { other.requested().await });
        trigger.request();
        trigger.request();
        waiting.await.unwrap();
        assert!(shutdown.is_requested());
    }

    #[tokio::test(start_paused = true)]
    async fn never_is_never_requested() {
        let never = Shutdown::never();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(3600), never.requested());
        assert!(waited.await.is_err(), "an hour passed with no request");
        assert!(!never.is_requested());
    }
}
