//! deskgate turns a help address into a ticketing system people use from
//! their own mail client.
//!
//! # How a mail flows
//!
//! ```text
//!  IMAP mailbox ──► ingest ──► engine ──────────────► store (sled) ──► outbox ──► SMTP
//!   (imap.rs)     (ingest.rs) (engine.rs)              (store.rs)     (outbox.rs)
//!                              │ parse     inbound.rs
//!                              │ classify  classify.rs
//!                              │ thread    threading.rs
//!                              │ compose   compose.rs + templates/
//! ```
//!
//! 1. **Fetch** — [`ingest::MailboxTask`], one per configured mailbox, logs in
//!    through [`imap`], waits in IDLE (or polls), and fetches every UID past
//!    the mailbox's stored [`model::Checkpoint`] with `BODY.PEEK[]`, in batches.
//! 2. **Understand** — [`engine::Engine::ingest`] parses the bytes
//!    ([`inbound`], sanitising every header it keeps), decides whether a person
//!    or a machine sent it ([`classify`], RFC 3834), and finds the ticket it
//!    continues ([`threading`]: subject token, then In-Reply-To, then References).
//! 3. **Commit** — in one [`store::Store::transact`] sled transaction the engine
//!    writes the ticket, the message, the audit events, the Message-ID index, the
//!    mail's dedupe key, and every outgoing mail ([`compose`] renders the
//!    admin's templates and builds the final bytes) as an outbox entry. Mail it
//!    cannot understand goes to quarantine in the same way: kept, never dropped.
//! 4. **Acknowledge to the server** — the mailbox task flushes the store and
//!    only then flags the batch `\Seen` (or moves it). A crash before that point
//!    refetches the mail; its dedupe key makes the second pass a no-op.
//! 5. **Send** — [`outbox::OutboxSender`] delivers due entries over SMTP with
//!    retry and backoff, and removes each entry in the transaction that records
//!    its delivery on the ticket.
//!
//! Around that: [`config`] loads and validates the file once; [`daemon`] runs
//! and stops the tasks; [`control`] answers the CLI over a Unix socket while the
//! daemon holds the store; [`queries`] builds the views both paths show;
//! [`clock`] makes time injectable.

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
