//! The only place that opens store transactions: ingest a batch of raw mail,
//! run the timers that are due, send the digests that are due and answer
//! reports asked for by mail (`digest`), retry quarantined mail, and answer
//! the CLI's queries.
//!
//! [`Engine::ingest_batch`] prepares each mail (pure: parse, classify, thread
//! keys; see [`crate::desk::prepare`]) and files the whole batch in one
//! transaction through [`crate::desk::dispatch`]. It does no network I/O:
//! the mailbox task calls it and the outbox sender delivers what it queued.
//!
//! May import `desk`, `mail`, `store` and `config`; must not import `daemon`
//! or `cli`.

pub mod attachment;
pub mod clock;
mod digest;
#[cfg(debug_assertions)]
mod fault;
pub mod protocol;
pub mod queries;
pub mod recurring;
pub mod retention;
pub mod status_view;
mod views;

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use thiserror::Error;
use tracing::{debug, warn};

use crate::desk::dispatch::apply;
use crate::desk::lifecycle;
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::prepare::Prepared;
use crate::desk::quarantine::quarantine_in_tx;
use crate::engine::clock::Clock;
use crate::mail::parse::sha256_hex;
use crate::store::{KeyRing, Store, StoreError, Tx, TxResult};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot commit mail: {0}")]
    Store(#[from] StoreError),
    #[error("cannot retry quarantined mail {0}: no such entry")]
    NoQuarantineEntry(u64),
    #[error("cannot retry quarantined mail {0}: its raw bytes are missing from the store")]
    RawMissing(u64),
    /// Only from the debug-build fault hook the end-to-end tests use.
    #[error("cannot process mail: a test fault was injected")]
    TestFault,
}

/// A batch parsed and ready to file: everything pure is done, so the
/// transaction that files it holds the store's writer lock only for the
/// filing itself.
pub struct PreparedBatch<'a> {
    policy: Arc<Policy>,
    now: DateTime<Utc>,
    mails: Vec<Prepared<'a>>,
}

/// What a steering transaction wrote: each ticket with its event count
/// before, and the mails it queued.
struct Written {
    tickets: Vec<(crate::store::records::Ticket, u32)>,
    mails: Vec<protocol::OutboxSummary>,
}

pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    policy: RwLock<Arc<Policy>>,
    /// Shared with every policy handed out: a rotation applies at once.
    reply_keys: KeyRing,
}

/// Batches at least this large are parsed on two threads: parsing is pure
/// and about a third of a new mail's cost.
const PARALLEL_PARSE_MIN: usize = 64;
/// Tickets taken from the timer index per read.
const TIMER_ROUND: usize = 256;
/// Tickets re-indexed per transaction when the index is rebuilt.
const REINDEX_BATCH: usize = 1000;

impl Engine {
    pub fn new(store: Store, clock: Arc<dyn Clock>, mut policy: Policy) -> Engine {
        // Without a key (no entropy, store trouble) signed addresses prove nothing
        // and are not used: agents then need Authentication-Results.
        let reply_keys = KeyRing::new(store.reply_keys().unwrap_or_default());
        policy.reply_keys = reply_keys.clone();
        Engine {
            store,
            clock,
            policy: RwLock::new(Arc::new(policy)),
            reply_keys,
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_policy(&self, mut p: Policy) {
        p.reply_keys = self.reply_keys.clone();
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
    }

    /// `deskgate trust rotate-key`: a new signing key; the previous one
    /// verifies for `grace` more (the configured grace when None). Takes
    /// effect for the next mail; returns the ring's epochs.
    pub fn rotate_reply_key(
        &self,
        grace: Option<std::time::Duration>,
    ) -> Result<Vec<queries::KeyEpoch>, EngineError> {
        let grace = grace.unwrap_or(self.policy().trust.key_rotation_grace);
        let ring = self.store.rotate_reply_key(self.now(), grace)?;
        let summary = ring
            .iter()
            .map(|k| queries::KeyEpoch {
                epoch: k.epoch,
                valid_until: k.valid_until,
            })
            .collect();
        self.reply_keys.set(ring);
        Ok(summary)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
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
        let batch = self.prepare_batch(raws)?;
        self.commit_batch(&batch, mailbox)
    }

    /// Parses a batch (pure, no store lock), so the caller can parse batch
    /// k+1 while batch k commits. Fails only through the test fault hook.
    pub fn prepare_batch<'a>(&self, raws: &[&'a [u8]]) -> Result<PreparedBatch<'a>, EngineError> {
        #[cfg(debug_assertions)]
        fault::check(raws)?;
        let policy = self.policy();
        let now = self.clock.now();
        let parse = |part: &[&'a [u8]]| -> Vec<Prepared<'a>> {
            part.iter()
                .map(|raw| Prepared::new(raw, &policy, now))
                .collect()
        };
        let parallel = raws.len() >= PARALLEL_PARSE_MIN
            && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let mails = if parallel {
            let (first, second) = raws.split_at(raws.len() / 2);
            std::thread::scope(|scope| {
                let helper = scope.spawn(|| parse(second));
                let mut mails = parse(first);
                // A panic while parsing is re-raised here, on the caller's
                // thread, where the mailbox task's guard catches it.
                match helper.join() {
                    Ok(rest) => mails.extend(rest),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
                mails
            })
        } else {
            parse(raws)
        };
        Ok(PreparedBatch { policy, now, mails })
    }

    /// Files a parsed batch in one transaction.
    pub fn commit_batch(
        &self,
        batch: &PreparedBatch<'_>,
        mailbox: &str,
    ) -> Result<Vec<Outcome>, EngineError> {
        let (policy, now) = (&batch.policy, batch.now);
        let outcomes = self.transact(policy, |tx| {
            batch
                .mails
                .iter()
                .map(|p| apply(tx, p, policy, mailbox, now))
                .collect::<TxResult<Vec<Outcome>>>()
        })?;
        for (p, o) in batch.mails.iter().zip(&outcomes) {
            match o {
                Outcome::Quarantined { reason, .. } => {
                    warn!(mailbox, key = %p.dedupe_key, reason, "quarantined mail")
                }
                _ => debug!(mailbox, key = %p.dedupe_key, outcome = ?o, "ingested"),
            }
        }
        Ok(outcomes)
    }

    /// Quarantines a mail that made processing fail unexpectedly (a panic in a
    /// parser): kept with the reason, so it never blocks the mails behind it.
    pub fn quarantine_raw(
        &self,
        raw: &[u8],
        mailbox: &str,
        reason: &str,
    ) -> Result<Outcome, EngineError> {
        let now = self.clock.now();
        let key = format!("sha256:{}", sha256_hex(raw));
        Ok(self
            .store
            .transact(|tx| quarantine_in_tx(tx, raw, mailbox, reason, &key, now))?)
    }

    /// Carries out every timer action due now (SLA warnings and breaches,
    /// waiting reminders and closings), each in the transaction that marks it
    /// fired, so each happens exactly once. Returns how many fired.
    pub fn run_timers(&self) -> Result<usize, EngineError> {
        let policy = self.policy();
        let now = self.clock.now();
        self.rebuild_timer_index_if_stale(&policy)?;
        let mut fired = 0;
        loop {
            let due = self.store.timers_due(now, TIMER_ROUND)?;
            let round = due.len();
            for id in due {
                fired += self.transact(&policy, |tx| {
                    let n = lifecycle::fire(tx, &policy, id, now)?;
                    lifecycle::reindex(tx, &policy, id)?;
                    Ok(n)
                })?;
            }
            if round < TIMER_ROUND {
                return Ok(fired);
            }
        }
    }

    /// The timer index is built from the SLA and timer configuration; when
    /// that changed (or the store predates the index) it is rebuilt, in
    /// batches, once.
    fn rebuild_timer_index_if_stale(&self, policy: &Policy) -> Result<(), EngineError> {
        let fingerprint = lifecycle::timer_fingerprint(policy);
        if self.store.timer_policy()?.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        let mut after = None;
        loop {
            let ids = self.store.ticket_ids_after(after, REINDEX_BATCH)?;
            let Some(&last) = ids.last() else { break };
            self.store.transact(|tx| {
                for &id in &ids {
                    lifecycle::reindex(tx, policy, id)?;
                }
                Ok(())
            })?;
            after = Some(last);
        }
        self.store.transact(|tx| {
            tx.set_timer_policy(&fingerprint);
            Ok(())
        })?;
        Ok(())
    }

    /// A store transaction that also re-files the timers of every ticket it
    /// wrote, before it commits: the index is always as new as the tickets.
    fn transact<R>(
        &self,
        policy: &Policy,
        f: impl FnOnce(&Tx<'_>) -> TxResult<R>,
    ) -> Result<R, StoreError> {
        self.store.transact(|tx| {
            let r = f(tx)?;
            for id in tx.touched_tickets() {
                lifecycle::reindex(tx, policy, id)?;
            }
            Ok(r)
        })
    }

    /// A change asked at the command line (`desk::steer`): committed in one
    /// transaction with every mail it queues. A refused request changes
    /// nothing and comes back as its problems, one line each. What it did
    /// in detail (tickets after, events, mails) is read in the same
    /// transaction, so the sender cannot take a mail away first.
    pub fn steer(
        &self,
        req: &crate::desk::steer::Request,
    ) -> Result<Result<protocol::Steered, Vec<String>>, EngineError> {
        let policy = self.policy();
        let now = self.clock.now();
        let mut refused = None;
        let result = self.transact(&policy, |tx| {
            // Transactions run one at a time and every mail gets its id
            // from `generate_id` as it is queued: the ids past this mark
            // are the mails of this change.
            let mark = tx.generate_id()?;
            match crate::desk::steer::apply(tx, &policy, req, now)? {
                Ok(done) => {
                    let written = self.written_by(tx, mark)?;
                    Ok((done, written))
                }
                Err(problems) => {
                    refused = Some(problems);
                    Err(StoreError::Aborted("refused".into()))
                }
            }
        });
        match (result, refused) {
            (_, Some(problems)) => Ok(Err(problems)),
            (Ok((done, written)), None) => Ok(Ok(self.steered(done, written)?)),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Inside a steering transaction: each ticket it wrote with its event
    /// count before (as committed) and now, and the mails queued since `mark`.
    fn written_by(&self, tx: &Tx<'_>, mark: u64) -> TxResult<Written> {
        /// A change queues a few mails (one per team member or watcher at
        /// most); the bound only keeps a surprise in id allocation from
        /// becoming a long scan.
        const MAX_IDS: u64 = 10_000;
        let mut tickets = Vec::new();
        for id in tx.touched_tickets() {
            let before = self.store.ticket(id)?.map_or(0, |t| t.event_count);
            let after = tx.ticket_required(id)?;
            tickets.push((after, before));
        }
        let end = tx.generate_id()?;
        let mut mails = Vec::new();
        for id in (mark + 1..end).take(MAX_IDS as usize) {
            mails.extend(tx.outbox_entry(id)?.map(protocol::OutboxSummary::from));
        }
        Ok(Written { tickets, mails })
    }

    /// The steered ticket first, with the events each ticket gained (read
    /// after the commit: events are only ever appended).
    fn steered(
        &self,
        done: crate::desk::steer::Done,
        written: Written,
    ) -> Result<protocol::Steered, StoreError> {
        let mut after = None;
        let mut also_changed = Vec::new();
        for (ticket, before) in written.tickets {
            let events: Vec<_> = (self.store.events(ticket.id)?.into_iter())
                .skip(before as usize)
                .take(ticket.event_count.saturating_sub(before) as usize)
                .collect();
            if ticket.id == done.ticket {
                after = Some((ticket, events));
            } else {
                also_changed.push(protocol::ChangedTicket { ticket, events });
            }
        }
        let (after, events) = match after {
            Some(a) => a,
            None => match self.store.ticket(done.ticket)? {
                Some(t) => (t, Vec::new()),
                None => {
                    return Err(StoreError::Aborted(format!(
                        "ticket {} vanished",
                        done.ticket
                    )))
                }
            },
        };
        Ok(protocol::Steered {
            done,
            change: protocol::SteerChange {
                after,
                events,
                also_changed,
                mails: written.mails,
            },
        })
    }

    /// Processes a quarantined mail again. On success the quarantine entry goes
    /// in the same transaction that files the mail; a mail that still cannot be
    /// processed stays quarantined, unchanged.
    pub fn retry_quarantined(&self, id: u64) -> Result<Outcome, EngineError> {
        let entry = self
            .store
            .quarantine_entry(id)?
            .ok_or(EngineError::NoQuarantineEntry(id))?;
        let raw = self
            .store
            .raw(&entry.raw_key)?
            .ok_or(EngineError::RawMissing(id))?;
        let policy = self.policy();
        let now = self.clock.now();
        let p = Prepared::new(&raw, &policy, now);
        let result = self.transact(&policy, |tx| {
            tx.remove_quarantine(id)?;
            tx.remove_disposition(&p.dedupe_key)?;
            tx.remove_disposition(&format!("sha256:{}", entry.raw_key))?;
            let outcome = match apply(tx, &p, &policy, &entry.mailbox, now)? {
                Outcome::Quarantined { reason, .. } => return Err(StoreError::Aborted(reason)),
                o => o,
            };
            // Filed now under a key of its own (`store::raw_key`): the
            // quarantine's copy would be left behind, read by nothing.
            let filed_key = p
                .parsed
                .as_ref()
                .ok()
                .and_then(|m| m.record.raw_key.as_ref());
            if filed_key.is_some_and(|k| *k != entry.raw_key) {
                tx.remove_raw(&entry.raw_key)?;
            }
            Ok(outcome)
        });
        match result {
            Ok(o) => Ok(o),
            Err(StoreError::Aborted(reason)) => Ok(Outcome::Quarantined { id, reason }),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config::TestConfig;
    use crate::config::Config;
    use crate::engine::clock::ManualClock;
    use crate::mail::address::EmailAddress;
    use crate::mail::parse as inbound;
    use crate::store::records::{EventKind, Status};

    mod bugs_tests;
    mod digest_tests;
    mod queues_tests;
    mod scale_tests;
    mod steer_tests;
    mod trust_tests;
    use crate::store::Store;

    fn engine() -> (tempfile::TempDir, Engine, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        let policy = Policy::for_tests(Some("Help"));
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
        let ack = inbound::parse(out[0].formatted().unwrap().as_bytes()).unwrap();
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
    fn a_burst_from_one_sender_gets_at_most_the_limit() {
        let (_d, e, c) = engine();
        for i in 0..20 {
            e.ingest(
                &mail("bot@c.test", &format!("Request {i}"), &format!("{i}@c"), ""),
                "help",
            )
            .unwrap();
        }
        assert_eq!(e.store().ticket_count(), 20);
        assert_eq!(
            e.store().outbox().unwrap().len(),
            5,
            "default: 5 per recipient per hour"
        );
        // What was held back is on the tickets, not lost.
        let held = e.store().events(1019).unwrap();
        assert!(
            held.iter()
                .any(|ev| matches!(ev.kind, EventKind::AutoReplyHeld { .. })),
            "{held:?}"
        );
        assert!(e
            .store()
            .messages(1019)
            .unwrap()
            .iter()
            .any(|m| m.kind.as_deref() == Some("acknowledgement (held back)")));
        // After the window, acknowledgements flow again.
        c.advance(chrono::Duration::minutes(61));
        e.ingest(&mail("bot@c.test", "Later", "later@c", ""), "help")
            .unwrap();
        assert_eq!(e.store().outbox().unwrap().len(), 6);
    }

    #[test]
    fn suppress_header_gives_ticket_without_ack() {
        let (_d, e, _c) = engine();
        let o = e
            .ingest(
                &mail(
                    "a@c.test",
                    "Meeting",
                    "1@c",
                    "X-Auto-Response-Suppress: All\r\n",
                ),
                "help",
            )
            .unwrap();
        assert_eq!(
            o,
            Outcome::Created {
                ticket: 1000,
                queued: 0
            }
        );
    }

    fn dsn(for_id: &str, rcpt: &str, n: usize) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@mail.test\r\nTo: help@desk.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <dsn{n}@mail.test>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mail.test\r\n\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
From: help@desk.test\r\nTo: {rcpt}\r\nMessage-ID: <{for_id}>\r\n--B--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn bounces_land_on_their_ticket_and_silence_the_address() {
        let (_d, e, _c) = engine();
        for i in 0..3 {
            e.ingest(
                &mail("ghost@c.test", &format!("Q{i}"), &format!("q{i}@c"), ""),
                "help",
            )
            .unwrap();
        }
        let acks: Vec<_> = e.store().outbox().unwrap();
        assert_eq!(acks.len(), 3);
        for (n, a) in acks.iter().enumerate() {
            let o = e
                .ingest(&dsn(&a.message_id, "ghost@c.test", n), "help")
                .unwrap();
            assert_eq!(
                o,
                Outcome::Bounce {
                    ticket: a.ticket,
                    failed: vec!["ghost@c.test".into()]
                }
            );
        }
        assert_eq!(e.store().ticket_count(), 3, "a bounce never makes a ticket");
        let evs = e.store().events(1002).unwrap();
        assert!(evs
            .iter()
            .any(|ev| matches!(&ev.kind, EventKind::DeliveryFailed { hard: true, .. })));
        assert!(evs
            .iter()
            .any(|ev| matches!(&ev.kind, EventKind::AddressUndeliverable { .. })));
        // No more automatic mail to it…
        let o = e
            .ingest(
                &mail("other@c.test", "x", "o1@c", "Reply-To: ghost@c.test\r\n"),
                "help",
            )
            .unwrap();
        assert_eq!(
            o,
            Outcome::Created {
                ticket: 1003,
                queued: 0
            }
        );
        // …until it writes to us itself.
        let o = e
            .ingest(&mail("ghost@c.test", "I exist", "g9@c", ""), "help")
            .unwrap();
        assert_eq!(
            o,
            Outcome::Created {
                ticket: 1004,
                queued: 1
            }
        );
        // An unmatched report is kept but attached to nothing.
        let o = e.ingest(&dsn("unknown@else", "x@y.z", 99), "help").unwrap();
        assert_eq!(
            o,
            Outcome::Bounce {
                ticket: None,
                failed: vec!["x@y.z".into()]
            }
        );
    }

    #[test]
    fn oversized_mail_keeps_text_drops_attachments_and_says_so() {
        let (_d, e, _c) = engine();
        let mut p = Policy::new(e.policy().desk.clone(), Policy::test_templates());
        p.limits.max_message_size = 64 * 1024;
        e.set_policy(p);
        let big = "QUFB".repeat(30_000);
        let raw = format!("From: a@c.test\r\nSubject: logs\r\nMessage-ID: <big@c>\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nsee logs\r\n--X\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=logs.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n{big}\r\n--X--\r\n");
        let o = e.ingest(raw.as_bytes(), "help").unwrap();
        assert_eq!(
            o,
            Outcome::Created {
                ticket: 1000,
                queued: 1
            }
        );
        let msgs = e.store().messages(1000).unwrap();
        assert!(msgs[0].attachments[0].dropped);
        assert!(msgs[0].text.contains("see logs"));
        assert!(msgs[0].text.contains("logs.bin"), "{}", msgs[0].text);
        let ack = &e.store().outbox().unwrap()[0];
        assert!(
            ack.formatted().unwrap().contains("logs.bin"),
            "the requester is told"
        );
        assert!(e
            .store()
            .raw(&sha256_hex(raw.as_bytes()))
            .unwrap()
            .is_none());
    }

    #[test]
    fn quarantine_retry_keeps_what_still_fails() {
        let (_d, e, _c) = engine();
        let nofrom = b"Subject: who\r\nMessage-ID: <q@y>\r\n\r\nbody";
        let Outcome::Quarantined { id, .. } = e.ingest(nofrom, "help").unwrap() else {
            panic!("not quarantined")
        };
        let again = e.retry_quarantined(id).unwrap();
        assert!(matches!(again, Outcome::Quarantined { id: i, .. } if i == id));
        assert_eq!(e.store().quarantine().unwrap().len(), 1);
        assert!(e.retry_quarantined(12345).is_err());
    }

    /// The desk the routing, agent and SLA tests run: mail to mailbox "it"
    /// goes to team "it".
    fn it_desk() -> TestConfig {
        TestConfig::new()
            .mailbox("name", "\"it\"")
            .mailbox("user", "\"it@desk.test\"")
            .mailbox("password_file", "\"pw\"")
            .mailbox("default_team", "\"it\"")
    }

    /// Loads `config` as `dir/d.toml`, with the repository's templates.
    fn load_config(dir: &std::path::Path, config: &TestConfig) -> Config {
        std::fs::write(dir.join("pw"), "x").unwrap();
        let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        // 143 and 25: the ports mailbox and smtp default to with tls = "none".
        let text = config.render_with(143, 25, &templates);
        Config::from_str_at(&text, &dir.join("d.toml")).unwrap()
    }

    fn routed_engine(rules_toml: &str) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let config = it_desk()
            .agent("alice@desk.test", Some("Alice"), &["it"])
            .agent("bob@desk.test", None, &["it", "legal"])
            .team("it", "")
            .team("legal", "")
            .table(rules_toml);
        let cfg = load_config(dir.path(), &config);
        let store = Store::open(&dir.path().join("state")).unwrap();
        let clock = Arc::new(ManualClock::new(Utc::now()));
        (
            dir,
            Engine::new(store, clock, Policy::from_config(&cfg).unwrap()),
        )
    }

    fn sent_to(e: &Engine, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = e
            .store()
            .outbox()
            .unwrap()
            .iter()
            .filter(|o| o.kind == kind)
            .flat_map(|o| o.recipients.iter().map(|r| r.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn mailbox_default_team_is_notified() {
        let (_d, e) = routed_engine("");
        e.ingest(&mail("a@c.test", "Printer", "1@c", ""), "it")
            .unwrap();
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.team.as_deref(), Some("it"));
        assert_eq!(
            sent_to(&e, "notification"),
            ["alice@desk.test", "bob@desk.test"]
        );
        let n = e
            .store()
            .outbox()
            .unwrap()
            .into_iter()
            .find(|o| o.kind == "notification")
            .unwrap();
        let parsed = inbound::parse(n.formatted().unwrap().as_bytes()).unwrap();
        let reply_to = parsed.reply_to.unwrap().address;
        assert!(
            reply_to.as_str().starts_with("help+1000."),
            "agent replies come back, signed: {reply_to}"
        );
        assert!(parsed.subject.starts_with("[#1000]"));
        assert_eq!(parsed.in_reply_to, vec!["1@c"]);
        assert_eq!(
            parsed.from.unwrap().name.as_deref(),
            Some("a@c.test via Help Desk")
        );
    }

    #[test]
    fn rules_set_fields_and_notify_the_assignee_only() {
        let (_d, e) = routed_engine(
            r#"
[[rule]]
name = "contracts"
[[rule.when]]
field = "subject"
contains = "contract"
[rule.set]
team = "legal"
priority = "urgent"
assignee = "bob@desk.test"
tags = ["nda", "legal"]
"#,
        );
        e.ingest(&mail("a@c.test", "Contract review", "1@c", ""), "it")
            .unwrap();
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.team.as_deref(), Some("legal"));
        assert_eq!(t.priority, crate::store::records::Priority::Urgent);
        assert_eq!(t.assignee.as_deref(), Some("bob@desk.test"));
        assert_eq!(t.tags, ["nda", "legal"]);
        assert_eq!(sent_to(&e, "notification"), ["bob@desk.test"]);
        let evs = e.store().events(1000).unwrap();
        assert!(evs.iter().any(
            |ev| matches!(&ev.kind, EventKind::Routed { rules, .. } if rules == &["contracts"])
        ));
    }

    #[test]
    fn ignore_reject_and_no_ack_rules() {
        let (_d, e) = routed_engine(
            r#"
[[rule]]
name = "newsletters"
action = "ignore"
[[rule.when]]
field = "subject"
regex = "newsletter"

[[rule]]
name = "job applications"
action = "reject"
[[rule.when]]
field = "subject"
contains = "application"

[[rule]]
name = "internal"
acknowledge = "none"
[[rule.when]]
field = "from_domain"
equals = "desk.test"
"#,
        );
        let o = e
            .ingest(&mail("a@c.test", "Our Newsletter", "1@c", ""), "it")
            .unwrap();
        assert!(
            matches!(o, Outcome::Ignored { ref reason } if reason.contains("newsletters")),
            "{o:?}"
        );
        let o = e
            .ingest(&mail("a@c.test", "Job application", "2@c", ""), "it")
            .unwrap();
        assert!(
            matches!(o, Outcome::Ignored { ref reason } if reason.contains("polite reply was queued")),
            "{o:?}"
        );
        assert_eq!(sent_to(&e, "rejection"), ["a@c.test"]);
        assert_eq!(e.store().ticket_count(), 0);
        assert_eq!(e.store().ignored().unwrap().len(), 2, "kept and visible");
        let o = e
            .ingest(&mail("carol@desk.test", "Need a laptop", "3@c", ""), "it")
            .unwrap();
        assert!(matches!(o, Outcome::Created { .. }));
        assert!(sent_to(&e, "acknowledgement").is_empty());
    }

    #[test]
    fn a_new_policy_applies_to_the_next_mail() {
        let (_d, e) = routed_engine("");
        e.ingest(&mail("a@c.test", "one", "1@c", ""), "it").unwrap();
        let mut p = Policy::new(e.policy().desk.clone(), Policy::test_templates());
        p.mailbox_teams.insert("it".into(), "legal".into());
        p.teams = e.policy().teams.clone();
        e.set_policy(p);
        e.ingest(&mail("a@c.test", "two", "2@c", ""), "it").unwrap();
        assert_eq!(
            e.store().ticket(1000).unwrap().unwrap().team.as_deref(),
            Some("it")
        );
        assert_eq!(
            e.store().ticket(1001).unwrap().unwrap().team.as_deref(),
            Some("legal")
        );
    }

    /// An agent's mail to the signed reply address of `ticket` (the proof).
    fn agent_mail(e: &Engine, agent: &str, ticket: u64, id: &str, body: &str) -> Vec<u8> {
        let keys = e.policy().reply_keys.get();
        let to = crate::desk::trust::reply_address(
            &EmailAddress::parse("help@desk.test").unwrap(),
            keys.last().unwrap(),
            ticket,
            &EmailAddress::parse(agent).unwrap(),
        )
        .unwrap();
        format!("From: Alice <{agent}>\r\nTo: {to}\r\nSubject: Re: [#{ticket}] Printer\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n").into_bytes()
    }

    fn outbox_of(e: &Engine, kind: &str) -> Vec<crate::store::records::OutboxEntry> {
        e.store()
            .outbox()
            .unwrap()
            .into_iter()
            .filter(|o| o.kind == kind)
            .collect()
    }

    fn new_ticket_with_watcher(e: &Engine) {
        let m = b"From: Carol <carol@c.test>\r\nTo: help@desk.test\r\nCc: dave@c.test, help@desk.test, bob@desk.test\r\nSubject: Printer\r\nMessage-ID: <p1@c>\r\n\r\nbroken\r\n";
        e.ingest(m, "it").unwrap();
        assert_eq!(
            e.store().ticket(1000).unwrap().unwrap().watchers,
            vec![EmailAddress::parse("dave@c.test").unwrap()],
            "Cc minus the desk and its agents"
        );
    }

    #[test]
    fn an_agent_reply_is_relayed_from_the_help_address() {
        let (_d, e) = routed_engine("");
        new_ticket_with_watcher(&e);
        let body = "Please restart it.\r\n\r\nOn Mon, Carol <carol@c.test> wrote:\r\n> broken";
        let o = e
            .ingest(
                &agent_mail(&e, "alice@desk.test", 1000, "r1@desk.test", body),
                "it",
            )
            .unwrap();
        assert!(
            matches!(
                o,
                Outcome::Threaded {
                    ticket: 1000,
                    queued: 1
                }
            ),
            "{o:?}"
        );
        let relayed = outbox_of(&e, "reply");
        assert_eq!(relayed.len(), 1);
        let r = inbound::parse(relayed[0].formatted().unwrap().as_bytes()).unwrap();
        assert_eq!(r.from.as_ref().unwrap().address.as_str(), "help@desk.test");
        assert_eq!(r.from.unwrap().name.as_deref(), Some("Alice via Help Desk"));
        assert!(
            !relayed[0].formatted().unwrap().contains("alice@desk.test"),
            "the agent's address is not exposed"
        );
        assert_eq!(r.text.trim(), "Please restart it.");
        assert!(r.subject.contains("[#1000]"));
        assert_eq!(r.in_reply_to, vec!["p1@c"]);
        assert!(
            r.auto.auto_submitted.is_none(),
            "a person's reply is not automatic"
        );
        let to: Vec<&str> = relayed[0].recipients.iter().map(|a| a.as_str()).collect();
        assert_eq!(to, ["carol@c.test", "dave@c.test"]);
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.status, Status::Open);
        assert!(t.first_response_at.is_some());
    }

    #[test]
    fn comments_and_commands_stay_internal() {
        let (_d, e) = routed_engine("");
        new_ticket_with_watcher(&e);
        let before = outbox_of(&e, "reply").len();
        e.ingest(
            &agent_mail(
                &e,
                "alice@desk.test",
                1000,
                "c1@desk.test",
                "#comment\r\nI think it is the fuser.",
            ),
            "it",
        )
        .unwrap();
        assert_eq!(
            outbox_of(&e, "reply").len(),
            before,
            "a comment is never relayed"
        );
        let notes: Vec<String> = outbox_of(&e, "comment")
            .iter()
            .map(|o| o.recipients[0].to_string())
            .collect();
        assert_eq!(
            notes,
            ["bob@desk.test"],
            "shared with the team, not the author"
        );

        let cmds =
            "#status resolved\r\n#priority high\r\n#time 1h30m\r\n#tag hardware\r\n#assign me";
        e.ingest(
            &agent_mail(&e, "alice@desk.test", 1000, "c2@desk.test", cmds),
            "it",
        )
        .unwrap();
        assert_eq!(
            outbox_of(&e, "reply").len(),
            before,
            "commands only: nothing to the requester"
        );
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.status, Status::Resolved);
        assert_eq!(t.priority, crate::store::records::Priority::High);
        assert_eq!(t.tags, ["hardware"]);
        assert_eq!(t.assignee.as_deref(), Some("alice@desk.test"));
        assert_eq!(t.effort.iter().map(|x| x.minutes).sum::<u32>(), 90);
    }

    #[test]
    fn one_bad_command_applies_none_and_explains() {
        let (_d, e) = routed_engine("");
        new_ticket_with_watcher(&e);
        let before = e.store().ticket(1000).unwrap().unwrap();
        let cmds = "#status resolved\r\n#assign nobody-we-know\r\n#merge 4242\r\nDone!";
        e.ingest(
            &agent_mail(&e, "alice@desk.test", 1000, "b1@desk.test", cmds),
            "it",
        )
        .unwrap();
        let after = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(after.status, before.status);
        assert_eq!(after.assignee, before.assignee);
        assert!(outbox_of(&e, "reply").is_empty(), "nothing relayed");
        let err = outbox_of(&e, "command error");
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].recipients[0].as_str(), "alice@desk.test");
        let text = err[0].formatted().unwrap();
        assert!(
            text.contains("nobody-we-know") && text.contains("4242"),
            "{text}"
        );
    }

    #[test]
    fn an_unproven_agent_mail_runs_nothing_and_warns_the_team() {
        let (_d, e) = routed_engine("");
        new_ticket_with_watcher(&e);
        let forged = b"From: Alice <alice@desk.test>\r\nTo: help@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <f1@evil>\r\n\r\n#status closed\r\nPay the invoice to IBAN X.\r\n";
        e.ingest(forged, "it").unwrap();
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.status, Status::New, "no command ran");
        assert!(outbox_of(&e, "reply").is_empty(), "nothing relayed");
        let warned: Vec<String> = outbox_of(&e, "forgery warning")
            .iter()
            .map(|o| o.recipients[0].to_string())
            .collect();
        assert_eq!(warned, ["alice@desk.test", "bob@desk.test"]);
        assert!(e
            .store()
            .events(1000)
            .unwrap()
            .iter()
            .any(|ev| matches!(ev.kind, EventKind::PossibleForgery { .. })));
    }

    #[test]
    fn trusted_dkim_is_proof_too() {
        let (_d, e) = routed_engine("[trust]\nauthserv_ids = [\"mx.desk.test\"]");
        new_ticket_with_watcher(&e);
        let m = b"Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\nFrom: Alice <alice@desk.test>\r\nTo: help@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <d1@desk.test>\r\n\r\n#status waiting\r\nCan you send a photo?\r\n";
        e.ingest(m, "it").unwrap();
        assert_eq!(
            e.store().ticket(1000).unwrap().unwrap().status,
            Status::Waiting
        );
        assert_eq!(outbox_of(&e, "reply").len(), 1);
    }

    #[test]
    fn merge_moves_the_ticket_and_redirects_later_mail() {
        let (_d, e) = routed_engine("");
        new_ticket_with_watcher(&e);
        e.ingest(&mail("carol@c.test", "Printer again", "p2@c", ""), "it")
            .unwrap();
        e.ingest(
            &agent_mail(
                &e,
                "alice@desk.test",
                1000,
                "m1@desk.test",
                "#time 10m\r\n#merge 1001",
            ),
            "it",
        )
        .unwrap();
        let src = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(src.merged_into, Some(1001));
        assert_eq!(src.status, Status::Closed);
        let dst = e.store().ticket(1001).unwrap().unwrap();
        assert_eq!(dst.merged_from, vec![1000]);
        assert!(dst.watchers.iter().any(|w| w.as_str() == "dave@c.test"));
        assert_eq!(dst.effort.len(), 1, "effort moved");
        let o = e
            .ingest(
                &mail("carol@c.test", "Re: [#1000] Printer", "p3@c", ""),
                "it",
            )
            .unwrap();
        assert_eq!(
            o,
            Outcome::Threaded {
                ticket: 1001,
                queued: 2
            },
            "old token lands on the merged ticket (and notifies the team)"
        );
        let view = crate::engine::queries::answer(
            &e,
            &crate::engine::queries::Query::ShowTicket { id: 1001 },
        );
        let crate::engine::queries::Answer::Ticket { view: Some(v) } = view else {
            panic!()
        };
        assert!(
            v.messages.iter().any(|m| m.ticket == 1000),
            "merged messages show on the target"
        );
    }

    #[test]
    fn links_are_both_ways() {
        let (_d, e) = routed_engine("");
        new_ticket_with_watcher(&e);
        e.ingest(&mail("x@c.test", "Other", "o1@c", ""), "it")
            .unwrap();
        e.ingest(
            &agent_mail(&e, "alice@desk.test", 1000, "l1@desk.test", "#parent 1001"),
            "it",
        )
        .unwrap();
        let child = e.store().ticket(1000).unwrap().unwrap();
        let parent = e.store().ticket(1001).unwrap().unwrap();
        assert_eq!(child.links[0].kind, crate::store::records::LinkKind::Parent);
        assert_eq!(parent.links[0].kind, crate::store::records::LinkKind::Child);
    }

    fn sla_engine(dir: &std::path::Path, clock: Arc<ManualClock>) -> Engine {
        let cfg = sla_config(dir);
        let mut tries = 0;
        let store = loop {
            match Store::open(&dir.join("state")) {
                Err(StoreError::Locked { .. }) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.unwrap(),
            }
        };
        Engine::new(store, clock, Policy::from_config(&cfg).unwrap())
    }

    fn sla_config(dir: &std::path::Path) -> Config {
        let config = it_desk()
            .desk("default_sla", "\"standard\"")
            .table(
                r#"
[timers]
waiting_reminder_after = "2d"
waiting_close_after = "5d"
resolved_close_after = "1d"
"#,
            )
            .escalation_tiers()
            .table(
                r#"
[[sla]]
name = "standard"
warn_at_percent = 75
first_response = { normal = "4h" }
resolution = { normal = "2d" }
"#,
            );
        load_config(dir, &config)
    }

    fn count(e: &Engine, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = outbox_of(e, kind)
            .iter()
            .map(|o| o.recipients[0].to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_timer_pass_reads_only_the_tickets_that_are_due() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Arc::new(ManualClock::new(t0));
        let e = sla_engine(dir.path(), clock.clone());
        for i in 0..30 {
            let id = format!("many{i}@c");
            e.ingest(&mail(&format!("u{i}@c.test"), "Printer", &id, ""), "it")
                .unwrap();
        }
        e.run_timers().unwrap();
        // Every ticket is filed under its first warning (75% of 4 h), none earlier.
        assert!(e.store().timers_due(t0, 100).unwrap().is_empty());
        let warn_at = t0 + chrono::Duration::hours(3);
        assert_eq!(e.store().timers_due(warn_at, 100).unwrap().len(), 30);
        assert_eq!(e.store().timers_due(warn_at, 7).unwrap().len(), 7);
        clock.advance(chrono::Duration::hours(3));
        assert_eq!(e.run_timers().unwrap(), 30);
        // Each moved on to its next timer (the breach at 4 h).
        assert!(e.store().timers_due(warn_at, 100).unwrap().is_empty());
        let breach_at = t0 + chrono::Duration::hours(4);
        assert_eq!(e.store().timers_due(breach_at, 100).unwrap().len(), 30);
    }

    #[test]
    fn another_sla_configuration_rebuilds_the_timer_index_once() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Arc::new(ManualClock::new(t0));
        let e = sla_engine(dir.path(), clock.clone());
        e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
            .unwrap();
        e.run_timers().unwrap();
        let warn_at = t0 + chrono::Duration::hours(3);
        assert_eq!(e.store().timers_due(warn_at, 10).unwrap(), vec![1000]);
        // The same desk with a 1 h first-response target: warned at 45 min.
        let mut p = Policy::from_config(&sla_config(dir.path())).unwrap();
        for sla in &mut p.slas {
            sla.first_response.insert(
                crate::store::records::Priority::Normal,
                chrono::Duration::hours(1),
            );
        }
        e.set_policy(p);
        e.run_timers().unwrap();
        let sooner = t0 + chrono::Duration::minutes(45);
        assert_eq!(e.store().timers_due(sooner, 10).unwrap(), vec![1000]);
    }

    #[test]
    fn warning_then_breach_escalates_once_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Arc::new(ManualClock::new(t0));
        {
            let e = sla_engine(dir.path(), clock.clone());
            e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
                .unwrap();
            assert_eq!(e.run_timers().unwrap(), 0);
            clock.advance(chrono::Duration::hours(3)); // 75% of 4h
            assert_eq!(e.run_timers().unwrap(), 1);
            assert_eq!(count(&e, "SLA warning"), ["alice@desk.test"]);
            assert_eq!(e.run_timers().unwrap(), 0, "a warning fires once");
            e.store().flush_blocking().unwrap();
        }
        // The daemon is down while the first-response target passes…
        clock.advance(chrono::Duration::hours(2));
        let e = sla_engine(dir.path(), clock.clone());
        // …and after the restart the breach fires exactly once.
        assert_eq!(e.run_timers().unwrap(), 1);
        assert_eq!(e.run_timers().unwrap(), 0);
        let t = e.store().ticket(1000).unwrap().unwrap();
        assert_eq!(t.team.as_deref(), Some("it-l2"), "L1 -> L2");
        assert_eq!(count(&e, "escalation"), ["bob@desk.test", "lead@desk.test"]);
        let evs = e.store().events(1000).unwrap();
        assert!(evs.iter().any(|ev| matches!(&ev.kind, EventKind::Escalated { from_team: Some(f), to_team, .. } if f == "it" && to_team == "it-l2")));
        assert!(evs.iter().any(|ev| matches!(&ev.kind, EventKind::SlaBreached { target, .. } if target == "first_response")));
        // Overdue now; the resolution target is still running.
        let overdue = crate::engine::queries::answer(
            &e,
            &crate::engine::queries::Query::ListTickets {
                status: None,
                overdue: true,
                due_within_secs: None,
                limit: None,
            },
        );
        let crate::engine::queries::Answer::Tickets { tickets, .. } = overdue else {
            panic!()
        };
        assert_eq!(tickets.len(), 1);
        let soon = crate::engine::queries::answer(
            &e,
            &crate::engine::queries::Query::ListTickets {
                status: None,
                overdue: false,
                due_within_secs: Some(3600),
                limit: None,
            },
        );
        let crate::engine::queries::Answer::Tickets { tickets, .. } = soon else {
            panic!()
        };
        assert!(
            tickets.is_empty(),
            "resolution is due in about 2 days, not within the hour"
        );
    }

    #[test]
    fn waiting_pauses_then_reminds_then_closes() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Arc::new(ManualClock::new(t0));
        let e = sla_engine(dir.path(), clock.clone());
        e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
            .unwrap();
        e.store()
            .transact(|tx| {
                let mut t = tx.ticket(1000)?.unwrap();
                t.first_response_at = Some(t0);
                t.set_status(Status::Waiting, t0 + chrono::Duration::hours(1));
                tx.put_ticket(&t)
            })
            .unwrap();
        clock.advance(chrono::Duration::days(1));
        assert_eq!(
            e.run_timers().unwrap(),
            0,
            "the resolution clock is paused while waiting"
        );
        clock.advance(chrono::Duration::days(2));
        assert_eq!(e.run_timers().unwrap(), 1);
        assert_eq!(count(&e, "reminder"), ["carol@c.test"]);
        clock.advance(chrono::Duration::days(3));
        assert_eq!(e.run_timers().unwrap(), 1);
        assert_eq!(
            e.store().ticket(1000).unwrap().unwrap().status,
            Status::Closed
        );
        assert_eq!(count(&e, "closing notice"), ["carol@c.test"]);
    }

    #[test]
    fn resolved_tickets_close_when_quiet_and_escalate_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Arc::new(ManualClock::new(t0));
        let e = sla_engine(dir.path(), clock.clone());
        e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
            .unwrap();
        e.ingest(
            &agent_mail(&e, "alice@desk.test", 1000, "x1@desk.test", "#escalate"),
            "it",
        )
        .unwrap();
        assert_eq!(
            e.store().ticket(1000).unwrap().unwrap().team.as_deref(),
            Some("it-l2")
        );
        assert_eq!(count(&e, "escalation"), ["bob@desk.test", "lead@desk.test"]);
        e.ingest(
            &agent_mail(
                &e,
                "bob@desk.test",
                1000,
                "x2@desk.test",
                "#status resolved\r\nFixed.",
            ),
            "it",
        )
        .unwrap();
        clock.advance(chrono::Duration::hours(25));
        e.run_timers().unwrap();
        assert_eq!(
            e.store().ticket(1000).unwrap().unwrap().status,
            Status::Closed
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
