//! End to end against real Dovecot and Postfix: several help addresses, teams,
//! notifications, and live reload of the rules.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);
const IT: &str = "it@desk.test";
const LEGAL: &str = "legal@desk.test";
const AGENT_IT: &str = "alice@desk.test";
const AGENT_LEGAL: &str = "bob@desk.test";
const CAROL: &str = "carol@customer.test";

fn config(rules: &str) -> String {
    // The first mailbox, "help" feeding team "it", comes with team_desk().
    let mut c = team_desk().mailbox("poll_interval", "\"1s\"");
    for (name, user, team) in [("it", IT, "it"), ("legal", LEGAL, "legal")] {
        c = c
            .add_mailbox(user)
            .mailbox("name", &toml_str(name))
            .mailbox("poll_interval", "\"1s\"")
            .mailbox("timeout", "\"10s\"")
            .mailbox("default_team", &toml_str(team));
    }
    c.agent(AGENT_IT, Some("Alice"), &["it"])
        .agent(AGENT_LEGAL, Some("Bob"), &["legal"])
        .team("it", "")
        .team("legal", "")
        .table(rules)
        .render()
}

fn servers() -> MailServers {
    MailServers::start(&[HELP, IT, LEGAL, AGENT_IT, AGENT_LEGAL, CAROL])
}

fn team_of(desk: &Deskgate, id: u64) -> String {
    desk.ticket(id)["ticket"]["team"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

#[tokio::test]
async fn two_help_addresses_land_in_two_teams_and_notify_their_members() {
    let servers = servers();
    let imap = servers.imap();
    let mut desk = Deskgate::with_config(&servers, &config(""));
    desk.start();

    smtp_send(
        servers.smtp_port,
        CAROL,
        &[IT],
        &mail(
            CAROL,
            IT,
            "Laptop broken",
            "c1@customer.test",
            "",
            "It won't boot.",
        ),
    )
    .await;
    desk.wait_tickets(1, T);
    smtp_send(
        servers.smtp_port,
        CAROL,
        &[LEGAL],
        &mail(
            CAROL,
            LEGAL,
            "Contract question",
            "c2@customer.test",
            "",
            "Clause 4?",
        ),
    )
    .await;
    desk.wait_tickets(2, T);
    assert_eq!(team_of(&desk, 1000), "it");
    assert_eq!(team_of(&desk, 1001), "legal");

    // Each team's member gets exactly their team's notification.
    let alice = imap.wait_for(AGENT_IT, "INBOX", 1, T).await;
    let bob = imap.wait_for(AGENT_LEGAL, "INBOX", 1, T).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(imap.count(AGENT_IT, "INBOX").await, 1);
    assert_eq!(imap.count(AGENT_LEGAL, "INBOX").await, 1);
    assert!(
        subject(&alice[0]).starts_with("[#1000] Laptop broken"),
        "{}",
        subject(&alice[0])
    );
    assert!(subject(&bob[0]).starts_with("[#1001] Contract question"));
    let note = String::from_utf8_lossy(&alice[0]).into_owned();
    assert!(
        note.contains("It won't boot."),
        "the requester's text: {note}"
    );
    let reply_to = header(&alice[0], "Reply-To").unwrap();
    assert!(
        reply_to.contains("<help+1000."),
        "a signed per-ticket reply address: {reply_to}"
    );
    assert_eq!(
        header(&alice[0], "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );

    // Alice hits "reply" in her mail client: it comes back onto ticket 1000.
    let notification_id = message_id(&alice[0]).unwrap();
    let signed = reply_to
        .trim_start_matches(|c| c != '<')
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let reply = mail(
        AGENT_IT,
        &signed,
        &format!("Re: {}", subject(&alice[0])),
        "a1@desk.test",
        &format!("In-Reply-To: <{notification_id}>\r\nReferences: <{notification_id}>\r\n"),
        "On it.",
    );
    smtp_send(servers.smtp_port, AGENT_IT, &[signed.as_str()], &reply).await;
    let deadline = std::time::Instant::now() + T;
    loop {
        let msgs = desk.ticket(1000)["messages"].as_array().unwrap().clone();
        if msgs
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("On it."))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent reply did not thread:\n{}",
            desk.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(desk.tickets().len(), 2);
    assert!(desk.stop());
}

const PRINTERS_TO_LEGAL: &str = r#"
[[rule]]
name = "printers to legal"
[[rule.when]]
field = "subject"
contains = "printer"
[rule.set]
team = "legal"
"#;

#[tokio::test]
async fn a_broken_reload_keeps_the_old_rules_and_a_good_one_applies() {
    let servers = servers();
    let mut desk = Deskgate::with_config(&servers, &config(PRINTERS_TO_LEGAL));
    // As under systemd: stderr is "the journal", so lines carry priorities.
    let log = desk.next_log_path();
    std::fs::File::create(&log).unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    use std::os::unix::fs::MetadataExt;
    desk.set_env("JOURNAL_STREAM", &format!("{}:{}", meta.dev(), meta.ino()));
    desk.start();
    let send = |n: u32| {
        let m = mail(
            CAROL,
            IT,
            &format!("Printer {n}"),
            &format!("p{n}@customer.test"),
            "",
            "jammed",
        );
        let port = servers.smtp_port;
        async move { smtp_send(port, CAROL, &[IT], &m).await }
    };
    send(1).await;
    desk.wait_tickets(1, T);
    assert_eq!(team_of(&desk, 1000), "legal");

    // A broken edit: the daemon says so loudly and keeps routing by the old rules.
    desk.rewrite_config(
        &servers,
        &config(&PRINTERS_TO_LEGAL.replace("contains = \"printer\"", "regex = \"(printer\"")),
    );
    // `deskgate reload` (the unit's ExecReload) fails with the reason.
    let out = desk.cli(&["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused reload must fail: {err}");
    assert!(err.contains("refused") && err.contains("regex"), "{err}");
    desk.wait_log("CONFIG RELOAD FAILED", T);
    // journalctl -p err finds it: the line carries priority 3.
    assert!(
        desk.logs()
            .lines()
            .any(|l| l.starts_with("<3>") && l.contains("CONFIG RELOAD FAILED")),
        "{}",
        desk.logs()
    );
    assert!(desk.logs().lines().any(|l| l.starts_with("<6>")));
    desk.signal("HUP");
    send(2).await;
    desk.wait_tickets(2, T);
    assert_eq!(team_of(&desk, 1001), "legal");

    // A good edit is picked up from disk without a signal.
    desk.rewrite_config(&servers, &config(""));
    desk.wait_log("config reloaded", T);
    send(3).await;
    desk.wait_tickets(3, T);
    assert_eq!(
        team_of(&desk, 1002),
        "it",
        "the rule is gone: mailbox default"
    );
    let out = desk.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config reloaded"));
    assert!(desk.stop());
    let out = desk.cli(&["reload"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon answers"));
}
