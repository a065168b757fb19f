//! Retention from the configuration: the `[retention]` ages as the store's
//! rules, and the daemon's pass (see `store::retention`).

use crate::config::checked::RetentionConfig;
use crate::engine::Engine;
use crate::store::retention::{self, PruneSummary, Retention};
use crate::store::StoreError;

pub fn rules_of(c: &RetentionConfig) -> Retention {
    Retention {
        raw_mail_after: c.raw_mail_after,
        delivery_logs_after: c.delivery_logs_after,
        dedupe_keys_after: c.dedupe_keys_after,
    }
}

/// The timer task's retention pass: at most hourly, bounded, at the engine's
/// time. Blocking (sled): call it from `spawn_blocking`.
pub fn daemon_pass(engine: &Engine, rules: &Retention) -> Result<Option<PruneSummary>, StoreError> {
    retention::daemon_pass(engine.store(), rules, engine.now())
}
