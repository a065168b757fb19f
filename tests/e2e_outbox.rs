//! The outbox against real Postfix and Dovecot: kills while sending, outages,
//! refused recipients. Copies are counted per Message-ID in the requester's
//! mailbox, where a re-sent mail shows up twice.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(60);

/// Acks go to one requester: lift the per-address limits out of the way.
const NO_LIMITS: &str =
    "[limits]\nauto_replies_per_recipient = 100000\nauto_replies_per_ticket = 100\n";

fn requests(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            mail(
                ALICE,
                HELP,
                &format!("Request {tag} {i}"),
                &format!("{tag}-{i}@customer.test"),
                "",
                "please help",
            )
        })
        .collect()
}

/// Copies of each Message-ID in `user`'s INBOX.
async fn copies(servers: &MailServers, user: &str) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for raw in servers.imap().fetch_all(user, "INBOX").await {
        *n.entry(message_id(&raw).unwrap_or_default()).or_insert(0) += 1;
    }
    n
}

/// Waits until the outbox is empty (every mail recorded as delivered or failed).
async fn drained(desk: &Deskgate, timeout: Duration) {
    eventually("the outbox drains", timeout, || {
        let ob = desk.json(&["outbox", "--json"]);
        ob.as_array()
            .map(|a| a.iter().all(|e| e["failed"] == true))
            .unwrap_or(false)
    })
    .await;
}

/// Message-IDs of the entries held because they may have gone out twice.
fn held_uncertain(desk: &Deskgate) -> std::collections::HashSet<String> {
    let ob = desk.json(&["outbox", "--json"]);
    ob.as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["failed"] == true
                && e["last_error"]
                    .as_str()
                    .is_some_and(|x| x.contains("possibly sent twice"))
        })
        .filter_map(|e| e["message_id"].as_str())
        .map(|m| m.trim_matches(|c| c == '<' || c == '>').to_string())
        .collect()
}

#[tokio::test]
async fn kills_while_sending_resend_at_most_the_mails_in_flight() {
    const MAILS: usize = 600;
    const KILLS: usize = 10;
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let opts = DeskOptions {
        extra: NO_LIMITS,
        ..DeskOptions::default()
    };
    let mut desk = Deskgate::new(&servers, opts);
    imap.append_many(HELP, "INBOX", &requests(MAILS, "kill"))
        .await;
    desk.start();
    desk.wait_tickets(MAILS, T);

    // Kill while acknowledgements are going out: each time a few more have
    // reached the requester since the last kill.
    let mut seen = 0;
    for _ in 0..KILLS {
        let deadline = Instant::now() + T;
        loop {
            let now = imap.count(ALICE, "INBOX").await as usize;
            if now >= seen + 15 || now >= MAILS {
                seen = now;
                break;
            }
            assert!(Instant::now() < deadline, "sending stalled at {now}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        desk.kill9();
        desk.start();
    }
    drained(&desk, T * 3).await;
    let held = held_uncertain(&desk);
    let got = imap
        .wait_for(ALICE, "INBOX", MAILS - held.len(), T)
        .await
        .len();
    // Let Postfix finish handing over whatever it accepted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = copies(&servers, ALICE).await;
    let extra: usize = n.values().map(|c| c - 1).sum();
    let worst = n.values().copied().max().unwrap_or(0);
    let held_arrived = held.iter().filter(|m| n.contains_key(*m)).count();
    eprintln!(
        "{KILLS} kills: {extra} extra copies, worst mail {worst} copies, {} held as uncertain ({held_arrived} of them arrived)",
        held.len()
    );
    // Every request acknowledged, or its acknowledgement held as uncertain
    // (it may have gone out twice) and listed for an admin.
    assert_eq!(
        n.len() + held.len() - held_arrived,
        MAILS,
        "every request acknowledged or held ({got} mails)"
    );
    // Issue 12: no mail more than twice across 10 kills. By design: a mail
    // is handed over again after a crash only if it was in doubt once, and
    // held if it was in doubt twice.
    assert!(worst <= 2, "a mail arrived {worst} times");
    // A kill leaves at most one chunk (concurrency 4) in doubt, and each
    // costs at most one extra copy.
    assert!(
        extra <= KILLS * 4,
        "{extra} extra copies across {KILLS} kills"
    );
    desk.stop();
}

#[tokio::test]
async fn a_recipient_lettre_refuses_is_recorded_as_failed_on_the_ticket() {
    use deskgate::mail::address::EmailAddress;
    use deskgate::store::Store;
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    imap.append(
        HELP,
        "INBOX",
        &mail(ALICE, HELP, "Hi", "r1@customer.test", "", "hi"),
    )
    .await;
    imap.wait_for(ALICE, "INBOX", 1, T).await;
    drained(&desk, T).await;
    assert!(desk.stop());

    // A mail to Alice and to an address deskgate accepts but lettre refuses
    // (parentheses in the local part), as a relayed reply with a Cc would be.
    let store = Store::open(&desk.state().join("state")).unwrap();
    let now = chrono::Utc::now();
    let bad = EmailAddress::parse("bob(x)@customer.test").unwrap();
    store
        .transact(|tx| {
            let id = tx.generate_id()?;
            tx.put_outbox(&deskgate::store::records::OutboxEntry {
                id,
                ticket: Some(1000),
                kind: "reply".into(),
                message_id: "refused-1@desk.test".into(),
                envelope_from: EmailAddress::parse(HELP).unwrap(),
                recipients: vec![EmailAddress::parse(ALICE).unwrap(), bad.clone()],
                raw: format!(
                    "From: {HELP}\r\nTo: {ALICE}\r\nSubject: relayed\r\nMessage-ID: <refused-1@desk.test>\r\n\r\nhello\r\n"
                ),
                composed: None,
                created_at: now,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                failed: false,
            })
        })
        .unwrap();
    store.flush_blocking().unwrap();
    drop(store);

    desk.start();
    imap.wait_for(ALICE, "INBOX", 2, T).await;
    drained(&desk, T).await;
    let t = desk.ticket(1000);
    let text = t.to_string();
    assert!(
        text.contains("bob(x)@customer.test"),
        "the refused recipient is on the ticket: {t:#}"
    );
    desk.stop();
}

#[tokio::test]
async fn after_an_outage_the_waiting_backlog_leaves_within_seconds() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    // Backoff long enough that waiting it out would fail the test.
    let opts = DeskOptions {
        extra: NO_LIMITS,
        extra_outbox: "retry_initial = \"2s\"\nretry_max = \"10m\"",
        ..DeskOptions::default()
    };
    let mut desk = Deskgate::new(&servers, opts);
    desk.start();
    servers.smtp_stop();
    imap.append_many(HELP, "INBOX", &requests(20, "outage"))
        .await;
    desk.wait_tickets(20, T);
    // Every ack has failed a few times: the next retries are minutes away.
    eventually("acks back off", T * 2, || {
        let ob = desk.json(&["outbox", "--json"]);
        let a = ob.as_array().cloned().unwrap_or_default();
        a.len() == 20 && a.iter().all(|e| e["attempts"].as_u64().unwrap_or(0) >= 5)
    })
    .await;
    servers.smtp_start();
    let back = Instant::now();
    imap.wait_for(ALICE, "INBOX", 20, Duration::from_secs(20))
        .await;
    let took = back.elapsed();
    assert!(took < Duration::from_secs(20), "backlog took {took:?}");
    desk.stop();
}
