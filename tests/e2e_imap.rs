//! End to end against real Dovecot and Postfix: the IMAP side's edges (servers
//! that lack MOVE or UIDPLUS, a store that stops working, the status line's
//! count of mail waiting on the server) and SMTP AUTH kept out of the log.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;

const T: Duration = Duration::from_secs(30);

/// The move scenario on a server advertising exactly `caps`: run 1 files
/// "Kept" in seen mode (so the checkpoint is past it), another client flags
/// it `\Deleted` without expunging, run 2 in move mode files "Moved".
/// Returns once "Moved" is in Processed, with deskgate still running.
async fn move_scenario(caps: &'static str) -> (MailServers, Deskgate) {
    let servers = MailServers::start_with(
        &[HELP, ALICE],
        &ServerOptions {
            imap_capability: Some(caps),
            ..ServerOptions::default()
        },
    );
    let imap = servers.imap();
    {
        let mut s = imap.login(HELP).await;
        let got = s.capabilities().await.unwrap();
        let listed: Vec<String> = got.iter().map(|c| format!("{c:?}")).collect();
        for cap in ["MOVE", "UIDPLUS"] {
            assert_eq!(got.has_str(cap), caps.contains(cap), "{listed:?}");
        }
        s.logout().await.ok();
    }
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    let kept = mail(ALICE, HELP, "Kept", "kept@customer.test", "", "one");
    imap.append(HELP, "INBOX", &kept).await;
    desk.wait_tickets(1, T);
    assert!(desk.stop());
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
    let cfg = std::fs::read_to_string(&desk.config).unwrap().replace(
        "after_processing = \"seen\"",
        "after_processing = \"move\"\nmove_to = \"Processed\"",
    );
    std::fs::write(&desk.config, cfg).unwrap();
    desk.start();
    let moved = mail(ALICE, HELP, "Moved", "moved@customer.test", "", "two");
    imap.append(HELP, "INBOX", &moved).await;
    desk.wait_tickets(2, T);
    let filed = imap.wait_for(HELP, "Processed", 1, T).await;
    assert_eq!(filed.len(), 1);
    assert_eq!(subject(&filed[0]), "Moved");
    (servers, desk)
}

/// INBOX's mails as (subject, flagged \Deleted).
async fn inbox(servers: &MailServers) -> Vec<(String, bool)> {
    let mut s = servers.imap().login(HELP).await;
    s.examine("INBOX").await.unwrap();
    let fetches: Vec<_> = s
        .fetch("1:*", "(FLAGS BODY.PEEK[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let out = fetches
        .iter()
        .map(|f| {
            let deleted = f
                .flags()
                .any(|fl| matches!(fl, async_imap::types::Flag::Deleted));
            (subject(f.body().unwrap_or_default()), deleted)
        })
        .collect();
    s.logout().await.ok();
    out
}

/// Neither MOVE nor UIDPLUS: deskgate copies and flags `\Deleted` but never
/// expunges (a plain EXPUNGE would also remove "Kept", which another client
/// only flagged), says so once at connect, and does not process its own
/// copies again.
#[tokio::test]
async fn move_without_move_or_uidplus_copies_and_never_expunges() {
    let (servers, mut desk) = move_scenario("IMAP4rev1 IDLE LITERAL+ SASL-IR").await;
    assert!(
        desk.logs().contains("neither MOVE nor UIDPLUS"),
        "{}",
        desk.logs()
    );
    // Give it a few passes: nothing is expunged, nothing processed twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        inbox(&servers).await,
        vec![("Kept".to_string(), true), ("Moved".to_string(), true)],
        "{}",
        desk.logs()
    );
    assert_eq!(desk.tickets().len(), 2);
    assert!(desk.stop());
}

/// MOVE without UIDPLUS: UID MOVE takes just the processed mail; "Kept"
/// (flagged `\Deleted` by another client) stays.
#[tokio::test]
async fn move_without_uidplus_uses_uid_move() {
    let (servers, mut desk) = move_scenario("IMAP4rev1 IDLE LITERAL+ MOVE").await;
    let deadline = Instant::now() + T;
    while inbox(&servers).await.len() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        inbox(&servers).await,
        vec![("Kept".to_string(), true)],
        "{}",
        desk.logs()
    );
    assert!(!desk.logs().contains("neither MOVE nor UIDPLUS"));
    assert!(desk.stop());
}

/// A store that keeps failing ends the daemon (after a bounded number of
/// tries, about 15 s) with an ERROR in plain words and a non-zero exit,
/// instead of running on without committing.
#[test]
fn a_store_failure_that_persists_stops_the_daemon() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    let trigger = desk.state().join("fault");
    std::fs::write(&trigger, "store:mailbox").unwrap();
    desk.set_env("DESKGATE_TEST_FAULT", trigger.to_str().unwrap());
    desk.start();
    let status = desk
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("still running:\n{}", desk.logs()));
    assert!(!status.success(), "exited with success");
    let logs = desk.logs();
    let stopped = logs
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("a task stopped"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{logs}"));
    assert!(
        stopped.contains("cannot go on with mailbox help: the store failed 5 times in a row"),
        "{stopped}"
    );
    assert!(
        !logs.contains("Aborted(") && !logs.contains("StoreBroken"),
        "Rust debug text in the log:\n{logs}"
    );
    // Each failure before the last was retried, not fatal.
    assert_eq!(logs.matches("mailbox session failed").count(), 4, "{logs}");
}

/// Reads notify datagrams until one says `needle`.
fn read_until(sock: &UnixDatagram, needle: &str) -> String {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains(needle) {
                return msg;
            }
            seen.push(msg);
        }
    }
    panic!("never heard {needle:?}; saw {seen:?}");
}

/// The status line counts the mail on the server past the checkpoint: three
/// mails held up by a stalled batch (a debug-build test fault) are "3
/// waiting"; an empty mailbox is "0 waiting".
#[tokio::test]
async fn the_status_line_says_how_much_mail_waits_on_the_server() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    let path = desk.state().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    desk.set_env("NOTIFY_SOCKET", path.to_str().unwrap());
    desk.set_env("DESKGATE_TEST_FAULTS", "1");
    desk.start();
    read_until(&sock, "0 waiting on the server");
    // Appended while it is stopped, so the first pass finds all three.
    assert!(desk.stop());
    let imap = servers.imap();
    let mails: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let stall = if i == 0 {
                "X-Deskgate-Test-Fault: stall\r\n"
            } else {
                ""
            };
            mail(
                ALICE,
                HELP,
                &format!("Held {i}"),
                &format!("held{i}@customer.test"),
                stall,
                "hello",
            )
        })
        .collect();
    imap.append_many(HELP, "INBOX", &mails).await;
    desk.start();
    let status = read_until(&sock, "3 waiting on the server");
    assert!(
        status.contains("STATUS=1/1 mailboxes connected"),
        "{status}"
    );
    desk.kill9();
}

/// With SMTP AUTH on the server, deskgate logs in (Postfix relays the
/// acknowledgement outside only after a login), and even at
/// DESKGATE_LOG=trace neither the password nor its PLAIN or LOGIN base64
/// form reaches the log.
#[tokio::test]
async fn smtp_auth_logs_in_and_the_password_never_reaches_a_trace_log() {
    const PASSWORD: &str = "secret";
    let servers = MailServers::start_with(
        &[HELP, ALICE],
        &ServerOptions {
            smtp_auth: true,
            ..ServerOptions::default()
        },
    );
    let text = DeskOptions::default()
        .config()
        .smtp("user", &toml_str(HELP))
        .smtp("password_file", "\"smtp-password\"")
        .render();
    let mut desk = Deskgate::with_config(&servers, &text);
    let pw = desk.state().join("smtp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    desk.set_log("trace");
    desk.start();
    let request = mail(
        "someone@elsewhere.example",
        HELP,
        "Printer",
        "auth1@elsewhere.example",
        "",
        "please help",
    );
    servers.imap().append(HELP, "INBOX", &request).await;
    let acks = servers.imap().wait_for(CATCHALL, "INBOX", 1, T).await;
    assert!(
        subject(&acks[0]).contains("Printer"),
        "{}",
        subject(&acks[0])
    );
    let pf = servers.postfix_log();
    assert!(
        pf.contains(&format!("sasl_username={HELP}")),
        "Postfix saw no SMTP AUTH login:\n{pf}"
    );
    assert!(desk.stop());
    let logs = desk.logs();
    assert!(logs.contains("TRACE"), "not a trace log");
    // AUTH LOGIN sends base64("secret"); AUTH PLAIN base64("\0help@desk.test\0secret").
    for needle in [PASSWORD, "c2VjcmV0", "AGhlbHBAZGVzay50ZXN0AHNlY3JldA=="] {
        assert!(
            !logs.contains(needle),
            "{needle:?} is in the log:\n{}",
            logs.lines()
                .filter(|l| l.contains(needle))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
