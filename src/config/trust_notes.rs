//! What the `[trust]` settings promise, in plain words, for `check-config`:
//! an admin who turned on DKIM/DMARC proof must read that it proves the
//! domain, not the person.

use crate::config::Config;

/// One line per thing the admin should know about how agents are trusted.
pub fn trust_notes(cfg: &Config) -> Vec<String> {
    let t = &cfg.trust;
    let mut notes = Vec::new();
    if t.authserv_ids.is_empty() {
        notes.push(
            "trust: agents prove their mail only by replying to a notification (the signed reply address); DKIM/DMARC results are not read".to_string(),
        );
    } else {
        notes.push(format!(
            "trust: a DKIM/DMARC pass reported by {} proves the DOMAIN, not the person: anyone who can send signed mail from an agent's domain{} can act as that agent unless your outgoing mail server enforces sender = login",
            t.authserv_ids.join(", "),
            if t.allow_subdomains { " or any subdomain of it" } else { "" },
        ));
        let open: Vec<&str> = cfg
            .agents
            .iter()
            .filter(|a| {
                !a.commands_need_signed_reply
                    .unwrap_or(t.commands_need_signed_reply)
            })
            .map(|a| a.address.as_str())
            .collect();
        if open.is_empty() {
            notes.push("trust: commands run only from replies to the signed reply address".into());
        } else {
            notes.push(format!(
                "trust: commands from a DKIM/DMARC pass alone are accepted for {}; set [trust] commands_need_signed_reply = true (or per [[agent]]) to require the signed reply address",
                open.join(", ")
            ));
        }
    }
    if !t.signed_reply_addresses {
        notes.push(
            "trust: signed reply addresses are off: notifications carry the plain help address"
                .into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config::TestConfig;

    fn load(extra: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x").unwrap();
        let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let text = TestConfig::new()
            .mailbox("name", "\"it\"")
            .mailbox("user", "\"it@desk.test\"")
            .mailbox("password_file", "\"pw\"")
            .agent("alice@desk.test", None, &[])
            .table(extra)
            .render_with(143, 25, &templates);
        Config::from_str_at(&text, &dir.path().join("d.toml")).unwrap()
    }

    #[test]
    fn a_domain_proof_is_called_what_it_is() {
        let notes = trust_notes(&load("[trust]\nauthserv_ids = [\"mx.desk.test\"]")).join("\n");
        assert!(
            notes.contains("proves the DOMAIN, not the person"),
            "{notes}"
        );
        assert!(notes.contains("sender = login"), "{notes}");
        assert!(notes.contains("accepted for alice@desk.test"), "{notes}");
        let notes = trust_notes(&load(
            "[trust]\nauthserv_ids = [\"mx.desk.test\"]\ncommands_need_signed_reply = true",
        ))
        .join("\n");
        assert!(notes.contains("commands run only from replies"), "{notes}");
        let notes = trust_notes(&load("")).join("\n");
        assert!(notes.contains("not read"), "{notes}");
    }
}
