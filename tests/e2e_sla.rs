//! End to end against real Dovecot and Postfix: an SLA breach escalates the
//! ticket up a tier by mail, exactly once, across a restart.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const L1: &str = "alice@desk.test";
const L2: &str = "bob@desk.test";
const LEAD: &str = "lead@desk.test";
const CAROL: &str = "carol@customer.test";

fn config() -> String {
    team_desk()
        .desk("default_sla", "\"fast\"")
        .table("[timers]\ncheck_interval = \"300ms\"")
        .escalation_tiers()
        .table("[[sla]]\nname = \"fast\"\nfirst_response = { normal = \"4s\" }")
        .render()
}

fn escalations(mails: &[Vec<u8>]) -> usize {
    mails
        .iter()
        .filter(|m| subject(m).contains("Escalated"))
        .count()
}

#[tokio::test]
async fn a_breach_escalates_to_l2_by_mail_once_even_across_a_restart() {
    let servers = MailServers::start(&[HELP, L1, L2, LEAD, CAROL]);
    let imap = servers.imap();
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();

    // 1. Nobody answers within 4 s: the ticket moves to L2, whose members and lead hear of it.
    imap.append(
        HELP,
        "INBOX",
        &mail(
            CAROL,
            HELP,
            "Database down",
            "d1@customer.test",
            "",
            "Everything is red.",
        ),
    )
    .await;
    desk.wait_tickets(1, T);
    let bob = imap.wait_for(L2, "INBOX", 1, T).await;
    assert!(
        subject(&bob[0]).starts_with("[#1000] Escalated"),
        "{}",
        subject(&bob[0])
    );
    assert!(String::from_utf8_lossy(&bob[0]).contains("first response target was breached"));
    imap.wait_for(LEAD, "INBOX", 1, T).await;
    let v = desk.ticket(1000);
    assert_eq!(v["ticket"]["team"], "it-l2");
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"sla_breached") && events.contains(&"escalated"),
        "{events:?}"
    );
    let sla = &v["sla"][0];
    assert_eq!(sla["state"], "breached");
    let overdue = desk.json(&["tickets", "list", "--overdue", "--json"]);
    assert_eq!(overdue.as_array().unwrap().len(), 1);

    // 2. A second ticket; the daemon is down while its target passes.
    imap.append(
        HELP,
        "INBOX",
        &mail(CAROL, HELP, "Mail down", "d2@customer.test", "", "No mail."),
    )
    .await;
    desk.wait_tickets(2, T);
    assert!(desk.stop());
    tokio::time::sleep(Duration::from_secs(5)).await;
    desk.start();
    let deadline = Instant::now() + T;
    while escalations(&imap.fetch_all(L2, "INBOX").await) < 2 {
        assert!(
            Instant::now() < deadline,
            "no escalation after the restart:\n{}",
            desk.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a duplicate every chance to appear: there must be none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(desk.stop());
    desk.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        escalations(&imap.fetch_all(L2, "INBOX").await),
        2,
        "one escalation per ticket, never twice"
    );
    assert_eq!(escalations(&imap.fetch_all(LEAD, "INBOX").await), 2);
    assert_eq!(desk.ticket(1001)["ticket"]["team"], "it-l2");
    assert!(desk.stop());
}
