//! The full list of mail commands (`commands.txt`), sent to an agent who
//! asks: `#help` on a ticket, or a mail to `help+commands@`. Only a proven
//! agent gets it (the list tells how to drive the desk); it is an automatic
//! reply (`Auto-Submitted: auto-replied`), answered only to a person's mail,
//! under the per-recipient rate limit like every other automatic reply.

use chrono::{DateTime, Utc};

use crate::desk::agent_tell::{agent_name, AgentMail};
use crate::desk::automail::{self, AutoMail, MailContext, MessageContext};
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::proof::{proven_asker, AddressSignals};
use crate::desk::trust::reply_to_for;
use crate::mail::address::Party;
use crate::mail::classify::Class;
use crate::mail::outgoing::AutoSubmitted;
use crate::mail::parse::InboundMail;
use crate::store::records::Ticket;
use crate::store::{Tx, TxResult};

const TEMPLATE: &str = "commands.txt";

/// The agent as greeted: their configured name.
fn greeted(policy: &Policy, agent: &Party) -> Party {
    Party {
        name: Some(agent_name(policy, agent)),
        address: agent.address.clone(),
    }
}

/// `#help` in a proven agent's mail on ticket `t`: the list, threaded under
/// their mail, Reply-To their signed reply address of the ticket.
pub fn on_ticket(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    a: &AgentMail<'_>,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let to = greeted(policy, a.agent);
    let m = AutoMail {
        kind: "help",
        template: TEMPLATE,
        requester: to.clone(),
        reply_to: Some(reply_to_for(policy, t, &to.address)),
        to,
        from_name: None,
        in_reply_to: a.mail.message_id.clone(),
        references: a.mail.message_id.iter().cloned().collect(),
        auto_submitted: AutoSubmitted::AutoReplied,
        message: MessageContext {
            subject: &a.mail.subject,
            text: "",
        },
        dropped_attachments: Vec::new(),
        rate_limited: true,
    };
    automail::queue_automatic(tx, policy, t, m, now)
}

/// A mail to `help+commands@`: never a ticket. A proven agent's person-made
/// mail gets the list; anything else gets nothing and is kept in the
/// ignored list with why.
pub fn on_address(
    tx: &Tx<'_>,
    policy: &Policy,
    mail: &InboundMail,
    class: &Class,
    signals: &AddressSignals,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let ignored = |why: String| Outcome::Ignored {
        reason: format!("mail to help+commands@: {why}"),
    };
    let agent = match proven_asker(policy, mail, class, signals, now) {
        Ok(agent) => agent,
        Err(why) => return Ok(ignored(format!("{why}; no answer"))),
    };
    Ok(
        match queue_standalone(tx, policy, &greeted(policy, agent), mail, now)? {
            Ok(()) => ignored(format!("the command list was sent to {}", agent.address)),
            Err(why) => ignored(format!("no command list sent: {why}")),
        },
    )
}

/// The list outside any ticket, under the same guards as a rejection.
fn queue_standalone(
    tx: &Tx<'_>,
    policy: &Policy,
    to: &Party,
    mail: &InboundMail,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    if crate::mail::classify::is_machine_address(&to.address) {
        return Ok(Err(format!("{} is a machine address", to.address)));
    }
    // From the queue whose help+commands@ the agent wrote to.
    let from = policy.sender_for_mail(mail, None);
    let ctx = MailContext {
        ticket: None,
        tag: String::new(),
        recipient: to,
        recipient_name: to.name.as_deref().unwrap_or(to.address.local_part()),
        requester: to,
        requester_name: to.name.as_deref().unwrap_or(to.address.local_part()),
        desk: from.party,
        message: MessageContext {
            subject: &mail.subject,
            text: "",
        },
        dropped_attachments: Vec::new(),
        max_message_size: bytesize::ByteSize::b(policy.limits.max_message_size).to_string(),
        rule: None,
    };
    let rendered = match from.templates.render(TEMPLATE, &ctx) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    automail::queue_ticketless_from(
        tx,
        policy,
        from,
        to,
        "help",
        rendered,
        mail.message_id.clone(),
        now,
    )
}
