//! End to end against real Dovecot and Postfix: mail in, ticket out.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn new_mail_gets_ticket_and_ack_then_replies_thread() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    let imap = servers.imap();

    // 1. A new mail through SMTP becomes ticket 1000 and an acknowledgement.
    let first = mail(
        ALICE,
        HELP,
        "Printer on fire",
        "m1@customer.test",
        "",
        "It is really on fire.",
    );
    smtp_send(servers.smtp_port, ALICE, &[HELP], &first).await;
    let acks = imap.wait_for(ALICE, "INBOX", 1, T).await;
    let ack = &acks[0];
    assert!(subject(ack).starts_with("[#1000]"), "{}", subject(ack));
    assert!(subject(ack).contains("Printer on fire"));
    assert_eq!(
        header(ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        header(ack, "In-Reply-To").as_deref(),
        Some("<m1@customer.test>")
    );
    assert!(header(ack, "References")
        .unwrap()
        .contains("<m1@customer.test>"));
    assert!(header(ack, "From").unwrap().contains(HELP));
    assert_eq!(header(ack, "X-Loop").as_deref(), Some(HELP));
    let ack_id = message_id(ack).expect("ack has a Message-ID");

    let tickets = desk.wait_tickets(1, T);
    assert_eq!(tickets[0]["id"], 1000);
    assert_eq!(tickets[0]["status"], "new");
    assert_eq!(tickets[0]["requester"]["address"], ALICE);

    // 2. A reply carrying the token (in another case, behind Re:/AW:) threads.
    let reply = mail(
        ALICE,
        HELP,
        "AW: Re: [#1000] Printer on fire",
        "m2@customer.test",
        "",
        "Still burning.",
    );
    smtp_send(servers.smtp_port, ALICE, &[HELP], &reply).await;
    wait_messages(&desk, 1000, 3).await;

    // 3. A reply with only In-Reply-To (subject token deleted) threads too.
    let reply2 = mail(
        ALICE,
        HELP,
        "Re: Printer",
        "m3@customer.test",
        &format!("In-Reply-To: <{ack_id}>\r\n"),
        "Out now.\r\n\r\nOn Mon, 3 Mar 2025 at 10:00, Help <help@desk.test> wrote:\r\n> old text",
    );
    smtp_send(servers.smtp_port, ALICE, &[HELP], &reply2).await;
    let view = wait_messages(&desk, 1000, 4).await;
    let texts: Vec<&str> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts[3].trim(), "Out now.", "quoted history is trimmed");

    // 4. A token for a ticket that does not exist starts a new ticket.
    let stray = mail(
        ALICE,
        HELP,
        "[#4242] Something else",
        "m4@customer.test",
        "",
        "new topic",
    );
    smtp_send(servers.smtp_port, ALICE, &[HELP], &stray).await;
    let tickets = desk.wait_tickets(2, T);
    let second = tickets
        .iter()
        .find(|t| t["id"] == 1001)
        .expect("ticket 1001");
    assert_eq!(second["subject"], "Something else");

    // Only two acknowledgements: replies are not acknowledged.
    let acks = imap.wait_for(ALICE, "INBOX", 2, T).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        imap.count(ALICE, "INBOX").await,
        2,
        "replies must not be acknowledged"
    );
    assert!(subject(&acks[1]).starts_with("[#1001]"));

    // Processed mail is flagged \Seen on the server; the text CLI works too.
    let out = desk.cli(&["tickets", "show", "1000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Ticket 1000: Printer on fire"), "{text}");
    assert!(text.contains("Still burning."), "{text}");
    assert!(text.contains("delivered"), "{text}");

    assert!(
        desk.stop(),
        "SIGTERM stops cleanly with exit code 0:\n{}",
        desk.logs()
    );
    // With the daemon stopped the CLI opens the store itself.
    assert_eq!(desk.tickets().len(), 2);
}

async fn wait_messages(desk: &Deskgate, id: u64, n: usize) -> serde_json::Value {
    let deadline = std::time::Instant::now() + T;
    loop {
        let v = desk.ticket(id);
        if v["messages"].as_array().map(|a| a.len()).unwrap_or(0) >= n {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ticket {id} never got {n} messages: {v:#}\n{}",
            desk.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_same_mail_twice_makes_one_ticket() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let m = mail(ALICE, HELP, "Twice", "twice@customer.test", "", "same mail");
    imap.append(HELP, "INBOX", &m).await;
    imap.append(HELP, "INBOX", &m).await;
    // And one without a Message-ID, twice: deduplicated by content.
    let anon = b"From: alice@customer.test\r\nTo: help@desk.test\r\nSubject: No id\r\n\r\nbody\r\n"
        .to_vec();
    imap.append(HELP, "INBOX", &anon).await;
    imap.append(HELP, "INBOX", &anon).await;

    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    imap.wait_for(ALICE, "INBOX", 2, T).await;
    // Give a wrongly duplicated ack time to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(desk.tickets().len(), 2);
    assert_eq!(imap.count(ALICE, "INBOX").await, 2);
    desk.stop();
}

#[tokio::test]
async fn kill_9_mid_ingest_loses_and_duplicates_nothing() {
    const N: usize = 200;
    let servers = MailServers::start(&[HELP]);
    let imap = servers.imap();
    let mails = burst(N, "req");
    imap.append_many(HELP, "INBOX", &mails).await;

    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            batch_size: 10,
            ..DeskOptions::default()
        },
    );
    desk.start();
    // Kill it somewhere in the middle.
    let deadline = std::time::Instant::now() + T;
    loop {
        let n = desk.tickets().len();
        if n >= 30 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress:\n{}",
            desk.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    desk.kill9();
    let after_kill = desk.tickets().len();
    assert!(
        after_kill < N,
        "the kill should land mid-way (had {after_kill})"
    );

    desk.start();
    let tickets = desk.wait_tickets(N, Duration::from_secs(60));
    assert_eq!(tickets.len(), N, "exactly one ticket per mail");
    let ids: HashSet<u64> = tickets.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), N);

    // Every requester gets its acknowledgement; any second copy has the same Message-ID.
    // A kill between SMTP's OK and recording it may send an ack twice (same
    // Message-ID), so wait for N distinct requests, not N mails.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let by_request = loop {
        let mut by_request: HashMap<String, HashSet<String>> = HashMap::new();
        for a in &imap.fetch_all(CATCHALL, "INBOX").await {
            let irt = header(a, "In-Reply-To").unwrap();
            by_request
                .entry(irt)
                .or_default()
                .insert(message_id(a).unwrap());
        }
        if by_request.len() >= N || std::time::Instant::now() > deadline {
            break by_request;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(by_request.len(), N, "every request acknowledged");
    for (req, ids) in &by_request {
        assert_eq!(
            ids.len(),
            1,
            "ack copies for {req} must share one Message-ID: {ids:?}"
        );
    }
    // The IMAP side: every mail was marked processed.
    desk.stop();
}

#[tokio::test]
async fn acknowledgements_wait_out_an_smtp_outage() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    servers.smtp_stop();

    imap.append(
        HELP,
        "INBOX",
        &mail(
            ALICE,
            HELP,
            "During outage",
            "outage@customer.test",
            "",
            "hello",
        ),
    )
    .await;
    desk.wait_tickets(1, T);
    // The ack is held in the outbox with a recorded failed attempt.
    let deadline = std::time::Instant::now() + T;
    loop {
        let ob = desk.json(&["outbox", "--json"]);
        let e = &ob[0];
        if e["attempts"].as_u64().unwrap_or(0) >= 1 {
            assert!(e["last_error"].is_string(), "{ob:#}");
            assert_eq!(e["failed"], false);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed attempt recorded: {ob:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It survives a restart while SMTP is still down.
    assert!(desk.stop());
    desk.start();
    servers.smtp_start();
    let acks = imap.wait_for(ALICE, "INBOX", 1, T).await;
    assert!(subject(&acks[0]).starts_with("[#1000]"));
    let ob = desk.json(&["outbox", "--json"]);
    assert_eq!(ob.as_array().unwrap().len(), 0, "outbox drained: {ob:#}");
    desk.stop();
}

#[tokio::test]
async fn move_mode_reconnects_and_uidvalidity_rescan() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            after_processing: "after_processing = \"move\"\nmove_to = \"Processed\"",
            ..DeskOptions::default()
        },
    );
    desk.start();
    let m1 = mail(ALICE, HELP, "First", "first@customer.test", "", "one");
    imap.append(HELP, "INBOX", &m1).await;
    desk.wait_tickets(1, T);
    imap.wait_for(HELP, "Processed", 1, T).await;
    assert_eq!(
        imap.count(HELP, "INBOX").await,
        0,
        "processed mail is moved out of INBOX"
    );

    // The server drops the connection: deskgate reconnects and carries on.
    servers.kick(HELP);
    imap.append(
        HELP,
        "INBOX",
        &mail(ALICE, HELP, "Second", "second@customer.test", "", "two"),
    )
    .await;
    desk.wait_tickets(2, T);

    // UIDVALIDITY changes (folder recreated) and old mail reappears: no new tickets.
    assert!(desk.stop());
    let mut desk2 = desk;
    // Point the same mailbox (same checkpoint) at a folder with another
    // UIDVALIDITY, holding an already-seen mail and a new one.
    let cfg = std::fs::read_to_string(&desk2.config)
        .unwrap()
        .replace("folder = \"INBOX\"", "folder = \"Fresh\"");
    std::fs::write(&desk2.config, cfg).unwrap();
    {
        let mut s = imap.login(HELP).await;
        s.create("Fresh").await.unwrap();
        s.logout().await.ok();
    }
    imap.append(HELP, "Fresh", &m1).await;
    imap.append(
        HELP,
        "Fresh",
        &mail(ALICE, HELP, "Third", "third@customer.test", "", "three"),
    )
    .await;
    desk2.start();
    desk2.wait_tickets(3, T);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        desk2.tickets().len(),
        3,
        "the re-seen mail made no new ticket"
    );
    assert!(desk2.stop());
}

/// Three mails, the middle one poisoned with a debug-build test fault
/// (`X-Deskgate-Test-Fault`, honoured only with `DESKGATE_TEST_FAULTS=1`).
async fn poisoned_inbox(servers: &MailServers, fault: &str) {
    // Inherited by the daemon; harmless to other tests, whose mail has no fault header.
    std::env::set_var("DESKGATE_TEST_FAULTS", "1");
    let imap = servers.imap();
    for (i, extra) in ["", &format!("X-Deskgate-Test-Fault: {fault}\r\n"), ""]
        .iter()
        .enumerate()
    {
        let m = mail(
            ALICE,
            HELP,
            &format!("Poison {i}"),
            &format!("poison{i}-{fault}@customer.test"),
            extra,
            "hello",
        );
        imap.append(HELP, "INBOX", &m).await;
    }
}

fn quarantined(desk: &Deskgate) -> Vec<serde_json::Value> {
    desk.json(&["quarantine", "list", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_mail_that_kills_the_daemon_every_time_is_quarantined_after_three_tries() {
    let servers = MailServers::start(&[HELP, ALICE]);
    poisoned_inbox(&servers, "stall").await;
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    // The poison mail stalls the engine each time; kill -9 it there, as an
    // OOM killer or an impatient admin would.
    for _ in 0..3 {
        desk.start();
        desk.wait_log("test fault: stalling", T);
        desk.kill9();
    }
    desk.start();
    let tickets = desk.wait_tickets(2, T);
    eventually("the poison mail is quarantined", T, || {
        quarantined(&desk).len() == 1
    })
    .await;
    let q = quarantined(&desk);
    assert!(
        q[0].to_string().contains("failed 3 times"),
        "{q:?}\n{}",
        desk.logs()
    );
    assert_eq!(tickets.len(), 2);
    // The mailbox moved on: a new mail after it is filed too.
    let later = mail(ALICE, HELP, "After", "after@customer.test", "", "next");
    servers.imap().append(HELP, "INBOX", &later).await;
    desk.wait_tickets(3, T);
    desk.stop();
}

#[tokio::test]
async fn a_mail_whose_processing_fails_is_quarantined_and_the_rest_go_on() {
    let servers = MailServers::start(&[HELP, ALICE]);
    poisoned_inbox(&servers, "error").await;
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    let tickets = desk.wait_tickets(2, T);
    eventually("the failing mail is quarantined", T, || {
        quarantined(&desk).len() == 1
    })
    .await;
    assert_eq!(tickets.len(), 2);
    let later = mail(ALICE, HELP, "After", "after2@customer.test", "", "next");
    servers.imap().append(HELP, "INBOX", &later).await;
    desk.wait_tickets(3, T);
    assert_eq!(desk.tickets().len(), 3);
    desk.stop();
}

/// A server without MOVE (Dovecot told to advertise only IDLE and UIDPLUS):
/// moving is COPY, `\Deleted` and `UID EXPUNGE` of just the processed UIDs,
/// so a mail another client flagged `\Deleted` stays until that client expunges.
#[tokio::test]
async fn move_without_move_expunges_only_the_processed_uids() {
    use futures::TryStreamExt;
    let servers = MailServers::start(&[HELP, ALICE]);
    let mut conf = std::fs::read_to_string(servers.dovecot_conf()).unwrap();
    conf.push_str("\nimap_capability = IMAP4rev1 LITERAL+ IDLE UIDPLUS\n");
    std::fs::write(servers.dovecot_conf(), conf).unwrap();
    let reload = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(servers.dovecot_conf())
        .arg("reload")
        .status()
        .unwrap();
    assert!(reload.success());
    let imap = servers.imap();
    {
        let mut s = imap.login(HELP).await;
        let caps = s.capabilities().await.unwrap();
        assert!(!caps.has_str("MOVE") && caps.has_str("UIDPLUS"));
        s.logout().await.ok();
    }
    // Run 1 files a mail and leaves it in INBOX, flagged \Seen.
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    let kept = mail(ALICE, HELP, "Kept", "kept@customer.test", "", "one");
    imap.append(HELP, "INBOX", &kept).await;
    desk.wait_tickets(1, T);
    assert!(desk.stop());
    // Someone deletes it in their mail client, without expunging yet.
    {
        let mut s = imap.login(HELP).await;
        s.select("INBOX").await.unwrap();
        let _: Vec<_> = s
            .store("1", "+FLAGS (\\Deleted)")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        s.logout().await.ok();
    }
    // Run 2 moves new mail out.
    let cfg = std::fs::read_to_string(&desk.config).unwrap().replace(
        "after_processing = \"seen\"",
        "after_processing = \"move\"\nmove_to = \"Processed\"",
    );
    std::fs::write(&desk.config, cfg).unwrap();
    desk.start();
    let moved = mail(ALICE, HELP, "Moved", "moved@customer.test", "", "two");
    imap.append(HELP, "INBOX", &moved).await;
    desk.wait_tickets(2, T);
    imap.wait_for(HELP, "Processed", 1, T).await;
    let deadline = std::time::Instant::now() + T;
    while imap.count(HELP, "INBOX").await > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = imap.fetch_all(HELP, "INBOX").await;
    assert_eq!(left.len(), 1, "{}", desk.logs());
    assert_eq!(subject(&left[0]), "Kept");
    desk.stop();
}

/// Batches are bounded by bytes (the servers' RFC822.SIZE, read before any
/// body is fetched) as well as by count.
#[tokio::test]
async fn batches_are_bounded_by_bytes() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let body = "word ".repeat(140_000); // 700 KB each
    for i in 0..3 {
        let m = mail(
            ALICE,
            HELP,
            &format!("Big {i}"),
            &format!("big{i}@customer.test"),
            "",
            &body,
        );
        imap.append(HELP, "INBOX", &m).await;
    }
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            after_processing: "after_processing = \"seen\"\nbatch_bytes = \"1 MiB\"",
            ..DeskOptions::default()
        },
    );
    desk.start();
    desk.wait_tickets(3, T);
    // Each batch logs its line once it is marked processed on the server.
    let batch_lines = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("batch committed"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    eventually("every mail's batch is marked", T, || {
        let all = batch_lines(&desk.logs());
        all.iter().filter(|l| l.contains("mails=1")).count() >= 3 || all.len() >= 3
    })
    .await;
    let batches = batch_lines(&desk.logs());
    assert_eq!(batches.len(), 3, "{batches:#?}");
    assert!(
        batches.iter().all(|l| l.contains("mails=1")),
        "{batches:#?}"
    );
    desk.stop();
}
