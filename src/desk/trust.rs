//! Trust: whether a mail that claims to come from an agent really does.
//!
//! A From header is easy to forge, and agents' mail changes tickets. Two
//! proofs are accepted (either suffices):
//! - the topmost `Authentication-Results` header (RFC 8601, read by
//!   `mail::auth_results`), when one of the configured trusted servers
//!   (`authserv-id`) wrote it, saying DKIM or DMARC passed for exactly the
//!   agent's domain;
//! - arrival at the per-ticket reply address deskgate puts in the Reply-To of
//!   every notification, `help+1042.k3f9x2ab@…`, whose signature is an HMAC of
//!   the ticket number and the agent's address under a key only deskgate has.
//!
//! The key lives in the store; the policy carries it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Trust;
use crate::desk::policy::Policy;
use crate::mail::address::{EmailAddress, Party};
use crate::mail::auth_results;
use crate::store::records::TicketId;

/// Hex digits of signature in a reply address: 40 bits, plenty against guessing
/// (a wrong guess is simply an unproven mail).
const SIG_LEN: usize = 10;

fn signature(key: &[u8], ticket: TicketId, agent: &EmailAddress) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{ticket}:{}", agent.as_str()).as_bytes());
    hex::encode(mac.finalize().into_bytes())[..SIG_LEN].to_string()
}

/// `help+1042.sig@domain`: the address an agent's reply to a notification goes to.
pub fn reply_address(
    desk: &EmailAddress,
    key: &[u8],
    ticket: TicketId,
    agent: &EmailAddress,
) -> Option<EmailAddress> {
    let sig = signature(key, ticket, agent);
    EmailAddress::parse(&format!(
        "{}+{ticket}.{sig}@{}",
        desk.local_part(),
        desk.domain()
    ))
}

/// What a plus-address of the help address says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlusTag {
    /// `help+comment@`: an internal comment.
    Comment,
    /// `help+1042.sig@`: a ticket, with a signature to check.
    Ticket { ticket: TicketId, sig: String },
}

/// Reads the plus-tag of an address of the help desk (`help+TAG@domain`).
pub fn plus_tag(desk: &EmailAddress, addr: &EmailAddress) -> Option<PlusTag> {
    if addr.domain() != desk.domain() {
        return None;
    }
    let tag = addr
        .local_part()
        .strip_prefix(desk.local_part())?
        .strip_prefix('+')?;
    if tag == "comment" {
        return Some(PlusTag::Comment);
    }
    let (n, sig) = tag.split_once('.')?;
    Some(PlusTag::Ticket {
        ticket: n.parse().ok()?,
        sig: sig.to_string(),
    })
}

/// Whether `sig` proves `agent` got a notification of `ticket`.
pub fn verify(key: &[u8], ticket: TicketId, agent: &EmailAddress, sig: &str) -> bool {
    let expected = signature(key, ticket, agent);
    // Constant-time comparison: no timing hints about the right signature.
    expected.len() == sig.len()
        && expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether the topmost `Authentication-Results` header was stamped by one of
/// our trusted servers and says DKIM passed for the sender's domain (the
/// signing domain `header.d`, or the domain of the identity `header.i`) or
/// DMARC passed for it. A header further down came from outside, so it is
/// never read, whichever server it names.
pub fn authenticated(
    headers: &[(String, String)],
    trust: &Trust,
    from: &EmailAddress,
) -> Option<String> {
    let ar = auth_results::topmost(headers)?;
    let ours = trust.authserv_ids.iter().any(|t| {
        t.trim_end_matches('.')
            .eq_ignore_ascii_case(&ar.authserv_id)
    });
    if !ours {
        return None;
    }
    let domain = from.domain();
    let matches =
        |d: Option<&str>| d.is_some_and(|d| domain_matches(d, domain, trust.allow_subdomains));
    ar.results
        .iter()
        .find(|r| {
            r.result == "pass"
                && match r.method.as_str() {
                    "dkim" => {
                        matches(r.prop("header.d"))
                            || matches(
                                r.prop("header.i")
                                    .map(|i| i.rsplit('@').next().unwrap_or(i)),
                            )
                    }
                    "dmarc" => matches(r.prop("header.from")),
                    _ => false,
                }
        })
        .map(|r| {
            format!(
                "{}=pass for {domain} according to {}",
                r.method, ar.authserv_id
            )
        })
}

/// Whether `candidate` (from a header) is the agents' `domain`: equal, or,
/// when the admin allows subdomains, ending in `.domain`. Case and one
/// trailing dot do not matter; a mere common suffix (`notexample.com`,
/// `evil-example.com`) never matches.
pub fn domain_matches(candidate: &str, domain: &str, subdomains: bool) -> bool {
    let norm = |d: &str| d.trim().trim_end_matches('.').to_ascii_lowercase();
    let (c, d) = (norm(candidate), norm(domain));
    if c.is_empty() || d.is_empty() {
        return false;
    }
    c == d
        || (subdomains
            && c.strip_suffix(d.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.ends_with('.')))
}

/// Whether `agent`'s commands run only from mail to the signed reply address:
/// their `[[agent]]` setting, else the desk's `[trust]` one. A DKIM/DMARC
/// pass proves the domain, so anyone there could otherwise act as the agent.
pub fn commands_need_signed_reply(policy: &Policy, agent: &EmailAddress) -> bool {
    policy
        .agent(agent)
        .and_then(|a| a.commands_need_signed_reply)
        .unwrap_or(policy.trust.commands_need_signed_reply)
}

/// Where an agent's reply to a notification should go: the keyed per-ticket
/// address (proof the reply is theirs), or plainly the help address.
pub fn reply_to_for(policy: &Policy, ticket: TicketId, agent: &EmailAddress) -> Party {
    let signed = (policy.trust.signed_reply_addresses && !policy.reply_key.is_empty())
        .then(|| reply_address(&policy.desk.address, &policy.reply_key, ticket, agent))
        .flatten();
    Party {
        name: policy.desk.name.clone(),
        address: signed.unwrap_or_else(|| policy.desk.address.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn reply_addresses_sign_and_verify() {
        let key = b"secret key";
        let addr = reply_address(&a("help@desk.test"), key, 1042, &a("alice@desk.test")).unwrap();
        assert!(addr.as_str().starts_with("help+1042."), "{addr}");
        let Some(PlusTag::Ticket { ticket, sig }) = plus_tag(&a("help@desk.test"), &addr) else {
            panic!("no tag in {addr}")
        };
        assert_eq!(ticket, 1042);
        assert!(verify(key, 1042, &a("alice@desk.test"), &sig));
        assert!(
            !verify(key, 1042, &a("mallory@desk.test"), &sig),
            "bound to the agent"
        );
        assert!(
            !verify(key, 1043, &a("alice@desk.test"), &sig),
            "bound to the ticket"
        );
        assert!(!verify(b"other key", 1042, &a("alice@desk.test"), &sig));
        assert_eq!(
            plus_tag(&a("help@desk.test"), &a("help+comment@desk.test")),
            Some(PlusTag::Comment)
        );
        assert_eq!(plus_tag(&a("help@desk.test"), &a("help@desk.test")), None);
        assert_eq!(
            plus_tag(&a("help@desk.test"), &a("helpdesk+1.x@desk.test")),
            None
        );
    }

    fn trust(ids: &[&str], allow_subdomains: bool) -> Trust {
        Trust {
            authserv_ids: ids.iter().map(|s| s.to_string()).collect(),
            allow_subdomains,
            ..Trust::default()
        }
    }

    fn ar(v: &str) -> Vec<(String, String)> {
        vec![("Authentication-Results".into(), v.into())]
    }

    #[test]
    fn trusted_dkim_or_dmarc_pass_proves_the_domain() {
        let trusted = trust(&["mx.desk.test"], false);
        let alice = a("alice@desk.test");
        assert!(authenticated(
            &ar("mx.desk.test; dkim=pass header.d=desk.test header.s=s1"),
            &trusted,
            &alice
        )
        .is_some());
        assert!(authenticated(
            &ar("mx.desk.test; spf=pass; dmarc=pass (p=reject) header.from=desk.test"),
            &trusted,
            &alice
        )
        .is_some());
        assert!(authenticated(
            &ar("mx.desk.test; dkim=fail header.d=desk.test"),
            &trusted,
            &alice
        )
        .is_none());
        assert!(authenticated(
            &ar("mx.desk.test; dkim=pass header.d=evil.test"),
            &trusted,
            &alice
        )
        .is_none());
        assert!(
            authenticated(
                &ar("mx.evil.test; dkim=pass header.d=desk.test"),
                &trusted,
                &alice
            )
            .is_none(),
            "untrusted server"
        );
        assert!(
            authenticated(
                &ar("mx.desk.test; spf=pass smtp.mailfrom=desk.test"),
                &trusted,
                &alice
            )
            .is_none(),
            "SPF alone is not enough"
        );
    }

    /// Domains that merely end with the agent's domain are someone else's.
    #[test]
    fn a_dkim_pass_for_a_lookalike_domain_proves_nothing() {
        let trusted = trust(&["mx.example.com"], false);
        let alice = a("alice@example.com");
        for i in [
            "@notexample.com",
            "@evil-example.com",
            "alice@notexample.com",
            "@example.com.evil",
        ] {
            let h = ar(&format!("mx.example.com; dkim=pass header.i={i}"));
            assert!(
                authenticated(&h, &trusted, &alice).is_none(),
                "header.i={i}"
            );
        }
        for d in ["notexample.com", "evil-example.com", "example.com.evil"] {
            let h = ar(&format!("mx.example.com; dkim=pass header.d={d}"));
            assert!(
                authenticated(&h, &trusted, &alice).is_none(),
                "header.d={d}"
            );
            let h = ar(&format!("mx.example.com; dmarc=pass header.from={d}"));
            assert!(
                authenticated(&h, &trusted, &alice).is_none(),
                "header.from={d}"
            );
        }
        // Without the subdomain setting a subdomain is not the domain either.
        let h = ar("mx.example.com; dkim=pass header.d=mail.example.com");
        assert!(authenticated(&h, &trusted, &alice).is_none());
    }

    #[test]
    fn the_same_domain_matches_in_any_case_and_with_a_trailing_dot() {
        let trusted = trust(&["mx.example.com"], false);
        let alice = a("alice@example.com");
        for h in [
            "MX.Example.COM; DKIM=Pass header.d=EXAMPLE.com",
            "mx.example.com; dkim=pass header.d=example.com.",
            "mx.example.com.; dkim=pass header.i=@Example.Com",
            "mx.example.com; dkim=pass header.i=alice@example.com",
            "mx.example.com; dmarc=pass header.from=Example.COM.",
        ] {
            assert!(authenticated(&ar(h), &trusted, &alice).is_some(), "{h}");
        }
    }

    #[test]
    fn subdomains_count_only_when_the_admin_allows_them() {
        assert!(!domain_matches("mail.example.com", "example.com", false));
        assert!(domain_matches("mail.example.com", "example.com", true));
        assert!(domain_matches("a.b.example.com.", "EXAMPLE.com", true));
        assert!(!domain_matches("notexample.com", "example.com", true));
        assert!(!domain_matches("evil-example.com", "example.com", true));
        assert!(!domain_matches("example.com.evil", "example.com", true));
        assert!(!domain_matches(".example.com", "example.com", true));
        assert!(!domain_matches("", "example.com", true));
        let alice = a("alice@example.com");
        let h = ar("mx.example.com; dkim=pass header.i=bob@mail.example.com");
        assert!(authenticated(&h, &trust(&["mx.example.com"], false), &alice).is_none());
        assert!(authenticated(&h, &trust(&["mx.example.com"], true), &alice).is_some());
        let h = ar("mx.example.com; dkim=pass header.d=mail.notexample.com");
        assert!(authenticated(&h, &trust(&["mx.example.com"], true), &alice).is_none());
    }

    /// A header below the topmost came from outside, whoever it names.
    #[test]
    fn a_forged_header_naming_a_second_trusted_server_is_not_believed() {
        let trusted = trust(&["mx.desk.test", "mx2.desk.test"], false);
        let headers = vec![
            (
                "Authentication-Results".to_string(),
                "mx.desk.test; dkim=none".to_string(),
            ),
            (
                "Authentication-Results".to_string(),
                "mx2.desk.test; dkim=pass header.d=desk.test".to_string(),
            ),
        ];
        assert!(authenticated(&headers, &trusted, &a("alice@desk.test")).is_none());
    }

    /// The MTA did not stamp one: the only header is the sender's.
    #[test]
    fn a_trusted_header_below_an_untrusted_one_is_not_believed() {
        let trusted = trust(&["mx.desk.test"], false);
        let headers = vec![
            (
                "Authentication-Results".to_string(),
                "relay.elsewhere.test; dkim=none".to_string(),
            ),
            (
                "Authentication-Results".to_string(),
                "mx.desk.test; dkim=pass header.d=desk.test".to_string(),
            ),
        ];
        assert!(authenticated(&headers, &trusted, &a("alice@desk.test")).is_none());
    }

    #[test]
    fn only_the_topmost_trusted_header_counts() {
        let trusted = trust(&["mx.desk.test"], false);
        let headers = vec![
            (
                "Authentication-Results".to_string(),
                "mx.desk.test; dkim=fail header.d=desk.test".to_string(),
            ),
            // Forged by the sender, below the real one.
            (
                "Authentication-Results".to_string(),
                "mx.desk.test; dkim=pass header.d=desk.test".to_string(),
            ),
        ];
        assert!(authenticated(&headers, &trusted, &a("alice@desk.test")).is_none());
    }
}
