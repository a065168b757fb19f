//! deskgate turns a help address into a ticketing system people use from
//! their own mail client.
//!
//! # How a mail flows
//!
//! ```text
//!  IMAP ──► ingest ──► engine ─────────────────────────────► store (sled) ──► outbox ──► SMTP
//! (imap)   (ingest)   (engine)                                (store)          (outbox)
//!                      │ parse ........ inbound, text
//!                      │ classify ..... classify, bounce
//!                      │ thread ....... threading, trust (signed reply addresses)
//!                      │ route ........ rules
//!                      │ act .......... ticketing | agent_mail (commands) | bounce → ticketing
//!                      │ answer ....... automail (+ guards), compose, templates/
//!  timers ──► engine.run_timers ─► lifecycle: sla + calendar, escalation ─► store ─► outbox
//! ```
//!
//! 1. **Fetch** — [`ingest::MailboxTask`], one per configured mailbox, logs in
//!    through [`imap`], waits in IDLE (or polls), and fetches every UID past
//!    the mailbox's stored [`model::Checkpoint`] with `BODY.PEEK[]`, in batches;
//!    while one batch commits, the next is fetched and the previous one is
//!    flushed and marked.
//! 2. **Understand** — [`engine::Engine::ingest_batch`] parses each mail (a
//!    large batch on a helper thread that feeds the transaction in order)
//!    ([`inbound`], sanitising every header it keeps; [`text`] trims quoted
//!    history and converts HTML), decides whether a person or a machine sent it
//!    ([`classify`], RFC 3834; [`bounce`] reads delivery reports), finds the
//!    ticket it continues ([`threading`]: subject token, In-Reply-To,
//!    References; a merged ticket forwards), and applies the routing rules
//!    ([`rules`]).
//! 3. **Act** — new tickets and requester replies go through [`ticketing`]
//!    (which also notifies agents); mail from an agent goes through
//!    [`agent_mail`]: proof of identity ([`trust`]), commands
//!    ([`commands`]), relay to the requester or internal comment, merge, links,
//!    effort, [`escalation`]. Every automatic mail passes the loop guards in
//!    [`automail`] (no machine or undeliverable addresses, rate limits, held-back
//!    mail recorded) and is composed by [`compose`] from the admin's templates.
//! 4. **Commit** — all of a batch's changes, every mail's dedupe key and every
//!    outgoing mail (as an outbox entry holding the composed mail, Message-ID
//!    and Date fixed) are written in one [`store::Store::transact`]
//!    transaction: one record in [`kv`]'s write-ahead journal, visible at once
//!    through an in-memory overlay, stored in the sled `journal` tree by a
//!    journal-writer thread and later copied into the indexed sled trees by an
//!    applier thread. Mail that cannot be understood is quarantined the same
//!    way: kept, never dropped.
//! 5. **Acknowledge to the server** — the mailbox task flushes the store (which
//!    waits for the journal writer) and only then flags the batch `\Seen` (or
//!    moves it). A crash before that point refetches the mail; its dedupe key
//!    makes the second pass a no-op.
//! 6. **Send** — [`outbox::OutboxSender`] flushes the store, formats due
//!    entries into RFC 5322 bytes ([`compose::build`], a pure function of the
//!    stored mail) and delivers them over SMTP with retry and backoff, and
//!    removes each entry in the transaction that records its delivery on the
//!    ticket. During a bulk backlog it lets ingest go first ([`backlog`],
//!    bounded).
//!
//! **Time.** [`timers::TimerTask`] asks [`engine::Engine::run_timers`] what
//! is due; [`lifecycle`] carries it out per ticket: SLA warnings and breaches
//! ([`sla`] targets in [`calendar`] business hours, paused while waiting),
//! escalation up the tiers, reminders and auto-close — each in the transaction
//! that marks it fired, so each fires exactly once. Time comes from [`clock`],
//! so all of this is tested without sleeping.
//!
//! Around that: [`config`] loads and validates the file once (errors with file,
//! line and key); [`reload`] swaps in a new configuration on SIGHUP or a change
//! on disk; [`daemon`] starts and stops every task; [`control`] answers the CLI
//! over a Unix socket while the daemon holds the store; [`queries`] builds the
//! views both paths show; [`model`] holds the stored records; [`address`]
//! normalises addresses.

pub mod address;
pub mod agent_mail;
pub mod automail;
pub mod backlog;
pub mod bounce;
pub mod calendar;
pub mod classify;
pub mod clock;
pub mod commands;
pub mod compose;
pub mod config;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod escalation;
pub mod imap;
pub mod inbound;
pub mod ingest;
pub mod kv;
pub mod lifecycle;
pub mod model;
pub mod outbox;
pub mod queries;
pub mod reload;
pub mod rules;
pub mod sla;
pub mod store;
pub mod text;
pub mod threading;
pub mod ticketing;
pub mod timers;
pub mod trust;
