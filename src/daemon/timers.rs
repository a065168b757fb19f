//! The timer task: every `check_interval` it asks the engine which SLA
//! warnings, breaches, reminders and closings are due, from stored timestamps
//! only, and carries each out once (see `sla`).

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

pub struct TimerTask {
    pub engine: Arc<Engine>,
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
}

impl TimerTask {
    /// Runs until shutdown (`Ok`) or until the store fails beyond healing.
    pub async fn run(self) -> Result<(), TimerError> {
        let mut failed = 0;
        loop {
            crate::daemon::injected_fault("timers");
            // Right away at start: what fell due while the daemon was down fires now.
            let engine = self.engine.clone();
            let round = match tokio::task::spawn_blocking(move || engine.run_timers()).await {
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
            match round {
                Ok(()) => failed = 0,
                Err(last) => {
                    failed += 1;
                    if failed >= MAX_FAILED_ROUNDS {
                        return Err(TimerError::Failing {
                            rounds: failed,
                            last,
                        });
                    }
                    warn!(error = %last, "timers failed; retrying next round");
                }
            }
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
