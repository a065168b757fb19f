#![cfg(test)]
//! Engine tests of the defects a new admin hit (issue 14 §7) and of the
//! commands agents learn where they work (§8): each failed before its fix.

use super::*;

/// The body of the one outbox mail of `kind`, parsed.
fn only(e: &Engine, kind: &str) -> inbound::InboundMail {
    let o = outbox_of(e, kind);
    assert_eq!(o.len(), 1, "one {kind}");
    inbound::parse(o[0].formatted().unwrap().as_bytes()).unwrap()
}

/// Carol's out-of-office answer to a relayed reply, exactly as Dovecot
/// Pigeonhole's vacation action makes it.
fn vacation(in_reply_to: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nFrom: Carol <carol@c.test>\r\nTo: help@desk.test\r\nSubject: Auto: Re: [#1000] Printer\r\nMessage-ID: <dovecot-sieve-1.1@c.test>\r\nIn-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\nAuto-Submitted: auto-replied (vacation)\r\nPrecedence: bulk\r\nX-Sieve: Pigeonhole Sieve 0.5\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI am away until Monday.\r\n"
    )
    .into_bytes()
}

#[test]
fn time_in_the_same_mail_as_merge_is_booked_on_the_target() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(&mail("carol@c.test", "Printer again", "p2@c", ""), "it")
        .unwrap();
    e.ingest(
        &agent_mail(
            &e,
            "alice@desk.test",
            1000,
            "m1@desk.test",
            "#merge 1001\r\n#time 20m",
        ),
        "it",
    )
    .unwrap();
    let src = e.store().ticket(1000).unwrap().unwrap();
    let dst = e.store().ticket(1001).unwrap().unwrap();
    assert!(src.effort.is_empty(), "nothing left on the merged ticket");
    assert_eq!(dst.effort.iter().map(|x| x.minutes).sum::<u32>(), 20);
}

#[test]
fn the_command_error_mail_greets_the_agent_by_their_configured_name() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    let raw = agent_mail(&e, "alice@desk.test", 1000, "x1@desk.test", "#frob");
    let raw = String::from_utf8(raw)
        .unwrap()
        .replace("From: Alice <", "From: \"a.smith (laptop)\" <");
    e.ingest(raw.as_bytes(), "it").unwrap();
    let m = only(&e, "command error");
    assert!(m.text.contains("Hello Alice,"), "{}", m.text);
}

#[test]
fn an_out_of_office_reply_is_never_what_relays_thread_to() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "r1@desk.test", "Restart it."),
        "it",
    )
    .unwrap();
    let relayed = outbox_of(&e, "reply")[0].message_id.clone();
    e.ingest(&vacation(&relayed), "it").unwrap();
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.last_inbound_id.as_deref(), Some("p1@c"));
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "r2@desk.test", "Did it help?"),
        "it",
    )
    .unwrap();
    let second = &outbox_of(&e, "reply")[1];
    let r = inbound::parse(second.formatted().unwrap().as_bytes()).unwrap();
    assert_eq!(r.in_reply_to, vec!["p1@c"]);
    assert!(!r.references.iter().any(|x| x.contains("dovecot-sieve")));
}

#[test]
fn automatic_mail_on_a_ticket_is_labelled_with_its_class_and_why() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(&vacation("p1@c"), "it").unwrap();
    let msgs = e.store().messages(1000).unwrap();
    let ooo = msgs
        .iter()
        .find(|m| m.message_id.as_deref() == Some("dovecot-sieve-1.1@c.test"))
        .unwrap();
    let kind = ooo.kind.as_deref().unwrap_or("");
    assert!(kind.starts_with("automatic mail"), "{kind}");
    assert!(kind.contains("Auto-Submitted: auto-replied"), "{kind}");
}

#[test]
fn a_notification_shows_the_state_after_the_change_it_reports() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(
        &agent_mail(
            &e,
            "alice@desk.test",
            1000,
            "w1@desk.test",
            "#status waiting",
        ),
        "it",
    )
    .unwrap();
    e.ingest(
        &mail("carol@c.test", "Re: [#1000] Printer", "p2@c", ""),
        "it",
    )
    .unwrap();
    let n = outbox_of(&e, "notification");
    let last = n.last().unwrap().formatted().unwrap().to_string();
    assert!(last.contains("Status:   open"), "{last}");
}

#[test]
fn relays_never_carry_the_agents_own_message_id() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(
        &agent_mail(
            &e,
            "alice@desk.test",
            1000,
            "secret.laptop@alice-host.desk.test",
            "Restart it.",
        ),
        "it",
    )
    .unwrap();
    let relayed = outbox_of(&e, "reply");
    let raw = relayed[0].formatted().unwrap();
    assert!(!raw.contains("alice-host"), "{raw}");
    let r = inbound::parse(raw.as_bytes()).unwrap();
    assert!(r.references.contains(&"p1@c".to_string()));
}

#[test]
fn notifications_end_with_the_cheat_sheet() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    let o = outbox_of(&e, "notification");
    let n = inbound::parse(o[0].formatted().unwrap().as_bytes()).unwrap();
    assert!(n.text.contains("#status"), "{}", n.text);
    assert!(n.text.contains("#help"), "{}", n.text);
}

#[test]
fn hash_help_answers_a_proven_agent_with_the_full_list() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "h1@desk.test", "#help"),
        "it",
    )
    .unwrap();
    let o = outbox_of(&e, "help");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].recipients[0].as_str(), "alice@desk.test");
    let h = inbound::parse(o[0].formatted().unwrap().as_bytes()).unwrap();
    assert!(h.text.contains("#merge"), "{}", h.text);
    assert_eq!(
        h.auto.auto_submitted.as_deref(),
        Some("auto-replied"),
        "an automatic reply"
    );
    assert!(
        outbox_of(&e, "reply").is_empty(),
        "nothing to the requester"
    );
    assert!(outbox_of(&e, "command error").is_empty());
}

#[test]
fn help_commands_address_answers_proven_agents_only() {
    let (_d, e) = routed_engine("[trust]\nauthserv_ids = [\"mx.desk.test\"]");
    let ask = |from: &str, id: &str, extra: &str| {
        format!("{extra}From: {from}\r\nTo: help+commands@desk.test\r\nSubject: commands?\r\nMessage-ID: <{id}>\r\n\r\n?\r\n").into_bytes()
    };
    // Unproven (no DKIM): nothing, and no ticket.
    e.ingest(&ask("alice@desk.test", "q1@desk.test", ""), "it")
        .unwrap();
    // A stranger: nothing either.
    e.ingest(&ask("mallory@evil.test", "q2@evil.test", ""), "it")
        .unwrap();
    assert!(outbox_of(&e, "help").is_empty());
    assert_eq!(e.store().ticket_count(), 0, "no ticket");
    // Proven by the desk's own DKIM result: the list.
    let dkim = "Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\n";
    e.ingest(&ask("alice@desk.test", "q3@desk.test", dkim), "it")
        .unwrap();
    let o = outbox_of(&e, "help");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].recipients[0].as_str(), "alice@desk.test");
    // Automatic mail to help+commands@ (a loop) gets nothing.
    let auto = format!("{dkim}Auto-Submitted: auto-replied\r\n");
    e.ingest(&ask("alice@desk.test", "q4@desk.test", &auto), "it")
        .unwrap();
    assert_eq!(outbox_of(&e, "help").len(), 1);
    assert_eq!(e.store().ticket_count(), 0, "no ticket");
}

#[test]
fn a_closed_ticket_is_never_breached_or_overdue_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let e = sla_engine(dir.path(), clock.clone());
    e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
        .unwrap();
    e.ingest(&mail("dan@c.test", "Mouse", "m1@c", ""), "it")
        .unwrap();
    // Ticket 1001 is closed within the hour, unanswered; 1000 breaches first.
    clock.advance(chrono::Duration::minutes(30));
    e.store()
        .transact(|tx| {
            let mut t = tx.ticket(1001)?.unwrap();
            t.set_status(Status::Closed, t0 + chrono::Duration::minutes(30));
            tx.put_ticket(&t)
        })
        .unwrap();
    clock.advance(chrono::Duration::hours(5));
    e.run_timers().unwrap();
    // Now 1000 (breached) is closed too.
    e.store()
        .transact(|tx| {
            let mut t = tx.ticket(1000)?.unwrap();
            t.set_status(Status::Closed, t0 + chrono::Duration::hours(6));
            tx.put_ticket(&t)
        })
        .unwrap();
    clock.advance(chrono::Duration::days(5));
    e.run_timers().unwrap();
    let evs = e.store().events(1001).unwrap();
    assert!(
        !evs.iter()
            .any(|ev| matches!(ev.kind, EventKind::SlaBreached { .. })),
        "{evs:?}"
    );
    let overdue = crate::engine::queries::answer(
        &e,
        &crate::engine::queries::Query::ListTickets {
            status: None,
            overdue: true,
            due_within_secs: None,
            limit: None,
        },
    );
    let crate::engine::queries::Answer::Tickets { tickets, .. } = overdue else {
        panic!()
    };
    assert!(tickets.is_empty(), "closed tickets are not overdue");
    for id in [1000, 1001] {
        let view =
            crate::engine::queries::answer(&e, &crate::engine::queries::Query::ShowTicket { id });
        let crate::engine::queries::Answer::Ticket { view: Some(v) } = view else {
            panic!()
        };
        assert!(
            v.sla
                .iter()
                .all(|x| !matches!(x.state, crate::desk::sla::TargetState::Breached)),
            "#{id}: {:?}",
            v.sla
        );
    }
}
