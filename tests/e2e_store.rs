//! End to end against real Dovecot and Postfix: the store's backup and
//! restore while the desk is in use.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_backup_taken_while_running_restores_and_the_desk_carries_on() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    let imap = servers.imap();
    for i in 0..3 {
        let m = mail(
            ALICE,
            HELP,
            &format!("Request {i}"),
            &format!("r{i}@customer.test"),
            "",
            "Please help.",
        );
        smtp_send(servers.smtp_port, ALICE, &[HELP], &m).await;
    }
    imap.wait_for(ALICE, "INBOX", 3, T).await;
    desk.wait_tickets(3, T);
    let before: Vec<serde_json::Value> = (1000..1003).map(|id| desk.ticket(id)).collect();

    // Backed up through the running daemon.
    let file = desk.state().join("desk.backup");
    let out = desk.cli(&["backup", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up"));

    // A restore refuses while the daemon runs, and into a store that holds data.
    let out = desk.cli(&["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it before restoring"));
    assert!(desk.stop());
    let out = desk.cli(&["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // Wipe, restore: the same tickets and history.
    std::fs::remove_dir_all(desk.state().join("state")).unwrap();
    let out = desk.cli(&["restore", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: Vec<serde_json::Value> = (1000..1003).map(|id| desk.ticket(id)).collect();
    assert_eq!(before, after);

    // The restored desk carries on: a reply threads, a new mail is 1003.
    desk.start();
    let reply = mail(
        ALICE,
        HELP,
        "Re: [#1001] Request 1",
        "r1b@customer.test",
        "",
        "Any news?",
    );
    smtp_send(servers.smtp_port, ALICE, &[HELP], &reply).await;
    let next = mail(ALICE, HELP, "Request 3", "r3@customer.test", "", "More.");
    smtp_send(servers.smtp_port, ALICE, &[HELP], &next).await;
    imap.wait_for(ALICE, "INBOX", 4, T).await;
    let tickets = desk.wait_tickets(4, T);
    assert_eq!(
        tickets.len(),
        4,
        "the reply threaded, the new mail is a ticket"
    );
    let t = desk.ticket(1001);
    let messages = t["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("Any news?")),
        "{t}"
    );
    assert!(desk.ticket(1003)["ticket"]["subject"]
        .as_str()
        .unwrap_or("")
        .contains("Request 3"));
}

#[tokio::test]
async fn twenty_kills_lose_and_duplicate_no_ticket_and_every_ack_goes_out() {
    // Enough that most kills land mid-ingest on a fast, idle machine too.
    const N: usize = 1500;
    let servers = MailServers::start(&[HELP]);
    let imap = servers.imap();
    let mails = burst(N, "kill");
    imap.append_many(HELP, "INBOX", &mails).await;
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            batch_size: 5,
            ..DeskOptions::default()
        },
    );
    let mut seen = 0;
    let mut mid_ingest = 0;
    for kill in 0..20 {
        desk.start();
        if kill % 4 == 0 {
            // During start-up: opening the store, recovery, the first login.
            std::thread::sleep(Duration::from_millis(5 + kill as u64));
        } else {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while desk.tickets().len() <= seen && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        desk.kill9();
        seen = desk.tickets().len();
        if seen < N {
            mid_ingest += 1;
        }
    }
    assert!(
        mid_ingest >= 10,
        "at least half the kills should land before the end (only {mid_ingest} did)"
    );
    desk.start();
    let tickets = desk.wait_tickets(N, Duration::from_secs(90));
    assert_eq!(tickets.len(), N, "exactly one ticket per mail");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut ids_by_request: std::collections::HashMap<
            String,
            std::collections::HashSet<String>,
        > = Default::default();
        for a in &imap.fetch_all(CATCHALL, "INBOX").await {
            ids_by_request
                .entry(header(a, "In-Reply-To").unwrap_or_default())
                .or_default()
                .insert(message_id(a).unwrap_or_default());
        }
        if ids_by_request.len() == N {
            // A resent acknowledgement is the same mail: one Message-ID each.
            assert!(ids_by_request.values().all(|ids| ids.len() == 1));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {N} acknowledgements arrived",
            ids_by_request.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
