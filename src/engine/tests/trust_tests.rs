#![cfg(test)]
//! Engine tests of the trust rules (issue 12 §1): each tries to get around one.

use super::*;
use crate::desk::forgery::{WARNINGS_PER_SENDER, WARNINGS_PER_TICKET};

/// Alice's mail on ticket 1000 proven only by a trusted DKIM pass for her domain.
fn dkim_mail(id: &str, body: &str) -> Vec<u8> {
    format!("Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\nFrom: Alice <alice@desk.test>\r\nTo: help@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n").into_bytes()
}

const DKIM: &str = "[trust]\nauthserv_ids = [\"mx.desk.test\"]";

#[test]
fn commands_need_the_signed_reply_address_when_the_desk_says_so() {
    let (_d, e) = routed_engine(&format!("{DKIM}\ncommands_need_signed_reply = true"));
    new_ticket_with_watcher(&e);
    // Anyone at desk.test can get a DKIM pass for desk.test: not enough for commands.
    e.ingest(&dkim_mail("d1@desk.test", "#status closed\r\nDone."), "it")
        .unwrap();
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.status, Status::New, "no command ran");
    assert!(outbox_of(&e, "reply").is_empty(), "nothing relayed");
    let err = outbox_of(&e, "command error");
    assert_eq!(err.len(), 1);
    assert!(
        err[0].formatted().unwrap().contains("signed reply address"),
        "the agent hears why"
    );
    // Plain text with the domain proof is still relayed.
    e.ingest(&dkim_mail("d2@desk.test", "Can you send a photo?"), "it")
        .unwrap();
    assert_eq!(outbox_of(&e, "reply").len(), 1);
    // The same commands to the signed reply address run.
    e.ingest(
        &agent_mail(
            &e,
            "alice@desk.test",
            1000,
            "s1@desk.test",
            "#status closed",
        ),
        "it",
    )
    .unwrap();
    assert_eq!(
        e.store().ticket(1000).unwrap().unwrap().status,
        Status::Closed
    );
}

#[test]
fn an_agent_can_be_required_to_use_the_signed_reply_address() {
    let (_d, e) = routed_engine(DKIM);
    let cfg = {
        let dir = tempfile::tempdir().unwrap();
        let config = it_desk()
            .agent("bob@desk.test", None, &["it", "legal"])
            .team("it", "")
            .team("legal", "")
            .table(&format!(
                "{DKIM}\n[[agent]]\naddress = \"alice@desk.test\"\nname = \"Alice\"\nteams = [\"it\"]\ncommands_need_signed_reply = true"
            ));
        load_config(dir.path(), &config)
    };
    e.set_policy(Policy::from_config(&cfg).unwrap());
    new_ticket_with_watcher(&e);
    e.ingest(&dkim_mail("d1@desk.test", "#priority urgent"), "it")
        .unwrap();
    assert_eq!(
        e.store().ticket(1000).unwrap().unwrap().priority,
        crate::store::records::Priority::Normal,
        "alice must use the signed address"
    );
    // Bob is not: his DKIM pass still runs commands.
    let bob = b"Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\nFrom: bob@desk.test\r\nTo: help@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <b1@desk.test>\r\n\r\n#priority high\r\n";
    e.ingest(bob, "it").unwrap();
    assert_eq!(
        e.store().ticket(1000).unwrap().unwrap().priority,
        crate::store::records::Priority::High
    );
}

#[test]
fn an_agent_can_be_exempted_from_the_desk_rule() {
    let (_d, e) = routed_engine(DKIM);
    let cfg = {
        let dir = tempfile::tempdir().unwrap();
        let config = it_desk()
            .agent("bob@desk.test", None, &["it"])
            .team("it", "")
            .table(&format!(
                "{DKIM}\ncommands_need_signed_reply = true\n[[agent]]\naddress = \"alice@desk.test\"\nteams = [\"it\"]\ncommands_need_signed_reply = false"
            ));
        load_config(dir.path(), &config)
    };
    e.set_policy(Policy::from_config(&cfg).unwrap());
    new_ticket_with_watcher(&e);
    e.ingest(&dkim_mail("d1@desk.test", "#status waiting"), "it")
        .unwrap();
    assert_eq!(
        e.store().ticket(1000).unwrap().unwrap().status,
        Status::Waiting
    );
}

/// Ticket 1001 on team legal (alice is not in it; bob is).
const LEGAL_RULE: &str = "[[rule]]\nname = \"Legal\"\n[[rule.when]]\nfield = \"subject\"\ncontains = \"Contract\"\n[rule.set]\nteam = \"legal\"";

fn legal_ticket(e: &Engine) {
    e.ingest(&mail("x@c.test", "Contract question", "l1@c", ""), "it")
        .unwrap();
    assert_eq!(
        e.store().ticket(1001).unwrap().unwrap().team.as_deref(),
        Some("legal")
    );
}

#[test]
fn merge_link_and_parent_need_a_right_to_the_other_ticket() {
    let (_d, e) = routed_engine(LEGAL_RULE);
    new_ticket_with_watcher(&e);
    legal_ticket(&e);
    for (n, cmd) in ["#merge 1001", "#link 1001", "#parent 1001"]
        .into_iter()
        .enumerate()
    {
        e.ingest(
            &agent_mail(&e, "alice@desk.test", 1000, &format!("x{n}@desk.test"), cmd),
            "it",
        )
        .unwrap();
        let other = e.store().ticket(1001).unwrap().unwrap();
        assert!(
            other.links.is_empty() && other.merged_from.is_empty(),
            "{cmd}"
        );
        let src = e.store().ticket(1000).unwrap().unwrap();
        assert!(src.links.is_empty() && src.merged_into.is_none(), "{cmd}");
    }
    let errors = outbox_of(&e, "command error");
    assert_eq!(errors.len(), 3);
    assert!(
        errors[0].formatted().unwrap().contains("not on team legal"),
        "{}",
        errors[0].formatted().unwrap()
    );
    // Bob is on legal: he may.
    e.ingest(
        &agent_mail(&e, "bob@desk.test", 1000, "b1@desk.test", "#link 1001"),
        "it",
    )
    .unwrap();
    assert_eq!(e.store().ticket(1001).unwrap().unwrap().links.len(), 1);
}

#[test]
fn the_assignee_of_the_other_ticket_may_merge_into_it() {
    let (_d, e) = routed_engine(LEGAL_RULE);
    new_ticket_with_watcher(&e);
    legal_ticket(&e);
    // Bob (legal) assigns 1001 to alice; now she may.
    e.ingest(
        &agent_mail(&e, "bob@desk.test", 1001, "a1@desk.test", "#assign alice"),
        "it",
    )
    .unwrap();
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "m1@desk.test", "#merge 1001"),
        "it",
    )
    .unwrap();
    assert_eq!(
        e.store().ticket(1000).unwrap().unwrap().merged_into,
        Some(1001)
    );
}

/// The notification of ticket 1000's latest requester-side mail, as bytes.
fn last_notification(e: &Engine) -> String {
    outbox_of(e, "notification")
        .last()
        .unwrap()
        .formatted()
        .unwrap()
        .into_owned()
}

#[test]
fn a_stranger_on_the_requester_side_is_named_as_such() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    // Anyone who knows the token can write on the ticket.
    e.ingest(
        &mail("mallory@evil.test", "Re: [#1000] Printer", "m1@evil", ""),
        "it",
    )
    .unwrap();
    let n = last_notification(&e);
    assert!(
        n.contains("sent by mallory@evil.test, not by the requester"),
        "{n}"
    );
    assert!(
        !n.contains("From: Carol via"),
        "not in the requester's name: {n}"
    );
    // The watcher and the requester are not flagged.
    for (who, id) in [("dave@c.test", "w1@c"), ("carol@c.test", "c1@c")] {
        e.ingest(&mail(who, "Re: [#1000] Printer", id, ""), "it")
            .unwrap();
        let n = last_notification(&e);
        assert!(!n.contains("not by the requester"), "{who}: {n}");
    }
}

/// `routed_engine("")` with its clock.
fn clocked_engine() -> (tempfile::TempDir, Engine, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let config = it_desk()
        .agent("alice@desk.test", Some("Alice"), &["it"])
        .agent("bob@desk.test", None, &["it", "legal"])
        .team("it", "")
        .team("legal", "");
    let cfg = load_config(dir.path(), &config);
    let store = Store::open(&dir.path().join("state")).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let e = Engine::new(store, clock.clone(), Policy::from_config(&cfg).unwrap());
    (dir, e, clock)
}

/// A mail in alice's name to `help+1000.SIG@`.
fn to_tag(sig: &str, id: &str, body: &str) -> Vec<u8> {
    format!("From: Alice <alice@desk.test>\r\nTo: help+1000.{sig}@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n").into_bytes()
}

fn forgery_whys(e: &Engine) -> Vec<String> {
    e.store()
        .events(1000)
        .unwrap()
        .into_iter()
        .filter_map(|ev| match ev.kind {
            EventKind::PossibleForgery { why, .. } => Some(why),
            _ => None,
        })
        .collect()
}

#[test]
fn an_old_40_bit_tag_runs_nothing() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    // What a notification said before epochs: 10 hex digits under the same key.
    let key = e.policy().reply_keys.get()[0].key.clone();
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key).unwrap();
    hmac::Mac::update(&mut mac, b"1000:alice@desk.test");
    let old = hex::encode(hmac::Mac::finalize(mac).into_bytes())[..10].to_string();
    e.ingest(&to_tag(&old, "o1@desk.test", "#status closed"), "it")
        .unwrap();
    assert_eq!(e.store().ticket(1000).unwrap().unwrap().status, Status::New);
    let whys = forgery_whys(&e);
    assert!(whys[0].contains("old-style reply address"), "{whys:?}");
}

#[test]
fn wrong_tags_are_counted_and_warnings_are_rate_limited() {
    let (_d, e, clock) = clocked_engine();
    new_ticket_with_watcher(&e);
    for i in 0..6 {
        let sig = format!("1.{:020x}", i);
        e.ingest(&to_tag(&sig, &format!("g{i}@evil"), "#status closed"), "it")
            .unwrap();
    }
    assert_eq!(e.store().ticket(1000).unwrap().unwrap().status, Status::New);
    let whys = forgery_whys(&e);
    assert_eq!(whys.len(), 6, "every one recorded");
    assert!(whys[5].contains("6 wrong tag(s)"), "{whys:?}");
    // Three rounds to the team (alice and bob), the rest only recorded.
    assert_eq!(
        outbox_of(&e, "forgery warning").len(),
        2 * WARNINGS_PER_TICKET
    );
    let skipped = e
        .store()
        .events(1000)
        .unwrap()
        .into_iter()
        .filter(|ev| matches!(&ev.kind, EventKind::AckSkipped { reason } if reason.contains("no forgery warning")))
        .count();
    assert_eq!(skipped, 3);
    // An hour later the team hears again.
    clock.advance(chrono::Duration::minutes(61));
    e.ingest(&to_tag("1.00", "g9@evil", "hi"), "it").unwrap();
    assert_eq!(
        outbox_of(&e, "forgery warning").len(),
        2 * WARNINGS_PER_TICKET + 2
    );
}

#[test]
fn forgery_warnings_are_rate_limited_per_sender_across_tickets() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    for i in 0..4 {
        e.ingest(
            &mail("x@c.test", &format!("other {i}"), &format!("t{i}@c"), ""),
            "it",
        )
        .unwrap();
    }
    // One forged mail in alice's name on each of 1001..=1004.
    for (i, t) in (1001..=1004).enumerate() {
        let m = format!("From: alice@desk.test\r\nTo: help@desk.test\r\nSubject: Re: [#{t}] x\r\nMessage-ID: <s{i}@evil>\r\n\r\nhi\r\n");
        e.ingest(m.as_bytes(), "it").unwrap();
    }
    assert_eq!(
        outbox_of(&e, "forgery warning").len(),
        2 * WARNINGS_PER_SENDER,
        "alice and bob, three times"
    );
}

#[test]
fn a_rotated_key_keeps_working_for_the_grace_period_only() {
    let (_d, e, clock) = clocked_engine();
    new_ticket_with_watcher(&e);
    let old = agent_mail(
        &e,
        "alice@desk.test",
        1000,
        "r1@desk.test",
        "#priority high",
    );
    let ring = e
        .rotate_reply_key(Some(std::time::Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(ring.len(), 2);
    // New notifications carry the new epoch.
    let new = agent_mail(&e, "alice@desk.test", 1000, "r2@desk.test", "#tag new");
    assert!(String::from_utf8_lossy(&new).contains("help+1000.2."));
    e.ingest(&old, "it").unwrap();
    e.ingest(&new, "it").unwrap();
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(
        t.priority,
        crate::store::records::Priority::High,
        "old key in grace"
    );
    assert_eq!(t.tags, ["new"]);
    // After the grace period the old address proves nothing.
    clock.advance(chrono::Duration::minutes(61));
    let late = String::from_utf8_lossy(&old)
        .replace("r1@desk.test", "r3@desk.test")
        .replace("#priority high", "#priority low");
    e.ingest(late.as_bytes(), "it").unwrap();
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.priority, crate::store::records::Priority::High);
    assert!(
        forgery_whys(&e)[0].contains("retired"),
        "{:?}",
        forgery_whys(&e)
    );
}

#[test]
fn a_forged_header_below_the_mtas_own_runs_nothing() {
    let (_d, e) = routed_engine("[trust]\nauthserv_ids = [\"mx.desk.test\", \"mx2.desk.test\"]");
    new_ticket_with_watcher(&e);
    // The MTA's own header on top says nothing for desk.test; the sender's
    // own, below it, names the second trusted server.
    let m = b"Authentication-Results: mx.desk.test; dkim=none\r\nAuthentication-Results: mx2.desk.test; dkim=pass header.d=desk.test\r\nFrom: Alice <alice@desk.test>\r\nTo: help@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <h1@evil>\r\n\r\n#status closed\r\n";
    e.ingest(m, "it").unwrap();
    assert_eq!(e.store().ticket(1000).unwrap().unwrap().status, Status::New);
    // And a lookalike domain under the real header.
    let m = b"Authentication-Results: mx.desk.test; dkim=pass header.i=@evil-desk.test\r\nFrom: Alice <alice@desk.test>\r\nTo: help@desk.test\r\nSubject: Re: [#1000] Printer\r\nMessage-ID: <h2@evil>\r\n\r\n#status closed\r\n";
    e.ingest(m, "it").unwrap();
    assert_eq!(e.store().ticket(1000).unwrap().unwrap().status, Status::New);
    assert_eq!(forgery_whys(&e).len(), 2);
}

#[test]
fn a_reply_to_a_merged_tickets_address_still_proves_the_agent() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(&mail("carol@c.test", "Printer again", "p2@c", ""), "it")
        .unwrap();
    let late = agent_mail(
        &e,
        "alice@desk.test",
        1000,
        "z1@desk.test",
        "#priority urgent",
    );
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "z0@desk.test", "#merge 1001"),
        "it",
    )
    .unwrap();
    // Replying to 1000's notification lands on 1001 and is still Alice's.
    e.ingest(&late, "it").unwrap();
    assert_eq!(
        e.store().ticket(1001).unwrap().unwrap().priority,
        crate::store::records::Priority::Urgent
    );
    assert!(forgery_whys(&e).is_empty());
}
