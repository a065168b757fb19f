//! Mail from an agent on a ticket: the agent works entirely from their own
//! mail client. Commands at the top change the ticket (all or nothing); the
//! text is relayed to the requester and watchers from the help address, or
//! kept internal as a comment. Without proof that the mail is the agent's, it
//! is stored and nothing else happens, and the team is warned.

use chrono::{DateTime, Utc};

pub use crate::desk::agent_tell::AgentMail;
use crate::desk::agent_tell::{agent_name, tell_agents, Tell};
use crate::desk::audit::event;
use crate::desk::automail;
use crate::desk::commands::{self, Command};
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::proof::Proof;
use crate::desk::ticket_commands::{apply_commands, validate, Actor};
use crate::desk::trust::commands_need_signed_reply;
use crate::desk::workers::team_members;
use crate::mail::address::{EmailAddress, Party};
use crate::mail::outgoing::{self, Outgoing, OutgoingAttachment};
use crate::store::records::{EventKind, Status, Ticket, TicketId};
use crate::store::{Tx, TxResult};

/// Commands (other than `#comment`, which changes nothing) from a mail
/// proven only by DKIM/DMARC, when this agent's commands need the signed
/// reply address.
fn signed_reply_missing(
    policy: &Policy,
    me: &EmailAddress,
    proof: &Proof,
    parsed: &commands::Parsed,
) -> Option<String> {
    let changes = parsed.commands.iter().any(Command::changes);
    (changes && !proof.signed_reply && commands_need_signed_reply(policy, me)).then(|| {
        "commands are only accepted in a reply to a notification (sent to the ticket's signed reply address); a DKIM/DMARC pass proves the domain, not you".to_string()
    })
}

/// Handles an agent's mail that threads to ticket `id`.
pub fn handle(
    tx: &Tx<'_>,
    policy: &Policy,
    id: TicketId,
    a: AgentMail<'_>,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let mut t = tx.ticket_required(id)?;
    let me = a.agent.address.clone();
    let mut record = a.record.clone();

    let proof = match &a.proof {
        Ok(proof) => proof,
        Err(unproven) => {
            record.kind = Some("unverified agent mail".into());
            tx.add_message(&mut t, record)?;
            let queued =
                crate::desk::forgery::file_unproven(tx, policy, &mut t, &a, unproven, now)?;
            t.updated_at = now;
            tx.put_ticket(&t)?;
            return Ok(Outcome::Threaded { ticket: id, queued });
        }
    };

    let parsed = commands::parse(&a.record.text);
    let actor = Actor::agent(&me);
    let mut errors = validate(tx, policy, &t, &actor, &parsed)?;
    errors.extend(signed_reply_missing(policy, &me, proof, &parsed));
    if !errors.is_empty() {
        // Nothing applied, nothing relayed; the agent hears exactly what is wrong.
        record.kind = Some("agent mail (commands refused)".into());
        tx.add_message(&mut t, record)?;
        tx.add_event(
            &mut t,
            &event(
                now,
                me.as_str(),
                EventKind::CommandsRefused {
                    errors: errors.clone(),
                },
            ),
        )?;
        let explanation = format!(
            "None of the commands in your mail were applied, and nothing was sent to the requester:\n\n{}\n",
            errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
        );
        let queued = tell_agents(
            tx,
            policy,
            &mut t,
            vec![a.agent.clone()],
            Tell {
                kind: "command error",
                template: "command_error.txt",
                text: &explanation,
            },
            &a,
            now,
        )?;
        tx.put_ticket(&t)?;
        return Ok(Outcome::Threaded { ticket: id, queued });
    }

    let applied = apply_commands(tx, policy, &mut t, &actor, &parsed.commands, now)?;
    let status_set = applied.status_set;
    let is_comment = a.to_comment_address || parsed.commands.contains(&Command::Comment);
    let text = parsed.rest.clone();
    record.text = text.clone();
    record.kind = Some(
        match (text.is_empty(), is_comment) {
            (true, _) => "commands",
            (false, true) => "comment",
            (false, false) => "reply",
        }
        .into(),
    );
    tx.add_message(&mut t, record)?;
    let mut queued = applied.queued;
    if parsed.commands.contains(&Command::Help) {
        queued += crate::desk::help::on_ticket(tx, policy, &mut t, &a, now)?;
    }
    if parsed.commands.contains(&Command::Next) {
        queued += crate::desk::next_mail::on_ticket(tx, policy, &mut t, &a, now)?;
    }
    if !text.is_empty() && is_comment {
        tx.add_event(&mut t, &event(now, me.as_str(), EventKind::CommentAdded))?;
        let members = team_members(policy, &t, Some(&me));
        queued += tell_agents(
            tx,
            policy,
            &mut t,
            members,
            Tell {
                kind: "comment",
                template: "comment.txt",
                text: &text,
            },
            &a,
            now,
        )?;
    } else if !text.is_empty() {
        queued += relay(tx, policy, &mut t, &a, &text, now)?;
        if t.first_response_at.is_none() {
            t.first_response_at = Some(now);
        }
        if t.status == Status::New && !status_set {
            t.set_status(Status::Open, now);
            tx.add_event(
                &mut t,
                &event(
                    now,
                    me.as_str(),
                    EventKind::StatusChanged {
                        from: Status::New,
                        to: Status::Open,
                        reason: format!("first reply ({})", proof.how),
                    },
                ),
            )?;
        }
    }
    t.updated_at = now;
    tx.put_ticket(&t)?;
    Ok(Outcome::Threaded { ticket: id, queued })
}

/// Sends the agent's words to the requester and watchers, from the help
/// address: the agent's own address is never shown.
fn relay(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    a: &AgentMail<'_>,
    text: &str,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let words = Words {
        by: Some(agent_name(policy, a.agent)),
        actor: a.agent.address.as_str(),
        text,
        // The agent's files go to the requester as they came (a mail over
        // the size limit kept none, and its notice says so).
        attachments: a
            .mail
            .attachments
            .iter()
            .zip(&a.record.attachments)
            .filter(|(_, meta)| !meta.dropped)
            .map(|(f, _)| OutgoingAttachment {
                name: f.name.clone(),
                content_type: f.content_type.clone(),
                bytes: f.bytes.clone(),
            })
            .collect(),
    };
    relay_words(tx, policy, t, words, now)
}

/// A person's reply on a ticket, as the requester gets it.
pub struct Words<'a> {
    /// Shown as "NAME via the desk"; `None` shows the desk's name alone.
    pub by: Option<String>,
    /// As the audit trail records who replied.
    pub actor: &'a str,
    pub text: &'a str,
    pub attachments: Vec<OutgoingAttachment>,
}

/// Queues a reply to the requester and watchers from the help address (an
/// agent's relayed mail, or `tickets reply` at the command line).
pub fn relay_words(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    words: Words<'_>,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let mut to = vec![t.requester.clone()];
    for w in &t.watchers {
        if !to.iter().any(|p| p.address == *w) {
            to.push(Party {
                name: None,
                address: w.clone(),
            });
        }
    }
    to.retain(|p| {
        !policy.is_own_address(&p.address) && !crate::mail::classify::is_machine_address(&p.address)
    });
    if to.is_empty() {
        return Ok(0);
    }
    // Only ids the requester's side already knows: their own mail's and
    // those deskgate issued. The agent's Message-ID can name the agent's
    // host, and the requester never saw that mail anyway.
    let references: Vec<String> = t.last_inbound_id.iter().cloned().collect();
    // From the ticket's queue: the address the requester wrote to.
    let desk = policy.sender_of(t);
    let outgoing = Outgoing {
        from: Party {
            name: match &words.by {
                Some(by) => Some(format!("{by} via {}", desk.display_name())),
                None => Some(desk.display_name().to_string()),
            },
            address: desk.address().clone(),
        },
        to: to.clone(),
        reply_to: None,
        subject: policy.matcher.tagged_subject(t.id, &t.subject),
        body: words.text.to_string(),
        message_id: outgoing::new_message_id("reply", Some(t.id), desk.address().domain()),
        in_reply_to: t.last_inbound_id.clone(),
        references,
        // A person's words: not automatic mail.
        auto_submitted: None,
        x_loop: desk.address().clone(),
        date: std::time::SystemTime::from(now),
        attachments: words.attachments,
    };
    let queued = automail::queue_mail(tx, policy, t, "reply", &outgoing, now)?;
    tx.add_event(
        t,
        &event(
            now,
            words.actor,
            EventKind::ReplyRelayed {
                to: to.iter().map(|p| p.address.to_string()).collect(),
            },
        ),
    )?;
    Ok(queued)
}
