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
use crate::desk::trust::commands_need_signed_reply;
use crate::desk::workers::team_members;
use crate::mail::address::{EmailAddress, Party};
use crate::mail::outgoing::{self, Outgoing, OutgoingAttachment};
use crate::store::records::{Effort, EventKind, Link, LinkKind, Status, Ticket, TicketId};
use crate::store::{Tx, TxResult};

/// Resolves `#assign NAME` to an agent by address or (case-insensitive) name.
fn find_agent<'p>(policy: &'p Policy, who: &str, me: &'p EmailAddress) -> Option<&'p EmailAddress> {
    if who.eq_ignore_ascii_case("me") {
        return Some(me);
    }
    policy
        .agents
        .iter()
        .find(|a| {
            a.address.as_str().eq_ignore_ascii_case(who)
                || a.address.local_part().eq_ignore_ascii_case(who)
                || a.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(who))
        })
        .map(|a| &a.address)
}

/// Checks every command against the ticket and the config; returns one message per problem.
fn validate(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &Ticket,
    me: &EmailAddress,
    parsed: &commands::Parsed,
) -> TxResult<Vec<String>> {
    let mut errors: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| format!("line {}: \"{}\": {}", e.line, e.text, e.why))
        .collect();
    for c in &parsed.commands {
        let problem = match c {
            Command::Assign(Some(who)) if find_agent(policy, who, me).is_none() => {
                Some(format!("#assign {who}: no agent by that address or name"))
            }
            Command::Team(team) if policy.team(team).is_none() => {
                Some(format!("#team {team}: no such team"))
            }
            Command::Escalate => match t.team.as_deref().and_then(|n| policy.team(n)) {
                Some(team) if team.escalates_to.is_some() => None,
                Some(team) => Some(format!("#escalate: team {} has no escalates_to", team.name)),
                None => Some("#escalate: the ticket has no team to escalate from".into()),
            },
            Command::Link(n) | Command::Parent(n) | Command::Merge(n) => {
                if *n == t.id {
                    Some(format!("#{}: a ticket cannot refer to itself", name(c)))
                } else {
                    match tx.ticket(*n)? {
                        None => Some(format!("#{} {n}: no such ticket", name(c))),
                        Some(other) if other.merged_into.is_some() => {
                            Some(format!("#{} {n}: ticket {n} was merged away", name(c)))
                        }
                        Some(other) => not_entitled(policy, &other, me)
                            .map(|why| format!("#{} {n}: {why}", name(c))),
                    }
                }
            }
            _ => None,
        };
        errors.extend(problem);
    }
    Ok(errors)
}

/// Commands (other than `#comment`, which changes nothing) from a mail
/// proven only by DKIM/DMARC, when this agent's commands need the signed
/// reply address.
fn signed_reply_missing(
    policy: &Policy,
    me: &EmailAddress,
    proof: &Proof,
    parsed: &commands::Parsed,
) -> Option<String> {
    let changes = parsed
        .commands
        .iter()
        .any(|c| !matches!(c, Command::Comment | Command::Help));
    (changes && !proof.signed_reply && commands_need_signed_reply(policy, me)).then(|| {
        "commands are only accepted in a reply to a notification (sent to the ticket's signed reply address); a DKIM/DMARC pass proves the domain, not you".to_string()
    })
}

/// Why `me` may not change ticket `t` from another ticket's mail (#merge,
/// #link, #parent change both): only its assignee and the members of its
/// team may. A ticket with neither is anyone's, as any ticket is to the
/// agent writing on it.
fn not_entitled(policy: &Policy, t: &Ticket, me: &EmailAddress) -> Option<String> {
    if t.assignee.as_deref() == Some(me.as_str()) {
        return None;
    }
    match (&t.team, &t.assignee) {
        (Some(team), _) => {
            let member = policy.team(team).is_some_and(|x| x.members.contains(me));
            (!member).then(|| {
                format!(
                    "you are not on team {team}, and ticket {} is not assigned to you",
                    t.id
                )
            })
        }
        (None, Some(_)) => Some(format!("ticket {} is assigned to someone else", t.id)),
        (None, None) => None,
    }
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::Link(_) => "link",
        Command::Parent(_) => "parent",
        Command::Merge(_) => "merge",
        _ => "command",
    }
}

fn changed(
    t: &mut Ticket,
    tx: &Tx<'_>,
    actor: &str,
    field: &str,
    from: String,
    to: String,
    now: DateTime<Utc>,
) -> TxResult<()> {
    if from != to {
        tx.add_event(
            t,
            &event(
                now,
                actor,
                EventKind::FieldChanged {
                    field: field.into(),
                    from,
                    to,
                },
            ),
        )?;
    }
    Ok(())
}

/// Applies validated commands. Returns whether a #status command was given.
fn apply_commands(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    me: &EmailAddress,
    cmds: &[Command],
    now: DateTime<Utc>,
) -> TxResult<bool> {
    let actor = me.as_str();
    let mut status_set = false;
    for c in cmds {
        match c {
            Command::Status(s) => {
                status_set = true;
                let from = t.set_status(*s, now);
                if from != *s {
                    tx.add_event(
                        t,
                        &event(
                            now,
                            actor,
                            EventKind::StatusChanged {
                                from,
                                to: *s,
                                reason: "agent command".into(),
                            },
                        ),
                    )?;
                }
            }
            Command::Assign(who) => {
                let new = who
                    .as_deref()
                    .and_then(|w| find_agent(policy, w, me))
                    .map(|a| a.to_string());
                let old = t.assignee.clone();
                t.assignee = new.clone();
                changed(
                    t,
                    tx,
                    actor,
                    "assignee",
                    old.unwrap_or("-".into()),
                    new.unwrap_or("-".into()),
                    now,
                )?;
            }
            Command::Priority(p) => {
                let old = t.priority;
                t.priority = *p;
                changed(
                    t,
                    tx,
                    actor,
                    "priority",
                    old.to_string(),
                    p.to_string(),
                    now,
                )?;
            }
            Command::Team(team) => {
                let old = t.team.replace(team.clone());
                changed(
                    t,
                    tx,
                    actor,
                    "team",
                    old.unwrap_or("-".into()),
                    team.clone(),
                    now,
                )?;
            }
            Command::Escalate => {
                crate::desk::escalation::escalate(
                    tx,
                    policy,
                    t,
                    &format!("#escalate by {me}"),
                    actor,
                    now,
                )?;
            }
            Command::Time(minutes) => {
                let effort = Effort {
                    agent: me.to_string(),
                    minutes: *minutes,
                    at: now,
                };
                // After a #merge in the same mail the work belongs to the
                // ticket merged into, with the rest of the effort.
                match t.merged_into {
                    Some(n) => {
                        let mut target = tx.ticket_required(n)?;
                        target.effort.push(effort);
                        tx.add_event(
                            &mut target,
                            &event(now, actor, EventKind::EffortLogged { minutes: *minutes }),
                        )?;
                        tx.put_ticket(&target)?;
                    }
                    None => {
                        t.effort.push(effort);
                        tx.add_event(
                            t,
                            &event(now, actor, EventKind::EffortLogged { minutes: *minutes }),
                        )?;
                    }
                }
            }
            Command::Tag(tag) => {
                if !t.tags.contains(tag) {
                    t.tags.push(tag.clone());
                    tx.add_event(
                        t,
                        &event(
                            now,
                            actor,
                            EventKind::FieldChanged {
                                field: "tags".into(),
                                from: String::new(),
                                to: format!("+{tag}"),
                            },
                        ),
                    )?;
                }
            }
            Command::Link(n) | Command::Parent(n) => {
                let (mine, theirs) = match c {
                    Command::Parent(_) => (LinkKind::Parent, LinkKind::Child),
                    _ => (LinkKind::Related, LinkKind::Related),
                };
                link(tx, t, *n, mine, actor, now)?;
                let mut other = tx.ticket_required(*n)?;
                link(tx, &mut other, t.id, theirs, actor, now)?;
                tx.put_ticket(&other)?;
            }
            Command::Merge(n) => {
                let mut target = tx.ticket_required(*n)?;
                for w in &t.watchers {
                    if !target.watchers.contains(w) {
                        target.watchers.push(w.clone());
                    }
                }
                target.effort.append(&mut t.effort);
                target.merged_from.push(t.id);
                target.merged_from.extend(t.merged_from.iter().copied());
                target.updated_at = now;
                tx.add_event(
                    &mut target,
                    &event(now, actor, EventKind::MergedFrom { ticket: t.id }),
                )?;
                tx.put_ticket(&target)?;
                t.merged_into = Some(*n);
                let from = t.set_status(Status::Closed, now);
                tx.add_event(t, &event(now, actor, EventKind::MergedInto { ticket: *n }))?;
                tx.add_event(
                    t,
                    &event(
                        now,
                        actor,
                        EventKind::StatusChanged {
                            from,
                            to: Status::Closed,
                            reason: format!("merged into #{n}"),
                        },
                    ),
                )?;
            }
            Command::Comment | Command::Help => {}
        }
    }
    Ok(status_set)
}

fn link(
    tx: &Tx<'_>,
    t: &mut Ticket,
    other: TicketId,
    kind: LinkKind,
    actor: &str,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let l = Link {
        kind,
        ticket: other,
    };
    if !t.links.contains(&l) {
        t.links.push(l);
        tx.add_event(
            t,
            &event(
                now,
                actor,
                EventKind::Linked {
                    kind,
                    ticket: other,
                },
            ),
        )?;
    }
    Ok(())
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
    let mut errors = validate(tx, policy, &t, &me, &parsed)?;
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

    let status_set = apply_commands(tx, policy, &mut t, &me, &parsed.commands, now)?;
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
    let mut queued = 0;
    if parsed.commands.contains(&Command::Help) {
        queued += crate::desk::help::on_ticket(tx, policy, &mut t, &a, now)?;
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
            name: Some(format!(
                "{} via {}",
                agent_name(policy, a.agent),
                desk.display_name()
            )),
            address: desk.address().clone(),
        },
        to: to.clone(),
        reply_to: None,
        subject: policy.matcher.tagged_subject(t.id, &t.subject),
        body: text.to_string(),
        message_id: outgoing::new_message_id("reply", Some(t.id), desk.address().domain()),
        in_reply_to: t.last_inbound_id.clone(),
        references,
        // A person's words: not automatic mail.
        auto_submitted: None,
        x_loop: desk.address().clone(),
        date: std::time::SystemTime::from(now),
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
    let queued = automail::queue_mail(tx, policy, t, "reply", &outgoing, now)?;
    tx.add_event(
        t,
        &event(
            now,
            a.agent.address.as_str(),
            EventKind::ReplyRelayed {
                to: to.iter().map(|p| p.address.to_string()).collect(),
            },
        ),
    )?;
    Ok(queued)
}
