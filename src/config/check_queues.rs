//! Checking `[[queue]]`s: help addresses of their own, each received by a
//! `[[mailbox]]` (one that logs in as the address, or the one the queue
//! names), so no queue answers from an address whose replies nobody reads.

use std::path::Path;

use super::check::{Known, Validator};
use super::checked::{MailboxConfig, QueueConfig};
use super::raw::RawQueue;
use crate::mail::address::EmailAddress;

/// The mailbox that receives `address` without being told: the one that
/// logs in as it (IMAP user names are compared without case).
fn mailbox_logging_in_as<'a>(
    mailboxes: &'a [MailboxConfig],
    address: &EmailAddress,
) -> Option<&'a MailboxConfig> {
    mailboxes
        .iter()
        .find(|m| m.user.trim().eq_ignore_ascii_case(address.as_str()))
}

impl Validator {
    pub(super) fn check_queues(
        &mut self,
        raw: Vec<RawQueue>,
        known: &Known<'_>,
        base: &Path,
    ) -> Vec<QueueConfig> {
        let mut queues: Vec<QueueConfig> = Vec::new();
        for (i, q) in raw.into_iter().enumerate() {
            let key = format!("queue[{i}]");
            let name = q.name.trim().to_string();
            if name.is_empty() || name.chars().any(char::is_control) {
                self.problem(
                    format!("{key}.name"),
                    "must not be empty or contain control characters",
                );
            } else if queues.iter().any(|x| x.name == name) {
                self.problem(format!("{key}.name"), format!("\"{name}\" is used twice"));
            }
            if let Some(d) = &q.display_name {
                if d.chars().any(char::is_control) {
                    self.problem(
                        format!("{key}.display_name"),
                        "must not contain control characters",
                    );
                }
            }
            let address = EmailAddress::parse(&q.address);
            match &address {
                None => self.problem(
                    format!("{key}.address"),
                    format!("\"{}\" is not an email address", q.address),
                ),
                Some(a) if known.desk == Some(a) => self.problem(
                    format!("{key}.address"),
                    format!("{a} is [desk] address, which is the default queue already"),
                ),
                Some(a) if queues.iter().any(|x| x.address == *a) => self.problem(
                    format!("{key}.address"),
                    format!("{a} belongs to another queue already"),
                ),
                Some(_) => {}
            }
            let mailbox = match (&q.mailbox, &address) {
                (Some(m), _) => {
                    if !known.mailboxes.iter().any(|x| x.name == *m) {
                        self.problem(
                            format!("{key}.mailbox"),
                            format!("no [[mailbox]] is named \"{m}\""),
                        );
                    }
                    m.clone()
                }
                (None, Some(a)) => match mailbox_logging_in_as(known.mailboxes, a) {
                    Some(m) => m.name.clone(),
                    None => {
                        self.problem(
                            format!("{key}.address"),
                            format!(
                                "no [[mailbox]] receives {a}: none logs in as it; if one receives it through an alias, name that mailbox with mailbox = \"NAME\""
                            ),
                        );
                        String::new()
                    }
                },
                (None, None) => String::new(),
            };
            if let Some(t) = &q.default_team {
                if !known.teams.contains(t) {
                    self.problem(
                        format!("{key}.default_team"),
                        format!("unknown team \"{t}\""),
                    );
                }
            }
            if let Some(s) = &q.default_sla {
                if !known.slas.contains(s) {
                    self.problem(
                        format!("{key}.default_sla"),
                        format!("unknown SLA policy \"{s}\""),
                    );
                }
            }
            let templates = q.templates.map(|t| base.join(t));
            if let Some(t) = &templates {
                if !t.is_dir() {
                    self.problem(
                        format!("{key}.templates"),
                        format!("folder {} does not exist", t.display()),
                    );
                }
            }
            let Some(address) = address else { continue };
            queues.push(QueueConfig {
                name,
                address,
                display_name: q.display_name,
                mailbox,
                default_team: q.default_team,
                default_sla: q.default_sla,
                templates,
            });
        }
        queues
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_config::TestConfig;
    use crate::config::Config;
    use std::path::Path;

    fn write_env(dir: &Path) {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::create_dir_all(dir.join("hr-templates")).unwrap();
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
    }

    /// Two mailboxes, it@ and hr@, as the README's example has them.
    fn two_mailboxes() -> TestConfig {
        TestConfig::new()
            .desk("templates", "\"templates\"")
            .mailbox("user", "\"it@desk.test\"")
            .mailbox("name", "\"it\"")
            .mailbox("port", "1143")
            .mailbox("password_file", "\"pw\"")
            .add_mailbox("HR@desk.test")
            .mailbox("name", "\"hr\"")
            .mailbox("port", "1143")
            .mailbox("password_file", "\"pw\"")
            .smtp("port", "2525")
            .team("people", "")
    }

    fn load(text: &str, dir: &Path) -> Result<Config, String> {
        Config::from_str_at(text, &dir.join("d.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn queues_load_and_find_the_mailbox_that_logs_in_as_their_address() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = two_mailboxes()
            .table(
                r#"
[[queue]]
name = "it"
address = "it@desk.test"
display_name = "IT Support"

[[queue]]
name = "hr"
address = "hr@desk.test"
default_team = "people"
templates = "hr-templates"
"#,
            )
            .render();
        let c = load(&text, dir.path()).unwrap();
        assert_eq!(c.queues.len(), 2);
        assert_eq!(c.queues[0].mailbox, "it");
        assert_eq!(c.queues[0].display_name.as_deref(), Some("IT Support"));
        assert_eq!(c.queues[1].mailbox, "hr", "user names compare without case");
        assert_eq!(c.queues[1].default_team.as_deref(), Some("people"));
        assert_eq!(
            c.queues[1].templates.as_deref(),
            Some(dir.path().join("hr-templates").as_path())
        );
        let plain = load(&two_mailboxes().render(), dir.path()).unwrap();
        assert!(plain.queues.is_empty(), "no [[queue]], no queues");
    }

    #[test]
    fn a_queue_whose_address_no_mailbox_receives_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let base = two_mailboxes().render();
        let text = format!("{base}\n[[queue]]\nname = \"sales\"\naddress = \"sales@desk.test\"\n");
        let line = text.lines().count();
        let err = load(&text, dir.path()).unwrap_err();
        assert!(
            err.contains(&format!(
                "d.toml:{line}: queue[0].address: no [[mailbox]] receives sales@desk.test"
            )),
            "{err}"
        );
        // Named explicitly (it arrives there through an alias): accepted.
        let ok = format!("{text}mailbox = \"it\"\n");
        let c = load(&ok, dir.path()).unwrap();
        assert_eq!(c.queues[0].mailbox, "it");
    }

    #[test]
    fn every_wrong_queue_key_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        write_env(dir.path());
        let text = two_mailboxes()
            .table(
                r#"
[[queue]]
name = "it"
address = "it@desk.test"
mailbox = "nope"
default_team = "sales"
default_sla = "gold"
templates = "missing"

[[queue]]
name = "it"
address = "help@desk.test"

[[queue]]
name = "x"
address = "not an address"
"#,
            )
            .render();
        let err = load(&text, dir.path()).unwrap_err();
        for want in [
            "queue[0].mailbox: no [[mailbox]] is named \"nope\"",
            "queue[0].default_team: unknown team \"sales\"",
            "queue[0].default_sla: unknown SLA policy \"gold\"",
            "queue[0].templates: folder",
            "queue[1].name: \"it\" is used twice",
            "queue[1].address: help@desk.test is [desk] address",
            "queue[2].address: \"not an address\" is not an email address",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let unknown = two_mailboxes()
            .table("[[queue]]\nname = \"a\"\naddress = \"it@desk.test\"\ncolour = \"red\"")
            .render();
        let err = load(&unknown, dir.path()).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
