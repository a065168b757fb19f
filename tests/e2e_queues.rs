//! Queues with their own addresses (issue 14 §4), against the real Dovecot
//! and Postfix: it@ and hr@ are two mailboxes of one desk; mail to each is
//! acknowledged from that address, an agent's reply is relayed from the
//! ticket's queue, and a reply written to the other address stays on its
//! ticket and queue.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);
const IT: &str = "it@desk.test";
const HR: &str = "hr@desk.test";
const AGENT: &str = "alice@desk.test";
const CAROL: &str = "carol@customer.test";

/// The desk's default address help@ receives nothing here: every mail comes
/// to one of the two queues, each fetched from its own mailbox.
fn queue_desk() -> TestConfig {
    TestConfig::new()
        .desk("name", "\"Test Desk\"")
        .mailbox("user", &toml_str(IT))
        .mailbox("name", "\"it\"")
        .mailbox("timeout", "\"10s\"")
        .add_mailbox(HR)
        .mailbox("name", "\"hr\"")
        .mailbox("timeout", "\"10s\"")
        .outbox("retry_initial", "\"1s\"")
        .outbox("retry_max", "\"2s\"")
        .agent(AGENT, Some("Alice"), &["support"])
        .team("support", "")
        .table(
            r#"
[[queue]]
name = "it"
address = "it@desk.test"
display_name = "IT Support"
default_team = "support"

[[queue]]
name = "hr"
address = "hr@desk.test"
display_name = "People Team"
default_team = "support"
templates = "hr-templates"
"#,
        )
}

/// The address in a From or Reply-To header (`"Name" <a@b>` or `a@b`).
fn address_in(h: &str) -> String {
    h.rsplit('<')
        .next()
        .unwrap_or(h)
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn find<'a>(mails: &'a [Vec<u8>], needle: &str) -> &'a [u8] {
    mails
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains(needle))
        .unwrap_or_else(|| panic!("no mail with {needle:?}"))
}

#[tokio::test]
async fn each_queue_answers_from_its_own_address_and_keeps_its_tickets() {
    let servers = MailServers::start(&[IT, HR, AGENT, CAROL]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &queue_desk().render());
    // hr's own acknowledgement; every other template is the desk's.
    let hr_templates = desk.dir.path().join("hr-templates");
    std::fs::create_dir_all(&hr_templates).unwrap();
    std::fs::write(
        hr_templates.join("acknowledgement.txt"),
        "Subject: People Team: {{ message.subject }}\n\nWe have your request, {{ recipient_name }}.\n",
    )
    .unwrap();
    desk.start();

    // Carol writes to it@, then to hr@.
    let printer = mail(CAROL, IT, "Printer jam", "c1@customer.test", "", "Jammed.");
    smtp_send(port, CAROL, &[IT], &printer).await;
    desk.wait_tickets(1, T);
    let holidays = mail(CAROL, HR, "Holidays", "c2@customer.test", "", "Days left?");
    smtp_send(port, CAROL, &[HR], &holidays).await;
    desk.wait_tickets(2, T);
    let it_ticket = desk.ticket(1000);
    let hr_ticket = desk.ticket(1001);
    assert_eq!(it_ticket["ticket"]["queue"], "it", "{it_ticket}");
    assert_eq!(hr_ticket["ticket"]["queue"], "hr", "{hr_ticket}");

    // Each acknowledgement comes from the address Carol wrote to.
    let acks = imap.wait_for(CAROL, "INBOX", 2, T).await;
    let it_ack = find(&acks, "Printer jam");
    assert_eq!(address_in(&header(it_ack, "From").unwrap()), IT);
    assert!(header(it_ack, "From").unwrap().contains("IT Support"));
    let hr_ack = find(&acks, "People Team: Holidays");
    assert_eq!(address_in(&header(hr_ack, "From").unwrap()), HR);
    assert!(String::from_utf8_lossy(hr_ack).contains("We have your request"));
    // The envelope sender too: bounces come back to the queue's mailbox.
    assert_eq!(
        address_in(&header(hr_ack, "Return-Path").unwrap()),
        HR,
        "MAIL FROM is the queue's address"
    );

    // Alice answers hr's notification through its signed hr+ address.
    let notes = imap.wait_for(AGENT, "INBOX", 2, T).await;
    let note = find(&notes, "[#1001]");
    assert_eq!(address_in(&header(note, "From").unwrap()), HR);
    let signed = address_in(&header(note, "Reply-To").unwrap());
    assert!(signed.starts_with("hr+1001."), "{signed}");
    let reply = mail(
        AGENT,
        &signed,
        &format!("Re: {}", subject(note)),
        "a1@desk.test",
        "",
        "You have ten days left.",
    );
    smtp_send(port, AGENT, &[signed.as_str()], &reply).await;
    let carols = imap.wait_for(CAROL, "INBOX", 3, T).await;
    let relayed = find(&carols, "ten days left");
    let from = header(relayed, "From").unwrap();
    assert_eq!(address_in(&from), HR, "relayed from hr@");
    assert!(from.contains("Alice via People Team"), "{from}");

    // Carol answers hr's ticket but writes to it@: it stays on #1001, hr's.
    let again = mail(
        CAROL,
        IT,
        "Re: [#1001] Holidays",
        "c3@customer.test",
        &format!(
            "In-Reply-To: <{}>\r\n",
            message_id(relayed).expect("a Message-ID")
        ),
        "Thanks! And next year?",
    );
    smtp_send(port, CAROL, &[IT], &again).await;
    let notes = imap.wait_for(AGENT, "INBOX", 3, T).await;
    let note = find(&notes, "next year");
    assert_eq!(
        address_in(&header(note, "From").unwrap()),
        HR,
        "the ticket's queue, not the address of this mail"
    );
    assert_eq!(desk.tickets().len(), 2, "no new ticket");
    let hr_ticket = desk.ticket(1001);
    assert_eq!(hr_ticket["ticket"]["queue"], "hr");
    assert!(
        hr_ticket["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("next year")),
        "{hr_ticket}"
    );
    let shown = desk.cli(&["tickets", "show", "1001"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Queue:          hr"));
    assert!(desk.stop());
}

/// One mailbox, help@, receives it@ and hr@ through Postfix aliases (so its
/// Delivered-To is always help@): the queues name it, and the address
/// written to still decides.
#[tokio::test]
async fn one_mailbox_receiving_both_addresses_through_aliases() {
    let servers = MailServers::start(&[
        HELP,
        "alias:it@desk.test=help@desk.test",
        "alias:hr@desk.test=help@desk.test",
        AGENT,
        CAROL,
    ]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let config = team_desk()
        .mailbox("default_team", "\"support\"")
        .agent(AGENT, Some("Alice"), &["support"])
        .team("support", "")
        .table(
            r#"
[[queue]]
name = "it"
address = "it@desk.test"
mailbox = "help"

[[queue]]
name = "hr"
address = "hr@desk.test"
display_name = "People Team"
mailbox = "help"
"#,
        )
        .render();
    let mut desk = Deskgate::with_config(&servers, &config);
    desk.start();

    let first = mail(CAROL, HR, "Holidays", "c1@customer.test", "", "Days left?");
    smtp_send(port, CAROL, &[HR], &first).await;
    desk.wait_tickets(1, T);
    let second = mail(CAROL, IT, "Printer jam", "c2@customer.test", "", "Jammed.");
    smtp_send(port, CAROL, &[IT], &second).await;
    desk.wait_tickets(2, T);
    assert_eq!(desk.ticket(1000)["ticket"]["queue"], "hr");
    assert_eq!(desk.ticket(1001)["ticket"]["queue"], "it");

    let acks = imap.wait_for(CAROL, "INBOX", 2, T).await;
    let hr_ack = find(&acks, "Holidays");
    assert_eq!(address_in(&header(hr_ack, "From").unwrap()), HR);
    assert_eq!(
        address_in(&header(find(&acks, "Printer jam"), "From").unwrap()),
        IT
    );

    // Alice's reply through hr+1000.…@ arrives by the alias too: proven, relayed from hr@.
    let notes = imap.wait_for(AGENT, "INBOX", 2, T).await;
    let note = find(&notes, "[#1000]");
    let signed = address_in(&header(note, "Reply-To").unwrap());
    assert!(signed.starts_with("hr+1000."), "{signed}");
    let reply = mail(
        AGENT,
        &signed,
        &format!("Re: {}", subject(note)),
        "a1@desk.test",
        "",
        "Ten days left.",
    );
    smtp_send(port, AGENT, &[signed.as_str()], &reply).await;
    let carols = imap.wait_for(CAROL, "INBOX", 3, T).await;
    let relayed = find(&carols, "Ten days left");
    assert_eq!(address_in(&header(relayed, "From").unwrap()), HR);
    assert!(desk.stop());
}
