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

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Trust;
use crate::desk::policy::Policy;
use crate::mail::address::{EmailAddress, Party};
use crate::mail::auth_results;
use crate::store::records::{Ticket, TicketId};
use crate::store::ReplyKey;

/// Hex digits of the tag in a reply address: 80 bits. A wrong guess is an
/// unproven mail, and guesses are counted per sender.
const SIG_LEN: usize = 20;
/// Tags before key epochs: 40 bits, made under the key now called epoch 1.
/// They prove nothing any more (see `TagCheck::Legacy`).
const LEGACY_SIG_LEN: usize = 10;

fn signature(key: &ReplyKey, ticket: TicketId, agent: &EmailAddress) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.key).expect("HMAC takes any key length");
    mac.update(format!("{}:{ticket}:{}", key.epoch, agent.as_str()).as_bytes());
    hex::encode(mac.finalize().into_bytes())[..SIG_LEN].to_string()
}

/// `help+1042.EPOCH.TAG@domain`: the address an agent's reply to a
/// notification goes to; the epoch names the key that signed it.
pub fn reply_address(
    desk: &EmailAddress,
    key: &ReplyKey,
    ticket: TicketId,
    agent: &EmailAddress,
) -> Option<EmailAddress> {
    let sig = signature(key, ticket, agent);
    EmailAddress::parse(&format!(
        "{}+{ticket}.{}.{sig}@{}",
        desk.local_part(),
        key.epoch,
        desk.domain()
    ))
}

/// What a plus-address of the help address says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlusTag {
    /// `help+comment@`: an internal comment.
    Comment,
    /// `help+commands@`: an agent asks for the list of mail commands.
    Commands,
    /// `help+1042.sig@`: a ticket, with a signature to check.
    Ticket { ticket: TicketId, sig: String },
    /// `help+next@`: an agent asks for their own list of work (`#next`).
    Next,
    /// `help+report@`: an agent asks for a report (`desk::report_mail`).
    Report,
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
    if tag == "commands" {
        return Some(PlusTag::Commands);
    }
    if tag == "next" {
        return Some(PlusTag::Next);
    }
    if tag == "report" {
        return Some(PlusTag::Report);
    }
    let (n, sig) = tag.split_once('.')?;
    Some(PlusTag::Ticket {
        ticket: n.parse().ok()?,
        sig: sig.to_string(),
    })
}

/// What the tag of a signed reply address says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagCheck {
    /// Made by a key still valid, for this ticket and agent: proof.
    Valid,
    /// A 40-bit tag from before key epochs. Not proof: 40 bits can be
    /// guessed by someone patient, and those tags never expire otherwise.
    Legacy,
    /// Made by a key whose grace period after a rotation has ended.
    Expired,
    /// Not made by any of our keys for this ticket and agent: a guess or a
    /// forgery.
    Wrong,
}

/// Checks `sig` (`EPOCH.TAG` from the address) against the key ring at `now`.
pub fn check_tag(
    keys: &[ReplyKey],
    now: DateTime<Utc>,
    ticket: TicketId,
    agent: &EmailAddress,
    sig: &str,
) -> TagCheck {
    let Some((epoch, tag)) = sig.split_once('.') else {
        let legacy = sig.len() == LEGACY_SIG_LEN && sig.bytes().all(|b| b.is_ascii_hexdigit());
        return if legacy {
            TagCheck::Legacy
        } else {
            TagCheck::Wrong
        };
    };
    let Some(key) = epoch
        .parse::<u32>()
        .ok()
        .and_then(|e| keys.iter().find(|k| k.epoch == e))
    else {
        return TagCheck::Wrong;
    };
    if !constant_time_eq(&signature(key, ticket, agent), tag) {
        return TagCheck::Wrong;
    }
    match key.valid_until {
        Some(until) if until <= now => TagCheck::Expired,
        _ => TagCheck::Valid,
    }
}

/// No timing hints about the right signature.
fn constant_time_eq(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
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
/// address (proof the reply is theirs), or plainly the help address; both on
/// the address of the ticket's queue.
pub fn reply_to_for(policy: &Policy, ticket: &Ticket, agent: &EmailAddress) -> Party {
    let desk = policy.sender_of(ticket).party;
    let keys = policy.reply_keys.get();
    let current = keys.last().filter(|k| !k.key.is_empty());
    let signed = current
        .filter(|_| policy.trust.signed_reply_addresses)
        .and_then(|k| reply_address(&desk.address, k, ticket.id, agent));
    Party {
        name: desk.name.clone(),
        address: signed.unwrap_or_else(|| desk.address.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn key(epoch: u32, k: &[u8], valid_until: Option<DateTime<Utc>>) -> ReplyKey {
        ReplyKey {
            epoch,
            key: k.to_vec(),
            valid_until,
        }
    }

    fn sig_of(addr: &EmailAddress) -> String {
        let Some(PlusTag::Ticket { sig, .. }) = plus_tag(&a("help@desk.test"), addr) else {
            panic!("no tag in {addr}")
        };
        sig
    }

    #[test]
    fn reply_addresses_sign_and_verify() {
        let k = key(1, b"secret key", None);
        let now = Utc::now();
        let addr = reply_address(&a("help@desk.test"), &k, 1042, &a("alice@desk.test")).unwrap();
        assert!(addr.as_str().starts_with("help+1042.1."), "{addr}");
        let Some(PlusTag::Ticket { ticket, sig }) = plus_tag(&a("help@desk.test"), &addr) else {
            panic!("no tag in {addr}")
        };
        assert_eq!(ticket, 1042);
        let keys = [k.clone()];
        let check = |t, who: &str, sig: &str| check_tag(&keys, now, t, &a(who), sig);
        assert_eq!(check(1042, "alice@desk.test", &sig), TagCheck::Valid);
        assert_eq!(
            check(1042, "mallory@desk.test", &sig),
            TagCheck::Wrong,
            "bound to the agent"
        );
        assert_eq!(
            check(1043, "alice@desk.test", &sig),
            TagCheck::Wrong,
            "bound to the ticket"
        );
        let other = [key(1, b"other key", None)];
        assert_eq!(
            check_tag(&other, now, 1042, &a("alice@desk.test"), &sig),
            TagCheck::Wrong
        );
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

    #[test]
    fn tags_carry_at_least_80_bits() {
        let k = key(3, b"secret key", None);
        let addr = reply_address(&a("help@desk.test"), &k, 7, &a("alice@desk.test")).unwrap();
        let sig = sig_of(&addr);
        let (epoch, tag) = sig.split_once('.').unwrap();
        assert_eq!(epoch, "3");
        assert!(tag.len() * 4 >= 80, "{tag}");
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        // A shortened tag is not the tag.
        let short = format!("3.{}", &tag[..10]);
        assert_eq!(
            check_tag(&[k], Utc::now(), 7, &a("alice@desk.test"), &short),
            TagCheck::Wrong
        );
    }

    #[test]
    fn an_old_40_bit_tag_is_no_proof() {
        let keys = [key(1, b"secret key", None)];
        // How a tag was made before epochs: HMAC of "ticket:agent", 10 hex digits.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret key").unwrap();
        mac.update(b"1042:alice@desk.test");
        let old = hex::encode(mac.finalize().into_bytes())[..10].to_string();
        let check = check_tag(&keys, Utc::now(), 1042, &a("alice@desk.test"), &old);
        assert_eq!(check, TagCheck::Legacy);
        assert_eq!(
            check_tag(&keys, Utc::now(), 1042, &a("alice@desk.test"), "zzzz"),
            TagCheck::Wrong
        );
    }

    #[test]
    fn a_rotated_key_verifies_until_its_grace_period_ends() {
        let now = Utc::now();
        let until = now + chrono::Duration::hours(1);
        let old = key(1, b"old", Some(until));
        let new = key(2, b"new", None);
        let alice = a("alice@desk.test");
        let sig = sig_of(&reply_address(&a("help@desk.test"), &old, 5, &alice).unwrap());
        let keys = [old.clone(), new.clone()];
        assert_eq!(check_tag(&keys, now, 5, &alice, &sig), TagCheck::Valid);
        assert_eq!(check_tag(&keys, until, 5, &alice, &sig), TagCheck::Expired);
        // The epoch cannot be swapped: epoch 2's key does not make epoch 1's tag.
        let tag = sig.split_once('.').unwrap().1;
        assert_eq!(
            check_tag(&keys, now, 5, &alice, &format!("2.{tag}")),
            TagCheck::Wrong
        );
        assert_eq!(
            check_tag(&keys, now, 5, &alice, &format!("9.{tag}")),
            TagCheck::Wrong,
            "unknown epoch"
        );
        assert_eq!(
            check_tag(&[new], now, 5, &alice, &sig),
            TagCheck::Wrong,
            "dropped from the ring"
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
