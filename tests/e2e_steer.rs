//! End to end against real Dovecot and Postfix: steering tickets from the
//! command line (`tickets set|reply|comment|merge|link`, through the
//! daemon's control socket and, stopped, the store), `#problem N` and
//! `#next` by mail (issue 15 §3, §5, §6).

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const ALICE: &str = "alice@desk.test";
const BOB: &str = "bob@desk.test";
const CAROL: &str = "carol@customer.test";
const MALLORY: &str = "mallory@customer.test";
/// What the desk's own MTA would stamp on mail it authenticated.
const DKIM: &str = "Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\n";

fn config() -> String {
    team_desk()
        .agent(ALICE, Some("Alice"), &["it"])
        .agent(BOB, Some("Bob"), &["it"])
        .team("it", "")
        .table("[trust]\nauthserv_ids = [\"mx.desk.test\"]")
        .render()
}

/// The CLI as Unix user "ops" (through sudo, as an admin would run it).
fn cli(desk: &Deskgate, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(&desk.config)
        .args(args)
        .env("SUDO_USER", "ops")
        .output()
        .expect("run deskgate")
}

fn ok(desk: &Deskgate, args: &[&str]) -> String {
    let out = cli(desk, args);
    assert!(
        out.status.success(),
        "deskgate {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        desk.logs()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn reply_address(notification: &[u8]) -> String {
    let r = header(notification, "Reply-To").expect("Reply-To");
    r.trim_start_matches(|c| c != '<')
        .trim_matches(|c| c == '<' || c == '>')
        .to_string()
}

async fn wait_ticket(desk: &Deskgate, id: u64, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + T;
    while !ok(&desk.ticket(id)) {
        assert!(
            Instant::now() < deadline,
            "ticket {id}: {:#}",
            desk.ticket(id)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a mail in `user`'s INBOX whose subject says `what`.
async fn wait_mail(imap: &Imap, user: &str, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + T;
    loop {
        let all = imap.fetch_all(user, "INBOX").await;
        let subjects: Vec<String> = all.iter().map(|m| subject(m)).collect();
        if let Some(m) = all.into_iter().find(|m| subject(m).contains(what)) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{user}: no mail about {what:?} among {subjects:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn tickets_are_steered_from_the_command_line_and_by_mail() {
    let servers = MailServers::start(&[HELP, ALICE, BOB, CAROL, MALLORY]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();
    let first = mail(
        CAROL,
        HELP,
        "VPN down",
        "c1@customer.test",
        "",
        "No tunnel.",
    );
    smtp_send(port, CAROL, &[HELP], &first).await;
    desk.wait_tickets(1, T);
    imap.wait_for(ALICE, "INBOX", 1, T).await;
    imap.wait_for(CAROL, "INBOX", 1, T).await; // the acknowledgement

    // tickets set: the change is Ops's in the audit trail, and Alice hears
    // the ticket is hers.
    let said = ok(
        &desk,
        &[
            "tickets",
            "set",
            "1000",
            "--status",
            "open",
            "--assignee",
            "alice",
        ],
    );
    assert!(said.contains("ticket 1000: done as cli:ops"), "{said}");
    let v = desk.ticket(1000);
    assert_eq!(v["ticket"]["status"], "open");
    assert_eq!(v["ticket"]["assignee"], ALICE);
    let by_ops = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "cli:ops")
        .count();
    assert_eq!(by_ops, 2, "status and assignee: {v:#}");
    let shown = ok(&desk, &["tickets", "show", "1000"]);
    assert!(shown.contains("cli:ops"), "{shown}");
    let notice = wait_mail(&imap, ALICE, "Assigned to you").await;
    assert!(String::from_utf8_lossy(&notice).contains("cli:ops assigned this ticket to you"));

    // Bad input: a plain message and a failing exit, nothing changed.
    let bad = cli(&desk, &["tickets", "set", "4242", "--status", "open"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no ticket 4242"));
    let bad = cli(&desk, &["tickets", "set", "1000", "--assignee", "zorro"]);
    assert_eq!(bad.status.code(), Some(1));
    let why = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(
        why.contains("#assign zorro: no agent by that address or name"),
        "{why}"
    );
    let bad = cli(&desk, &["tickets", "set", "1000", "--status", "done"]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses the value");

    // tickets reply with a file: from the help address, byte for byte.
    let file: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    let dir = desk.dir.path().to_path_buf();
    std::fs::write(dir.join("fix.bin"), &file).unwrap();
    std::fs::write(
        dir.join("reply.txt"),
        "Please install the attached profile.\n",
    )
    .unwrap();
    let reply_txt = dir.join("reply.txt");
    let fix = dir.join("fix.bin");
    ok(
        &desk,
        &[
            "tickets",
            "reply",
            "1000",
            "--as",
            ALICE,
            "--file",
            reply_txt.to_str().unwrap(),
            "--attach",
            fix.to_str().unwrap(),
        ],
    );
    let carol = imap.wait_for(CAROL, "INBOX", 2, T).await;
    let relayed = carol
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("attached profile"))
        .expect("the reply");
    let parsed = deskgate::mail::parse::parse(relayed).unwrap();
    let from = parsed.from.unwrap();
    assert_eq!(from.address.as_str(), HELP);
    assert_eq!(from.name.as_deref(), Some("Alice via Test Desk"));
    assert!(!String::from_utf8_lossy(relayed).contains(ALICE));
    assert_eq!(parsed.attachments.len(), 1);
    assert_eq!(parsed.attachments[0].name, "fix.bin");
    assert_eq!(parsed.attachments[0].bytes, file, "byte for byte");
    assert!(subject(relayed).contains("[#1000]"));

    // tickets comment: the team hears of it, Carol does not; --json says
    // what changed.
    std::fs::write(dir.join("c.txt"), "Her laptop has the old client.\n").unwrap();
    let said = ok(
        &desk,
        &[
            "tickets",
            "comment",
            "1000",
            "--file",
            dir.join("c.txt").to_str().unwrap(),
            "--json",
        ],
    );
    let change: serde_json::Value = serde_json::from_str(&said).expect("one JSON object");
    assert_eq!(change["ticket"], 1000, "{change:#}");
    assert_eq!(change["actor"], "cli:ops");
    assert_eq!(change["after"]["id"], 1000);
    // As `tickets show --json` has it (not compared whole: delivering the
    // mails adds events to the ticket meanwhile).
    let shown = desk.ticket(1000);
    for field in [
        "subject",
        "status",
        "assignee",
        "created_at",
        "message_count",
    ] {
        assert_eq!(change["after"][field], shown["ticket"][field], "{field}");
    }
    let events = change["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{change:#}");
    assert_eq!(events[0]["event"], "comment_added");
    assert_eq!(events[0]["actor"], "cli:ops");
    let mut told: Vec<&str> = (change["mails"].as_array().unwrap().iter())
        .inspect(|m| assert_eq!(m["kind"], "comment"))
        .map(|m| m["recipients"][0].as_str().unwrap())
        .collect();
    told.sort();
    assert_eq!(told, [ALICE, BOB]);
    assert!(change["mails"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("VPN down"));
    let bob = imap.wait_for(BOB, "INBOX", 2, T).await;
    assert!(bob
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains("Her laptop has the old client")));

    // tickets merge: as #merge does.
    let second = mail(
        CAROL,
        HELP,
        "VPN still down",
        "c2@customer.test",
        "",
        "Again.",
    );
    smtp_send(port, CAROL, &[HELP], &second).await;
    desk.wait_tickets(2, T);
    ok(&desk, &["tickets", "merge", "1001", "1000"]);
    let v = desk.ticket(1001);
    assert_eq!(v["ticket"]["merged_into"], 1000);
    assert_eq!(v["ticket"]["status"], "closed");
    let shown = ok(&desk, &["tickets", "show", "1000"]);
    assert!(shown.contains("Merged from:    #1001"), "{shown}");

    // #problem by mail, on a third ticket, from Alice's reply to its notification.
    let third = mail(
        CAROL,
        HELP,
        "Printer offline",
        "c3@customer.test",
        "",
        "Dead.",
    );
    smtp_send(port, CAROL, &[HELP], &third).await;
    desk.wait_tickets(3, T);
    let note = wait_mail(&imap, ALICE, "[#1002] Printer").await;
    let signed = reply_address(&note);
    let problem = mail(
        ALICE,
        &signed,
        "Re: [#1002] Printer offline",
        "a1@desk.test",
        "",
        "#problem 1000",
    );
    smtp_send(port, ALICE, &[signed.as_str()], &problem).await;
    wait_ticket(&desk, 1002, |v| {
        !v["ticket"]["links"].as_array().unwrap().is_empty()
    })
    .await;
    let shown = ok(&desk, &["tickets", "show", "1002"]);
    assert!(shown.contains("Link:           child of #1000"), "{shown}");
    assert!(shown.contains("problem: - -> #1000"), "{shown}");

    // #next: a stranger gets nothing; Alice gets her own list.
    let ask = |from: &str, id: &str| mail(from, "help+next@desk.test", "my list", id, DKIM, "");
    smtp_send(
        port,
        MALLORY,
        &["help+next@desk.test"],
        &ask(MALLORY, "m1@customer.test"),
    )
    .await;
    smtp_send(
        port,
        ALICE,
        &["help+next@desk.test"],
        &ask(ALICE, "n1@desk.test"),
    )
    .await;
    let deadline = Instant::now() + T;
    loop {
        let ignored = ok(&desk, &["ignored", "--json"]);
        if ignored.contains("#next by mail: not from an agent")
            && ignored.contains("#next by mail: the list was sent to alice@desk.test")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{ignored}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Within the wait, not at the sender's idle round a minute later.
    let list = wait_mail(&imap, ALICE, "Your tickets").await;
    let text = String::from_utf8_lossy(&list).into_owned();
    assert!(text.contains("#1000 [normal, open"), "{text}");
    assert!(!text.contains("#1002 ["), "not hers: {text}");
    assert_eq!(
        header(&list, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        imap.count(MALLORY, "INBOX").await,
        0,
        "the stranger got nothing"
    );
    assert_eq!(desk.tickets().len(), 3, "no ticket from #next");
    assert!(desk.stop());

    // With the daemon stopped the CLI opens the store itself.
    let said = ok(
        &desk,
        &[
            "tickets",
            "set",
            "1002",
            "--priority",
            "high",
            "--tag",
            "printer",
            "--json",
        ],
    );
    let change: serde_json::Value = serde_json::from_str(&said).expect("one JSON object");
    assert_eq!(change["after"]["priority"], "high", "{change:#}");
    assert_eq!(change["events"].as_array().unwrap().len(), 2, "{change:#}");
    let v = desk.ticket(1002);
    assert_eq!(v["ticket"]["priority"], "high");
    assert_eq!(v["ticket"]["tags"][0], "printer");
}
