//! Steering a ticket from the command line (`deskgate tickets set`,
//! `comment`, `reply`, `merge`, `link`): the same commands, checks, audit
//! trail and notices as an agent's mail (`desk::ticket_commands`, the
//! agent's reply path in `desk::agent`), with the person at the command
//! line as the actor. All or nothing, like a mail: one bad command and
//! nothing changes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Agent;
use crate::desk::agent::{relay_words, Words};
use crate::desk::agent_tell::agent_name;
use crate::desk::audit::event;
use crate::desk::automail::{self, AutoMail, MessageContext};
use crate::desk::commands;
use crate::desk::policy::Policy;
use crate::desk::ticket_commands::{apply_commands, find_agent, validate, Actor};
use crate::desk::trust::reply_to_for;
use crate::desk::workers::{party, team_members};
use crate::mail::address::{EmailAddress, Party};
use crate::mail::outgoing::{AutoSubmitted, OutgoingAttachment};
use crate::store::records::{
    AttachmentMeta, Direction, EventKind, MessageRecord, Status, TicketId,
};
use crate::store::{Tx, TxResult};

/// Most attachments one `tickets reply` sends.
pub const MAX_ATTACHMENTS: usize = 20;

/// What the person at the command line does to the ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Mail commands, one a line, as an agent writes them (`#status waiting`).
    Commands { lines: Vec<String> },
    /// An internal comment: the ticket's team hears of it, never the requester.
    Comment { text: String },
    /// A reply to the requester and watchers, from the help address.
    Reply {
        text: String,
        #[serde(default)]
        attachments: Vec<OutgoingAttachment>,
    },
}

/// One change asked at the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub ticket: TicketId,
    /// The Unix user running the command.
    pub user: String,
    /// The agent they act as (`--as`: an address or name); `None` acts as
    /// the agent whose `login` is `user`, or else as `cli:<user>`, an admin
    /// entitled to every ticket.
    #[serde(default)]
    pub as_agent: Option<String>,
    pub action: Action,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub ticket: TicketId,
    /// As recorded in the audit trail.
    pub actor: String,
    /// Mails queued (notices, the reply).
    pub queued: usize,
}

/// Whom a command-line user acts as when they name nobody with `--as`: the
/// agent whose `login` is their Unix user, so the trail names the agent and
/// their team's rights apply; `None` leaves them `cli:<user>`, the admin.
/// Not a lock: whoever reaches the control socket may be the admin anyway.
pub fn agent_of_login<'a>(agents: &'a [Agent], user: &str) -> Option<&'a EmailAddress> {
    agents
        .iter()
        .find(|a| a.login.as_deref() == Some(user))
        .map(|a| &a.address)
}

/// Applies a request in the caller's transaction. `Ok(Err(problems))`
/// changed nothing; each problem is a line for a person.
pub fn apply(
    tx: &Tx<'_>,
    policy: &Policy,
    req: &Request,
    now: DateTime<Utc>,
) -> TxResult<Result<Done, Vec<String>>> {
    let refuse = |why: String| Ok(Err(vec![why]));
    let Some(mut t) = tx.ticket(req.ticket)? else {
        return refuse(format!("no ticket {}", req.ticket));
    };
    if let Some(n) = t.merged_into {
        return refuse(format!(
            "ticket {} was merged into {n}: steer {n} instead",
            t.id
        ));
    }
    let agent: Option<EmailAddress> = match &req.as_agent {
        None => agent_of_login(&policy.agents, &req.user).cloned(),
        Some(who) => match find_agent(policy, who, None) {
            Some(a) => Some(a.clone()),
            None => return refuse(format!("--as {who}: no agent by that address or name")),
        },
    };
    let cli_name = format!("cli:{}", req.user);
    let via = format!("command line ({cli_name})");
    let actor = Actor {
        name: agent.as_ref().map_or(cli_name.as_str(), |a| a.as_str()),
        agent: agent.as_ref(),
        via: &via,
    };
    let writer = match &agent {
        Some(a) => {
            let p = party(policy, a);
            Party {
                name: Some(agent_name(policy, &p)),
                address: p.address,
            }
        }
        None => Party {
            name: Some(cli_name.clone()),
            address: policy.desk.address.clone(),
        },
    };
    let mut queued = 0;
    match &req.action {
        Action::Commands { lines } => {
            let mut parsed = commands::parse(&lines.join("\n"));
            // Said without the line numbers a mail's refusal has.
            let mut errors: Vec<String> = (parsed.errors.drain(..))
                .map(|e| format!("{}: {}", e.text, e.why))
                .collect();
            errors.extend(validate(tx, policy, &t, &actor, &parsed)?);
            if !parsed.rest.is_empty() {
                errors.push(format!("not a command: \"{}\"", parsed.rest));
            }
            if parsed.commands.iter().any(|c| !c.changes()) {
                errors.push("#comment, #help and #next are for mail only".into());
            }
            if parsed.commands.is_empty() && errors.is_empty() {
                errors.push("nothing to change".into());
            }
            if !errors.is_empty() {
                return Ok(Err(errors));
            }
            queued += apply_commands(tx, policy, &mut t, &actor, &parsed.commands, now)?.queued;
        }
        Action::Comment { text } => {
            let text = text.trim();
            if text.is_empty() {
                return refuse("the comment is empty".into());
            }
            record(
                tx,
                policy,
                &mut t,
                &writer,
                text,
                Vec::new(),
                "comment",
                now,
            )?;
            tx.add_event(&mut t, &event(now, actor.name, EventKind::CommentAdded))?;
            for to in team_members(policy, &t, agent.as_ref()) {
                queued += tell_comment(tx, policy, &mut t, &writer, to, text, now)?;
            }
        }
        Action::Reply { text, attachments } => {
            let text = text.trim();
            if text.is_empty() {
                return refuse("the reply is empty".into());
            }
            if attachments.len() > MAX_ATTACHMENTS {
                return refuse(format!("at most {MAX_ATTACHMENTS} attachments"));
            }
            let size: usize = text.len() + attachments.iter().map(|a| a.bytes.len()).sum::<usize>();
            if size as u64 > policy.limits.max_message_size {
                return refuse(format!(
                    "the reply is {} with its attachments; max_message_size is {}",
                    bytesize::ByteSize::b(size as u64),
                    bytesize::ByteSize::b(policy.limits.max_message_size)
                ));
            }
            let files = attachments
                .iter()
                .map(|a| OutgoingAttachment {
                    name: crate::mail::text::sanitize_file_name(Some(&a.name)),
                    content_type: a.content_type.clone(),
                    bytes: a.bytes.clone(),
                })
                .collect::<Vec<_>>();
            record(
                tx,
                policy,
                &mut t,
                &writer,
                text,
                files.clone(),
                "reply",
                now,
            )?;
            let words = Words {
                by: agent.as_ref().map(|_| agent_name(policy, &writer)),
                actor: actor.name,
                text,
                attachments: files,
            };
            let sent = relay_words(tx, policy, &mut t, words, now)?;
            if sent == 0 {
                return refuse(format!(
                    "ticket {} has nobody to reply to (the requester is a machine or the desk)",
                    t.id
                ));
            }
            queued += sent;
            if t.first_response_at.is_none() {
                t.first_response_at = Some(now);
            }
            if t.status == Status::New {
                t.set_status(Status::Open, now);
                let kind = EventKind::StatusChanged {
                    from: Status::New,
                    to: Status::Open,
                    reason: format!("first reply ({via})"),
                };
                tx.add_event(&mut t, &event(now, actor.name, kind))?;
            }
        }
    }
    t.updated_at = now;
    tx.put_ticket(&t)?;
    Ok(Ok(Done {
        ticket: t.id,
        actor: actor.name.to_string(),
        queued,
    }))
}

/// Keeps the words on the ticket as an agent's mail would be kept (with
/// the attachments' bytes, so `tickets attachment` finds them).
#[allow(clippy::too_many_arguments)]
fn record(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut crate::store::records::Ticket,
    writer: &Party,
    text: &str,
    files: Vec<OutgoingAttachment>,
    kind: &str,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let mut attachments = Vec::new();
    for f in &files {
        let sha256 = crate::mail::parse::sha256_hex(&f.bytes);
        tx.put_blob(&sha256, &f.bytes)?;
        attachments.push(AttachmentMeta {
            name: f.name.clone(),
            content_type: f.content_type.clone(),
            size: f.bytes.len() as u64,
            sha256,
            dropped: false,
        });
    }
    let rec = MessageRecord {
        ticket: t.id,
        seq: 0,
        direction: Direction::Inbound,
        from: Some(writer.clone()),
        to: vec![policy.desk.clone()],
        cc: Vec::new(),
        subject: policy.matcher.tagged_subject(t.id, &t.subject),
        date: Some(now),
        recorded_at: now,
        message_id: None,
        text: text.to_string(),
        attachments,
        raw_key: None,
        kind: Some(format!("{kind} (command line)")),
    };
    tx.add_message(t, rec)?;
    Ok(())
}

/// One team member hears of a comment (`comment.txt`, as for a mailed one).
fn tell_comment(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut crate::store::records::Ticket,
    writer: &Party,
    mut to: Party,
    text: &str,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    to.name = Some(agent_name(policy, &to));
    let subject = t.subject.clone();
    let m = AutoMail {
        kind: "comment",
        template: "comment.txt",
        requester: writer.clone(),
        reply_to: Some(reply_to_for(policy, t, &to.address)),
        to,
        from_name: Some(format!(
            "{} via {}",
            writer.name.as_deref().unwrap_or("deskgate"),
            policy.sender_of(t).display_name()
        )),
        in_reply_to: None,
        references: Vec::new(),
        auto_submitted: AutoSubmitted::AutoGenerated,
        message: MessageContext {
            subject: &subject,
            text,
        },
        dropped_attachments: Vec::new(),
        rate_limited: false,
    };
    automail::queue_automatic(tx, policy, t, m, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_as_the_unix_user_acts_as_the_agent_of_that_login() {
        let agent = |address: &str, login: Option<&str>| Agent {
            address: EmailAddress::parse(address).unwrap(),
            name: None,
            teams: vec!["it".into()],
            commands_need_signed_reply: None,
            login: login.map(str::to_string),
        };
        let agents = [
            agent("alice@desk.test", Some("alice")),
            agent("bob@desk.test", None),
            agent("carol@desk.test", Some("csmith")),
        ];
        let of = |user: &str| agent_of_login(&agents, user).map(|a| a.as_str().to_string());
        assert_eq!(of("alice").as_deref(), Some("alice@desk.test"));
        assert_eq!(of("csmith").as_deref(), Some("carol@desk.test"));
        // No login of theirs: the admin `cli:<user>`; a login is exact.
        assert_eq!(of("bob"), None);
        assert_eq!(of("carol"), None);
        assert_eq!(of("Alice"), None);
        assert_eq!(agent_of_login(&[], "alice"), None);
    }

    #[test]
    fn a_request_crosses_the_control_socket_whole() {
        let r = Request {
            ticket: 1042,
            user: "root".into(),
            as_agent: Some("alice".into()),
            action: Action::Reply {
                text: "Fixed.".into(),
                attachments: vec![OutgoingAttachment {
                    name: "a.bin".into(),
                    content_type: "application/octet-stream".into(),
                    bytes: vec![0, 255, 13, 10],
                }],
            },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
    }
}
