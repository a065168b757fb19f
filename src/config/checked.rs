//! The checked configuration: what the rest of deskgate reads. Built only by
//! `check`, so every value here has been validated (paths absolute, secrets
//! loaded, names cross-checked).

use super::tls::TlsTrust;
use std::path::PathBuf;
use std::time::Duration;

use super::defaults::{
    default_max_message_size, default_notification_attachments, default_per_recipient,
    default_per_ticket, default_subject_tag, default_undeliverable_after, default_window,
};
pub use super::values::{Tier, TlsMode};

use crate::mail::address::EmailAddress;

/// The validated configuration. Paths are absolute (resolved against the config
/// file's folder), secrets are loaded, every combination has been checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub desk: Desk,
    pub mailboxes: Vec<MailboxConfig>,
    pub smtp: SmtpConfig,
    pub outbox: OutboxConfig,
    pub limits: Limits,
    pub teams: Vec<Team>,
    pub agents: Vec<Agent>,
    pub rules: Vec<super::rules::Rule>,
    pub trust: Trust,
    pub slas: Vec<super::sla::SlaPolicy>,
    pub timers: super::sla::Timers,
    /// Worth an admin's attention but no reason to refuse the file (a
    /// password file others can read): check-config prints them, the
    /// daemon logs them at start and on reload.
    pub warnings: Vec<String>,
    pub store: StoreConfig,
    pub retention: RetentionConfig,
    /// `[[digest]]`: reports mailed on a schedule.
    pub digests: Vec<Digest>,
    /// `[[queue]]`s: help addresses besides `[desk] address`, the default queue.
    pub queues: Vec<QueueConfig>,
}

/// One `[[queue]]`, checked: its address is received by `mailbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    pub address: EmailAddress,
    /// The From name of its mail; the desk's name when unset.
    pub display_name: Option<String>,
    /// The `[[mailbox]]` (by name) that receives the address.
    pub mailbox: String,
    pub default_team: Option<String>,
    pub default_sla: Option<String>,
    /// A folder whose templates replace the desk's, file by file.
    pub templates: Option<PathBuf>,
}

/// `[[digest]]`: which report goes to whom, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub name: String,
    pub to: Vec<DigestRecipient>,
    pub report: DigestReport,
    pub every: Every,
    /// A template in the templates folder (`digest.txt` by default).
    pub template: String,
}

/// One entry of a digest's `to`; teams are resolved when it is sent, so a
/// reload that changes a team changes who gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestRecipient {
    Address(EmailAddress),
    /// `team:NAME`: every member.
    Team(String),
    /// `lead:TEAM`: the team's lead.
    Lead(String),
}

/// Which report a digest carries, with the options of its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestReport {
    /// `deskgate report`; `last` absent means the time since the previous
    /// send time. `by` is one of the report's row names (checked).
    Report {
        last: Option<Duration>,
        by: Option<String>,
        team: Option<String>,
        agent: Option<String>,
        tag: Option<String>,
    },
    /// `deskgate recurring`.
    Recurring { last: Duration, min: usize },
}

/// When a digest goes: `day 08:00`, `monday 08:00`, `1st 08:00` (in the
/// desk's time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub on: EveryOn,
    pub hour: u32,
    pub minute: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EveryOn {
    Day,
    Week(chrono::Weekday),
    /// The day of the month, 1 to 28 (every month has it).
    Month(u32),
}

/// `[retention]`: how old raw mail, delivery logs and dedupe keys get before
/// `prune` (and the daemon's daily pass) removes them; None keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    pub raw_mail_after: Option<Duration>,
    pub delivery_logs_after: Option<Duration>,
    pub dedupe_keys_after: Option<Duration>,
}

/// How the store is opened: the sled cache is most of the daemon's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub cache_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub name: String,
    pub tier: Tier,
    /// Every agent in the team, whether listed here or in the agent's `teams`.
    pub members: Vec<EmailAddress>,
    pub escalates_to: Option<String>,
    pub lead: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub address: EmailAddress,
    pub name: Option<String>,
    pub teams: Vec<String>,
    /// Overrides `[trust] commands_need_signed_reply` for this agent.
    pub commands_need_signed_reply: Option<bool>,
    /// The Unix user who acts as this agent at the command line when they
    /// name nobody with `--as`, so the trail names the agent, not
    /// `cli:<user>`; no two agents share one.
    pub login: Option<String>,
}

/// Loop and abuse limits (issue: no loops, no lost mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most automatic mails one address gets per window.
    pub auto_replies_per_recipient: u32,
    /// Most automatic mails one ticket sends per window.
    pub auto_replies_per_ticket: u32,
    pub auto_reply_window: Duration,
    /// Hard bounces in a row after which an address gets no more automatic mail.
    pub undeliverable_after: u32,
    /// Larger mails keep their text but not their attachments.
    pub max_message_size: u64,
    /// Most bytes of a requester's files one agent notification carries
    /// (0: none); the files beyond it are named in its text.
    pub notification_attachments: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auto_replies_per_recipient: default_per_recipient(),
            auto_replies_per_ticket: default_per_ticket(),
            auto_reply_window: default_window(),
            undeliverable_after: default_undeliverable_after(),
            max_message_size: default_max_message_size().as_u64(),
            notification_attachments: default_notification_attachments().as_u64(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Desk {
    pub address: EmailAddress,
    pub name: String,
    pub subject_tag: SubjectTag,
    pub storage: PathBuf,
    pub templates: PathBuf,
    pub control_socket: PathBuf,
    pub first_ticket: u64,
    pub comment_address: Option<EmailAddress>,
    pub default_sla: Option<String>,
    /// Where the command line's times are shown (and report days begin).
    pub timezone: chrono_tz::Tz,
}

/// The subject token format, split around `{id}` so it can be both rendered and recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTag {
    pub prefix: String,
    pub suffix: String,
}

impl SubjectTag {
    pub fn parse(tag: &str) -> Option<SubjectTag> {
        let (prefix, suffix) = tag.split_once("{id}")?;
        if suffix.contains("{id}") || prefix.trim().is_empty() {
            return None;
        }
        if tag.chars().any(|c| c.is_control()) {
            return None;
        }
        Some(SubjectTag {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    pub fn render(&self, id: u64) -> String {
        format!("{}{}{}", self.prefix, id, self.suffix)
    }
}

impl Default for SubjectTag {
    fn default() -> Self {
        SubjectTag::parse(&default_subject_tag()).expect("default tag is valid")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterProcessing {
    /// Set `\Seen` and leave the mail where it is.
    FlagSeen,
    /// Move the mail to this folder (created if missing).
    MoveTo(String),
}

#[derive(Clone)]
pub struct MailboxConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_trust: TlsTrust,
    pub user: String,
    pub password: String,
    /// Log in with an OAuth2 token instead of `password`.
    pub oauth2: Option<OAuth2>,
    pub folder: String,
    pub after_processing: AfterProcessing,
    pub idle: bool,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub batch_size: u32,
    /// Bytes (by RFC822.SIZE) per batch; a larger mail is a batch of its own.
    pub batch_bytes: u64,
    pub default_team: Option<String>,
}

impl std::fmt::Debug for MailboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_trust", &self.tls_trust)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("oauth2", &self.oauth2)
            .field("folder", &self.folder)
            .field("after_processing", &self.after_processing)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_trust: TlsTrust,
    pub credentials: Option<(String, String)>,
    /// AUTH as this user with an OAuth2 token (instead of `credentials`).
    pub oauth2: Option<(String, OAuth2)>,
    pub timeout: Duration,
    pub envelope_from: EmailAddress,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_trust", &self.tls_trust)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("oauth2", &self.oauth2)
            .field("envelope_from", &self.envelope_from)
            .finish_non_exhaustive()
    }
}

/// Where an OAuth2 access token comes from; daemon/oauth2.rs fetches and
/// caches it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// A program and its arguments, run without a shell; its stdout is the token.
    Command(Vec<String>),
    /// A file holding the token, kept fresh by something else.
    File(std::path::PathBuf),
}

/// Only the program is shown: arguments may carry a client secret.
impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Command(argv) => {
                write!(
                    f,
                    "Command({:?} …)",
                    argv.first().map_or("", |s| s.as_str())
                )
            }
            TokenSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    pub source: TokenSource,
    /// How long a token that is not a JWT is used before it is fetched again.
    pub lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
}

/// How agents prove their mail is theirs (see `trust`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Servers whose Authentication-Results headers are believed.
    pub authserv_ids: Vec<String>,
    /// Put keyed per-ticket reply addresses in notifications' Reply-To.
    pub signed_reply_addresses: bool,
    /// A DKIM/DMARC pass for a subdomain of an agent's domain counts too.
    pub allow_subdomains: bool,
    /// Commands run only from mail sent to the signed reply address: a
    /// DKIM/DMARC pass proves the domain, not the person.
    pub commands_need_signed_reply: bool,
    /// How long the previous reply key still verifies after a rotation.
    pub key_rotation_grace: Duration,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            authserv_ids: Vec::new(),
            signed_reply_addresses: true,
            allow_subdomains: false,
            commands_need_signed_reply: false,
            key_rotation_grace: Duration::from_secs(7 * 86_400),
        }
    }
}
