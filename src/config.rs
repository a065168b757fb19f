//! The configuration file: raw TOML structures, and the checked form the rest of
//! the daemon uses.
//!
//! Everything an admin can get wrong is caught here, once, at load: the rest of
//! the code takes a [`Config`] and never re-validates. Errors name the file, the
//! line and the key, because the person reading them is editing that file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::address::EmailAddress;

/// Why a config file could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}", format_invalid(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One semantic problem in an otherwise well-formed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `mailbox[0].tls`.
    pub key: String,
    /// 1-based line of the key in the file, when it could be located.
    pub line: Option<usize>,
    pub message: String,
}

fn format_invalid(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{}:{}: {}: {}", path.display(), line, p.key, p.message),
            None => format!("{}: {}: {}", path.display(), p.key, p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Raw file structures: exactly what the TOML says, nothing derived.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    desk: RawDesk,
    #[serde(default, rename = "mailbox")]
    mailboxes: Vec<RawMailbox>,
    smtp: RawSmtp,
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, rename = "team")]
    teams: Vec<RawTeam>,
    #[serde(default, rename = "agent")]
    agents: Vec<RawAgent>,
    #[serde(default, rename = "rule")]
    rules: Vec<crate::rules::RawRule>,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default, rename = "calendar")]
    calendars: Vec<RawCalendar>,
    #[serde(default, rename = "sla")]
    slas: Vec<RawSla>,
    #[serde(default)]
    timers: RawTimers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    name: String,
    timezone: String,
    /// Monday to Friday, unless a day says otherwise.
    weekdays: Option<String>,
    monday: Option<String>,
    tuesday: Option<String>,
    wednesday: Option<String>,
    thursday: Option<String>,
    friday: Option<String>,
    saturday: Option<String>,
    sunday: Option<String>,
    #[serde(default)]
    holidays: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    #[serde(default, with = "humantime_serde")]
    low: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    normal: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    high: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    urgent: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSla {
    name: String,
    /// A [[calendar]] name, or "24x7" (the default).
    calendar: Option<String>,
    #[serde(default = "default_warn_percent")]
    warn_at_percent: u32,
    #[serde(default)]
    first_response: RawTargets,
    #[serde(default)]
    resolution: RawTargets,
}

fn default_warn_percent() -> u32 {
    80
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimers {
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    check_interval: Duration,
    #[serde(default = "default_remind", with = "humantime_serde")]
    waiting_reminder_after: Duration,
    #[serde(default = "default_waiting_close", with = "humantime_serde")]
    waiting_close_after: Duration,
    #[serde(default = "default_resolved_close", with = "humantime_serde")]
    resolved_close_after: Duration,
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

fn default_check_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_remind() -> Duration {
    Duration::from_secs(3 * 86400)
}
fn default_waiting_close() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_resolved_close() -> Duration {
    Duration::from_secs(3 * 86400)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    authserv_ids: Vec<String>,
    #[serde(default = "default_true")]
    signed_reply_addresses: bool,
}

impl Default for RawTrust {
    fn default() -> Self {
        RawTrust {
            authserv_ids: Vec::new(),
            signed_reply_addresses: true,
        }
    }
}

/// How agents prove their mail is theirs (see `trust`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Servers whose Authentication-Results headers are believed.
    pub authserv_ids: Vec<String>,
    /// Put keyed per-ticket reply addresses in notifications' Reply-To.
    pub signed_reply_addresses: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            authserv_ids: Vec::new(),
            signed_reply_addresses: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    name: String,
    #[serde(default)]
    tier: Tier,
    #[serde(default)]
    members: Vec<String>,
    escalates_to: Option<String>,
    lead: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    address: String,
    name: Option<String>,
    #[serde(default)]
    teams: Vec<String>,
}

/// Support tier: tickets escalate from L1 to L2 to L3.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
pub enum Tier {
    #[default]
    L1,
    L2,
    L3,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "default_per_recipient")]
    auto_replies_per_recipient: u32,
    #[serde(default = "default_per_ticket")]
    auto_replies_per_ticket: u32,
    #[serde(default = "default_window", with = "humantime_serde")]
    auto_reply_window: Duration,
    #[serde(default = "default_undeliverable_after")]
    undeliverable_after: u32,
    #[serde(default = "default_max_message_size")]
    max_message_size: bytesize::ByteSize,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            auto_replies_per_recipient: default_per_recipient(),
            auto_replies_per_ticket: default_per_ticket(),
            auto_reply_window: default_window(),
            undeliverable_after: default_undeliverable_after(),
            max_message_size: default_max_message_size(),
        }
    }
}

fn default_per_recipient() -> u32 {
    // Enough for a person opening several tickets in an hour; few enough
    // that a runaway autoresponder gets a handful of mails, not thousands.
    5
}
fn default_per_ticket() -> u32 {
    3
}
fn default_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_undeliverable_after() -> u32 {
    3
}
fn default_max_message_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(25)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesk {
    address: String,
    #[serde(default = "default_desk_name")]
    name: String,
    #[serde(default = "default_subject_tag")]
    subject_tag: String,
    storage: PathBuf,
    templates: PathBuf,
    #[serde(default)]
    control_socket: Option<PathBuf>,
    #[serde(default = "default_first_ticket")]
    first_ticket: u64,
    /// Mail to this address (or to help+comment@) from an agent is an internal comment.
    comment_address: Option<String>,
    /// The SLA policy of tickets no rule gives one.
    default_sla: Option<String>,
}

fn default_desk_name() -> String {
    "Help Desk".into()
}
fn default_subject_tag() -> String {
    "[#{id}]".into()
}
fn default_first_ticket() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS before login.
    Starttls,
    /// No encryption: only for loopback unless `allow_insecure` is set.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    name: Option<String>,
    host: String,
    port: Option<u16>,
    #[serde(default = "default_tls")]
    tls: TlsMode,
    #[serde(default)]
    allow_insecure: bool,
    user: String,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    #[serde(default = "default_folder")]
    folder: String,
    #[serde(default)]
    after_processing: AfterProcessingKind,
    move_to: Option<String>,
    #[serde(default = "default_true")]
    idle: bool,
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    poll_interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_batch_size")]
    batch_size: u32,
    /// Team that owns tickets from this mailbox unless a rule says otherwise.
    default_team: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum AfterProcessingKind {
    #[default]
    Seen,
    Move,
}

fn default_tls() -> TlsMode {
    TlsMode::Implicit
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_true() -> bool {
    true
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_batch_size() -> u32 {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    tls: TlsMode,
    #[serde(default)]
    allow_insecure: bool,
    user: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    /// Envelope sender (MAIL FROM); defaults to the help address so bounces come back to us.
    envelope_from: Option<String>,
}

fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    retry_initial: Duration,
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    retry_max: Duration,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
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

fn default_retry_initial() -> Duration {
    Duration::from_secs(5)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_max_attempts() -> u32 {
    // With 5 s doubling to a 15 min cap this is roughly two days of trying.
    200
}
fn default_concurrency() -> usize {
    4
}

// ---------------------------------------------------------------------------
// Checked configuration.
// ---------------------------------------------------------------------------

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
    pub rules: Vec<crate::rules::Rule>,
    pub trust: Trust,
    pub slas: Vec<crate::sla::SlaPolicy>,
    pub timers: crate::sla::Timers,
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auto_replies_per_recipient: default_per_recipient(),
            auto_replies_per_ticket: default_per_ticket(),
            auto_reply_window: default_window(),
            undeliverable_after: default_undeliverable_after(),
            max_message_size: default_max_message_size().as_u64(),
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
    pub user: String,
    pub password: String,
    pub folder: String,
    pub after_processing: AfterProcessing,
    pub idle: bool,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub batch_size: u32,
    pub default_team: Option<String>,
}

impl std::fmt::Debug for MailboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
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
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
    pub envelope_from: EmailAddress,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("envelope_from", &self.envelope_from)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// Parses config text as if it were read from `path` (which anchors relative paths).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of_offset(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut v = Validator {
            problems: Vec::new(),
        };
        let config = v.check(raw, &base, path);
        if v.problems.is_empty() {
            if let Some(config) = config {
                return Ok(config);
            }
        }
        let lines = KeyLines::new(text);
        let problems = v
            .problems
            .into_iter()
            .map(|mut p| {
                p.line = lines.line_of(&p.key);
                p
            })
            .collect();
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Where the store and the control socket are, read without validating the
/// rest of the file: the CLI must still reach a running daemon while an admin
/// is halfway through a broken edit.
#[derive(Debug, Clone)]
pub struct Locations {
    pub storage: PathBuf,
    pub control_socket: PathBuf,
}

impl Locations {
    pub fn load(path: &Path) -> Result<Locations, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let syntax = |line: usize, message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        let value: toml::Table = toml::from_str(&text).map_err(|e| {
            syntax(
                e.span()
                    .map(|s| line_of_offset(&text, s.start))
                    .unwrap_or(1),
                e.message().to_string(),
            )
        })?;
        let desk = value.get("desk").and_then(|d| d.as_table());
        let get = |k: &str| {
            desk.and_then(|d| d.get(k))
                .and_then(|v| v.as_str())
                .map(PathBuf::from)
        };
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let storage =
            base.join(get("storage").ok_or_else(|| syntax(1, "desk.storage is missing".into()))?);
        let control_socket = get("control_socket")
            .map(|p| base.join(p))
            .unwrap_or_else(|| storage.join("control.sock"));
        Ok(Locations {
            storage,
            control_socket,
        })
    }
}

struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            line: None,
            message: message.into(),
        });
    }

    fn check(&mut self, raw: RawConfig, base: &Path, path: &Path) -> Option<Config> {
        let address = match EmailAddress::parse(&raw.desk.address) {
            Some(a) => Some(a),
            None => {
                self.problem("desk.address", "is not an email address");
                None
            }
        };
        let subject_tag = SubjectTag::parse(&raw.desk.subject_tag);
        if subject_tag.is_none() {
            self.problem(
                "desk.subject_tag",
                "must contain {id} exactly once, with non-blank text before it and no control characters",
            );
        }
        if raw.desk.name.chars().any(char::is_control) {
            self.problem("desk.name", "must not contain control characters");
        }
        let storage = base.join(&raw.desk.storage);
        let templates = base.join(&raw.desk.templates);
        if !templates.is_dir() {
            self.problem(
                "desk.templates",
                format!("folder {} does not exist", templates.display()),
            );
        }
        let comment_address = match &raw.desk.comment_address {
            Some(a) => {
                let parsed = EmailAddress::parse(a);
                if parsed.is_none() {
                    self.problem("desk.comment_address", "is not an email address");
                }
                parsed
            }
            None => None,
        };
        let control_socket = raw
            .desk
            .control_socket
            .map(|p| base.join(p))
            .unwrap_or_else(|| storage.join("control.sock"));

        if raw.mailboxes.is_empty() {
            self.problem("mailbox", "at least one [[mailbox]] is needed");
        }
        let mut mailboxes = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, m) in raw.mailboxes.into_iter().enumerate() {
            let key = format!("mailbox[{i}]");
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| format!("{}/{}", m.user, m.folder));
            if !names.insert(name.clone()) {
                self.problem(format!("{key}.name"), format!("\"{name}\" is used twice"));
            }
            self.check_tls(&key, &m.host, m.tls, m.allow_insecure);
            let password = self.secret(
                &key,
                m.password_file.as_deref(),
                m.password_env.as_deref(),
                base,
                true,
            );
            let after_processing = match (m.after_processing, m.move_to) {
                (AfterProcessingKind::Seen, None) => AfterProcessing::FlagSeen,
                (AfterProcessingKind::Seen, Some(_)) => {
                    self.problem(
                        format!("{key}.move_to"),
                        "only makes sense with after_processing = \"move\"",
                    );
                    AfterProcessing::FlagSeen
                }
                (AfterProcessingKind::Move, Some(folder))
                    if !folder.trim().is_empty() && folder != m.folder =>
                {
                    AfterProcessing::MoveTo(folder)
                }
                (AfterProcessingKind::Move, _) => {
                    self.problem(
                        format!("{key}.after_processing"),
                        "\"move\" needs move_to = \"FOLDER\", a folder other than the one polled",
                    );
                    AfterProcessing::FlagSeen
                }
            };
            if m.batch_size == 0 || m.batch_size > 10_000 {
                self.problem(format!("{key}.batch_size"), "must be between 1 and 10000");
            }
            if m.timeout.is_zero() {
                self.problem(format!("{key}.timeout"), "must be more than zero");
            }
            if m.poll_interval < Duration::from_millis(100) {
                self.problem(format!("{key}.poll_interval"), "must be at least 100ms");
            }
            if imap_quoted_string_unsafe(&m.folder) {
                self.problem(
                    format!("{key}.folder"),
                    "must not contain quotes, backslashes or control characters",
                );
            }
            if let AfterProcessing::MoveTo(f) = &after_processing {
                if imap_quoted_string_unsafe(f) {
                    self.problem(
                        format!("{key}.move_to"),
                        "must not contain quotes, backslashes or control characters",
                    );
                }
            }
            let port = m.port.unwrap_or(match m.tls {
                TlsMode::Implicit => 993,
                _ => 143,
            });
            mailboxes.push(MailboxConfig {
                name,
                host: m.host,
                port,
                tls: m.tls,
                user: m.user,
                password: password.unwrap_or_default(),
                folder: m.folder,
                after_processing,
                idle: m.idle,
                poll_interval: m.poll_interval,
                timeout: m.timeout,
                batch_size: m.batch_size,
                default_team: m.default_team,
            });
        }

        let s = raw.smtp;
        self.check_tls("smtp", &s.host, s.tls, s.allow_insecure);
        let credentials = match &s.user {
            Some(user) => self
                .secret(
                    "smtp",
                    s.password_file.as_deref(),
                    s.password_env.as_deref(),
                    base,
                    true,
                )
                .map(|p| (user.clone(), p)),
            None => {
                if s.password_file.is_some() || s.password_env.is_some() {
                    self.problem("smtp.user", "a password is set but no user");
                }
                None
            }
        };
        let envelope_from = match &s.envelope_from {
            Some(e) => {
                let parsed = EmailAddress::parse(e);
                if parsed.is_none() {
                    self.problem("smtp.envelope_from", "is not an email address");
                }
                parsed
            }
            None => address.clone(),
        };
        let port = s.port.unwrap_or(match s.tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        });
        if s.timeout.is_zero() {
            self.problem("smtp.timeout", "must be more than zero");
        }

        let (teams, agents) = self.check_teams(raw.teams, raw.agents);
        let team_names: Vec<String> = teams.iter().map(|t| t.name.clone()).collect();
        for (i, m) in mailboxes.iter().enumerate() {
            if let Some(t) = &m.default_team {
                if !team_names.contains(t) {
                    self.problem(
                        format!("mailbox[{i}].default_team"),
                        format!("unknown team \"{t}\""),
                    );
                }
            }
        }
        let slas = self.check_slas(raw.calendars, raw.slas);
        let sla_names: Vec<String> = slas.iter().map(|s| s.name.clone()).collect();
        if let Some(d) = &raw.desk.default_sla {
            if !sla_names.contains(d) {
                self.problem("desk.default_sla", format!("unknown SLA policy \"{d}\""));
            }
        }
        if raw.timers.check_interval < Duration::from_millis(100) {
            self.problem("timers.check_interval", "must be at least 100ms");
        }
        if raw.timers.waiting_close_after < raw.timers.waiting_reminder_after {
            self.problem(
                "timers.waiting_close_after",
                "must not be before waiting_reminder_after",
            );
        }
        let agent_addresses: Vec<EmailAddress> = agents.iter().map(|a| a.address.clone()).collect();
        let mut rule_problems = Vec::new();
        let rules = crate::rules::compile(
            raw.rules,
            &crate::rules::Known {
                teams: &team_names,
                slas: &sla_names,
                agents: &agent_addresses,
                templates: &templates,
            },
            &mut rule_problems,
        );
        for (k, m) in rule_problems {
            self.problem(k, m);
        }

        let l = raw.limits;
        if l.auto_reply_window.is_zero() {
            self.problem("limits.auto_reply_window", "must be more than zero");
        }
        if l.undeliverable_after == 0 {
            self.problem("limits.undeliverable_after", "must be at least 1");
        }
        if l.max_message_size.as_u64() < 64 * 1024 {
            self.problem("limits.max_message_size", "must be at least 64 KiB");
        }
        let limits = Limits {
            auto_replies_per_recipient: l.auto_replies_per_recipient,
            auto_replies_per_ticket: l.auto_replies_per_ticket,
            auto_reply_window: l.auto_reply_window,
            undeliverable_after: l.undeliverable_after,
            max_message_size: l.max_message_size.as_u64(),
        };

        let o = raw.outbox;
        if o.retry_initial.is_zero() || o.retry_max < o.retry_initial {
            self.problem("outbox.retry_max", "needs 0 < retry_initial <= retry_max");
        }
        if o.concurrency == 0 || o.concurrency > 64 {
            self.problem("outbox.concurrency", "must be between 1 and 64");
        }
        if o.max_attempts == 0 {
            self.problem("outbox.max_attempts", "must be at least 1");
        }

        Some(Config {
            path: path.to_path_buf(),
            desk: Desk {
                address: address?,
                name: raw.desk.name,
                subject_tag: subject_tag?,
                storage,
                templates,
                control_socket,
                first_ticket: raw.desk.first_ticket,
                comment_address,
                default_sla: raw.desk.default_sla.clone(),
            },
            mailboxes,
            smtp: SmtpConfig {
                host: s.host,
                port,
                tls: s.tls,
                credentials,
                timeout: s.timeout,
                envelope_from: envelope_from?,
            },
            outbox: OutboxConfig {
                retry_initial: o.retry_initial,
                retry_max: o.retry_max,
                max_attempts: o.max_attempts,
                concurrency: o.concurrency,
            },
            limits,
            teams,
            agents,
            rules,
            trust: Trust {
                authserv_ids: raw.trust.authserv_ids,
                signed_reply_addresses: raw.trust.signed_reply_addresses,
            },
            slas,
            timers: crate::sla::Timers {
                check_interval: raw.timers.check_interval,
                waiting_reminder_after: raw.timers.waiting_reminder_after,
                waiting_close_after: raw.timers.waiting_close_after,
                resolved_close_after: raw.timers.resolved_close_after,
            },
        })
    }

    fn check_slas(
        &mut self,
        raw_calendars: Vec<RawCalendar>,
        raw_slas: Vec<RawSla>,
    ) -> Vec<crate::sla::SlaPolicy> {
        use crate::calendar::{parse_windows, BusinessHours, Calendar};
        let mut calendars: Vec<(String, Calendar)> = Vec::new();
        for (i, c) in raw_calendars.into_iter().enumerate() {
            let key = format!("calendar[{i}]");
            let tz = match c.timezone.parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    self.problem(
                        format!("{key}.timezone"),
                        format!(
                            "unknown time zone \"{}\" (e.g. \"Europe/Berlin\")",
                            c.timezone
                        ),
                    );
                    continue;
                }
            };
            let mut week: [Vec<(chrono::NaiveTime, chrono::NaiveTime)>; 7] = Default::default();
            let days = [
                &c.monday,
                &c.tuesday,
                &c.wednesday,
                &c.thursday,
                &c.friday,
                &c.saturday,
                &c.sunday,
            ];
            let names = [
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ];
            for (d, (spec, name)) in days.iter().zip(names).enumerate() {
                let spec = spec
                    .as_deref()
                    .or(if d < 5 { c.weekdays.as_deref() } else { None });
                if let Some(spec) = spec {
                    match parse_windows(spec) {
                        Ok(w) => week[d] = w,
                        Err(e) => self.problem(format!("{key}.{name}"), e),
                    }
                }
            }
            if week.iter().all(|w| w.is_empty()) {
                self.problem(
                    format!("{key}.weekdays"),
                    "the calendar has no working hours at all",
                );
            }
            let mut holidays = std::collections::BTreeSet::new();
            for h in &c.holidays {
                match h.parse::<chrono::NaiveDate>() {
                    Ok(d) => {
                        holidays.insert(d);
                    }
                    Err(_) => self.problem(
                        format!("{key}.holidays"),
                        format!("\"{h}\" is not a date (YYYY-MM-DD)"),
                    ),
                }
            }
            calendars.push((
                c.name,
                Calendar::Business(BusinessHours { tz, week, holidays }),
            ));
        }
        let mut slas = Vec::new();
        for (i, r) in raw_slas.into_iter().enumerate() {
            let key = format!("sla[{i}]");
            let calendar = match r.calendar.as_deref() {
                None | Some("24x7") => Calendar::Always,
                Some(name) => match calendars.iter().find(|(n, _)| n == name) {
                    Some((_, c)) => c.clone(),
                    None => {
                        self.problem(
                            format!("{key}.calendar"),
                            format!("unknown calendar \"{name}\""),
                        );
                        Calendar::Always
                    }
                },
            };
            if r.warn_at_percent == 0 || r.warn_at_percent >= 100 {
                self.problem(format!("{key}.warn_at_percent"), "must be between 1 and 99");
            }
            let table = |t: &RawTargets| -> std::collections::BTreeMap<
                crate::model::Priority,
                chrono::Duration,
            > {
                use crate::model::Priority::*;
                [
                    (Low, t.low),
                    (Normal, t.normal),
                    (High, t.high),
                    (Urgent, t.urgent),
                ]
                .into_iter()
                .filter_map(|(p, d)| Some((p, chrono::Duration::from_std(d?).ok()?)))
                .collect()
            };
            slas.push(crate::sla::SlaPolicy {
                name: r.name,
                calendar,
                first_response: table(&r.first_response),
                resolution: table(&r.resolution),
                warn_at_percent: r.warn_at_percent,
            });
        }
        slas
    }

    fn check_teams(
        &mut self,
        raw_teams: Vec<RawTeam>,
        raw_agents: Vec<RawAgent>,
    ) -> (Vec<Team>, Vec<Agent>) {
        let mut agents: Vec<Agent> = Vec::new();
        for (i, a) in raw_agents.into_iter().enumerate() {
            let Some(address) = EmailAddress::parse(&a.address) else {
                self.problem(
                    format!("agent[{i}].address"),
                    format!("\"{}\" is not an email address", a.address),
                );
                continue;
            };
            if agents.iter().any(|x| x.address == address) {
                self.problem(
                    format!("agent[{i}].address"),
                    format!("{address} is listed twice"),
                );
                continue;
            }
            agents.push(Agent {
                address,
                name: a.name,
                teams: a.teams,
            });
        }
        let names: Vec<String> = raw_teams.iter().map(|t| t.name.clone()).collect();
        let mut teams: Vec<Team> = Vec::new();
        for (i, t) in raw_teams.iter().enumerate() {
            let key = format!("team[{i}]");
            if t.name.trim().is_empty()
                || t.name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                self.problem(format!("{key}.name"), "must be one word");
            }
            if names.iter().filter(|n| **n == t.name).count() > 1
                && names.iter().position(|n| *n == t.name) != Some(i)
            {
                self.problem(
                    format!("{key}.name"),
                    format!("team \"{}\" is defined twice", t.name),
                );
            }
            let mut members = Vec::new();
            for (j, m) in t.members.iter().enumerate() {
                match EmailAddress::parse(m).filter(|a| agents.iter().any(|x| x.address == *a)) {
                    Some(a) => members.push(a),
                    None => self.problem(
                        format!("{key}.members"),
                        format!(
                            "member {j} (\"{m}\") is not a known agent: list it under [[agent]]"
                        ),
                    ),
                }
            }
            for a in &agents {
                if a.teams.contains(&t.name) && !members.contains(&a.address) {
                    members.push(a.address.clone());
                }
            }
            if let Some(e) = &t.escalates_to {
                match raw_teams.iter().find(|x| x.name == *e) {
                    None => self.problem(format!("{key}.escalates_to"), format!("unknown team \"{e}\"")),
                    Some(target) if target.tier <= t.tier => self.problem(
                        format!("{key}.escalates_to"),
                        format!(
                            "team \"{}\" ({:?}) escalates to \"{e}\" ({:?}): escalation must go to a higher tier",
                            t.name, t.tier, target.tier
                        ),
                    ),
                    Some(_) => {}
                }
            }
            let lead = match &t.lead {
                Some(l) => {
                    let parsed = EmailAddress::parse(l);
                    if parsed.is_none() {
                        self.problem(
                            format!("{key}.lead"),
                            format!("\"{l}\" is not an email address"),
                        );
                    }
                    parsed
                }
                None => None,
            };
            teams.push(Team {
                name: t.name.clone(),
                tier: t.tier,
                members,
                escalates_to: t.escalates_to.clone(),
                lead,
            });
        }
        for (i, a) in agents.iter().enumerate() {
            for t in &a.teams {
                if !names.contains(t) {
                    self.problem(format!("agent[{i}].teams"), format!("unknown team \"{t}\""));
                }
            }
        }
        (teams, agents)
    }

    fn check_tls(&mut self, key: &str, host: &str, tls: TlsMode, allow_insecure: bool) {
        if host.trim().is_empty() {
            self.problem(format!("{key}.host"), "must not be empty");
        }
        if tls == TlsMode::None && !allow_insecure && !is_loopback(host) {
            self.problem(
                format!("{key}.tls"),
                format!(
                    "\"none\" sends passwords and mail in clear text to {host}; it is allowed only for loopback hosts unless allow_insecure = true"
                ),
            );
        }
    }

    /// Loads a password from exactly one of a file or an environment variable.
    fn secret(
        &mut self,
        key: &str,
        file: Option<&Path>,
        env: Option<&str>,
        base: &Path,
        required: bool,
    ) -> Option<String> {
        match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{key}.password_file"),
                    "set password_file or password_env, not both",
                );
                None
            }
            (Some(file), None) => {
                let p = base.join(file);
                match std::fs::read_to_string(&p) {
                    Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
                    Err(e) => {
                        self.problem(
                            format!("{key}.password_file"),
                            format!("cannot read {}: {e}", p.display()),
                        );
                        None
                    }
                }
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.problem(
                        format!("{key}.password_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            },
            (None, None) => {
                if required {
                    self.problem(
                        format!("{key}.password_file"),
                        "a password is needed: set password_file or password_env",
                    );
                }
                None
            }
        }
    }
}

/// Folder names go into IMAP quoted strings; refusing the few characters that
/// would need escaping keeps command building trivial and injection-free.
fn imap_quoted_string_unsafe(s: &str) -> bool {
    s.is_empty() || s.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Maps key paths such as `mailbox[1].tls` to lines of the file, so semantic
/// errors can point at a line even though serde has forgotten where values were.
struct KeyLines<'a> {
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> KeyLines<'a> {
    fn new(text: &'a str) -> Self {
        KeyLines {
            text,
            doc: toml_edit::ImDocument::parse(text).ok(),
        }
    }

    /// Walks the path as far as the file has it; the deepest key found gives the line.
    fn line_of(&self, key: &str) -> Option<usize> {
        use toml_edit::{Item, TableLike, Value};
        let doc = self.doc.as_ref()?;
        let mut table: &dyn TableLike = doc.as_table();
        let mut best = None;
        for seg in key.split('.') {
            let (name, index) = match seg.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (seg, None),
            };
            let Some((k, item)) = table.get_key_value(name) else {
                break;
            };
            best = k.span().or(best);
            match (item, index) {
                (Item::ArrayOfTables(a), Some(i)) => {
                    let Some(t) = a.get(i) else { break };
                    best = t.span().or(best);
                    table = t;
                }
                (Item::Table(t), None) => table = t,
                (Item::Value(Value::InlineTable(t)), None) => table = t,
                _ => break,
            }
        }
        best.map(|s| line_of_offset(self.text, s.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_env(dir: &Path) {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
    }

    const GOOD: &str = r#"
[desk]
address = "help@desk.test"
storage = "state"
templates = "templates"

[[mailbox]]
host = "127.0.0.1"
port = 1143
tls = "none"
user = "help@desk.test"
password_file = "pw"

[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
"#;

    #[test]
    fn good_config_loads_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let c = Config::from_str_at(GOOD, &dir.path().join("deskgate.toml")).unwrap();
        assert_eq!(c.mailboxes[0].password, "secret");
        assert_eq!(c.mailboxes[0].after_processing, AfterProcessing::FlagSeen);
        assert_eq!(c.desk.subject_tag.render(7), "[#7]");
        assert_eq!(c.smtp.envelope_from.as_str(), "help@desk.test");
        assert_eq!(c.desk.storage, dir.path().join("state"));
    }

    #[test]
    fn unknown_key_names_line() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = GOOD.replace("port = 2525", "port = 2525\ncolour = \"blue\"");
        let err = Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("d.toml:17"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn insecure_remote_host_is_refused_with_line() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = GOOD.replacen("host = \"127.0.0.1\"", "host = \"imap.example.com\"", 1);
        let err = Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("d.toml:10: mailbox[0].tls"), "{msg}");
        assert!(msg.contains("loopback"), "{msg}");
    }

    #[test]
    fn missing_password_and_bad_tag_are_both_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = GOOD
            .replace("password_file = \"pw\"", "password_file = \"nope\"")
            .replace(
                "templates = \"templates\"",
                "templates = \"templates\"\nsubject_tag = \"[ticket]\"",
            );
        let msg = Config::from_str_at(&text, &dir.path().join("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("mailbox[0].password_file: cannot read"),
            "{msg}"
        );
        assert!(msg.contains("d.toml:6: desk.subject_tag"), "{msg}");
    }

    #[test]
    fn move_needs_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = GOOD.replace(
            "password_file = \"pw\"",
            "password_file = \"pw\"\nafter_processing = \"move\"",
        );
        let msg = Config::from_str_at(&text, &dir.path().join("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("after_processing"), "{msg}");
    }

    #[test]
    fn limits_parse_sizes_and_durations() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = format!(
            "{GOOD}\n[limits]\nmax_message_size = \"10 MiB\"\nauto_reply_window = \"30m\"\n"
        );
        let c = Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap();
        assert_eq!(c.limits.max_message_size, 10 * 1024 * 1024);
        assert_eq!(c.limits.auto_reply_window, Duration::from_secs(1800));
        assert_eq!(c.limits.auto_replies_per_recipient, 5);
        let bad = format!("{GOOD}\n[limits]\nmax_message_size = \"1 KB\"\n");
        let msg = Config::from_str_at(&bad, &dir.path().join("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("limits.max_message_size"), "{msg}");
    }

    const TEAMS: &str = r#"
[[agent]]
address = "alice@desk.test"
name = "Alice"
teams = ["it"]

[[agent]]
address = "bob@desk.test"

[[team]]
name = "it"
tier = "L1"
members = ["bob@desk.test"]
escalates_to = "it-l2"

[[team]]
name = "it-l2"
tier = "L2"

[[rule]]
name = "VIP"
[[rule.when]]
field = "from_domain"
equals = "bigcorp.com"
[rule.set]
team = "it-l2"
priority = "high"
"#;

    #[test]
    fn teams_agents_and_rules_load() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let c = Config::from_str_at(&format!("{GOOD}{TEAMS}"), &dir.path().join("d.toml")).unwrap();
        let it = &c.teams[0];
        assert_eq!(it.members.len(), 2, "members from both sides: {it:?}");
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].team.as_deref(), Some("it-l2"));
    }

    #[test]
    fn bad_rules_and_teams_name_file_line_and_rule() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = format!("{GOOD}{TEAMS}")
            .replace("equals = \"bigcorp.com\"", "regex = \"(unclosed\"")
            .replace("team = \"it-l2\"\npriority", "team = \"sales\"\npriority")
            .replace("escalates_to = \"it-l2\"", "escalates_to = \"it\"")
            .replace(
                "members = [\"bob@desk.test\"]",
                "members = [\"carol@desk.test\"]",
            );
        let msg = Config::from_str_at(&text, &dir.path().join("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("rule[0].when[0].regex: rule \"VIP\": invalid regex"),
            "{msg}"
        );
        assert!(msg.contains("d.toml:41: rule[0].when[0].regex"), "{msg}");
        assert!(
            msg.contains("rule[0].set.team: rule \"VIP\": unknown team \"sales\""),
            "{msg}"
        );
        assert!(msg.contains("higher tier"), "{msg}");
        assert!(msg.contains("carol@desk.test"), "{msg}");
    }

    #[test]
    fn syntax_error_has_line() {
        let err = Config::from_str_at("[desk\naddress=1", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().starts_with("x.toml:1:"), "{err}");
    }

    #[test]
    fn subject_tag_forms() {
        assert!(SubjectTag::parse("[#{id}]").is_some());
        assert!(SubjectTag::parse("Ticket {id}:").is_some());
        assert!(SubjectTag::parse("{id}").is_none());
        assert!(SubjectTag::parse("[{id}{id}]").is_none());
        assert!(SubjectTag::parse("[#]").is_none());
    }
}
