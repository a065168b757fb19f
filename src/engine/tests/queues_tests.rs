#![cfg(test)]
//! Engine tests of queues with their own addresses (issue 14 §4): a ticket
//! joins the queue the requester wrote to, all its mail goes out from there,
//! and it stays there whichever of our addresses a later mail names.

use super::*;
use crate::store::records::OutboxEntry;

/// help@ (the desk), and queues it@ and hr@, each with its mailbox; hr has
/// its own name, team, SLA and acknowledgement template.
fn queue_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let hr_templates = dir.path().join("hr-templates");
    std::fs::create_dir_all(&hr_templates).unwrap();
    std::fs::write(
        hr_templates.join("acknowledgement.txt"),
        "Subject: HR got it: {{ message.subject }}\n\nDear {{ recipient_name }}, {{ desk.name }} at {{ desk.address }} will answer.\n",
    )
    .unwrap();
    let config = it_desk()
        .desk("name", "\"Help Desk\"")
        .add_mailbox("hr@desk.test")
        .mailbox("name", "\"hr\"")
        .mailbox("password_file", "\"pw\"")
        .agent("alice@desk.test", Some("Alice"), &["it"])
        .agent("bob@desk.test", Some("Bob"), &["people"])
        .team("it", "")
        .team("people", "")
        .table(
            r#"
[[sla]]
name = "hr-sla"
[sla.first_response]
normal = "4h"

[[queue]]
name = "it"
address = "it@desk.test"
display_name = "IT Support"

[[queue]]
name = "hr"
address = "hr@desk.test"
display_name = "People Team"
default_team = "people"
default_sla = "hr-sla"
templates = "hr-templates"
"#,
        );
    let cfg = load_config(dir.path(), &config);
    let store = Store::open(&dir.path().join("state")).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    (
        dir,
        Engine::new(store, clock, Policy::from_config(&cfg).unwrap()),
    )
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn only(e: &Engine, kind: &str, ticket: u64) -> OutboxEntry {
    let mut v: Vec<_> = outbox_of(e, kind)
        .into_iter()
        .filter(|o| o.ticket == Some(ticket))
        .collect();
    assert_eq!(v.len(), 1, "one {kind} on #{ticket}: {v:?}");
    v.remove(0)
}

fn carol(to: &str, subject: &str, id: &str, extra: &str) -> Vec<u8> {
    format!("From: Carol <carol@c.test>\r\nTo: {to}\r\n{extra}Subject: {subject}\r\nMessage-ID: <{id}>\r\n\r\nbody\r\n").into_bytes()
}

#[test]
fn each_queue_acknowledges_from_its_own_address_with_its_own_defaults() {
    let (_d, e) = queue_engine();
    e.ingest(&carol("it@desk.test", "Printer", "c1@c", ""), "it")
        .unwrap();
    e.ingest(&carol("hr@desk.test", "Holidays", "c2@c", ""), "hr")
        .unwrap();
    e.ingest(&carol("help@desk.test", "Other", "c3@c", ""), "it")
        .unwrap();
    let it = e.store().ticket(1000).unwrap().unwrap();
    let hr = e.store().ticket(1001).unwrap().unwrap();
    let desk = e.store().ticket(1002).unwrap().unwrap();
    assert_eq!(it.queue.as_deref(), Some("it"));
    assert_eq!(it.team.as_deref(), Some("it"), "the mailbox's team");
    assert_eq!(hr.queue.as_deref(), Some("hr"));
    assert_eq!(hr.team.as_deref(), Some("people"), "the queue's team");
    assert_eq!(hr.sla.as_deref(), Some("hr-sla"), "the queue's SLA");
    assert_eq!(
        desk.queue, None,
        "the desk's own address: the default queue"
    );

    let ack = only(&e, "acknowledgement", 1000);
    let text = ack.formatted().unwrap();
    assert_eq!(header(&text, "From"), "\"IT Support\" <it@desk.test>");
    assert_eq!(ack.envelope_from.as_str(), "it@desk.test");
    assert!(ack.message_id.ends_with("@desk.test"), "{}", ack.message_id);
    assert_eq!(header(&text, "X-Loop"), "it@desk.test");

    let ack = only(&e, "acknowledgement", 1001);
    let text = ack.formatted().unwrap();
    assert_eq!(header(&text, "From"), "\"People Team\" <hr@desk.test>");
    assert_eq!(ack.envelope_from.as_str(), "hr@desk.test");
    assert!(
        header(&text, "Subject").contains("HR got it: Holidays"),
        "the queue's own template"
    );
    assert!(
        text.contains("People Team at hr@desk.test will answer"),
        "desk.* in a template is the queue: {text}"
    );
    // The notification to hr's team: from the queue, Reply-To its signed address.
    let note = only(&e, "notification", 1001);
    let text = note.formatted().unwrap();
    assert_eq!(
        header(&text, "From"),
        "\"Carol via People Team\" <hr@desk.test>"
    );
    assert!(
        header(&text, "Reply-To").contains("<hr+1001."),
        "{}",
        header(&text, "Reply-To")
    );

    let ack = only(&e, "acknowledgement", 1002);
    let text = ack.formatted().unwrap();
    assert_eq!(header(&text, "From"), "\"Help Desk\" <help@desk.test>");
    assert!(
        !header(&text, "Subject").contains("HR got it"),
        "the desk's template"
    );
}

#[test]
fn a_reply_written_to_another_queue_stays_on_its_ticket_and_queue() {
    let (_d, e) = queue_engine();
    e.ingest(&carol("hr@desk.test", "Holidays", "c1@c", ""), "hr")
        .unwrap();
    // Carol answers the acknowledgement but writes to it@ (and the copy lands in it's mailbox).
    let o = e
        .ingest(
            &carol(
                "it@desk.test",
                "Re: [#1000] Holidays",
                "c2@c",
                "Delivered-To: it@desk.test\r\nIn-Reply-To: <c1@c>\r\n",
            ),
            "it",
        )
        .unwrap();
    assert!(matches!(o, Outcome::Threaded { ticket: 1000, .. }), "{o:?}");
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.queue.as_deref(), Some("hr"), "still hr's");
    assert_eq!(e.store().ticket(1001).unwrap(), None, "no new ticket");
    let notes = outbox_of(&e, "notification");
    assert_eq!(notes.len(), 2);
    for n in &notes {
        assert_eq!(n.envelope_from.as_str(), "hr@desk.test");
    }

    // Bob answers through the signed hr+ address: relayed from hr@.
    let text = notes[1].formatted().unwrap();
    let reply_to = header(&text, "Reply-To");
    let signed = reply_to
        .trim_start_matches(|c| c != '<')
        .trim_matches(|c| c == '<' || c == '>');
    let bob = format!("From: Bob <bob@desk.test>\r\nTo: {signed}\r\nSubject: Re: [#1000] Holidays\r\nMessage-ID: <b1@desk.test>\r\n\r\nTen days left.\r\n");
    e.ingest(bob.as_bytes(), "hr").unwrap();
    let relay = only(&e, "reply", 1000);
    let text = relay.formatted().unwrap();
    assert_eq!(
        header(&text, "From"),
        "\"Bob via People Team\" <hr@desk.test>"
    );
    assert_eq!(relay.envelope_from.as_str(), "hr@desk.test");
    assert_eq!(
        relay.recipients,
        vec![EmailAddress::parse("carol@c.test").unwrap()]
    );
}

#[test]
fn our_own_mail_from_any_queue_address_is_never_a_ticket() {
    let (_d, e) = queue_engine();
    // An acknowledgement from hr@ bounced around into it's mailbox.
    let looped = "From: People Team <hr@desk.test>\r\nTo: it@desk.test\r\nSubject: HR got it\r\nMessage-ID: <l1@desk.test>\r\n\r\nx\r\n";
    let o = e.ingest(looped.as_bytes(), "it").unwrap();
    assert!(matches!(o, Outcome::Ignored { .. }), "{o:?}");
    let x_loop = carol("it@desk.test", "Fwd", "l2@c", "X-Loop: hr@desk.test\r\n");
    let o = e.ingest(&x_loop, "it").unwrap();
    assert!(matches!(o, Outcome::Ignored { .. }), "{o:?}");
    // A requester who puts a queue address in Cc: no watcher, no mail to it.
    e.ingest(
        &carol(
            "it@desk.test",
            "Printer",
            "c1@c",
            "Cc: hr@desk.test, hr+x@desk.test\r\n",
        ),
        "it",
    )
    .unwrap();
    assert!(e.store().ticket(1000).unwrap().unwrap().watchers.is_empty());
}

#[test]
fn no_automatic_mail_goes_to_a_queue_address() {
    let (_d, e) = queue_engine();
    // A requester whose Reply-To is another queue (a forwarded mail, a
    // colleague's misconfigured client): the acknowledgement would go to
    // hr@, which would file it as a new mail.
    e.ingest(
        &carol(
            "it@desk.test",
            "Printer",
            "c1@c",
            "Reply-To: hr@desk.test\r\n",
        ),
        "it",
    )
    .unwrap();
    assert!(outbox_of(&e, "acknowledgement").is_empty());
    let skipped: Vec<String> = e
        .store()
        .events(1000)
        .unwrap()
        .into_iter()
        .filter_map(|ev| match ev.kind {
            EventKind::AckSkipped { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(
        skipped
            .iter()
            .any(|r| r.contains("hr@desk.test is one of the desk's own addresses")),
        "{skipped:?}"
    );
}
