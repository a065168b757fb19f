//! Whether a mail that claims to come from an agent proves it: the signed
//! per-ticket reply address it was sent to, or a trusted
//! Authentication-Results header. A From header alone proves nothing.

use crate::desk::policy::Policy;
use crate::desk::trust;
use crate::mail::address::EmailAddress;
use crate::mail::parse::InboundMail;
use crate::store::records::TicketId;

/// What the addresses a mail was sent to say: a signed per-ticket reply
/// address (`help+1042.sig@`), or the comment address.
#[derive(Default)]
pub struct AddressSignals {
    pub signed_ticket: Option<(TicketId, String)>,
    pub comment: bool,
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
        match trust::plus_tag(&policy.desk.address, a) {
            Some(trust::PlusTag::Comment) => s.comment = true,
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

/// How an agent's mail proves to be theirs, if it does.
pub fn agent_proof(
    policy: &Policy,
    mail: &InboundMail,
    agent: &EmailAddress,
    ticket: TicketId,
    signals: &AddressSignals,
) -> Option<Proof> {
    if let Some((t, sig)) = &signals.signed_ticket {
        if *t == ticket
            && !policy.reply_key.is_empty()
            && trust::verify(&policy.reply_key, *t, agent, sig)
        {
            return Some(Proof {
                how: "sent to the signed reply address".into(),
                signed_reply: true,
            });
        }
    }
    trust::authenticated(&mail.headers, &policy.trust, agent).map(|how| Proof {
        how,
        signed_reply: false,
    })
}
