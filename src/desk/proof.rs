//! Whether a mail that claims to come from an agent proves it: the signed
//! per-ticket reply address it was sent to, or a trusted
//! Authentication-Results header. A From header alone proves nothing.

use chrono::{DateTime, Utc};

use crate::desk::policy::Policy;
use crate::desk::trust::{self, TagCheck};
use crate::mail::address::{EmailAddress, Party};
use crate::mail::classify::Class;
use crate::mail::parse::InboundMail;
use crate::store::records::TicketId;

/// What the addresses a mail was sent to say: a signed per-ticket reply
/// address (`help+1042.sig@`), or the comment address.
#[derive(Default)]
pub struct AddressSignals {
    pub signed_ticket: Option<(TicketId, String)>,
    pub comment: bool,
    /// Sent to `help+commands@`: the sender asks for the command list.
    pub commands_help: bool,
    /// Sent to `help+next@`: the sender asks for their list of work.
    pub next: bool,
    /// Sent to `help+report@`: the sender asks for a report.
    pub report: bool,
}

pub fn address_signals(policy: &Policy, mail: &InboundMail) -> AddressSignals {
    let mut s = AddressSignals::default();
    let addrs = mail
        .delivered_to
        .iter()
        .chain(mail.to.iter().map(|p| &p.address))
        .chain(mail.cc.iter().map(|p| &p.address));
    for a in addrs {
        if policy.comment_address.as_ref() == Some(a) {
            s.comment = true;
        }
        // On any of our addresses: a tag proves the same on each (see
        // `Policy::plus_tag`).
        match policy.plus_tag(a) {
            Some(trust::PlusTag::Comment) => s.comment = true,
            Some(trust::PlusTag::Commands) => s.commands_help = true,
            Some(trust::PlusTag::Next) => s.next = true,
            Some(trust::PlusTag::Report) => s.report = true,
            Some(trust::PlusTag::Ticket { ticket, sig }) if s.signed_ticket.is_none() => {
                s.signed_ticket = Some((ticket, sig))
            }
            _ => {}
        }
    }
    s
}

/// How an agent's mail proved to be theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// In plain words, for the history ("sent to the signed reply address").
    pub how: String,
    /// Sent to the signed reply address: proves the person, where a
    /// DKIM/DMARC pass proves only the domain.
    pub signed_reply: bool,
}

/// Why an agent's mail proves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unproven {
    /// In plain words, for the history and the warning.
    pub why: String,
    /// It named a signed reply address whose tag none of our keys made: a
    /// guess or a forgery, counted per sender.
    pub wrong_tag: bool,
}

/// How an agent's mail proves to be theirs, or why it does not.
/// Who may ask the desk something by mail outside any ticket (`help+commands@`,
/// `help+next@`, `help+report@`): a configured agent, writing as a person
/// (never an automatic reply), with proof the mail is theirs. The error is
/// why not, in words the ignored list shows.
pub fn proven_asker<'m>(
    policy: &Policy,
    mail: &'m InboundMail,
    class: &Class,
    signals: &AddressSignals,
    now: DateTime<Utc>,
) -> Result<&'m Party, String> {
    let Some(agent) = mail
        .from
        .as_ref()
        .filter(|f| policy.agent(&f.address).is_some())
    else {
        return Err("not from an agent".into());
    };
    if !class.may_auto_reply() {
        return Err("automatic mail".into());
    }
    if let Err(unproven) = agent_proof(policy, mail, &agent.address, signals, now) {
        return Err(format!(
            "no proof it is {}'s ({})",
            agent.address, unproven.why
        ));
    }
    Ok(agent)
}

pub fn agent_proof(
    policy: &Policy,
    mail: &InboundMail,
    agent: &EmailAddress,
    signals: &AddressSignals,
    now: DateTime<Utc>,
) -> Result<Proof, Unproven> {
    let mut tag = None;
    if let Some((t, sig)) = &signals.signed_ticket {
        // Checked against the ticket the address names: the mail threads
        // there first, and lands on another ticket only when that one was
        // merged away; the tag still proves the agent got its notification.
        let check = trust::check_tag(&policy.reply_keys.get(), now, *t, agent, sig);
        if check == TagCheck::Valid {
            return Ok(Proof {
                how: "sent to the signed reply address".into(),
                signed_reply: true,
            });
        }
        tag = Some(check);
    }
    if let Some(how) = trust::authenticated(&mail.headers, &policy.trust, agent) {
        return Ok(Proof {
            how,
            signed_reply: false,
        });
    }
    let why = match tag {
        None => "it carries no proof (no trusted DKIM/DMARC result, not sent to a signed reply address)",
        Some(TagCheck::Legacy) => "it was sent to an old-style reply address (a 40-bit tag from before key epochs, no longer accepted) and carries no trusted DKIM/DMARC result",
        Some(TagCheck::Expired) => "it was sent to a reply address signed by a key retired after its grace period, and carries no trusted DKIM/DMARC result",
        Some(_) => "it was sent to a reply address with a wrong tag (not one deskgate made for this agent and ticket) and carries no trusted DKIM/DMARC result",
    };
    Err(Unproven {
        why: why.into(),
        wrong_tag: tag == Some(TagCheck::Wrong),
    })
}
