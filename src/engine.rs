//! The ingest step: one raw mail in, one committed transaction out.
//!
//! `Engine::ingest` parses, classifies and threads a mail, decides what it
//! does to the store (new ticket, message on an existing ticket, ignored,
//! quarantined) and which mails it must send, and commits all of it in one
//! sled transaction together with the mail's dedupe key. It does no network
//! I/O: the mailbox task calls it and the outbox sender delivers what it queued.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sled::transaction::ConflictableTransactionError;
use thiserror::Error;
use tracing::{debug, warn};

use crate::address::{EmailAddress, Party};
use crate::classify::{classify, Class};
use crate::clock::Clock;
use crate::compose::{self, AutoSubmitted, ComposeError, Outgoing, Templates};
use crate::config::Config;
use crate::inbound::{self, sha256_hex, InboundMail};
use crate::model::{
    AttachmentMeta, Direction, Disposition, Event, EventKind, MessageRecord, OutboxEntry, Priority,
    QuarantineEntry, Status, Ticket, TicketId,
};
use crate::store::{Store, StoreError, Tx, TxResult};
use crate::text::trim_quoted;
use crate::threading::{resolve, thread_keys, ThreadKeys, TokenMatcher};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot commit mail: {0}")]
    Store(#[from] StoreError),
}

/// Everything the engine needs from the configuration, swapped whole on reload
/// so that one mail is handled wholly by one version.
#[derive(Debug)]
pub struct Policy {
    pub desk: Party,
    pub envelope_from: EmailAddress,
    pub first_ticket: TicketId,
    pub matcher: TokenMatcher,
    pub templates: Templates,
}

impl Policy {
    pub fn from_config(cfg: &Config) -> Result<Policy, ComposeError> {
        Ok(Policy {
            desk: Party {
                name: Some(cfg.desk.name.clone()),
                address: cfg.desk.address.clone(),
            },
            envelope_from: cfg.smtp.envelope_from.clone(),
            first_ticket: cfg.desk.first_ticket,
            matcher: TokenMatcher::new(&cfg.desk.subject_tag),
            templates: Templates::load(&cfg.desk.templates)?,
        })
    }
}

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        ticket: TicketId,
        queued: usize,
    },
    Threaded {
        ticket: TicketId,
        queued: usize,
    },
    /// Seen before (same Message-ID, or same bytes when it has none).
    Duplicate {
        ticket: Option<TicketId>,
    },
    /// Kept but not made a ticket (automatic mail that threads nowhere).
    Ignored {
        reason: String,
    },
    Quarantined {
        id: u64,
        reason: String,
    },
}

impl Outcome {
    pub fn queued(&self) -> usize {
        match self {
            Outcome::Created { queued, .. } | Outcome::Threaded { queued, .. } => *queued,
            _ => 0,
        }
    }
}

pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    policy: RwLock<Arc<Policy>>,
}

impl Engine {
    pub fn new(store: Store, clock: Arc<dyn Clock>, policy: Policy) -> Engine {
        Engine {
            store,
            clock,
            policy: RwLock::new(Arc::new(policy)),
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_policy(&self, p: Policy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Processes one raw mail that arrived at `mailbox`. Only a store failure
    /// is an error; a mail that cannot be understood is quarantined.
    pub fn ingest(&self, raw: &[u8], mailbox: &str) -> Result<Outcome, EngineError> {
        let mut outcomes = self.ingest_batch(&[raw], mailbox)?;
        Ok(outcomes.pop().unwrap_or(Outcome::Ignored {
            reason: "nothing to ingest".into(),
        }))
    }

    /// Processes a batch of mails in one transaction: each mail's change is
    /// atomic, and the whole batch commits (or not) together, which is what
    /// makes bulk ingest fast. Outcomes are in input order.
    pub fn ingest_batch(&self, raws: &[&[u8]], mailbox: &str) -> Result<Vec<Outcome>, EngineError> {
        let policy = self.policy();
        let now = self.clock.now();
        let prepared: Vec<Prepared<'_>> = raws
            .iter()
            .map(|raw| Prepared::new(raw, &policy, now))
            .collect();
        let outcomes = self.store.transact(|tx| {
            prepared
                .iter()
                .map(|p| apply(tx, p, &policy, mailbox, now))
                .collect::<TxResult<Vec<Outcome>>>()
        })?;
        for (p, o) in prepared.iter().zip(&outcomes) {
            match o {
                Outcome::Quarantined { reason, .. } => {
                    warn!(mailbox, key = %p.dedupe_key, reason, "quarantined mail")
                }
                _ => debug!(mailbox, key = %p.dedupe_key, outcome = ?o, "ingested"),
            }
        }
        Ok(outcomes)
    }
}

/// What can be worked out about a mail before looking at the store.
struct Prepared<'a> {
    raw: &'a [u8],
    dedupe_key: String,
    parsed: Result<ParsedParts, String>,
}

struct ParsedParts {
    mail: InboundMail,
    class: Class,
    keys: ThreadKeys,
    record: MessageRecord,
}

impl<'a> Prepared<'a> {
    fn new(raw: &'a [u8], policy: &Policy, now: DateTime<Utc>) -> Prepared<'a> {
        match inbound::parse(raw) {
            Ok(mail) => Prepared {
                raw,
                dedupe_key: mail.dedupe_key(),
                parsed: Ok(ParsedParts {
                    class: classify(&mail, &policy.desk.address),
                    keys: thread_keys(
                        &policy.matcher,
                        &mail.subject,
                        &mail.in_reply_to,
                        &mail.references,
                    ),
                    record: inbound_record(&mail, now),
                    mail,
                }),
            },
            Err(e) => Prepared {
                raw,
                dedupe_key: format!("sha256:{}", sha256_hex(raw)),
                parsed: Err(e.to_string()),
            },
        }
    }
}

/// Applies one prepared mail inside the batch's transaction.
fn apply(
    tx: &Tx<'_>,
    p: &Prepared<'_>,
    policy: &Policy,
    mailbox: &str,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let ParsedParts {
        mail,
        class,
        keys,
        record,
    } = match &p.parsed {
        Ok(parts) => parts,
        Err(reason) => return quarantine_in_tx(tx, p.raw, mailbox, reason, &p.dedupe_key, now),
    };
    if let Some(d) = tx.disposition(&p.dedupe_key)? {
        return Ok(Outcome::Duplicate { ticket: d.ticket });
    }
    let existing = resolve(keys, |t| tx.ticket_exists(t), |id| tx.ticket_of_message(id))?;
    let outcome = match (existing, class) {
        (Some(id), _) => thread_onto(tx, id, mail, class, record, now)?,
        (None, Class::Human) => match &mail.from {
            Some(from) => create_ticket(tx, policy, mailbox, from, mail, record, now)?,
            // Not answerable and not automatic: an admin must look at it.
            None => {
                return quarantine_in_tx(
                    tx,
                    p.raw,
                    mailbox,
                    "no usable From address",
                    &p.dedupe_key,
                    now,
                )
            }
        },
        (None, Class::Automatic(r) | Class::Bounce(r) | Class::OwnLoop(r)) => Outcome::Ignored {
            reason: format!("automatic mail that belongs to no ticket: {r}"),
        },
    };
    tx.put_raw(&mail.raw_sha256, p.raw)?;
    for (a, meta) in mail.attachments.iter().zip(&record.attachments) {
        tx.put_blob(&meta.sha256, &a.bytes)?;
    }
    let ticket = match &outcome {
        Outcome::Created { ticket, .. } | Outcome::Threaded { ticket, .. } => Some(*ticket),
        _ => None,
    };
    tx.put_disposition(
        &p.dedupe_key,
        &Disposition {
            ticket,
            at: now,
            outcome: describe(&outcome),
        },
    )?;
    Ok(outcome)
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Created { ticket, .. } => format!("created ticket {ticket}"),
        Outcome::Threaded { ticket, .. } => format!("added to ticket {ticket}"),
        Outcome::Duplicate { .. } => "duplicate".into(),
        Outcome::Ignored { reason } => format!("ignored: {reason}"),
        Outcome::Quarantined { reason, .. } => format!("quarantined: {reason}"),
    }
}

fn quarantine_in_tx(
    tx: &Tx<'_>,
    raw: &[u8],
    mailbox: &str,
    reason: &str,
    key: &str,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    if let Some(d) = tx.disposition(key)? {
        return Ok(Outcome::Duplicate { ticket: d.ticket });
    }
    let raw_key = sha256_hex(raw);
    tx.put_raw(&raw_key, raw)?;
    let id = tx.generate_id()?;
    tx.put_quarantine(&QuarantineEntry {
        id,
        mailbox: mailbox.to_string(),
        reason: reason.to_string(),
        at: now,
        raw_key,
        size: raw.len() as u64,
    })?;
    let outcome = Outcome::Quarantined {
        id,
        reason: reason.to_string(),
    };
    tx.put_disposition(
        key,
        &Disposition {
            ticket: None,
            at: now,
            outcome: describe(&outcome),
        },
    )?;
    Ok(outcome)
}

fn inbound_record(mail: &InboundMail, now: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        ticket: 0,
        seq: 0,
        direction: Direction::Inbound,
        from: mail.from.clone(),
        to: mail.to.clone(),
        cc: mail.cc.clone(),
        subject: mail.subject.clone(),
        date: mail.date,
        recorded_at: now,
        message_id: mail.message_id.clone(),
        text: trim_quoted(&mail.text),
        attachments: mail
            .attachments
            .iter()
            .map(|a| AttachmentMeta {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.bytes.len() as u64,
                sha256: sha256_hex(&a.bytes),
            })
            .collect(),
        raw_key: Some(mail.raw_sha256.clone()),
        kind: None,
    }
}

fn event(now: DateTime<Utc>, actor: &str, kind: EventKind) -> Event {
    Event {
        at: now,
        actor: actor.to_string(),
        kind,
    }
}

fn create_ticket(
    tx: &Tx<'_>,
    policy: &Policy,
    mailbox: &str,
    from: &Party,
    mail: &InboundMail,
    record: &MessageRecord,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let id = tx.next_ticket_id(policy.first_ticket)?;
    let subject = policy.matcher.strip_tokens(&mail.subject);
    let mut ticket = Ticket {
        id,
        subject: if subject.is_empty() {
            "(no subject)".into()
        } else {
            subject
        },
        requester: from.clone(),
        status: Status::New,
        priority: Priority::Normal,
        team: None,
        assignee: None,
        mailbox: mailbox.to_string(),
        created_at: now,
        updated_at: now,
        first_response_at: None,
        resolved_at: None,
        message_count: 0,
        event_count: 0,
    };
    let actor = from.address.as_str();
    tx.add_event(
        &mut ticket,
        &event(
            now,
            actor,
            EventKind::Created {
                mailbox: mailbox.into(),
            },
        ),
    )?;
    tx.add_message(&mut ticket, record.clone())?;
    if let Some(mid) = &mail.message_id {
        // New by the dedupe check, so nobody holds this id yet.
        tx.claim_message_id(mid, id)?;
    }
    let queued = queue_acknowledgement(tx, policy, &mut ticket, mail, now)?;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Created { ticket: id, queued })
}

fn thread_onto(
    tx: &Tx<'_>,
    id: TicketId,
    mail: &InboundMail,
    class: &Class,
    record: &MessageRecord,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let Some(mut ticket) = tx.ticket(id)? else {
        // resolve() saw it a moment ago in this same transaction.
        return Err(ConflictableTransactionError::Abort(StoreError::Aborted(
            format!("ticket {id} vanished"),
        )));
    };
    let actor = mail
        .from
        .as_ref()
        .map(|p| p.address.to_string())
        .unwrap_or_else(|| "unknown sender".into());
    tx.add_message(&mut ticket, record.clone())?;
    if let Some(mid) = &mail.message_id {
        // New by the dedupe check, so nobody holds this id yet.
        tx.claim_message_id(mid, id)?;
    }
    let from_requester = mail.from.as_ref().map(|p| &p.address) == Some(&ticket.requester.address);
    if from_requester && class.may_auto_reply() {
        let reopen = match ticket.status {
            Status::Resolved | Status::Closed => Some("requester replied to a finished ticket"),
            Status::Waiting => Some("requester replied"),
            _ => None,
        };
        if let Some(reason) = reopen {
            let from = ticket.status;
            ticket.status = Status::Open;
            ticket.resolved_at = None;
            tx.add_event(
                &mut ticket,
                &event(
                    now,
                    &actor,
                    EventKind::StatusChanged {
                        from,
                        to: Status::Open,
                        reason: reason.into(),
                    },
                ),
            )?;
        }
    }
    ticket.updated_at = now;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Threaded {
        ticket: id,
        queued: 0,
    })
}

#[derive(Serialize)]
struct AckContext<'a> {
    ticket: &'a Ticket,
    tag: String,
    requester: &'a Party,
    requester_name: &'a str,
    desk: &'a Party,
    message: MessageContext<'a>,
}

#[derive(Serialize)]
struct MessageContext<'a> {
    subject: &'a str,
    text: &'a str,
}

fn queue_acknowledgement(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    mail: &InboundMail,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let requester = mail.reply_to.as_ref().unwrap_or(&ticket.requester).clone();
    if requester.address == policy.desk.address {
        tx.add_event(
            ticket,
            &event(
                now,
                "deskgate",
                EventKind::AckSkipped {
                    reason: "requester is the help address".into(),
                },
            ),
        )?;
        return Ok(0);
    }
    let ctx = AckContext {
        ticket,
        tag: policy.matcher.render(ticket.id),
        requester: &requester,
        requester_name: requester
            .name
            .as_deref()
            .unwrap_or(requester.address.local_part()),
        desk: &policy.desk,
        message: MessageContext {
            subject: &mail.subject,
            text: &mail.text,
        },
    };
    let rendered = match policy.templates.render("acknowledgement.txt", &ctx) {
        Ok(r) => r,
        Err(e) => {
            tx.add_event(
                ticket,
                &event(
                    now,
                    "deskgate",
                    EventKind::AckSkipped {
                        reason: e.to_string(),
                    },
                ),
            )?;
            return Ok(0);
        }
    };
    let message_id = compose::new_message_id("ack", Some(ticket.id), policy.desk.address.domain());
    let mut references: Vec<String> = mail.references.clone();
    if let Some(mid) = &mail.message_id {
        if !references.contains(mid) {
            references.push(mid.clone());
        }
    }
    let outgoing = Outgoing {
        from: policy.desk.clone(),
        to: vec![requester.clone()],
        subject: policy.matcher.tagged_subject(ticket.id, &rendered.subject),
        body: rendered.body,
        message_id: message_id.clone(),
        in_reply_to: mail.message_id.clone(),
        references,
        auto_submitted: Some(AutoSubmitted::AutoReplied),
        x_loop: policy.desk.address.clone(),
        date: SystemTime::from(now),
    };
    queue_mail(tx, policy, ticket, "acknowledgement", outgoing, now)
}

/// Builds, records and queues one outgoing mail on a ticket.
fn queue_mail(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    kind: &str,
    outgoing: Outgoing,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let raw = match compose::build(&outgoing) {
        Ok(raw) => raw,
        Err(e) => {
            tx.add_event(
                ticket,
                &event(
                    now,
                    "deskgate",
                    EventKind::AckSkipped {
                        reason: e.to_string(),
                    },
                ),
            )?;
            return Ok(0);
        }
    };
    let id = tx.generate_id()?;
    let recipients: Vec<EmailAddress> = outgoing.to.iter().map(|p| p.address.clone()).collect();
    tx.put_outbox(&OutboxEntry {
        id,
        ticket: Some(ticket.id),
        kind: kind.to_string(),
        message_id: outgoing.message_id.clone(),
        envelope_from: policy.envelope_from.clone(),
        recipients: recipients.clone(),
        raw,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        failed: false,
    })?;
    // Freshly generated and random: nobody holds it.
    tx.claim_message_id(&outgoing.message_id, ticket.id)?;
    tx.add_message(
        ticket,
        MessageRecord {
            ticket: ticket.id,
            seq: 0,
            direction: Direction::Outbound,
            from: Some(outgoing.from.clone()),
            to: outgoing.to.clone(),
            cc: Vec::new(),
            subject: outgoing.subject.clone(),
            date: Some(now),
            recorded_at: now,
            message_id: Some(outgoing.message_id.clone()),
            text: outgoing.body.clone(),
            attachments: Vec::new(),
            raw_key: None,
            kind: Some(kind.to_string()),
        },
    )?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::SubjectTag;

    fn engine() -> (tempfile::TempDir, Engine, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        let policy = Policy {
            desk: Party {
                name: Some("Help".into()),
                address: EmailAddress::parse("help@desk.test").unwrap(),
            },
            envelope_from: EmailAddress::parse("help@desk.test").unwrap(),
            first_ticket: 1000,
            matcher: TokenMatcher::new(&SubjectTag::default()),
            templates: Templates::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
            )
            .unwrap(),
        };
        (dir, Engine::new(store, clock.clone(), policy), clock)
    }

    fn mail(from: &str, subject: &str, id: &str, extra: &str) -> Vec<u8> {
        format!("From: {from}\r\nTo: help@desk.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}\r\nbody text\r\n")
            .into_bytes()
    }

    #[test]
    fn new_mail_creates_ticket_and_queues_ack() {
        let (_d, e, _c) = engine();
        let o = e
            .ingest(&mail("a@c.test", "Help me", "1@c", ""), "help")
            .unwrap();
        assert_eq!(
            o,
            Outcome::Created {
                ticket: 1000,
                queued: 1
            }
        );
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.status, Status::New);
        assert_eq!(t.subject, "Help me");
        let out = e.store().outbox().unwrap();
        assert_eq!(out.len(), 1);
        let ack = inbound::parse(out[0].raw.as_bytes()).unwrap();
        assert!(ack.subject.starts_with("[#1000] "), "{}", ack.subject);
        assert_eq!(ack.in_reply_to, vec!["1@c"]);
        assert_eq!(ack.auto.auto_submitted.as_deref(), Some("auto-replied"));
        // Both the request and the ack thread back to the ticket.
        assert_eq!(e.store().ticket_of_message("1@c").unwrap(), Some(1000));
        assert_eq!(
            e.store().ticket_of_message(&out[0].message_id).unwrap(),
            Some(1000)
        );
    }

    #[test]
    fn duplicates_in_and_across_batches_are_one_ticket() {
        let (_d, e, _c) = engine();
        let m = mail("a@c.test", "Help", "dup@c", "");
        let outs = e.ingest_batch(&[&m, &m], "help").unwrap();
        assert!(matches!(outs[0], Outcome::Created { .. }));
        assert_eq!(outs[1], Outcome::Duplicate { ticket: Some(1000) });
        assert_eq!(
            e.ingest(&m, "other").unwrap(),
            Outcome::Duplicate { ticket: Some(1000) }
        );
        assert_eq!(e.store().ticket_count(), 1);
        assert_eq!(e.store().outbox().unwrap().len(), 1);
    }

    #[test]
    fn replies_thread_by_token_and_by_reference_and_reopen() {
        let (_d, e, _c) = engine();
        e.ingest(&mail("a@c.test", "Help", "1@c", ""), "help")
            .unwrap();
        let ack_id = e.store().outbox().unwrap()[0].message_id.clone();
        let o = e
            .ingest(&mail("a@c.test", "RE: [#1000] Help", "2@c", ""), "help")
            .unwrap();
        assert_eq!(
            o,
            Outcome::Threaded {
                ticket: 1000,
                queued: 0
            }
        );
        let o = e
            .ingest(
                &mail(
                    "a@c.test",
                    "Re: Help",
                    "3@c",
                    &format!("In-Reply-To: <{ack_id}>\r\n"),
                ),
                "help",
            )
            .unwrap();
        assert_eq!(
            o,
            Outcome::Threaded {
                ticket: 1000,
                queued: 0
            }
        );

        // Resolve by hand, then the requester's reply reopens it.
        e.store()
            .transact(|tx| {
                let mut t = tx.ticket(1000)?.unwrap();
                t.status = Status::Resolved;
                tx.put_ticket(&t)
            })
            .unwrap();
        e.ingest(&mail("a@c.test", "[#1000] again", "4@c", ""), "help")
            .unwrap();
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.status, Status::Open);
        assert_eq!(t.message_count, 5, "4 inbound + the ack");
        assert!(e.store().events(1000).unwrap().iter().any(|ev| matches!(
            ev.kind,
            EventKind::StatusChanged {
                from: Status::Resolved,
                to: Status::Open,
                ..
            }
        )));
    }

    #[test]
    fn unknown_token_starts_a_new_ticket() {
        let (_d, e, _c) = engine();
        let o = e
            .ingest(
                &mail("a@c.test", "[#99999999999999999999] [#5] Hi", "1@c", ""),
                "help",
            )
            .unwrap();
        assert_eq!(
            o,
            Outcome::Created {
                ticket: 1000,
                queued: 1
            }
        );
        assert_eq!(e.store().ticket(1000).unwrap().unwrap().subject, "Hi");
    }

    #[test]
    fn automatic_mail_is_never_acknowledged() {
        let (_d, e, _c) = engine();
        let o = e
            .ingest(
                &mail(
                    "a@c.test",
                    "Out of office",
                    "1@c",
                    "Auto-Submitted: auto-replied\r\n",
                ),
                "help",
            )
            .unwrap();
        assert!(matches!(o, Outcome::Ignored { .. }), "{o:?}");
        e.ingest(&mail("a@c.test", "Help", "2@c", ""), "help")
            .unwrap();
        let o = e
            .ingest(
                &mail(
                    "a@c.test",
                    "[#1000] Out of office",
                    "3@c",
                    "Auto-Submitted: auto-replied\r\n",
                ),
                "help",
            )
            .unwrap();
        assert_eq!(
            o,
            Outcome::Threaded {
                ticket: 1000,
                queued: 0
            }
        );
        assert_eq!(
            e.store().outbox().unwrap().len(),
            1,
            "only the human mail's ack"
        );
        let o = e
            .ingest(&mail("help@desk.test", "loop", "4@c", ""), "help")
            .unwrap();
        assert!(matches!(o, Outcome::Ignored { .. }), "{o:?}");
    }

    #[test]
    fn unusable_mail_is_quarantined_once() {
        let (_d, e, _c) = engine();
        assert!(matches!(
            e.ingest(b"\r\n", "help").unwrap(),
            Outcome::Quarantined { .. }
        ));
        let nofrom = b"Subject: who am I\r\nMessage-ID: <x@y>\r\n\r\nbody";
        assert!(matches!(
            e.ingest(nofrom, "help").unwrap(),
            Outcome::Quarantined { .. }
        ));
        assert_eq!(
            e.ingest(nofrom, "help").unwrap(),
            Outcome::Duplicate { ticket: None }
        );
        let q = e.store().quarantine().unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(
            e.store().raw(&q[1].raw_key).unwrap().unwrap(),
            nofrom.to_vec()
        );
    }

    #[test]
    fn times_come_from_the_clock() {
        let (_d, e, c) = engine();
        e.ingest(&mail("a@c.test", "Help", "1@c", ""), "help")
            .unwrap();
        c.advance(chrono::Duration::hours(3));
        e.ingest(&mail("a@c.test", "[#1000] more", "2@c", ""), "help")
            .unwrap();
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.updated_at - t.created_at, chrono::Duration::hours(3));
    }
}
