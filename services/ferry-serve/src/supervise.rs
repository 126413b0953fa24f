//! Running a side's services together: each is a named task that takes a stop signal and returns when it has
//! finished the work in hand. When one ends on its own or fails, the others are told to stop too and the failure
//! is returned, so that `ferry serve` exits non-zero rather than run on with intake or the workers dead.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Result, ServeError};

/// The set of running services.
pub struct Services {
    set: tokio::task::JoinSet<(&'static str, Result<()>)>,
    stopping: watch::Receiver<bool>,
}

impl Services {
    /// Starts a service: `make` is given the stop signal and returns its future.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let fut = make(self.stopping.clone());
        self.set.spawn(async move { (name, fut.await) });
    }
}

/// Runs the services `start` spawns until `external` turns true, or until one of them ends on its own; then
/// waits for all of them.
pub async fn supervise(
    mut external: watch::Receiver<bool>,
    start: impl FnOnce(&mut Services),
) -> Result<()> {
    let (stop, stopping) = watch::channel(false);
    let mut services = Services {
        set: tokio::task::JoinSet::new(),
        stopping,
    };
    start(&mut services);
    let mut failure: Option<ServeError> = None;
    if *external.borrow() {
        let _ = stop.send(true);
    }
    loop {
        let stopped = *stop.borrow();
        tokio::select! {
            changed = external.changed(), if !stopped => {
                if changed.is_err() || *external.borrow() {
                    let _ = stop.send(true);
                }
            }
            joined = services.set.join_next() => {
                let Some(joined) = joined else { break };
                let error = match joined {
                    Ok((_, Ok(()))) if stopped => None,
                    Ok((name, Ok(()))) => Some(ServeError::StoppedOnItsOwn(name)),
                    Ok((name, Err(e))) => Some(ServeError::Service { service: name, source: Box::new(e) }),
                    Err(e) => Some(ServeError::Panicked(e.to_string())),
                };
                if let Some(e) = error {
                    tracing::error!("{e}; stopping the other services");
                    failure.get_or_insert(e);
                    let _ = stop.send(true);
                }
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Waits until `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A service with work in flight when the stop comes finishes that work before `supervise` returns.
    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_work_in_flight() {
        let (tx, rx) = watch::channel(false);
        let done = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(tokio::sync::Notify::new());
        let (d, s) = (done.clone(), started.clone());
        let run = tokio::spawn(supervise(rx, move |services| {
            services.spawn("slow", move |mut stop| async move {
                loop {
                    tokio::select! {
                        () = stopped(&mut stop) => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    // A unit of work that must not be cut short.
                    s.notify_one();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                }
            });
        }));
        started.notified().await;
        tx.send(true).unwrap();
        run.await.unwrap().unwrap();
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "the unit in flight finished"
        );
    }

    /// One service failing stops the others and is the error returned.
    #[tokio::test(start_paused = true)]
    async fn a_failed_service_stops_the_others() {
        let (_tx, rx) = watch::channel(false);
        let other_stopped = Arc::new(AtomicUsize::new(0));
        let o = other_stopped.clone();
        let result = supervise(rx, move |services| {
            services.spawn("patient", move |mut stop| async move {
                stopped(&mut stop).await;
                o.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
            services.spawn("failing", |_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Err(ServeError::Panicked("boom".into()))
            });
        })
        .await;
        match result {
            Err(ServeError::Service { service, .. }) => assert_eq!(service, "failing"),
            other => panic!("expected the failing service's error, got {other:?}"),
        }
        assert_eq!(other_stopped.load(Ordering::SeqCst), 1);
    }

    /// A service that returns although nobody asked is a failure, not a clean stop.
    #[tokio::test(start_paused = true)]
    async fn a_service_ending_on_its_own_is_an_error() {
        let (_tx, rx) = watch::channel(false);
        let result = supervise(rx, |services| {
            services.spawn("quitter", |_| async { Ok(()) });
        })
        .await;
        assert!(matches!(
            result,
            Err(ServeError::StoppedOnItsOwn("quitter"))
        ));
    }
}
