//! The timer task: every `check_interval` it asks the engine which SLA
//! warnings, breaches, reminders and closings are due, from stored timestamps
//! only, and carries each out once (see `sla`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::Engine;

pub struct TimerTask {
    pub engine: Arc<Engine>,
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
}

impl TimerTask {
    pub async fn run(self) {
        loop {
            // Right away at start: what fell due while the daemon was down fires now.
            let engine = self.engine.clone();
            match tokio::task::spawn_blocking(move || engine.run_timers()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    info!(actions = n, "timers fired");
                    if let Err(e) = self.engine.store().flush().await {
                        warn!(error = %e, "cannot flush after timers");
                    }
                    self.wake.notify_one();
                }
                Ok(Err(e)) => warn!(error = %e, "timers failed; retrying next round"),
                Err(e) => warn!(error = %e, "timer worker failed"),
            }
            let interval = self
                .engine
                .policy()
                .timers
                .check_interval
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }
}
