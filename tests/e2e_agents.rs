//! End to end against real Dovecot and Postfix: agents work from their own
//! mail client — replies, comments, commands, trust, merge.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const ALICE_AGENT: &str = "alice@desk.test";
const BOB_AGENT: &str = "bob@desk.test";
const CAROL: &str = "carol@customer.test";
const DAVE: &str = "dave@customer.test";

fn config() -> String {
    team_desk()
        .agent(ALICE_AGENT, Some("Alice"), &["it"])
        .agent(BOB_AGENT, Some("Bob"), &["it"])
        .team("it", "")
        .render()
}

/// The signed reply address from a notification's Reply-To.
fn reply_address(notification: &[u8]) -> String {
    let r = header(notification, "Reply-To").expect("Reply-To");
    r.trim_start_matches(|c| c != '<')
        .trim_matches(|c| c == '<' || c == '>')
        .to_string()
}

async fn wait_ticket(
    desk: &Deskgate,
    id: u64,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + T;
    loop {
        let v = desk.ticket(id);
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "ticket {id}: {what}: {v:#}\n{}",
            desk.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kinds(v: &serde_json::Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["kind"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn agents_work_the_ticket_from_their_mail_client() {
    let servers = MailServers::start(&[HELP, ALICE_AGENT, BOB_AGENT, CAROL, DAVE]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();

    // Carol writes, with Dave in Cc: Dave becomes a watcher.
    let first = mail(
        CAROL,
        HELP,
        "Printer on fire",
        "c1@customer.test",
        &format!("Cc: {DAVE}\r\n"),
        "Help!",
    );
    smtp_send(port, CAROL, &[HELP, DAVE], &first).await;
    desk.wait_tickets(1, T);
    let note = imap.wait_for(ALICE_AGENT, "INBOX", 1, T).await.remove(0);
    let signed = reply_address(&note);
    let subject_line = format!("Re: {}", subject(&note));

    // 1. Alice replies from her mail client: Carol and Dave get it from the help address.
    let reply = mail(
        ALICE_AGENT,
        &signed,
        &subject_line,
        "a1@desk.test",
        "",
        "Unplug it, please.\r\n\r\nOn Mon, Carol wrote:\r\n> Help!",
    );
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &reply).await;
    let carol = imap.wait_for(CAROL, "INBOX", 2, T).await; // ack + reply
    let relayed = carol
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("Unplug it"))
        .expect("relayed reply");
    let from = deskgate::mail::parse::parse(relayed).unwrap().from.unwrap();
    assert_eq!(from.address.as_str(), HELP);
    assert_eq!(from.name.as_deref(), Some("Alice via Test Desk"));
    assert!(
        !String::from_utf8_lossy(relayed).contains(ALICE_AGENT),
        "the agent's address is not exposed"
    );
    assert!(
        !String::from_utf8_lossy(relayed).contains("> Help!"),
        "quoted history trimmed"
    );
    assert!(subject(relayed).contains("[#1000]"));
    let dave = imap.wait_for(DAVE, "INBOX", 2, T).await; // Carol's Cc + the relayed reply
    assert!(
        dave.iter()
            .any(|m| String::from_utf8_lossy(m).contains("Unplug it")),
        "the watcher gets public replies"
    );
    let v = wait_ticket(&desk, 1000, "open with a first response", |v| {
        v["ticket"]["status"] == "open"
    })
    .await;
    assert!(v["ticket"]["first_response_at"].is_string());

    // 2. A comment stays internal: Bob hears of it, Carol does not.
    let comment = mail(
        ALICE_AGENT,
        &signed,
        &subject_line,
        "a2@desk.test",
        "",
        "#comment\r\nSmells like the fuser.",
    );
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &comment).await;
    let bob = imap.wait_for(BOB_AGENT, "INBOX", 2, T).await; // new-ticket notification + comment
    assert!(bob
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains("Smells like the fuser")));

    // 3. Commands only: the ticket changes, nothing goes to Carol.
    let cmds = mail(
        ALICE_AGENT,
        &signed,
        &subject_line,
        "a3@desk.test",
        "",
        "#status waiting\r\n#priority high\r\n#time 45m\r\n#tag hardware",
    );
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &cmds).await;
    let v = wait_ticket(&desk, 1000, "waiting", |v| {
        v["ticket"]["status"] == "waiting"
    })
    .await;
    assert_eq!(v["ticket"]["priority"], "high");
    assert_eq!(v["ticket"]["effort"][0]["minutes"], 45);
    assert_eq!(v["ticket"]["tags"][0], "hardware");

    // 4. One bad line: nothing changes, and Alice is told which line and why.
    let bad = mail(
        ALICE_AGENT,
        &signed,
        &subject_line,
        "a4@desk.test",
        "",
        "#status resolved\r\n#assign zorro\r\nAll done.",
    );
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &bad).await;
    wait_ticket(&desk, 1000, "commands refused", |v| {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "commands_refused")
    })
    .await;
    let alice = imap.wait_for(ALICE_AGENT, "INBOX", 2, T).await;
    let explanation = alice
        .iter()
        .find(|m| subject(m).contains("Commands not applied"))
        .expect("explanation");
    assert!(String::from_utf8_lossy(explanation).contains("#assign zorro"));
    assert_eq!(desk.ticket(1000)["ticket"]["status"], "waiting");

    // 5. A forged "Alice" (plain help address, no proof) runs nothing and the team is warned.
    let forged = mail(
        ALICE_AGENT,
        HELP,
        &subject_line,
        "f1@evil.test",
        "",
        "#status closed\r\nPlease pay invoice 77 to the new account.",
    );
    smtp_send(port, ALICE_AGENT, &[HELP], &forged).await;
    let v = wait_ticket(&desk, 1000, "forgery recorded", |v| {
        kinds(v).contains(&"unverified agent mail".to_string())
    })
    .await;
    assert_eq!(v["ticket"]["status"], "waiting", "no command ran");
    imap.wait_for(BOB_AGENT, "INBOX", 3, T).await;
    let carol_now = imap.count(CAROL, "INBOX").await;
    assert_eq!(
        carol_now, 2,
        "nothing relayed to the requester (ack + the one real reply)"
    );

    // 6. Merge: a second ticket merged into the first; mail to the old token lands on the first.
    smtp_send(
        port,
        CAROL,
        &[HELP],
        &mail(
            CAROL,
            HELP,
            "Printer still smokes",
            "c2@customer.test",
            "",
            "again",
        ),
    )
    .await;
    desk.wait_tickets(2, T);
    // Alice merges 1001 into 1000, replying to 1001's notification.
    // Alice has 1000's notification, the command error and the forgery
    // warning; the fourth is 1001's notification.
    let notes = imap.wait_for(ALICE_AGENT, "INBOX", 4, T).await;
    let note2 = notes
        .iter()
        .find(|m| subject(m).starts_with("[#1001]"))
        .unwrap_or_else(|| {
            panic!(
                "notification of 1001: {:?}",
                notes.iter().map(|m| subject(m)).collect::<Vec<_>>()
            )
        });
    let signed2 = reply_address(note2);
    let merge = mail(
        ALICE_AGENT,
        &signed2,
        "Re: [#1001] Printer still smokes",
        "a6@desk.test",
        "",
        "#merge 1000",
    );
    smtp_send(port, ALICE_AGENT, &[signed2.as_str()], &merge).await;
    wait_ticket(&desk, 1001, "merged", |v| {
        v["ticket"]["merged_into"] == 1000
    })
    .await;
    let later = mail(
        CAROL,
        HELP,
        "Re: [#1001] Printer still smokes",
        "c3@customer.test",
        "",
        "any news?",
    );
    smtp_send(port, CAROL, &[HELP], &later).await;
    let v = wait_ticket(&desk, 1000, "later mail redirected", |v| {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("any news?"))
    })
    .await;
    assert!(v["ticket"]["merged_from"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(1001)));
    let text = String::from_utf8_lossy(&desk.cli(&["tickets", "show", "1000"]).stdout).into_owned();
    assert!(text.contains("Merged from:    #1001"), "{text}");
    assert!(text.contains("Effort:         45m in all"), "{text}");
    assert!(
        text.contains("Watchers:       dave@customer.test"),
        "{text}"
    );
    assert!(desk.stop());
}

/// `deskgate trust rotate-key` while the daemon runs (through the control
/// socket: the next notification carries the new epoch, the old address
/// still proves the agent during the grace period) and while it is stopped.
#[tokio::test]
async fn reply_keys_rotate_while_running_and_while_stopped() {
    let servers = MailServers::start(&[HELP, ALICE_AGENT, BOB_AGENT, CAROL]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();
    let first = mail(CAROL, HELP, "Screen", "k1@customer.test", "", "Flickers.");
    smtp_send(port, CAROL, &[HELP], &first).await;
    desk.wait_tickets(1, T);
    let note = imap.wait_for(ALICE_AGENT, "INBOX", 1, T).await.remove(0);
    let old = reply_address(&note);
    assert!(old.starts_with("help+1000.1."), "{old}");

    let rotated = desk.json(&["trust", "rotate-key", "--grace", "1h", "--json"]);
    let epochs: Vec<u64> = rotated
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2], "{rotated:#}");

    // Old address, within the grace period: still Alice's.
    let cmd = mail(
        ALICE_AGENT,
        &old,
        &format!("Re: {}", subject(&note)),
        "k2@desk.test",
        "",
        "#priority high",
    );
    smtp_send(port, ALICE_AGENT, &[old.as_str()], &cmd).await;
    wait_ticket(&desk, 1000, "priority high", |v| {
        v["ticket"]["priority"] == "high"
    })
    .await;
    // Carol writes again: the new notification is signed by epoch 2.
    let again = mail(
        CAROL,
        HELP,
        &format!("Re: {}", subject(&note)),
        "k3@customer.test",
        "",
        "Still.",
    );
    smtp_send(port, CAROL, &[HELP], &again).await;
    let notes = imap.wait_for(ALICE_AGENT, "INBOX", 2, T).await;
    let newest = reply_address(&notes[1]);
    assert!(newest.starts_with("help+1000.2."), "{newest}");

    // Stopped: the CLI opens the store itself.
    assert!(desk.stop());
    let o = desk.cli(&["trust", "rotate-key", "--grace", "1h"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("key 3: current"), "{text}");
    assert!(text.contains("key 2: retired"), "{text}");
}
