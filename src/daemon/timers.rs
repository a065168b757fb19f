//! The timer task: every `check_interval` it asks the engine which SLA
//! warnings, breaches, reminders and closings are due, from stored timestamps
//! only, and carries each out once (see `sla`); then which digests are due
//! and which reports were asked for by mail (`engine::digest`).

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::Engine;
use crate::store::StoreError;

/// Failed rounds in a row after which the store is taken to be broken for
/// good: the task ends, and with it the daemon, so systemd restarts it
/// instead of it running on without committing.
const MAX_FAILED_ROUNDS: u32 = 5;

#[derive(Debug, Error)]
pub enum TimerError {
    #[error("cannot flush the store after firing timers: {0}")]
    Flush(#[source] StoreError),
    #[error("cannot run timers: {rounds} rounds in a row failed, the last with: {last}")]
    Failing { rounds: u32, last: String },
}

/// Counts failed rounds in a row; too many ends the task.
fn judge(failed: &mut u32, round: Result<(), String>) -> Result<(), TimerError> {
    match round {
        Ok(()) => *failed = 0,
        Err(last) => {
            *failed += 1;
            if *failed >= MAX_FAILED_ROUNDS {
                return Err(TimerError::Failing {
                    rounds: *failed,
                    last,
                });
            }
        }
    }
    Ok(())
}

pub struct TimerTask {
    pub engine: Arc<Engine>,
    pub wake: Arc<Notify>,
    /// Its last run, for `deskgate status`.
    pub status: Arc<crate::daemon::status::Status>,
    /// What `[retention]` lets go (from the start-up config); pruned at
    /// most hourly, in bounded steps, after the timers.
    pub retention: crate::store::retention::Retention,
    pub shutdown: CancellationToken,
}

impl TimerTask {
    /// Runs until shutdown (`Ok`) or until the store fails beyond healing.
    pub async fn run(self) -> Result<(), TimerError> {
        let mut failed = 0;
        loop {
            crate::daemon::fault::injected_fault("timers");
            // Right away at start: what fell due while the daemon was down fires now.
            let engine = self.engine.clone();
            let retention = self.retention.clone();
            let work = move || {
                let fired = engine.run_timers();
                // Digests and reports asked by mail: each once, in the
                // transaction that marks it sent.
                let fired = match (fired, engine.run_digests()) {
                    (Ok(a), Ok(b)) => Ok(a + b),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                if let Err(e) = crate::engine::retention::daemon_pass(&engine, &retention) {
                    warn!(error = %e, "retention pass failed; trying again next hour");
                }
                fired
            };
            let round = match tokio::task::spawn_blocking(work).await {
                Ok(Ok(0)) => Ok(()),
                Ok(Ok(n)) => {
                    info!(actions = n, "timers fired");
                    self.engine
                        .store()
                        .flush()
                        .await
                        .map_err(TimerError::Flush)?;
                    self.wake.notify_one();
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the timer worker panicked".to_string()),
            };
            match &round {
                Ok(()) => self.status.timers_ran(self.engine.now()),
                Err(last) => warn!(error = %last, "timers failed; retrying next round"),
            }
            judge(&mut failed, round)?;
            let interval = self
                .engine
                .policy()
                .timers
                .check_interval
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_keeps_failing_ends_the_task_a_passing_round_forgives() {
        let mut failed = 0;
        for _ in 0..MAX_FAILED_ROUNDS - 1 {
            assert!(judge(&mut failed, Err("disk".into())).is_ok());
        }
        assert!(judge(&mut failed, Ok(())).is_ok());
        for _ in 0..MAX_FAILED_ROUNDS - 1 {
            assert!(judge(&mut failed, Err("disk".into())).is_ok());
        }
        let e = judge(&mut failed, Err("disk full".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot run timers: 5 rounds in a row failed, the last with: disk full"
        );
    }
}
