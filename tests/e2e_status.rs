//! `deskgate status` of a running daemon against the real Dovecot: healthy,
//! then a mailbox whose password stops working — shown as failing with the
//! server's refusal in plain words, logged once at ERROR however often it
//! is retried — and "not running" once it stops.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn status_shows_each_mailbox_and_a_refused_login_once() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    eventually("the mailbox is idle", T, || {
        let out = desk.cli(&["status"]);
        String::from_utf8_lossy(&out.stdout).contains("mailbox help: idle")
    })
    .await;
    let out = desk.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("deskgate running since"), "{text}");
    assert!(text.contains("0 waiting on the server"), "{text}");
    assert!(
        text.contains("outbox: 0 waiting to be sent, 0 failed"),
        "{text}"
    );
    let json = desk.json(&["status", "--json"]);
    assert_eq!(json["mailboxes"][0]["state"], "idle");

    // The password stops working: the session is cut and every retry refused.
    let users = servers.dir.path().join("dovecot/users");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, text.replace("{PLAIN}secret", "{PLAIN}changed")).unwrap();
    servers.kick(HELP);
    eventually("the mailbox shows as failing", T, || {
        let out = desk.cli(&["status"]);
        String::from_utf8_lossy(&out.stdout).contains("mailbox help: FAILING")
    })
    .await;
    // Let it retry a few times (1 s, 2 s, 4 s apart).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let out = desk.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failing mailbox fails status:\n{text}"
    );
    assert!(
        text.contains("last error")
            && text.contains("the server refused the user name or password"),
        "{text}"
    );
    let logs = desk.logs();
    let refusals: Vec<&str> = logs
        .lines()
        .filter(|l| {
            l.contains("ERROR") && l.contains("cannot log in to 127.0.0.1 as help@desk.test")
        })
        .collect();
    assert_eq!(refusals.len(), 1, "logged once at ERROR:\n{logs}");
    assert!(
        !logs
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .any(|l| l.contains("Some(\"")),
        "no Rust debug text in warnings and errors:\n{logs}"
    );
    assert!(desk.stop());
    let out = desk.cli(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deskgate is not running"));
}
