#![cfg(test)]
//! Engine tests of steering from the command line (`desk::steer`), of
//! `#problem N` and of `#next` by mail (issue 15 §3, §5, §6).

use super::*;
use crate::desk::steer::{Action, Request};
use crate::engine::protocol::Steered;
use crate::mail::outgoing::OutgoingAttachment;

fn set(
    e: &Engine,
    ticket: u64,
    as_agent: Option<&str>,
    lines: &[&str],
) -> Result<Steered, Vec<String>> {
    e.steer(&Request {
        ticket,
        user: "root".into(),
        as_agent: as_agent.map(str::to_string),
        action: Action::Commands {
            lines: lines.iter().map(|l| l.to_string()).collect(),
        },
    })
    .unwrap()
}

fn events(e: &Engine, id: u64) -> Vec<crate::store::records::Event> {
    e.store().events(id).unwrap()
}

#[test]
fn set_changes_the_ticket_as_the_cli_user_and_tells_the_new_assignee() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    let before = e.store().outbox().unwrap().len();
    let done = set(
        &e,
        1000,
        None,
        &["#status waiting", "#assign alice", "#priority high"],
    )
    .unwrap();
    assert_eq!(done.done.actor, "cli:root");
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.status, Status::Waiting);
    assert_eq!(t.assignee.as_deref(), Some("alice@desk.test"));
    let evs = events(&e, 1000);
    let status = evs
        .iter()
        .find(|ev| {
            matches!(
                ev.kind,
                EventKind::StatusChanged {
                    to: Status::Waiting,
                    ..
                }
            )
        })
        .expect("status event");
    assert_eq!(status.actor, "cli:root");
    let EventKind::StatusChanged { reason, .. } = &status.kind else {
        unreachable!()
    };
    assert_eq!(reason, "command line (cli:root)");
    assert!(evs.iter().any(|ev| ev.actor == "cli:root"
        && ev.kind
            == EventKind::FieldChanged {
                field: "assignee".into(),
                from: "-".into(),
                to: "alice@desk.test".into()
            }));
    let notice = outbox_of(&e, "assignment notice");
    assert_eq!(notice.len(), 1, "alice hears of it");
    assert_eq!(notice[0].recipients[0].as_str(), "alice@desk.test");
    let text = notice[0].formatted().unwrap().into_owned();
    assert!(
        text.contains("cli:root assigned this ticket to you"),
        "{text}"
    );
    assert!(
        text.contains("<help+1000.1."),
        "signed reply address: {text}"
    );
    assert_eq!(
        e.store().outbox().unwrap().len(),
        before + 1,
        "nothing else"
    );
    // Nothing to the requester.
    assert!(outbox_of(&e, "reply").is_empty());
}

#[test]
fn a_change_says_the_ticket_after_it_the_events_it_added_and_the_mails_it_queued() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    let events_before = events(&e, 1000).len();
    let s = set(&e, 1000, None, &["#status waiting", "#assign alice"]).unwrap();
    assert_eq!((s.done.ticket, s.done.actor.as_str()), (1000, "cli:root"));
    assert_eq!(s.change.after, e.store().ticket(1000).unwrap().unwrap());
    assert_eq!(
        s.change.events,
        events(&e, 1000)[events_before..],
        "exactly the events it added"
    );
    assert_eq!(s.change.events.len(), 2, "{:?}", s.change.events);
    assert!(s.change.also_changed.is_empty());
    let notice = outbox_of(&e, "assignment notice");
    assert_eq!(s.done.queued, 1);
    assert_eq!(s.change.mails.len(), 1);
    let mail = &s.change.mails[0];
    assert_eq!(
        (mail.id, mail.kind.as_str(), mail.ticket),
        (notice[0].id, "assignment notice", Some(1000))
    );
    assert_eq!(mail.recipients, ["alice@desk.test"]);
    let subject = mail.subject.as_deref().unwrap_or_default();
    assert!(subject.contains("[#1000]"), "{subject}");

    // A merge writes the target too: its events are said with it.
    e.ingest(b"From: x@c.test\r\nTo: help@desk.test\r\nSubject: Again\r\nMessage-ID: <g1@c>\r\n\r\nx\r\n", "it")
        .unwrap();
    let s = set(&e, 1001, None, &["#merge 1000"]).unwrap();
    assert_eq!(s.change.after.merged_into, Some(1000));
    let [target] = &s.change.also_changed[..] else {
        panic!("{:?}", s.change.also_changed)
    };
    assert_eq!(target.ticket.id, 1000);
    assert_eq!(target.ticket.merged_from, [1001]);
    assert!(!target.events.is_empty());
    assert_eq!(s.change.mails.len(), s.done.queued);

    // The JSON that `--json` prints: `tickets show --json`'s shapes.
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["ticket"], 1001);
    assert_eq!(v["actor"], "cli:root");
    assert_eq!(v["after"]["status"], "closed");
    assert!(v["after"]["updated_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["events"][0]["event"].is_string(), "{v:#}");
    assert_eq!(serde_json::from_value::<Steered>(v).unwrap(), s);
}

#[test]
fn an_agent_assigning_by_mail_tells_the_new_assignee_too_but_not_herself() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "a1@desk.test", "#assign me"),
        "it",
    )
    .unwrap();
    assert!(
        outbox_of(&e, "assignment notice").is_empty(),
        "not to herself"
    );
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "a2@desk.test", "#assign bob"),
        "it",
    )
    .unwrap();
    let notice = outbox_of(&e, "assignment notice");
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0].recipients[0].as_str(), "bob@desk.test");
    assert!(notice[0]
        .formatted()
        .unwrap()
        .contains("Alice assigned this ticket to you"));
}

#[test]
fn bad_input_changes_nothing_and_says_why_in_plain_words() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    let t0 = e.store().ticket(1000).unwrap().unwrap();
    let n = events(&e, 1000).len();
    let problems = set(
        &e,
        1000,
        None,
        &["#status resolved", "#assign zorro", "#priority soon"],
    )
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "#priority soon: unknown priority \"soon\": use low, normal, high or urgent",
            "#assign zorro: no agent by that address or name"
        ]
    );
    assert_eq!(
        e.store().ticket(1000).unwrap().unwrap(),
        t0,
        "all or nothing"
    );
    assert_eq!(events(&e, 1000).len(), n);
    assert_eq!(
        set(&e, 4242, None, &["#status open"]).unwrap_err(),
        ["no ticket 4242"]
    );
    assert_eq!(
        set(&e, 1000, Some("zorro"), &["#status open"]).unwrap_err(),
        ["--as zorro: no agent by that address or name"]
    );
    assert_eq!(
        set(&e, 1000, None, &["#assign me"]).unwrap_err(),
        ["#assign me: you act as no agent (name one, e.g. --as ADDRESS)"]
    );
}

#[test]
fn acting_as_an_agent_records_the_agent_and_applies_their_rights() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    // 1001 belongs to team legal, which alice is not on.
    e.ingest(b"From: x@c.test\r\nTo: help@desk.test\r\nSubject: Contract\r\nMessage-ID: <l1@c>\r\n\r\nx\r\n", "it")
        .unwrap();
    set(&e, 1001, None, &["#team legal"]).unwrap();
    let refused = set(&e, 1000, Some("alice"), &["#merge 1001"]).unwrap_err();
    assert!(
        refused[0].contains("you are not on team legal"),
        "{refused:?}"
    );
    let done = set(&e, 1000, Some("Alice"), &["#time 15m", "#assign me"]).unwrap();
    assert_eq!(done.done.actor, "alice@desk.test");
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.effort[0].agent, "alice@desk.test");
    assert_eq!(t.assignee.as_deref(), Some("alice@desk.test"));
    // The admin may merge anything: as #merge does.
    set(&e, 1000, None, &["#merge 1001"]).unwrap();
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.merged_into, Some(1001));
    assert_eq!(t.status, Status::Closed);
    let target = e.store().ticket(1001).unwrap().unwrap();
    assert_eq!(target.merged_from, [1000]);
    assert_eq!(target.effort[0].minutes, 15, "effort moves along");
    assert_eq!(
        set(&e, 1000, None, &["#status open"]).unwrap_err(),
        ["ticket 1000 was merged into 1001: steer 1001 instead"]
    );
}

#[test]
fn without_as_a_unix_user_with_an_agent_s_login_acts_as_that_agent() {
    // alice (team it) logs in as Unix user "alice".
    let dir = tempfile::tempdir().unwrap();
    let config = it_desk()
        .table("[[agent]]\naddress = \"alice@desk.test\"\nteams = [\"it\"]\nlogin = \"alice\"")
        .agent("bob@desk.test", None, &["it", "legal"])
        .team("it", "")
        .team("legal", "");
    let cfg = load_config(dir.path(), &config);
    let store = Store::open(&dir.path().join("state")).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let e = Engine::new(store, clock, Policy::from_config(&cfg).unwrap());
    new_ticket_with_watcher(&e);
    e.ingest(b"From: x@c.test\r\nTo: help@desk.test\r\nSubject: Contract\r\nMessage-ID: <l1@c>\r\n\r\nx\r\n", "it")
        .unwrap();
    set(&e, 1001, None, &["#team legal"]).unwrap();
    let as_user = |user: &str, ticket: u64, line: &str| {
        e.steer(&Request {
            ticket,
            user: user.into(),
            as_agent: None,
            action: Action::Commands {
                lines: vec![line.into()],
            },
        })
        .unwrap()
    };
    let done = as_user("alice", 1000, "#assign me").unwrap();
    assert_eq!(done.done.actor, "alice@desk.test");
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.assignee.as_deref(), Some("alice@desk.test"));
    // Her team's rights apply: legal's ticket is not hers to merge into.
    let refused = as_user("alice", 1000, "#merge 1001").unwrap_err();
    assert!(
        refused[0].contains("you are not on team legal"),
        "{refused:?}"
    );
    // A user with no agent's login stays the admin, who may.
    let done = as_user("ops", 1000, "#merge 1001").unwrap();
    assert_eq!(done.done.actor, "cli:ops");
}

#[test]
fn a_reply_goes_to_the_requester_with_its_files_and_a_comment_stays_inside() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    let file = OutgoingAttachment {
        name: "../fix.bin".into(),
        content_type: "application/octet-stream".into(),
        bytes: vec![0, 1, 2, 255, 13, 10, 46, 13, 10],
    };
    let reply = |text: &str, as_agent: Option<&str>| Request {
        ticket: 1000,
        user: "root".into(),
        as_agent: as_agent.map(str::to_string),
        action: Action::Reply {
            text: text.into(),
            attachments: vec![file.clone()],
        },
    };
    e.steer(&reply("Try this patch.", Some("alice@desk.test")))
        .unwrap()
        .unwrap();
    let o = outbox_of(&e, "reply");
    assert_eq!(o.len(), 1);
    let to: Vec<&str> = o[0].recipients.iter().map(|r| r.as_str()).collect();
    assert_eq!(to, ["carol@c.test", "dave@c.test"]);
    let text = o[0].formatted().unwrap().into_owned();
    assert!(
        text.contains("From: \"Alice via Help Desk\" <help@desk.test>"),
        "{text}"
    );
    assert!(
        !text.contains("alice@desk.test"),
        "the agent's address is not shown"
    );
    assert!(!text.contains("Auto-Submitted"), "a person's words");
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(t.status, Status::Open, "a first reply opens the ticket");
    assert!(t.first_response_at.is_some());
    let kept = e.store().messages(1000).unwrap();
    let rec = kept
        .iter()
        .find(|m| m.kind.as_deref() == Some("reply (command line)"))
        .expect("kept on the ticket");
    assert_eq!(rec.attachments[0].name, "fix.bin", "a safe name");
    assert_eq!(
        e.store().blob(&rec.attachments[0].sha256).unwrap().unwrap(),
        file.bytes
    );

    let before = e.store().outbox().unwrap().len();
    let comment = Request {
        ticket: 1000,
        user: "root".into(),
        as_agent: None,
        action: Action::Comment {
            text: "Looks like the fuser.".into(),
        },
    };
    e.steer(&comment).unwrap().unwrap();
    let c = outbox_of(&e, "comment");
    let to: Vec<&str> = c.iter().map(|o| o.recipients[0].as_str()).collect();
    assert_eq!(to, ["alice@desk.test", "bob@desk.test"], "the team");
    assert_eq!(
        e.store().outbox().unwrap().len(),
        before + 2,
        "nothing to the requester"
    );
    assert!(events(&e, 1000)
        .iter()
        .any(|ev| ev.kind == EventKind::CommentAdded && ev.actor == "cli:root"));
    let empty = Request {
        action: Action::Comment { text: " \n".into() },
        ..comment
    };
    assert_eq!(
        e.steer(&empty).unwrap().unwrap_err(),
        ["the comment is empty"]
    );
}

#[test]
fn problem_links_the_parent_in_its_own_words() {
    let (_d, e) = routed_engine("");
    new_ticket_with_watcher(&e);
    e.ingest(b"From: x@c.test\r\nTo: help@desk.test\r\nSubject: All printers down\r\nMessage-ID: <pb@c>\r\n\r\nx\r\n", "it")
        .unwrap();
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "p1@desk.test", "#problem 1001"),
        "it",
    )
    .unwrap();
    let t = e.store().ticket(1000).unwrap().unwrap();
    assert_eq!(
        t.links,
        [crate::store::records::Link {
            kind: crate::store::records::LinkKind::Parent,
            ticket: 1001
        }]
    );
    assert!(events(&e, 1000).iter().any(|ev| ev.kind
        == EventKind::FieldChanged {
            field: "problem".into(),
            from: "-".into(),
            to: "#1001".into()
        }));
    assert!(events(&e, 1001).iter().any(|ev| ev.kind
        == EventKind::FieldChanged {
            field: "incidents".into(),
            from: "".into(),
            to: "+#1000".into()
        }));
    // The CLI's `tickets link --problem` is the same command.
    e.ingest(b"From: y@c.test\r\nTo: help@desk.test\r\nSubject: Printer 2\r\nMessage-ID: <p2@c>\r\n\r\nx\r\n", "it")
        .unwrap();
    set(&e, 1002, None, &["#problem 1001"]).unwrap();
    let problem = e.store().ticket(1001).unwrap().unwrap();
    assert_eq!(problem.links.len(), 2, "two incidents");
    assert_eq!(
        set(&e, 1002, None, &["#problem 1002"]).unwrap_err(),
        ["#problem: a ticket cannot refer to itself"]
    );
}

/// A mail from `from` to `to` with `body`, proven by the desk's DKIM result.
fn dkim_to(from: &str, to: &str, id: &str, body: &str) -> Vec<u8> {
    format!("Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\nFrom: {from}\r\nTo: {to}\r\nSubject: my list\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n").into_bytes()
}

#[test]
fn next_by_mail_answers_a_proven_agent_with_her_own_list() {
    let (_d, e) = routed_engine("[trust]\nauthserv_ids = [\"mx.desk.test\"]");
    for i in 0..3 {
        let m = format!("From: u{i}@c.test\r\nTo: help@desk.test\r\nSubject: Request {i}\r\nMessage-ID: <n{i}@c>\r\n\r\nx\r\n");
        e.ingest(m.as_bytes(), "it").unwrap();
    }
    set(&e, 1000, None, &["#assign alice", "#priority low"]).unwrap();
    set(&e, 1001, None, &["#assign bob"]).unwrap();
    set(&e, 1002, None, &["#assign alice", "#priority urgent"]).unwrap();
    let tickets = e.store().ticket_count();
    e.ingest(
        &dkim_to("alice@desk.test", "help+next@desk.test", "q1@desk.test", ""),
        "it",
    )
    .unwrap();
    let o = outbox_of(&e, "next");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].recipients[0].as_str(), "alice@desk.test");
    let text = o[0].formatted().unwrap().into_owned();
    assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
    let urgent = text.find("#1002 [urgent").expect("1002 listed");
    let low = text.find("#1000 [low").expect("1000 listed");
    assert!(urgent < low, "the order of tickets next: {text}");
    assert!(!text.contains("#1001"), "only her own: {text}");
    // The same order as `tickets next --agent`.
    let (cli, _) = views::next(&e, None, Some("alice@desk.test"), 20).unwrap();
    assert_eq!(cli.iter().map(|c| c.id).collect::<Vec<_>>(), [1002, 1000]);
    // A lone #next to the help address, and #next on a ticket, answer too.
    e.ingest(
        &dkim_to("alice@desk.test", "help@desk.test", "q2@desk.test", "#next"),
        "it",
    )
    .unwrap();
    e.ingest(
        &agent_mail(&e, "alice@desk.test", 1000, "q3@desk.test", "#next"),
        "it",
    )
    .unwrap();
    assert_eq!(outbox_of(&e, "next").len(), 3);
    assert_eq!(e.store().ticket_count(), tickets, "never a ticket");
    // A stranger, an unproven agent and automatic mail get nothing.
    e.ingest(
        &dkim_to(
            "mallory@evil.test",
            "help+next@desk.test",
            "s1@evil.test",
            "",
        ),
        "it",
    )
    .unwrap();
    e.ingest(
        b"From: alice@desk.test\r\nTo: help+next@desk.test\r\nSubject: x\r\nMessage-ID: <s2@desk.test>\r\n\r\n\r\n",
        "it",
    )
    .unwrap();
    let auto = dkim_to("alice@desk.test", "help+next@desk.test", "s3@desk.test", "")
        .into_iter()
        .collect::<Vec<u8>>();
    let auto = [b"Auto-Submitted: auto-replied\r\n".as_slice(), &auto].concat();
    e.ingest(&auto, "it").unwrap();
    assert_eq!(outbox_of(&e, "next").len(), 3);
    assert_eq!(e.store().ticket_count(), tickets, "never a ticket");
}
