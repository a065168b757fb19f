//! The configuration file: raw TOML structures, and the checked form the rest of
//! the daemon uses.
//!
//! Everything an admin can get wrong is caught here, once, at load: the rest of
//! the code takes a [`Config`] and never re-validates. Errors name the file, the
//! line and the key, because the person reading them is editing that file.
//!
//! Raw serde structs (`raw`, every table `deny_unknown_fields`), their defaults
//! (`defaults`), the checked form (`checked`, plus `rules`, `sla`, `calendar`),
//! the checking itself (`check*`, `secrets`; `check_queues` for
//! `[[queue]]`) and the key-to-line map (`lines`)
//! each have their own file. May import `mail` and `store`'s record vocabulary
//! (priorities); must not import `desk`, `engine`, `daemon` or `cli`.

use std::path::{Path, PathBuf};

pub mod calendar;
mod check;
mod check_digest;
mod check_oauth2;
mod check_queues;
mod check_retention;
mod check_sla;
mod check_teams;
mod check_tls;
pub mod checked;
mod defaults;
mod error;
mod lines;
mod raw;
pub mod rules;
mod secrets;
pub mod sla;
pub mod tls;
mod trust_notes;
mod values;

use check::Validator;
pub use check_digest::{parse_every, DEFAULT_TEMPLATE as DEFAULT_DIGEST_TEMPLATE, REPORT_ROWS};
pub use checked::QueueConfig;
pub use checked::{
    AfterProcessing, Agent, Config, Desk, Limits, MailboxConfig, OutboxConfig, SmtpConfig,
    StoreConfig, SubjectTag, Team, Tier, TlsMode, Trust,
};
pub use checked::{OAuth2, TokenSource};
pub use error::{ConfigError, Problem};
use lines::{line_of_offset, KeyLines};
use raw::RawConfig;
pub use tls::TlsTrust;
pub use trust_notes::trust_notes;

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
            warnings: Vec::new(),
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

/// The config-text builder of the integration tests, for unit tests here and
/// in other modules. Loaded once (a second `#[path]` copy would be a second
/// type), and out here because a `#[path]` inside `mod tests` would be looked
/// up under a `src/config/tests/` folder.
#[cfg(test)]
#[path = "../../tests/common/config.rs"]
pub(crate) mod test_config;

#[cfg(test)]
mod tests {
    use super::test_config::TestConfig;
    use super::*;
    use std::time::Duration;

    fn write_env(dir: &Path) {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
    }

    /// The smallest good config, as an admin would write it; the line numbers
    /// the tests assert count from its rendered text.
    fn good() -> TestConfig {
        TestConfig::new()
            .desk("templates", "\"templates\"")
            .mailbox("port", "1143")
            .mailbox("password_file", "\"pw\"")
            .smtp("port", "2525")
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let c = Config::from_str_at(&good().render(), &dir.path().join("deskgate.toml")).unwrap();
        assert_eq!(c.mailboxes[0].password, "secret");
        assert_eq!(c.mailboxes[0].after_processing, AfterProcessing::FlagSeen);
        assert_eq!(c.desk.subject_tag.render(7), "[#7]");
        assert_eq!(c.smtp.envelope_from.as_str(), "help@desk.test");
        assert_eq!(c.desk.storage, dir.path().join("state"));
    }

    #[test]
    fn the_store_cache_is_set_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let at = dir.path().join("d.toml");
        let c = Config::from_str_at(&good().render(), &at).unwrap();
        assert_eq!(c.store.cache_bytes, 32 * 1024 * 1024);
        let text = good().table("[store]\ncache = \"8 MiB\"").render();
        let c = Config::from_str_at(&text, &at).unwrap();
        assert_eq!(c.store.cache_bytes, 8 * 1024 * 1024);
        let text = good().table("[store]\ncache = \"100 KiB\"").render();
        let err = Config::from_str_at(&text, &at).unwrap_err().to_string();
        assert!(err.contains("store.cache: must be between 1 MiB"), "{err}");
    }

    #[test]
    fn unknown_key_names_line() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        // Right after the port, not at the end of [smtp]: the line is asserted.
        let text = good()
            .render()
            .replace("port = 2525", "port = 2525\ncolour = \"blue\"");
        let err = Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("d.toml:17"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn insecure_remote_host_is_refused_with_line() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = good().mailbox("host", "\"imap.example.com\"").render();
        let err = Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("d.toml:10: mailbox[0].tls"), "{msg}");
        assert!(msg.contains("loopback"), "{msg}");
    }

    #[test]
    fn missing_password_and_bad_tag_are_both_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = good()
            .mailbox("password_file", "\"nope\"")
            .desk("subject_tag", "\"[ticket]\"")
            .render();
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
        let text = good().mailbox("after_processing", "\"move\"").render();
        let msg = Config::from_str_at(&text, &dir.path().join("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("after_processing"), "{msg}");
    }

    #[test]
    fn limits_parse_sizes_and_durations() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = good()
            .table("[limits]\nmax_message_size = \"10 MiB\"\nauto_reply_window = \"30m\"")
            .render();
        let c = Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap();
        assert_eq!(c.limits.max_message_size, 10 * 1024 * 1024);
        assert_eq!(c.limits.auto_reply_window, Duration::from_secs(1800));
        assert_eq!(c.limits.auto_replies_per_recipient, 5);
        let bad = good()
            .table("[limits]\nmax_message_size = \"1 KB\"")
            .render();
        let msg = Config::from_str_at(&bad, &dir.path().join("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("limits.max_message_size"), "{msg}");
    }

    /// `good()` with agents, two tiers of team and a rule.
    fn with_teams() -> TestConfig {
        good()
            .agent("alice@desk.test", Some("Alice"), &["it"])
            .agent("bob@desk.test", None, &[])
            .team(
                "it",
                "tier = \"L1\"\nmembers = [\"bob@desk.test\"]\nescalates_to = \"it-l2\"",
            )
            .team("it-l2", "tier = \"L2\"")
            .table(
                r#"
[[rule]]
name = "VIP"
[[rule.when]]
field = "from_domain"
equals = "bigcorp.com"
[rule.set]
team = "it-l2"
priority = "high"
"#,
            )
    }

    #[test]
    fn teams_agents_and_rules_load() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let c = Config::from_str_at(&with_teams().render(), &dir.path().join("d.toml")).unwrap();
        let it = &c.teams[0];
        assert_eq!(it.members.len(), 2, "members from both sides: {it:?}");
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].team.as_deref(), Some("it-l2"));
    }

    #[test]
    fn bad_rules_and_teams_name_file_line_and_rule() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = with_teams()
            .render()
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
