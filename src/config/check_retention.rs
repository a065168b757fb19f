//! Checking `[retention]`.

use std::time::Duration;

use super::check::Validator;
use super::checked::RetentionConfig;
use super::raw::RawRetention;

/// Dedupe keys guard against a mail fetched twice (a crash between commit
/// and `\Seen`, a second mailbox, a resend): younger than this is unsafe.
const MIN_DEDUPE_AGE: Duration = Duration::from_secs(24 * 3600);

impl Validator {
    pub(super) fn check_retention(&mut self, r: &RawRetention) -> RetentionConfig {
        for (key, age) in [
            ("retention.raw_mail_after", r.raw_mail_after),
            ("retention.delivery_logs_after", r.delivery_logs_after),
        ] {
            if age.is_some_and(|a| a.is_zero()) {
                self.problem(key, "must be more than 0 (leave it out to keep forever)");
            }
        }
        if r.dedupe_keys_after.is_some_and(|a| a < MIN_DEDUPE_AGE) {
            self.problem(
                "retention.dedupe_keys_after",
                "must be at least 1d: younger dedupe keys are what stops a refetched mail from being filed twice",
            );
        }
        RetentionConfig {
            raw_mail_after: r.raw_mail_after,
            delivery_logs_after: r.delivery_logs_after,
            dedupe_keys_after: r.dedupe_keys_after,
        }
    }
}
