//! Commands applied to a ticket, whoever gives them: an agent's mail
//! (`desk::agent`) or a person at the command line (`desk::steer`). One
//! check and one application, so the audit trail and the notices are the
//! same either way; only the actor's name differs.

use chrono::{DateTime, Utc};

use crate::desk::audit::event;
use crate::desk::automail::{self, AutoMail, MessageContext};
use crate::desk::commands::{self, Command};
use crate::desk::policy::Policy;
use crate::desk::trust::reply_to_for;
use crate::desk::workers::party;
use crate::mail::address::EmailAddress;
use crate::mail::outgoing::AutoSubmitted;
use crate::store::records::{Effort, EventKind, Link, LinkKind, Status, Ticket, TicketId};
use crate::store::{Tx, TxResult};

/// Who gives the commands.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// As the audit trail records it: the agent's address, or `cli:<user>`
    /// for a person at the command line who acts as no agent.
    pub name: &'a str,
    /// The agent acting. `None` is an admin at the command line (only root
    /// and the store's owner reach the store): entitled to every ticket.
    pub agent: Option<&'a EmailAddress>,
    /// Where the commands came from, for the audit trail ("agent command").
    pub via: &'a str,
}

impl<'a> Actor<'a> {
    /// An agent writing by mail.
    pub fn agent(me: &'a EmailAddress) -> Actor<'a> {
        Actor {
            name: me.as_str(),
            agent: Some(me),
            via: "agent command",
        }
    }
}

/// What applying the commands did besides changing the ticket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// A `#status` was given (a first reply then leaves the status alone).
    pub status_set: bool,
    /// Mails queued (escalation notices, the new assignee's notice).
    pub queued: usize,
}

/// Resolves `#assign NAME` to an agent by address or (case-insensitive) name.
pub fn find_agent<'p>(
    policy: &'p Policy,
    who: &str,
    me: Option<&'p EmailAddress>,
) -> Option<&'p EmailAddress> {
    if who.eq_ignore_ascii_case("me") {
        return me;
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
pub fn validate(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &Ticket,
    actor: &Actor<'_>,
    parsed: &commands::Parsed,
) -> TxResult<Vec<String>> {
    let mut errors: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| format!("line {}: \"{}\": {}", e.line, e.text, e.why))
        .collect();
    for c in &parsed.commands {
        let problem = match c {
            Command::Assign(Some(who)) if find_agent(policy, who, actor.agent).is_none() => {
                Some(if who.eq_ignore_ascii_case("me") {
                    "#assign me: you act as no agent (name one, e.g. --as ADDRESS)".to_string()
                } else {
                    format!("#assign {who}: no agent by that address or name")
                })
            }
            Command::Team(team) if policy.team(team).is_none() => {
                Some(format!("#team {team}: no such team"))
            }
            Command::Escalate => match t.team.as_deref().and_then(|n| policy.team(n)) {
                Some(team) if team.escalates_to.is_some() => None,
                Some(team) => Some(format!("#escalate: team {} has no escalates_to", team.name)),
                None => Some("#escalate: the ticket has no team to escalate from".into()),
            },
            Command::Link(n) | Command::Parent(n) | Command::Merge(n) | Command::Problem(n) => {
                if *n == t.id {
                    Some(format!("#{}: a ticket cannot refer to itself", name(c)))
                } else {
                    match tx.ticket(*n)? {
                        None => Some(format!("#{} {n}: no such ticket", name(c))),
                        Some(other) if other.merged_into.is_some() => {
                            Some(format!("#{} {n}: ticket {n} was merged away", name(c)))
                        }
                        Some(other) => actor
                            .agent
                            .and_then(|me| not_entitled(policy, &other, me))
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
        Command::Problem(_) => "problem",
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

/// Applies validated commands.
pub fn apply_commands(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    who: &Actor<'_>,
    cmds: &[Command],
    now: DateTime<Utc>,
) -> TxResult<Applied> {
    let actor = who.name;
    let mut applied = Applied::default();
    let mut newly_assigned = None;
    for c in cmds {
        match c {
            Command::Status(s) => {
                applied.status_set = true;
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
                                reason: who.via.into(),
                            },
                        ),
                    )?;
                }
            }
            Command::Assign(w) => {
                let new = w
                    .as_deref()
                    .and_then(|w| find_agent(policy, w, who.agent))
                    .cloned();
                let old = t.assignee.clone();
                t.assignee = new.as_ref().map(|a| a.to_string());
                if t.assignee != old {
                    newly_assigned = new.filter(|a| Some(a) != who.agent);
                }
                changed(
                    t,
                    tx,
                    actor,
                    "assignee",
                    old.unwrap_or("-".into()),
                    t.assignee.clone().unwrap_or("-".into()),
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
                applied.queued += crate::desk::escalation::escalate(
                    tx,
                    policy,
                    t,
                    &format!("#escalate by {actor}"),
                    actor,
                    now,
                )?;
            }
            Command::Time(minutes) => {
                let effort = Effort {
                    agent: actor.to_string(),
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
            Command::Link(n) | Command::Parent(n) | Command::Problem(n) => {
                let (mine, theirs) = match c {
                    Command::Link(_) => (LinkKind::Related, LinkKind::Related),
                    _ => (LinkKind::Parent, LinkKind::Child),
                };
                let new = link(tx, t, *n, mine, actor, now)?;
                let mut other = tx.ticket_required(*n)?;
                link(tx, &mut other, t.id, theirs, actor, now)?;
                if new && matches!(c, Command::Problem(_)) {
                    // Its own wording in both trails: "problem: - -> #1042".
                    changed(t, tx, actor, "problem", "-".into(), format!("#{n}"), now)?;
                    let incident = format!("+#{}", t.id);
                    changed(&mut other, tx, actor, "incidents", "".into(), incident, now)?;
                }
                tx.put_ticket(&other)?;
            }
            Command::Merge(n) => merge(tx, t, *n, actor, now)?,
            Command::Comment | Command::Help | Command::Next => {}
        }
    }
    if let Some(agent) = newly_assigned.filter(|_| t.merged_into.is_none()) {
        applied.queued += tell_assignee(tx, policy, t, who, &agent, now)?;
    }
    Ok(applied)
}

/// `#merge N`: watchers, effort and history pointers move to N; this
/// ticket closes with a pointer.
fn merge(
    tx: &Tx<'_>,
    t: &mut Ticket,
    n: TicketId,
    actor: &str,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let mut target = tx.ticket_required(n)?;
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
    t.merged_into = Some(n);
    let from = t.set_status(Status::Closed, now);
    tx.add_event(t, &event(now, actor, EventKind::MergedInto { ticket: n }))?;
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
    )
}

/// Adds a link; returns whether it is new.
fn link(
    tx: &Tx<'_>,
    t: &mut Ticket,
    other: TicketId,
    kind: LinkKind,
    actor: &str,
    now: DateTime<Utc>,
) -> TxResult<bool> {
    let l = Link {
        kind,
        ticket: other,
    };
    if t.links.contains(&l) {
        return Ok(false);
    }
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
    Ok(true)
}

/// The agent a ticket was just given to (by someone else) hears of it
/// (`assigned.txt`), with the ticket's signed reply address to answer on.
fn tell_assignee(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    who: &Actor<'_>,
    agent: &EmailAddress,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let by = match who.agent {
        Some(a) => crate::desk::agent_tell::agent_name(policy, &party(policy, a)),
        None => who.name.to_string(),
    };
    let text = format!("{by} assigned this ticket to you.");
    let mut to = party(policy, agent);
    to.name = Some(crate::desk::agent_tell::agent_name(policy, &to));
    let subject = t.subject.clone();
    let m = AutoMail {
        kind: "assignment notice",
        template: "assigned.txt",
        requester: t.requester.clone(),
        reply_to: Some(reply_to_for(policy, t, agent)),
        to,
        from_name: None,
        in_reply_to: None,
        references: Vec::new(),
        auto_submitted: AutoSubmitted::AutoGenerated,
        message: MessageContext {
            subject: &subject,
            text: &text,
        },
        dropped_attachments: Vec::new(),
        rate_limited: false,
    };
    automail::queue_automatic(tx, policy, t, m, now)
}
