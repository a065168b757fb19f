//! The documented defaults, in one place: serde fills them into the raw
//! file, and the checked form's `Default`s use the same values.

use std::time::Duration;

use super::values::TlsMode;

pub(super) fn default_warn_percent() -> u32 {
    80
}

pub(super) fn default_check_interval() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_remind() -> Duration {
    Duration::from_secs(3 * 86400)
}

pub(super) fn default_waiting_close() -> Duration {
    Duration::from_secs(7 * 86400)
}

pub(super) fn default_resolved_close() -> Duration {
    Duration::from_secs(3 * 86400)
}

pub(super) fn default_per_recipient() -> u32 {
    // Enough for a person opening several tickets in an hour; few enough
    // that a runaway autoresponder gets a handful of mails, not thousands.
    5
}

pub(super) fn default_per_ticket() -> u32 {
    3
}

pub(super) fn default_window() -> Duration {
    Duration::from_secs(3600)
}

pub(super) fn default_undeliverable_after() -> u32 {
    3
}

pub(super) fn default_max_message_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(25)
}

/// Enough for screenshots and a few documents; a notification per agent
/// carries its own copy, so not the whole `max_message_size`.
pub(super) fn default_notification_attachments() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(10)
}

pub(super) fn default_desk_name() -> String {
    "Help Desk".into()
}

pub(super) fn default_first_ticket() -> u64 {
    1000
}

pub(super) fn default_tls() -> TlsMode {
    TlsMode::Implicit
}

pub(super) fn default_folder() -> String {
    "INBOX".into()
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_batch_size() -> u32 {
    500
}

pub(super) fn default_batch_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(64)
}

pub(super) fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}

pub(super) fn default_retry_initial() -> Duration {
    Duration::from_secs(5)
}

pub(super) fn default_retry_max() -> Duration {
    Duration::from_secs(15 * 60)
}

pub(super) fn default_max_attempts() -> u32 {
    // With 5 s doubling to a 15 min cap this is roughly two days of trying.
    200
}

pub(super) fn default_concurrency() -> usize {
    4
}

pub(super) fn default_subject_tag() -> String {
    "[#{id}]".into()
}
