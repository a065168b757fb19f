//! The file as serde reads it: exactly what the TOML says, nothing derived.
//! Every table refuses unknown keys; checking happens in `check`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::defaults::*;
use super::rules::RawRule;
use super::values::{Tier, TlsMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) desk: RawDesk,
    #[serde(default, rename = "mailbox")]
    pub(super) mailboxes: Vec<RawMailbox>,
    pub(super) smtp: RawSmtp,
    #[serde(default)]
    pub(super) outbox: RawOutbox,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default, rename = "team")]
    pub(super) teams: Vec<RawTeam>,
    #[serde(default, rename = "agent")]
    pub(super) agents: Vec<RawAgent>,
    #[serde(default, rename = "rule")]
    pub(super) rules: Vec<RawRule>,
    #[serde(default)]
    pub(super) trust: RawTrust,
    #[serde(default, rename = "calendar")]
    pub(super) calendars: Vec<RawCalendar>,
    #[serde(default, rename = "sla")]
    pub(super) slas: Vec<RawSla>,
    #[serde(default)]
    pub(super) timers: RawTimers,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) retention: RawRetention,
    #[serde(default, rename = "digest")]
    pub(super) digests: Vec<RawDigest>,
    #[serde(default, rename = "queue")]
    pub(super) queues: Vec<RawQueue>,
}

/// `[[queue]]`: a help address of its own (checked in `check_queues`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub(super) name: String,
    pub(super) address: String,
    pub(super) display_name: Option<String>,
    /// The `[[mailbox]]` that receives this address, when it does not log in as it.
    pub(super) mailbox: Option<String>,
    pub(super) default_team: Option<String>,
    pub(super) default_sla: Option<String>,
    pub(super) templates: Option<PathBuf>,
}

/// `[[digest]]`: a report mailed on a schedule (checked in `check_digest`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDigest {
    pub(super) name: String,
    #[serde(default)]
    pub(super) to: Vec<String>,
    /// "report" (the default) or "recurring".
    pub(super) report: Option<String>,
    pub(super) every: String,
    pub(super) template: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) last: Option<Duration>,
    pub(super) by: Option<String>,
    pub(super) team: Option<String>,
    pub(super) agent: Option<String>,
    pub(super) tag: Option<String>,
    pub(super) min: Option<usize>,
}

/// `[retention]`: each age absent keeps that kind forever (the default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    #[serde(default, with = "humantime_serde")]
    pub(super) raw_mail_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) delivery_logs_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) dedupe_keys_after: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// sled's page cache, e.g. "32 MiB".
    pub(super) cache: Option<bytesize::ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCalendar {
    pub(super) name: String,
    pub(super) timezone: String,
    /// Monday to Friday, unless a day says otherwise.
    pub(super) weekdays: Option<String>,
    pub(super) monday: Option<String>,
    pub(super) tuesday: Option<String>,
    pub(super) wednesday: Option<String>,
    pub(super) thursday: Option<String>,
    pub(super) friday: Option<String>,
    pub(super) saturday: Option<String>,
    pub(super) sunday: Option<String>,
    #[serde(default)]
    pub(super) holidays: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargets {
    #[serde(default, with = "humantime_serde")]
    pub(super) low: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) normal: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) high: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) urgent: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    pub(super) name: String,
    /// A [[calendar]] name, or "24x7" (the default).
    pub(super) calendar: Option<String>,
    #[serde(default = "default_warn_percent")]
    pub(super) warn_at_percent: u32,
    #[serde(default)]
    pub(super) first_response: RawTargets,
    #[serde(default)]
    pub(super) resolution: RawTargets,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimers {
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub(super) check_interval: Duration,
    #[serde(default = "default_remind", with = "humantime_serde")]
    pub(super) waiting_reminder_after: Duration,
    #[serde(default = "default_waiting_close", with = "humantime_serde")]
    pub(super) waiting_close_after: Duration,
    #[serde(default = "default_resolved_close", with = "humantime_serde")]
    pub(super) resolved_close_after: Duration,
}

impl Default for RawTimers {
    fn default() -> Self {
        RawTimers {
            check_interval: default_check_interval(),
            waiting_reminder_after: default_remind(),
            waiting_close_after: default_waiting_close(),
            resolved_close_after: default_resolved_close(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrust {
    #[serde(default)]
    pub(super) authserv_ids: Vec<String>,
    #[serde(default = "default_true")]
    pub(super) signed_reply_addresses: bool,
    #[serde(default)]
    pub(super) allow_subdomains: bool,
    #[serde(default)]
    pub(super) commands_need_signed_reply: bool,
    #[serde(default = "default_key_grace", with = "humantime_serde")]
    pub(super) key_rotation_grace: std::time::Duration,
}

fn default_key_grace() -> std::time::Duration {
    std::time::Duration::from_secs(7 * 86_400)
}

impl Default for RawTrust {
    fn default() -> Self {
        RawTrust {
            authserv_ids: Vec::new(),
            signed_reply_addresses: true,
            allow_subdomains: false,
            commands_need_signed_reply: false,
            key_rotation_grace: default_key_grace(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTeam {
    pub(super) name: String,
    #[serde(default)]
    pub(super) tier: Tier,
    #[serde(default)]
    pub(super) members: Vec<String>,
    pub(super) escalates_to: Option<String>,
    pub(super) lead: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) address: String,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) teams: Vec<String>,
    pub(super) commands_need_signed_reply: Option<bool>,
    /// The agent's Unix user, for `deskgate tickets` without `--as`.
    pub(super) login: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default = "default_per_recipient")]
    pub(super) auto_replies_per_recipient: u32,
    #[serde(default = "default_per_ticket")]
    pub(super) auto_replies_per_ticket: u32,
    #[serde(default = "default_window", with = "humantime_serde")]
    pub(super) auto_reply_window: Duration,
    #[serde(default = "default_undeliverable_after")]
    pub(super) undeliverable_after: u32,
    #[serde(default = "default_max_message_size")]
    pub(super) max_message_size: bytesize::ByteSize,
    #[serde(default = "default_notification_attachments")]
    pub(super) notification_attachments: bytesize::ByteSize,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            auto_replies_per_recipient: default_per_recipient(),
            auto_replies_per_ticket: default_per_ticket(),
            auto_reply_window: default_window(),
            undeliverable_after: default_undeliverable_after(),
            max_message_size: default_max_message_size(),
            notification_attachments: default_notification_attachments(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDesk {
    pub(super) address: String,
    #[serde(default = "default_desk_name")]
    pub(super) name: String,
    #[serde(default = "default_subject_tag")]
    pub(super) subject_tag: String,
    pub(super) storage: PathBuf,
    pub(super) templates: PathBuf,
    #[serde(default)]
    pub(super) control_socket: Option<PathBuf>,
    #[serde(default = "default_first_ticket")]
    pub(super) first_ticket: u64,
    /// Mail to this address (or to help+comment@) from an agent is an internal comment.
    pub(super) comment_address: Option<String>,
    /// The SLA policy of tickets no rule gives one.
    pub(super) default_sla: Option<String>,
    /// The time zone the command line shows times in, and reports' days and
    /// months begin in (an IANA name such as "Europe/Berlin"; UTC if unset).
    pub(super) timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMailbox {
    pub(super) name: Option<String>,
    pub(super) host: String,
    pub(super) port: Option<u16>,
    #[serde(default = "default_tls")]
    pub(super) tls: TlsMode,
    #[serde(default)]
    pub(super) allow_insecure: bool,
    /// PEM certificates (an internal CA) trusted besides the system's.
    pub(super) ca_file: Option<PathBuf>,
    /// `sha256:` + the server certificate's fingerprint.
    pub(super) tls_pin: Option<String>,
    #[serde(default = "default_true")]
    pub(super) tls_verify: bool,
    pub(super) user: String,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_env: Option<String>,
    /// OAuth2 instead of a password: the program (argv, no shell) that
    /// prints an access token, or a file another program keeps fresh.
    pub(super) oauth2_token_command: Option<Vec<String>>,
    pub(super) oauth2_token_file: Option<PathBuf>,
    /// How long a token that is not a JWT (which says itself) is used.
    #[serde(default, with = "humantime_serde")]
    pub(super) oauth2_token_lifetime: Option<Duration>,
    #[serde(default = "default_folder")]
    pub(super) folder: String,
    #[serde(default)]
    pub(super) after_processing: AfterProcessingKind,
    pub(super) move_to: Option<String>,
    #[serde(default = "default_true")]
    pub(super) idle: bool,
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub(super) poll_interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub(super) timeout: Duration,
    #[serde(default = "default_batch_size")]
    pub(super) batch_size: u32,
    /// The most mail (by RFC822.SIZE) fetched and committed as one batch.
    #[serde(default = "default_batch_bytes")]
    pub(super) batch_bytes: bytesize::ByteSize,
    /// Team that owns tickets from this mailbox unless a rule says otherwise.
    pub(super) default_team: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum AfterProcessingKind {
    #[default]
    Seen,
    Move,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    pub(super) tls: TlsMode,
    #[serde(default)]
    pub(super) allow_insecure: bool,
    /// PEM certificates (an internal CA) trusted besides the system's.
    pub(super) ca_file: Option<PathBuf>,
    /// `sha256:` + the server certificate's fingerprint.
    pub(super) tls_pin: Option<String>,
    #[serde(default = "default_true")]
    pub(super) tls_verify: bool,
    pub(super) user: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_env: Option<String>,
    /// OAuth2 instead of a password: the program (argv, no shell) that
    /// prints an access token, or a file another program keeps fresh.
    pub(super) oauth2_token_command: Option<Vec<String>>,
    pub(super) oauth2_token_file: Option<PathBuf>,
    /// How long a token that is not a JWT (which says itself) is used.
    #[serde(default, with = "humantime_serde")]
    pub(super) oauth2_token_lifetime: Option<Duration>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub(super) timeout: Duration,
    /// Envelope sender (MAIL FROM); defaults to the help address so bounces come back to us.
    pub(super) envelope_from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbox {
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub(super) retry_initial: Duration,
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub(super) retry_max: Duration,
    #[serde(default = "default_max_attempts")]
    pub(super) max_attempts: u32,
    #[serde(default = "default_concurrency")]
    pub(super) concurrency: usize,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            max_attempts: default_max_attempts(),
            concurrency: default_concurrency(),
        }
    }
}

/// The OAuth2 keys of one `[[mailbox]]` or `[smtp]`, as written.
pub(super) struct RawOAuth2<'a> {
    pub(super) command: Option<&'a [String]>,
    pub(super) file: Option<&'a Path>,
    pub(super) lifetime: Option<Duration>,
}

impl RawOAuth2<'_> {
    /// Whether the table asks for OAuth2 at all (then no password is needed).
    pub(super) fn is_set(&self) -> bool {
        self.command.is_some() || self.file.is_some()
    }
}

/// The raw settings, as written in a `[[mailbox]]` or `[smtp]` table.
pub(super) struct RawTlsTrust<'a> {
    pub(super) tls: TlsMode,
    pub allow_insecure: bool,
    pub ca_file: Option<&'a Path>,
    pub tls_pin: Option<&'a str>,
    pub tls_verify: bool,
}
