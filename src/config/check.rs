//! Checking the raw file into the checked form, collecting every problem with
//! its key path (the caller adds lines).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::checked::*;
use super::error::Problem;
use super::raw::*;
use crate::mail::address::EmailAddress;

/// sled's page cache unless `[store] cache` says otherwise.
const DEFAULT_STORE_CACHE: u64 = 32 * 1024 * 1024;
const MIN_STORE_CACHE: u64 = 1024 * 1024;
const MAX_STORE_CACHE: u64 = 64 * 1024 * 1024 * 1024;

/// What a queue's names are checked against.
pub(super) struct Known<'a> {
    /// `[desk] address`, the default queue (None when it did not parse).
    pub(super) desk: Option<&'a EmailAddress>,
    pub(super) mailboxes: &'a [MailboxConfig],
    pub(super) teams: &'a [String],
    pub(super) slas: &'a [String],
}

/// Collects every problem in the file (not only the first), each with its key.
pub(super) struct Validator {
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<String>,
}

impl Validator {
    pub(super) fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            line: None,
            message: message.into(),
        });
    }

    pub(super) fn check(&mut self, raw: RawConfig, base: &Path, path: &Path) -> Option<Config> {
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
        let timezone = match raw
            .desk
            .timezone
            .as_deref()
            .map(str::parse::<chrono_tz::Tz>)
        {
            None => chrono_tz::UTC,
            Some(Ok(tz)) => tz,
            Some(Err(_)) => {
                self.problem(
                    "desk.timezone",
                    "is not a time zone name (such as \"Europe/Berlin\" or \"UTC\")",
                );
                chrono_tz::UTC
            }
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
            let tls_trust = self.check_tls_trust(
                &key,
                &m.host,
                RawTlsTrust {
                    tls: m.tls,
                    allow_insecure: m.allow_insecure,
                    ca_file: m.ca_file.as_deref(),
                    tls_pin: m.tls_pin.as_deref(),
                    tls_verify: m.tls_verify,
                },
                base,
            );
            let raw_oauth2 = RawOAuth2 {
                command: m.oauth2_token_command.as_deref(),
                file: m.oauth2_token_file.as_deref(),
                lifetime: m.oauth2_token_lifetime,
            };
            let has_password = m.password_file.is_some() || m.password_env.is_some();
            let oauth2 = self.oauth2(&key, &raw_oauth2, has_password, base);
            let password = self.secret(
                &key,
                m.password_file.as_deref(),
                m.password_env.as_deref(),
                base,
                !raw_oauth2.is_set(),
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
            if m.batch_bytes.as_u64() < 1024 * 1024 {
                self.problem(format!("{key}.batch_bytes"), "must be at least 1 MiB");
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
                tls_trust,
                user: m.user,
                password: password.unwrap_or_default(),
                oauth2,
                folder: m.folder,
                after_processing,
                idle: m.idle,
                poll_interval: m.poll_interval,
                timeout: m.timeout,
                batch_size: m.batch_size,
                batch_bytes: m.batch_bytes.as_u64(),
                default_team: m.default_team,
            });
        }

        let s = raw.smtp;
        self.check_tls("smtp", &s.host, s.tls, s.allow_insecure);
        let smtp_trust = self.check_tls_trust(
            "smtp",
            &s.host,
            RawTlsTrust {
                tls: s.tls,
                allow_insecure: s.allow_insecure,
                ca_file: s.ca_file.as_deref(),
                tls_pin: s.tls_pin.as_deref(),
                tls_verify: s.tls_verify,
            },
            base,
        );
        let raw_oauth2 = RawOAuth2 {
            command: s.oauth2_token_command.as_deref(),
            file: s.oauth2_token_file.as_deref(),
            lifetime: s.oauth2_token_lifetime,
        };
        let has_password = s.password_file.is_some() || s.password_env.is_some();
        let smtp_oauth2 = self.oauth2("smtp", &raw_oauth2, has_password, base);
        let smtp_oauth2 = self.smtp_oauth2(s.user.as_ref(), smtp_oauth2);
        let credentials = match &s.user {
            Some(user) => self
                .secret(
                    "smtp",
                    s.password_file.as_deref(),
                    s.password_env.as_deref(),
                    base,
                    !raw_oauth2.is_set(),
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
        let rules = super::rules::compile(
            raw.rules,
            &super::rules::Known {
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
            notification_attachments: l.notification_attachments.as_u64(),
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

        let cache_bytes = raw.store.cache.map_or(DEFAULT_STORE_CACHE, |c| c.as_u64());
        if !(MIN_STORE_CACHE..=MAX_STORE_CACHE).contains(&cache_bytes) {
            self.problem(
                "store.cache",
                "must be between 1 MiB and 64 GiB (sled keeps this much of the store in memory)",
            );
        }
        let retention = self.check_retention(&raw.retention);
        let queues = self.check_queues(
            raw.queues,
            &Known {
                desk: address.as_ref(),
                mailboxes: &mailboxes,
                teams: &team_names,
                slas: &sla_names,
            },
            base,
        );
        let digests = self.check_digests(&raw.digests, &teams, &templates);
        Some(Config {
            queues,
            retention,
            digests,
            warnings: std::mem::take(&mut self.warnings),
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
                timezone,
            },
            store: StoreConfig { cache_bytes },
            mailboxes,
            smtp: SmtpConfig {
                host: s.host,
                port,
                tls: s.tls,
                tls_trust: smtp_trust,
                credentials,
                oauth2: smtp_oauth2,
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
                allow_subdomains: raw.trust.allow_subdomains,
                commands_need_signed_reply: raw.trust.commands_need_signed_reply,
                key_rotation_grace: raw.trust.key_rotation_grace,
            },
            slas,
            timers: super::sla::Timers {
                check_interval: raw.timers.check_interval,
                waiting_reminder_after: raw.timers.waiting_reminder_after,
                waiting_close_after: raw.timers.waiting_close_after,
                resolved_close_after: raw.timers.resolved_close_after,
            },
        })
    }

    pub(super) fn check_tls(&mut self, key: &str, host: &str, tls: TlsMode, allow_insecure: bool) {
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
