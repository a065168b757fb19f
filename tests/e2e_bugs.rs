//! End to end against real Dovecot and Postfix: the defects a new admin hit
//! (issue 14 §7) and the command help agents get where they work (§8).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const ALICE_AGENT: &str = "alice@desk.test";
const CAROL: &str = "carol@customer.test";

fn config() -> String {
    team_desk()
        .agent(ALICE_AGENT, Some("Alice"), &["it"])
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

/// Carol's out-of-office answer to `answering`, exactly as Dovecot
/// Pigeonhole's vacation action makes it (tests/support/mailservers.sh has
/// no Sieve; the headers are those ../shared/notes/mail-servers.md records
/// from a real Pigeonhole 0.5.19).
fn vacation(answering: &str, subject: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nFrom: <{CAROL}>\r\nTo: <{HELP}>\r\nSubject: Auto: {subject}\r\nMessage-ID: <dovecot-sieve-1733100000-1@customer.test>\r\nDate: Wed, 2 Dec 2026 01:00:00 +0000\r\nIn-Reply-To: <{answering}>\r\nReferences: <{answering}>\r\nAuto-Submitted: auto-replied (vacation)\r\nPrecedence: bulk\r\nX-Sieve: Pigeonhole Sieve 0.5.19\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nI am away until Monday.\r\n"
    )
    .into_bytes()
}

/// Sends with the null envelope sender (`MAIL FROM:<>`), as autoresponders do.
async fn send_null_sender(port: u16, raw: &[u8]) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let env = lettre::address::Envelope::new(None, vec![HELP.parse().unwrap()]).unwrap();
    t.send_raw(&env, raw).await.expect("smtp send");
}

/// A `format=flowed; delsp=yes` mail as mutt (`text_flowed=yes`) sends it.
fn flowed_mail(from: &str, to: &str, subject: &str, id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii; format=flowed; delsp=yes\r\nContent-Disposition: inline\r\nUser-Agent: Mutt/2.2.12 (2023-09-09)\r\n\r\n{body}"
    )
    .into_bytes()
}

#[tokio::test]
async fn an_out_of_office_reply_is_labelled_and_never_threaded_to() {
    let servers = MailServers::start(&[HELP, ALICE_AGENT, CAROL]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();

    let first = mail(CAROL, HELP, "Printer", "c1@customer.test", "", "Broken.");
    smtp_send(port, CAROL, &[HELP], &first).await;
    let note = imap.wait_for(ALICE_AGENT, "INBOX", 1, T).await.remove(0);
    assert!(
        String::from_utf8_lossy(&note).contains("#help"),
        "the notification ends with the cheat sheet"
    );
    let signed = reply_address(&note);
    let re = format!("Re: {}", subject(&note));
    let reply = mail(
        ALICE_AGENT,
        &signed,
        &re,
        "a1@alice-laptop.desk.test",
        "",
        "Restart it.",
    );
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &reply).await;
    let carol = imap.wait_for(CAROL, "INBOX", 2, T).await;
    let relayed = carol
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("Restart it"))
        .expect("relayed");
    assert!(
        !String::from_utf8_lossy(relayed).contains("alice-laptop"),
        "the agent's Message-ID is not in References"
    );
    let relayed_id = message_id(relayed).unwrap();

    // Carol's out-of-office answers the relay.
    send_null_sender(port, &vacation(&relayed_id, &subject(relayed))).await;
    let deadline = Instant::now() + T;
    let v = loop {
        let v = desk.ticket(1000);
        let stored = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("I am away"));
        if stored {
            break v;
        }
        assert!(Instant::now() < deadline, "{v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ooo = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"].as_str().unwrap_or("").contains("I am away"))
        .expect("stored");
    let kind = ooo["kind"].as_str().unwrap_or("");
    assert!(
        kind.contains("automatic") && kind.contains("Auto-Submitted: auto-replied"),
        "{kind}"
    );
    let shown = desk.cli(&["tickets", "show", "1000"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Auto-Submitted: auto-replied"));

    // Alice's next reply threads to Carol's own mail, not the out-of-office.
    let again = mail(
        ALICE_AGENT,
        &signed,
        &re,
        "a2@alice-laptop.desk.test",
        "",
        "Did it help?",
    );
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &again).await;
    let carol = imap.wait_for(CAROL, "INBOX", 3, T).await;
    let second = carol
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("Did it help"))
        .expect("second relay");
    assert_eq!(
        header(second, "In-Reply-To").as_deref(),
        Some("<c1@customer.test>")
    );
    assert!(!String::from_utf8_lossy(second).contains("dovecot-sieve"));
    assert!(desk.stop());
}

#[tokio::test]
async fn format_flowed_from_mutt_is_joined_in_the_store_and_the_relay() {
    let servers = MailServers::start(&[HELP, ALICE_AGENT, CAROL]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();
    let first = flowed_mail(
        CAROL,
        HELP,
        "Printer",
        "c1@customer.test",
        "The printer on the  \r\nthird floor is broken.\r\n",
    );
    smtp_send(port, CAROL, &[HELP], &first).await;
    let note = imap.wait_for(ALICE_AGENT, "INBOX", 1, T).await.remove(0);
    let v = desk.ticket(1000);
    assert_eq!(
        v["messages"][0]["text"].as_str().unwrap().trim(),
        "The printer on the third floor is broken."
    );
    let signed = reply_address(&note);
    let re = format!("Re: {}", subject(&note));
    let body = "Please switch it off  \r\nand on again.\r\n";
    let reply = flowed_mail(ALICE_AGENT, &signed, &re, "a1@desk.test", body);
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &reply).await;
    let carol = imap.wait_for(CAROL, "INBOX", 2, T).await;
    assert!(carol
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains("Please switch it off and on again.")));
    assert!(desk.stop());
}

#[tokio::test]
async fn help_commands_answers_a_proven_agent_with_the_full_list() {
    let servers = MailServers::start(&[HELP, ALICE_AGENT, CAROL]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();
    let first = mail(CAROL, HELP, "Printer", "c1@customer.test", "", "Broken.");
    smtp_send(port, CAROL, &[HELP], &first).await;
    let note = imap.wait_for(ALICE_AGENT, "INBOX", 1, T).await.remove(0);
    let signed = reply_address(&note);
    let re = format!("Re: {}", subject(&note));
    let ask = mail(ALICE_AGENT, &signed, &re, "h1@desk.test", "", "#help");
    smtp_send(port, ALICE_AGENT, &[signed.as_str()], &ask).await;
    let got = imap.wait_for(ALICE_AGENT, "INBOX", 2, T).await;
    let help = got
        .iter()
        .find(|m| subject(m).contains("Mail commands"))
        .expect("the list");
    assert_eq!(
        header(help, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        imap.count(CAROL, "INBOX").await,
        1,
        "only the acknowledgement"
    );
    assert!(desk.stop());
}

#[tokio::test]
async fn a_second_run_on_a_store_in_use_says_so_at_once() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();
    let started = Instant::now();
    let second = Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(&desk.config)
        .arg("run")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    assert!(err.contains("in use"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    assert!(desk.stop());
}

#[tokio::test]
async fn an_absurd_due_within_is_a_clear_error() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::with_config(&servers, &config());
    // Through the running daemon, then offline (the CLI opens the store).
    desk.start();
    for running in [true, false] {
        if !running {
            assert!(desk.stop());
        }
        for d in ["3000000years", "600000000000s"] {
            let o = desk.cli(&["tickets", "list", "--due-within", d]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "a usage error: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(err.contains("too long"), "{err}");
        }
        let o = desk.cli(&["tickets", "list", "--due-within", "100years"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
