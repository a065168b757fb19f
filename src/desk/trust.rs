//! Trust: whether a mail that claims to come from an agent really does.
//!
//! A From header is easy to forge, and agents' mail changes tickets. Two
//! proofs are accepted (either suffices):
//! - an `Authentication-Results` header (RFC 8601) added by one of the
//!   configured trusted servers (`authserv-id`), saying DKIM passed for the
//!   agent's domain or DMARC passed for it;
//! - arrival at the per-ticket reply address deskgate puts in the Reply-To of
//!   every notification, `help+1042.k3f9x2ab@…`, whose signature is an HMAC of
//!   the ticket number and the agent's address under a key only deskgate has.
//!
//! The key lives in the store; the policy carries it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::desk::policy::Policy;
use crate::mail::address::{EmailAddress, Party};
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

/// Whether an `Authentication-Results` header from a trusted server vouches for
/// the sender's domain. Only the topmost header of each trusted server counts:
/// a trusted MTA prepends its own, and anything below it came from outside.
pub fn authenticated(
    headers: &[(String, String)],
    trusted: &[String],
    from: &EmailAddress,
) -> Option<String> {
    let domain = from.domain();
    let mut seen = Vec::new();
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("Authentication-Results") {
            continue;
        }
        let mut parts = value.split(';');
        let authserv = parts
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !trusted.iter().any(|t| t.eq_ignore_ascii_case(&authserv)) || seen.contains(&authserv) {
            continue;
        }
        seen.push(authserv.clone());
        for result in parts {
            let r = result.trim().to_ascii_lowercase();
            let props: Vec<&str> = r.split_whitespace().collect();
            let Some(first) = props.first() else { continue };
            let (method, outcome) = first.split_once('=').unwrap_or((first, ""));
            let prop = |key: &str| {
                props
                    .iter()
                    .find_map(|p| p.strip_prefix(key))
                    .map(|v| v.trim_start_matches('@'))
            };
            let ok = match method {
                "dkim" => {
                    outcome == "pass"
                        && (prop("header.d=") == Some(domain)
                            || prop("header.i=").is_some_and(|i| i.ends_with(domain)))
                }
                "dmarc" => outcome == "pass" && prop("header.from=") == Some(domain),
                _ => false,
            };
            if ok {
                return Some(format!(
                    "{method}=pass for {domain} according to {authserv}"
                ));
            }
        }
    }
    None
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

    fn ar(v: &str) -> Vec<(String, String)> {
        vec![("Authentication-Results".into(), v.into())]
    }

    #[test]
    fn trusted_dkim_or_dmarc_pass_proves_the_domain() {
        let trusted = vec!["mx.desk.test".to_string()];
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

    #[test]
    fn only_the_topmost_trusted_header_counts() {
        let trusted = vec!["mx.desk.test".to_string()];
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
