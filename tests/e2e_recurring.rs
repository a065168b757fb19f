//! `deskgate recurring` on tickets that came in as real mail: the fixture's
//! 52 requests (five recurring issues among one-offs) are mailed to the desk,
//! and the CLI groups them.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn recurring_groups_the_issues_that_came_in_by_mail() {
    let servers = MailServers::start(&[HELP, ALICE]);
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            extra: "[limits]\nauto_replies_per_recipient = 1000\nauto_replies_per_ticket = 10\n",
            ..Default::default()
        },
    );
    desk.start();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/recurring/tickets.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let items = fixture.as_array().unwrap();
    let mails: Vec<Vec<u8>> = items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            mail(
                ALICE,
                HELP,
                t["subject"].as_str().unwrap(),
                &format!("rec-{i}@customer.test"),
                "",
                t["text"].as_str().unwrap(),
            )
        })
        .collect();
    servers.imap().append_many(HELP, "INBOX", &mails).await;
    desk.wait_tickets(items.len(), Duration::from_secs(60));

    let out = desk.cli(&["recurring", "--last", "1d"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("5 recurring issue(s) among 52 tickets"),
        "{text}"
    );
    for word in ["vpn", "printer", "password", "outlook", "laptop"] {
        assert!(text.contains(word), "{word} missing:\n{text}");
    }
    assert!(text.contains("new (none the day before)"), "{text}");

    let json = desk.json(&["recurring", "--min", "8", "--json"]);
    let clusters = json["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{json}");
    assert!(clusters
        .iter()
        .all(|c| c["tickets"].as_array().unwrap().len() >= 8));
    // Nothing came in the 30 days before: every issue is new, none went away.
    assert!(clusters
        .iter()
        .all(|c| c["previous_tickets"] == 0 && c["change"] == "new"));
    assert_eq!(json["gone"], serde_json::json!([]), "{json}");
    assert!(desk.stop());
}
