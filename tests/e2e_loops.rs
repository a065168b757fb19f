//! End to end against real Dovecot and Postfix: no loops, no lost mail.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const ROBOT: &str = "robot@robots.test";
const GHOST: &str = "ghost@customer.test";

/// Waits until a mailbox has held still for `quiet`, and returns its count.
async fn settle(imap: Imap, user: &str, quiet: Duration, max: Duration) -> u32 {
    let start = Instant::now();
    let mut last = imap.count(user, "INBOX").await;
    let mut since = Instant::now();
    while start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let n = imap.count(user, "INBOX").await;
        if n != last {
            last = n;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}

#[tokio::test]
async fn two_help_desks_acknowledge_each_other_once_and_stop() {
    let servers = MailServers::start(&[HELP, ROBOT]);
    let imap = servers.imap();
    let mut a = Deskgate::new(&servers, DeskOptions::default());
    let mut b = Deskgate::new(
        &servers,
        DeskOptions {
            address: ROBOT,
            // Two desks need two tags, or each one's token names the other's tickets.
            desk_extra: "subject_tag = \"[robots #{id}]\"",
            ..DeskOptions::default()
        },
    );
    a.start();
    b.start();
    // A person at each desk writes to the other desk.
    let m1 = mail(
        ROBOT,
        HELP,
        "Question from robots",
        "q1@robots.test",
        "",
        "hi",
    );
    smtp_send(servers.smtp_port, ROBOT, &[HELP], &m1).await;
    let m2 = mail(
        HELP,
        ROBOT,
        "Question from help",
        "q2@desk.test",
        "",
        "hello",
    );
    smtp_send(servers.smtp_port, HELP, &[ROBOT], &m2).await;

    // Each desk receives one human mail and one acknowledgement, then silence.
    assert_eq!(settle(imap, HELP, Duration::from_secs(3), T).await, 2);
    assert_eq!(settle(imap, ROBOT, Duration::from_secs(3), T).await, 2);
    assert_eq!(
        a.tickets().len(),
        1,
        "the other desk's acknowledgement is not a ticket"
    );
    assert_eq!(b.tickets().len(), 1);
    let ignored = a.json(&["ignored", "--json"]);
    assert_eq!(
        ignored.as_array().unwrap().len(),
        1,
        "kept and visible: {ignored:#}"
    );
    assert!(a.stop() && b.stop());
}

#[tokio::test]
async fn a_naive_autoresponder_is_stopped_by_the_rate_limit() {
    let servers = MailServers::start(&[HELP, ROBOT]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            extra: "[limits]\nauto_replies_per_recipient = 3",
            ..DeskOptions::default()
        },
    );
    desk.start();
    // The worst kind of robot: answers everything, with a fresh subject, no
    // threading headers and no Auto-Submitted, so each answer looks new.
    let port = servers.smtp_port;
    let robot = tokio::spawn(async move {
        let mut answered = 0u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let n = imap.count(ROBOT, "INBOX").await;
            while answered < n {
                answered += 1;
                let reply = mail(
                    ROBOT,
                    HELP,
                    &format!("I am away ({answered})"),
                    &format!("away{answered}@robots.test"),
                    "",
                    "Back Monday.",
                );
                smtp_send(port, ROBOT, &[HELP], &reply).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        answered
    });
    let first = mail(ROBOT, HELP, "Hello", "start@robots.test", "", "first");
    smtp_send(servers.smtp_port, ROBOT, &[HELP], &first).await;
    let answered = robot.await.unwrap();

    assert_eq!(
        answered, 3,
        "the robot got exactly the 3 acknowledgements the limit allows"
    );
    assert_eq!(imap.count(ROBOT, "INBOX").await, 3);
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), 4, "first mail + 3 robot answers");
    // What was held back is recorded on the last ticket.
    let last = tickets
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .max()
        .unwrap();
    let view = desk.ticket(last);
    let events = view["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["event"] == "auto_reply_held"),
        "{view:#}"
    );
    desk.stop();
}

#[tokio::test]
async fn a_real_bounce_lands_on_the_ticket_as_a_delivery_failure() {
    let ghost = format!("ghost:{GHOST}");
    let servers = MailServers::start(&[HELP, ghost.as_str()]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    // The requester's address exists for Postfix, not for the mailbox server:
    // the acknowledgement is accepted, then bounced back to help@.
    let m = mail(GHOST, HELP, "Printer", "p1@customer.test", "", "help");
    servers.imap().append(HELP, "INBOX", &m).await;
    desk.wait_tickets(1, T);
    let deadline = Instant::now() + T;
    let view = loop {
        let v = desk.ticket(1000);
        let failed = v["events"].as_array().unwrap().iter().any(|e| {
            e["event"] == "delivery_failed" && e["recipient"] == GHOST && e["hard"] == true
        });
        if failed {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery failure recorded: {v:#}\n{}",
            desk.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kinds: Vec<&str> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"delivery report"), "{kinds:?}");
    assert_eq!(desk.tickets().len(), 1, "a bounce never makes a ticket");
    desk.stop();
}

#[tokio::test]
async fn a_burst_from_one_sender_gets_no_more_replies_than_the_limit() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();
    let burst: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            mail(
                ALICE,
                HELP,
                &format!("Burst {i}"),
                &format!("burst{i}@customer.test"),
                "",
                "x",
            )
        })
        .collect();
    imap.append_many(HELP, "INBOX", &burst).await;
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    desk.wait_tickets(100, T);
    assert_eq!(
        settle(imap, ALICE, Duration::from_secs(3), T).await,
        5,
        "default limit: 5 per hour"
    );
    let stats = desk.json(&["stats", "--json"]);
    assert_eq!(stats["tickets"], 100);
    assert_eq!(stats["outbox_pending"], 0);
    desk.stop();
}

#[tokio::test]
async fn quarantine_keeps_unusable_mail_and_the_cli_shows_it() {
    let servers = MailServers::start(&[HELP]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    imap.append(
        HELP,
        "INBOX",
        b"Subject: nobody sent this\r\nMessage-ID: <nofrom@x>\r\n\r\nbody\r\n",
    )
    .await;
    imap.append(
        HELP,
        "INBOX",
        &mail(ALICE, HELP, "After it", "after@customer.test", "", "fine"),
    )
    .await;
    desk.wait_tickets(1, T);
    let q = desk.json(&["quarantine", "list", "--json"]);
    let entries = q.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{q:#}");
    assert!(entries[0]["reason"].as_str().unwrap().contains("From"));
    let id = entries[0]["id"].as_u64().unwrap().to_string();
    let shown = desk.cli(&["quarantine", "show", &id]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("nobody sent this"));
    let retried = desk.cli(&["quarantine", "retry", &id]);
    assert!(
        String::from_utf8_lossy(&retried.stdout).contains("Quarantined"),
        "still unusable, still kept"
    );
    assert_eq!(
        desk.json(&["quarantine", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    desk.stop();
}
