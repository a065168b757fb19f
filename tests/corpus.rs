//! The hostile and broken mail corpus (`tests/fixtures/corpus/`): every mail
//! goes through the real ingest engine on a fresh temporary store (no network)
//! and must give the outcome `expected.toml` names, while these invariants
//! hold for every mail whatever its outcome:
//!
//! - ingest returns Ok and nothing panics;
//! - the raw bytes are kept (in the raw store, or behind a quarantine entry);
//! - every queued mail re-parses, has only allowed header names, and no header
//!   value holds CR or LF;
//! - no stored attachment name is a path, hidden, or holds control characters;
//! - a second ingest of the same bytes changes nothing;
//! - at most one acknowledgement goes out, never to the help address, never to
//!   a machine address, never in answer to automatic mail.
//!
//! Failures are collected over the whole corpus and reported together, one
//! line per problem, each naming its file.

use std::collections::{BTreeSet, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deskgate::desk::outcome::Outcome;
use deskgate::desk::policy::Policy;
use deskgate::desk::templates::Templates;
use deskgate::engine::clock::ManualClock;
use deskgate::engine::Engine;
use deskgate::mail::address::{EmailAddress, Party};
use deskgate::mail::classify::{classify, Class};
use deskgate::mail::parse::{self as inbound, sha256_hex};
use deskgate::store::records::EventKind;
use deskgate::store::Store;
use mail_parser::{HeaderValue, MessageParser};
use serde::Deserialize;

const DESK: &str = "help@desk.test";
const MAILBOX: &str = "help";
const SEED: &[u8] = b"From: Alice <alice@customer.test>\r\nTo: help@desk.test\r\nSubject: Printer on fire\r\nMessage-ID: <seed@customer.test>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\r\nIt burns.\r\n";
const SEED_TICKET: u64 = 1000;
/// The Message-ID ticket 1000's acknowledgement is pretended to have had;
/// replies and delivery reports in the corpus refer to it.
const ACK_ID: &str = "dg.1000.ack.fixture@desk.test";
/// The least number of mails the corpus must hold.
const MIN_CORPUS: usize = 35;
/// Ingest taking longer than this for one mail is reported (debug build).
const SLOW: Duration = Duration::from_secs(20);

/// Header names an outgoing mail may carry (compared case-insensitively).
const ALLOWED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "Date",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-Loop",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Reply-To",
];

/// Local parts no automatic mail may ever go to (compared without `-`, `_`, `.`).
const MACHINE_LOCAL_PARTS: &[&str] = &["mailerdaemon", "postmaster", "noreply", "donotreply"];

/// Files exempt from the CRLF rule, because line endings or bytes are their point.
const NOT_CRLF: &[&str] = &["bare-lf-line-endings.eml", "not-a-mail-binary.eml"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Created,
    Threaded,
    Duplicate,
    Bounce,
    Ignored,
    Quarantined,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    file: String,
    outcome: Kind,
    /// created/threaded: whether an acknowledgement was queued.
    ack: Option<bool>,
    /// threaded/duplicate/bounce: the ticket the mail must land on.
    ticket: Option<u64>,
    /// bounce/duplicate: the outcome must name no ticket.
    #[serde(default)]
    unmatched: bool,
    /// bounce: the addresses reported as failed (any order).
    failed: Option<Vec<String>>,
    /// bounce: whether the report counts a hard bounce against the addresses
    /// it names (true: against every expected `failed` address; false:
    /// against none it names).
    hard_bounce: Option<bool>,
    /// bounce: how many delivery failures the report put on the ticket.
    failure_events: Option<usize>,
    /// bounce: how many confirmed deliveries the report put on the ticket.
    confirmed_events: Option<usize>,
    /// created: the address of the new ticket's requester.
    requester: Option<String>,
    /// created/threaded: text the stored message must hold (a note of deskgate's).
    note: Option<String>,
    why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    mail: Vec<Expected>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir() -> PathBuf {
    repo().join("tests/fixtures/corpus")
}

fn load_expectations() -> Vec<Expected> {
    let path = corpus_dir().join("expected.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let corpus: Corpus =
        toml::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    corpus.mail
}

fn eml_files() -> BTreeSet<String> {
    std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".eml"))
        .collect()
}

fn kind_of(o: &Outcome) -> Kind {
    match o {
        Outcome::Created { .. } => Kind::Created,
        Outcome::Threaded { .. } => Kind::Threaded,
        Outcome::Duplicate { .. } => Kind::Duplicate,
        Outcome::Bounce { .. } => Kind::Bounce,
        Outcome::Ignored { .. } => Kind::Ignored,
        Outcome::Quarantined { .. } => Kind::Quarantined,
    }
}

fn desk_address() -> EmailAddress {
    EmailAddress::parse(DESK).expect("desk address")
}

/// A fresh store and engine. The store lives as long as the returned temp dir.
fn desk() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2025-03-03T10:05:00Z")
        .expect("fixed time")
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(now));
    let templates = Templates::load(&repo().join("templates")).expect("templates");
    let policy = Policy::new(
        Party {
            name: Some("Help".into()),
            address: desk_address(),
        },
        templates,
    );
    (dir, Engine::new(store, clock, policy))
}

/// What one fixture did, for the summary table and the failure list.
struct Report {
    outcome: String,
    elapsed: Duration,
    problems: Vec<String>,
}

fn compare(exp: &Expected, got: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    if kind_of(got) != exp.outcome {
        problems.push(format!(
            "expected {:?}, got {got:?} (expected because: {})",
            exp.outcome, exp.why
        ));
        return problems;
    }
    if let (Some(ack), Outcome::Created { queued, .. } | Outcome::Threaded { queued, .. }) =
        (exp.ack, got)
    {
        if (*queued > 0) != ack {
            problems.push(format!(
                "expected {} acknowledgement, got queued = {queued} (expected because: {})",
                if ack { "an" } else { "no" },
                exp.why
            ));
        }
    }
    let landed = match got {
        Outcome::Created { ticket, .. } | Outcome::Threaded { ticket, .. } => Some(*ticket),
        Outcome::Duplicate { ticket } | Outcome::Bounce { ticket, .. } => *ticket,
        _ => None,
    };
    if let Some(t) = exp.ticket {
        if landed != Some(t) {
            problems.push(format!(
                "expected ticket {t}, got {got:?} (expected because: {})",
                exp.why
            ));
        }
    }
    if exp.unmatched && landed.is_some() {
        problems.push(format!(
            "expected no ticket, got {got:?} (expected because: {})",
            exp.why
        ));
    }
    if let (Some(want), Outcome::Bounce { failed, .. }) = (&exp.failed, got) {
        let want: BTreeSet<String> = want.iter().map(|a| a.to_ascii_lowercase()).collect();
        let have: BTreeSet<String> = failed.iter().map(|a| a.to_ascii_lowercase()).collect();
        if want != have {
            problems.push(format!(
                "expected failed recipients {want:?}, got {have:?} (expected because: {})",
                exp.why
            ));
        }
    }
    problems
}

/// Every text a header value decodes to (names and addresses included).
fn decoded_texts(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        HeaderValue::Address(a) => a
            .iter()
            .flat_map(|addr| {
                [addr.name(), addr.address()]
                    .into_iter()
                    .flatten()
                    .map(str::to_string)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Problems with one queued mail: it must parse, carry only allowed headers,
/// and no header may span lines once unfolded.
fn check_outgoing(raw: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = inbound::parse(raw.as_bytes()) {
        problems.push(format!("queued mail does not re-parse: {e}"));
    }
    let Some(msg) = MessageParser::default().parse(raw.as_bytes()) else {
        problems.push("queued mail has no headers mail-parser can read".into());
        return problems;
    };
    for h in msg.headers() {
        let name = h.name();
        if !ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            problems.push(format!(
                "queued mail has a header outside the allow-list: {name:?}"
            ));
        }
        let start = (h.offset_start as usize).min(raw.len());
        let end = (h.offset_end as usize).clamp(start, raw.len());
        let unfolded = raw.as_bytes()[start..end]
            .strip_suffix(b"\r\n")
            .or_else(|| raw.as_bytes()[start..end].strip_suffix(b"\n"))
            .unwrap_or(&raw.as_bytes()[start..end])
            .to_vec();
        let unfolded = String::from_utf8_lossy(&unfolded)
            .replace("\r\n ", " ")
            .replace("\r\n\t", "\t");
        if unfolded.contains(['\r', '\n']) {
            problems.push(format!(
                "queued mail's {name} header holds CR/LF after unfolding: {unfolded:?}"
            ));
        }
        for text in decoded_texts(h.value()) {
            if text.contains(['\r', '\n']) {
                problems.push(format!(
                    "queued mail's {name} header decodes to text with CR/LF: {text:?}"
                ));
            }
        }
    }
    problems
}

/// What the mail left on the ticket it landed on: its requester, the
/// delivery events a report added, a note on the stored message.
fn check_ticket(store: &Store, exp: &Expected, got: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let landed = match got {
        Outcome::Created { ticket, .. } | Outcome::Threaded { ticket, .. } => Some(*ticket),
        Outcome::Duplicate { ticket } | Outcome::Bounce { ticket, .. } => *ticket,
        _ => None,
    };
    let Some(id) = landed else {
        return problems;
    };
    if let Some(want) = &exp.requester {
        let have = store
            .ticket(id)
            .expect("ticket")
            .map(|t| t.requester.address.to_string());
        if have.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "expected requester {want}, got {have:?} (expected because: {})",
                exp.why
            ));
        }
    }
    let events = store.events(id).expect("events");
    let count = |pred: fn(&EventKind) -> bool| events.iter().filter(|e| pred(&e.kind)).count();
    let failures = count(|k| matches!(k, EventKind::DeliveryFailed { .. }));
    let confirmed = count(|k| matches!(k, EventKind::DeliveryConfirmed { .. }));
    for (what, want, have) in [
        ("delivery failure", exp.failure_events, failures),
        ("confirmed delivery", exp.confirmed_events, confirmed),
    ] {
        if want.is_some_and(|w| w != have) {
            problems.push(format!(
                "expected {want:?} {what} event(s) on ticket {id}, got {have} (expected because: {})",
                exp.why
            ));
        }
    }
    if let Some(note) = &exp.note {
        let messages = store.messages(id).expect("messages");
        if !messages.iter().any(|m| m.text.contains(note.as_str())) {
            problems.push(format!(
                "expected a stored message on ticket {id} holding {note:?} (expected because: {})",
                exp.why
            ));
        }
    }
    problems
}

/// Whether the hard-bounce bookkeeping matches `want` for the addresses a
/// delivery report names.
fn check_hard_bounces(store: &Store, exp: &Expected, got: &Outcome, want: bool) -> Vec<String> {
    let hard = |a: &str| {
        store
            .address_state(&a.to_ascii_lowercase())
            .expect("address state")
            .is_some_and(|s| s.hard_bounces > 0)
    };
    let expected: Vec<&String> = exp.failed.iter().flatten().collect();
    if want {
        expected
            .iter()
            .filter(|a| !hard(a))
            .map(|a| {
                format!(
                    "expected a hard bounce counted against {a}, none was (expected because: {})",
                    exp.why
                )
            })
            .collect()
    } else {
        let reported = match got {
            Outcome::Bounce { failed, .. } => failed.iter().collect(),
            _ => Vec::new(),
        };
        let named: BTreeSet<&String> = expected.into_iter().chain(reported).collect();
        named
            .into_iter()
            .filter(|a| hard(a))
            .map(|a| {
                format!(
                    "a hard bounce was counted against {a}, none should be (expected because: {})",
                    exp.why
                )
            })
            .collect()
    }
}

fn is_machine_address(a: &EmailAddress) -> bool {
    let local: String = a
        .local_part()
        .split('+')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .collect();
    MACHINE_LOCAL_PARTS.contains(&local.as_str())
}

fn bad_file_name(name: &str) -> bool {
    name.contains(['/', '\\']) || name.chars().any(char::is_control) || name.starts_with('.')
}

/// Runs one fixture on a fresh store and checks its expectation and every invariant.
fn run_fixture(exp: &Expected, raw: &[u8]) -> Report {
    let mut problems = Vec::new();
    let (_dir, engine) = desk();
    let store = engine.store();
    let report = |outcome: String, elapsed, problems| Report {
        outcome,
        elapsed,
        problems,
    };

    // Seed: ticket 1000, whose acknowledgement had the Message-ID ACK_ID.
    match engine.ingest(SEED, MAILBOX) {
        Ok(Outcome::Created {
            ticket: SEED_TICKET,
            ..
        }) => {}
        other => {
            problems.push(format!("seed mail did not create ticket 1000: {other:?}"));
            return report("(seed failed)".into(), Duration::ZERO, problems);
        }
    }
    // Pretend ticket 1000's acknowledgement went to alice with this id.
    let alice =
        deskgate::mail::address::EmailAddress::parse("alice@customer.test").expect("address");
    store
        .transact(|tx| tx.put_sent(ACK_ID, Some(SEED_TICKET), std::slice::from_ref(&alice)))
        .expect("record the pretended acknowledgement");

    let outbox_before: HashSet<u64> = store
        .outbox()
        .expect("outbox")
        .iter()
        .map(|e| e.id)
        .collect();
    let tickets_before = store.ticket_count();
    let quarantine_before = store.quarantine_count();

    let started = Instant::now();
    let outcome = match engine.ingest(raw, MAILBOX) {
        Ok(o) => o,
        Err(e) => {
            problems.push(format!("ingest returned an error: {e}"));
            return report("(error)".into(), started.elapsed(), problems);
        }
    };
    let elapsed = started.elapsed();
    if elapsed > SLOW {
        problems.push(format!("ingest took {elapsed:?}"));
    }
    problems.extend(compare(exp, &outcome));
    problems.extend(check_ticket(store, exp, &outcome));
    let kind = kind_of(&outcome);
    if let Some(want) = exp.hard_bounce {
        problems.extend(check_hard_bounces(store, exp, &outcome, want));
    }

    // The raw bytes are kept, whatever became of the mail.
    match kind {
        Kind::Quarantined => {
            let kept = store
                .quarantine()
                .expect("quarantine")
                .iter()
                .any(|q| store.raw(&q.raw_key).expect("raw").as_deref() == Some(raw));
            if !kept {
                problems
                    .push("quarantined, but no quarantine entry leads to the exact bytes".into());
            }
            if store.quarantine_count() != quarantine_before + 1 {
                problems.push(format!(
                    "quarantined, but the quarantine went from {quarantine_before} to {} entries",
                    store.quarantine_count()
                ));
            }
        }
        // A duplicate's bytes are those of a mail already kept.
        Kind::Duplicate => {}
        _ => {
            // Keyed by filing time, then SHA-256 (`store::raw_key`).
            let key = deskgate::store::raw_key(engine.now(), &sha256_hex(raw));
            if store.raw(&key).expect("raw").as_deref() != Some(raw) {
                problems.push(format!(
                    "{kind:?}, but the raw bytes are not kept under their filing time and SHA-256"
                ));
            }
        }
    }

    // Only a created ticket adds a ticket.
    let want_tickets = tickets_before + usize::from(kind == Kind::Created);
    if store.ticket_count() != want_tickets {
        problems.push(format!(
            "{kind:?}, but the ticket count went from {tickets_before} to {}",
            store.ticket_count()
        ));
    }

    // Outgoing mail: what was queued, to whom, and how it looks.
    let outbox = store.outbox().expect("outbox");
    let new: Vec<_> = outbox
        .iter()
        .filter(|e| !outbox_before.contains(&e.id))
        .collect();
    if new.len() != outcome.queued() {
        problems.push(format!(
            "outcome says {} mail(s) queued, the outbox gained {}",
            outcome.queued(),
            new.len()
        ));
    }
    if new.len() > 1 {
        problems.push(format!("{} mails queued for one incoming mail", new.len()));
    }
    let class = inbound::parse(raw)
        .ok()
        .map(|m| classify(&m, &desk_address()));
    if let Some(class) = &class {
        if *class != Class::Human && !new.is_empty() {
            problems.push(format!(
                "mail queued in answer to automatic mail ({class:?})"
            ));
        }
    }
    for e in &new {
        for r in &e.recipients {
            if r.as_str() == DESK {
                problems.push(format!(
                    "mail queued to the help address itself ({})",
                    e.kind
                ));
            }
            if is_machine_address(r) {
                problems.push(format!("mail queued to machine address {r} ({})", e.kind));
            }
        }
    }
    for e in &outbox {
        // What the sender will put on the wire.
        let problems_here = match e.formatted() {
            Ok(raw) => check_outgoing(&raw),
            Err(err) => vec![format!("cannot be formatted: {err}")],
        };
        for p in problems_here {
            problems.push(format!("outbox {} ({}): {p}", e.id, e.kind));
        }
    }

    // Stored names are safe to show and to use as file names.
    for t in store.tickets() {
        let t = t.expect("ticket");
        if t.subject.chars().any(char::is_control) {
            problems.push(format!(
                "ticket {} subject holds control characters: {:?}",
                t.id, t.subject
            ));
        }
        if let Some(n) = &t.requester.name {
            if n.chars().any(char::is_control) {
                problems.push(format!(
                    "ticket {} requester name holds control characters: {n:?}",
                    t.id
                ));
            }
        }
        for m in store.messages(t.id).expect("messages") {
            for a in &m.attachments {
                if bad_file_name(&a.name) {
                    problems.push(format!(
                        "ticket {} message {} has an unsafe attachment name {:?}",
                        t.id, m.seq, a.name
                    ));
                }
            }
        }
    }

    // The same mail again changes nothing.
    let tickets_mid = store.ticket_count();
    let quarantine_mid = store.quarantine_count();
    let outbox_mid = outbox.len();
    match engine.ingest(raw, MAILBOX) {
        Ok(Outcome::Duplicate { .. }) => {}
        Ok(o)
            if kind == Kind::Quarantined
                && !matches!(o, Outcome::Created { .. } | Outcome::Threaded { .. }) => {}
        Ok(o) => problems.push(format!("second ingest was not a duplicate: {o:?}")),
        Err(e) => problems.push(format!("second ingest returned an error: {e}")),
    }
    if store.ticket_count() != tickets_mid
        || store.quarantine_count() != quarantine_mid
        || store.outbox().expect("outbox").len() != outbox_mid
    {
        problems.push(format!(
            "second ingest changed the store: tickets {tickets_mid} -> {}, quarantine {quarantine_mid} -> {}, outbox {outbox_mid} -> {}",
            store.ticket_count(),
            store.quarantine_count(),
            store.outbox().expect("outbox").len()
        ));
    }

    report(format!("{outcome:?}"), elapsed, problems)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

#[test]
fn every_mail_in_the_corpus_is_handled_safely() {
    let expectations = load_expectations();
    let mut failures: Vec<String> = Vec::new();
    let mut table: Vec<String> = Vec::new();
    for exp in &expectations {
        let path = corpus_dir().join(&exp.file);
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                failures.push(format!("{}: cannot read: {e}", exp.file));
                continue;
            }
        };
        match panic::catch_unwind(AssertUnwindSafe(|| run_fixture(exp, &raw))) {
            Ok(r) => {
                let mark = if r.problems.is_empty() {
                    "ok  "
                } else {
                    "FAIL"
                };
                table.push(format!(
                    "{mark} {:<42} {:>7.1?} {}",
                    exp.file, r.elapsed, r.outcome
                ));
                failures.extend(r.problems.into_iter().map(|p| format!("{}: {p}", exp.file)));
            }
            Err(payload) => {
                table.push(format!("PANIC {}", exp.file));
                failures.push(format!(
                    "{}: panicked: {}",
                    exp.file,
                    panic_message(&*payload)
                ));
            }
        }
    }
    eprintln!("corpus: {} mails\n{}", expectations.len(), table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} problem(s) in the hostile-mail corpus:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn corpus_files_and_expectations_match() {
    let expectations = load_expectations();
    let listed: Vec<&str> = expectations.iter().map(|e| e.file.as_str()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a file is listed twice in expected.toml"
    );
    let files = eml_files();
    let unlisted: Vec<&String> = files
        .iter()
        .filter(|f| !unique.contains(f.as_str()))
        .collect();
    let missing: Vec<&&str> = unique.iter().filter(|f| !files.contains(**f)).collect();
    assert!(
        unlisted.is_empty(),
        "mails without an expectation: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "expectations without a mail: {missing:?}"
    );
    assert!(
        files.len() >= MIN_CORPUS,
        "the corpus holds {} mails, fewer than {MIN_CORPUS}",
        files.len()
    );
    for e in &expectations {
        let needs_ack = matches!(e.outcome, Kind::Created | Kind::Threaded);
        assert_eq!(
            e.ack.is_some(),
            needs_ack,
            "{}: `ack` is for created/threaded only, and required there",
            e.file
        );
        assert!(
            (e.failed.is_none()
                && e.hard_bounce.is_none()
                && e.failure_events.is_none()
                && e.confirmed_events.is_none())
                || e.outcome == Kind::Bounce,
            "{}: `failed`, `hard_bounce`, `failure_events` and `confirmed_events` are for bounces only",
            e.file
        );
        assert!(
            !(e.unmatched && e.ticket.is_some()),
            "{}: `unmatched` and `ticket` contradict each other",
            e.file
        );
        assert!(!e.why.trim().is_empty(), "{}: say why", e.file);
    }
}

/// An editor or a git setting that "fixes" line endings would silently turn
/// every fixture into a bare-LF one; catch that here.
#[test]
fn corpus_files_keep_crlf_line_endings() {
    let mut bad = Vec::new();
    for name in eml_files() {
        if NOT_CRLF.contains(&name.as_str()) {
            continue;
        }
        let raw = std::fs::read(corpus_dir().join(&name)).expect("read fixture");
        let bare_lf = raw
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
        if bare_lf {
            bad.push(name);
        }
    }
    let bare = std::fs::read(corpus_dir().join("bare-lf-line-endings.eml")).expect("read fixture");
    assert!(
        !bare.contains(&b'\r'),
        "bare-lf-line-endings.eml has CR bytes"
    );
    assert!(
        bad.is_empty(),
        "fixtures with bare LF line endings: {bad:?}"
    );
}

/// The invariant checks themselves must catch what they claim to, or a green
/// corpus run proves nothing.
#[test]
fn invariant_checks_catch_violations() {
    let good = "From: Help <help@desk.test>\r\nTo: a@b.test\r\nSubject: [#1] hi\r\n there\r\nMessage-ID: <x@desk.test>\r\n\r\nbody\r\n";
    assert_eq!(check_outgoing(good), Vec::<String>::new());
    let injected = "From: Help <help@desk.test>\r\nTo: a@b.test\r\nSubject: x\r\nBcc: evil@x.test\r\n\r\nbody\r\n";
    assert!(check_outgoing(injected).iter().any(|p| p.contains("Bcc")));
    let encoded_crlf = "From: Help <help@desk.test>\r\nTo: a@b.test\r\nSubject: =?utf-8?q?x=0D=0ABcc:_evil@x?=\r\n\r\nbody\r\n";
    assert!(check_outgoing(encoded_crlf)
        .iter()
        .any(|p| p.contains("CR/LF")));
    for bad in ["../x", "a\\b", ".htaccess", "a\r\nb", "nul\0"] {
        assert!(bad_file_name(bad), "{bad:?}");
    }
    assert!(!bad_file_name("report.pdf"));
    for machine in [
        "MAILER-DAEMON@x.test",
        "postmaster@x.test",
        "no-reply@x.test",
        "noreply+42@x.test",
        "do_not_reply@x.test",
    ] {
        assert!(
            is_machine_address(&EmailAddress::parse(machine).unwrap()),
            "{machine}"
        );
    }
    assert!(!is_machine_address(
        &EmailAddress::parse("alice@x.test").unwrap()
    ));
}

/// A store filed by a version that keyed dedupe on the Message-ID alone
/// (`mid:<id>`): refetching such a mail after the upgrade is still a no-op.
#[test]
fn mail_filed_under_the_old_dedupe_key_stays_a_duplicate() {
    let (_dir, engine) = desk();
    let store = engine.store();
    let at = DateTime::parse_from_rfc3339("2025-03-03T09:00:00Z")
        .expect("fixed time")
        .with_timezone(&Utc);
    store
        .transact(|tx| {
            tx.put_disposition(
                "mid:seed@customer.test",
                &deskgate::store::records::Disposition {
                    ticket: None,
                    at,
                    outcome: "filed by an older version".into(),
                },
            )
        })
        .expect("write the old key");
    match engine.ingest(SEED, MAILBOX) {
        Ok(Outcome::Duplicate { .. }) => {}
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(store.ticket_count(), 0);
}
