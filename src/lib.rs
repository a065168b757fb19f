//! deskgate turns a help address into a ticketing system people use from
//! their own mail client.
//!
//! # Layers
//!
//! ```text
//!   cli ──────────┐            (arguments, text/JSON output, dry run)
//!   daemon ───────┤            (IMAP, SMTP, timers, reload, control socket, supervision)
//!                 ▼
//!   engine                     (opens every transaction: ingest, timers, retries, queries)
//!                 ▼
//!   desk                       (the help desk's rules inside one transaction)
//!                 ▼
//!   mail   store   config      (pure mail ↔ bytes · sled and its records · the checked config file)
//! ```
//!
//! Imports flow down only: `cli` and `daemon` may use everything below them,
//! `engine` uses `desk` and the bottom row, `desk` uses the bottom row, and
//! `mail` uses nothing of deskgate's. Each folder's `mod.rs` says what it is
//! for and what it may not import.
//!
//! # The path of one mail
//!
//! 1. **Fetch** — `daemon::mailbox` (one task per mailbox; it logs in through
//!    `daemon::imap_login` — a password, or an OAuth2 token from
//!    `daemon::oauth2` — over `daemon::imap`, whose TLS trust is
//!    `daemon::tls`) waits in IDLE or polls and fetches every UID past the
//!    mailbox's stored checkpoint, in batches; while one batch commits, the
//!    next is fetched and the previous one is flushed and marked.
//! 2. **Prepare** — `engine` hands the batch to `desk::prepare`, which is pure:
//!    `mail::parse` (sanitising every header it keeps, `mail::text` trims
//!    quoted history and converts HTML), `mail::classify` (a person or a
//!    machine, RFC 3834) and `desk::threading`'s keys.
//! 3. **File** — inside one transaction `desk::dispatch` forks each mail: a
//!    delivery report goes to `desk::bounces` (`mail::bounce` reads it); an
//!    agent's mail on a ticket goes to `desk::agent` after `desk::proof`
//!    (signed reply addresses in `desk::trust`, the topmost trusted
//!    Authentication-Results read by `mail::auth_results`; unproven mail to
//!    `desk::forgery`) and `desk::commands`; everything else goes to
//!    `desk::requester`, after `desk::routing`'s rules. Who hears of it comes
//!    from `desk::workers`; every automatic mail passes the loop guards in
//!    `desk::automail` and is rendered from `desk::templates`, and every
//!    mail of a ticket goes out from its queue's address (`desk::queue`:
//!    the address the requester wrote to).
//! 4. **Commit** — the batch's ticket changes, every mail's dedupe key and
//!    every outgoing mail (an outbox entry holding the `mail::outgoing`
//!    value) are written by `store::Store::transact` as one atomic sled batch
//!    (`store::db`; the timer index of every ticket written is re-filed in
//!    the same batch); mail that cannot be understood is kept by
//!    `desk::quarantine` the same way, and a mail that keeps failing is
//!    quarantined after three attempts (`daemon::mailbox`'s poison guard).
//! 5. **Acknowledge to the server** — the mailbox task flushes the store and
//!    only then flags the batch `\Seen` (or moves it). A crash before that
//!    refetches the mail; its dedupe key makes the second pass a no-op.
//! 6. **Send** — `daemon::outbox` formats due entries into RFC 5322 bytes
//!    (`mail::outgoing::build`, a pure function of the stored value, with an
//!    agent's attachments) and delivers them over SMTP with retry and backoff.
//!    Each chunk's mails are marked "possibly sent" (`store::sending`) before
//!    their bodies go, and their deliveries are recorded on their tickets in
//!    the transaction that removes the entries; a mail interrupted twice is
//!    held, never sent a third time.
//!
//! **Time.** `daemon::timers` asks `engine::Engine::run_timers` what is due
//! (read from the timer index, so a pass costs what is due);
//! `desk::lifecycle` carries it out per ticket (`desk::sla` targets in
//! `desk::calendar` business hours, `desk::escalation` up the tiers,
//! reminders and auto-close), each in the transaction that marks it fired.
//! The same pass sends each `[[digest]]` once per period and answers the
//! reports asked for at `help+report@` (`engine::digest` over
//! `desk::digest`, `desk::report_mail`, `desk::report_text`).
//! Time comes from `engine::clock`, so all of this is tested without sleeping.
//!
//! Around that: `config` loads and checks the file once (errors with file,
//! line and key); `daemon::reload` swaps in a new `desk::policy::Policy` on
//! SIGHUP or a change on disk; `daemon::control` answers the CLI over a Unix
//! socket with `engine::queries` (the list index `store::list_index`, the
//! managers' views `engine::views` over `desk::report` (read from the
//! report facts and open tickets per day, `store::report_facts` and
//! `store::open_days`, kept in each ticket's transaction), `desk::board`,
//! `desk::next`, and `engine::recurring` over `desk::recurring` and
//! `desk::recurring_compare`), which
//! `cli::render` turns into text; the CLI's `tickets set|comment|reply|
//! merge|link` are applied by `engine::Engine::steer` through `desk::steer`,
//! the same commands as an agent's mail (`desk::ticket_commands`);
//! `deskgate status` reads what the tasks
//! report into `daemon::status`, and `deskgate reload` waits for the reload
//! task's verdict;
//! `daemon` supervises every task and tells systemd it is ready
//! (`daemon::notify`); `store::migrate` converts stores of older releases,
//! `store::backup` writes and restores whole-store copies, `store::export`
//! and `store::import` move tickets to and from JSON lines, and
//! `store::retention` prunes what `[retention]` lets go.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod desk;
pub mod engine;
pub mod mail;
pub mod store;
