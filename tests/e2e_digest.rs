//! Reports by mail, against the real Dovecot and Postfix: a `[[digest]]`
//! reaches the team lead's mailbox with the text table and the CSV
//! attachment, exactly once however often the timer pass runs in the
//! period and across a restart; a report asked for at `help+report@` is
//! answered to a proven agent and not to a stranger.

mod common;

use std::time::Duration;

use common::*;
use deskgate::mail::parse::parse;

const T: Duration = Duration::from_secs(30);
const AGENT: &str = "alice@desk.test";
const LEAD: &str = "lead@desk.test";
const CAROL: &str = "carol@customer.test";
const EVE: &str = "eve@customer.test";
const REPORT: &str = "help+report@desk.test";
const DKIM: &str = "Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\n";

/// A daily digest at midnight (UTC): the desk has never sent it, so the
/// day that ended at the last midnight is due the moment the daemon runs.
fn config() -> String {
    team_desk()
        .table("[timers]\ncheck_interval = \"300ms\"")
        .agent(AGENT, Some("Alice"), &["it"])
        .team("it", "lead = \"lead@desk.test\"")
        .table("[trust]\nauthserv_ids = [\"mx.desk.test\"]")
        .table(
            r#"
[[digest]]
name = "daily"
to = ["lead:it"]
every = "day 00:00"
by = "team"
"#,
        )
        .render()
}

fn csv_of(m: &deskgate::mail::parse::InboundMail) -> (String, String) {
    assert_eq!(m.attachments.len(), 1, "one CSV attachment");
    let a = &m.attachments[0];
    (a.name.clone(), String::from_utf8(a.bytes.clone()).unwrap())
}

#[tokio::test]
async fn a_digest_arrives_once_and_help_report_answers_agents_only() {
    let servers = MailServers::start(&[HELP, AGENT, LEAD, CAROL, EVE]);
    let imap = servers.imap();
    let mut desk = Deskgate::with_config(&servers, &config());
    desk.start();

    // 1. The digest reaches the lead: the table in the text, the CSV attached.
    let got = imap.wait_for(LEAD, "INBOX", 1, T).await;
    let raw = &got[0];
    assert_eq!(
        header(raw, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    let m = parse(raw).unwrap();
    assert!(m.subject.starts_with("daily: "), "{}", m.subject);
    assert!(m.text.contains("Report by team"), "{}", m.text);
    assert!(m.text.contains("first response median"), "{}", m.text);
    let (name, csv) = csv_of(&m);
    assert!(
        name.starts_with("report-") && name.ends_with(".csv"),
        "{name}"
    );
    assert!(csv.starts_with("group,created,resolved"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("all,")), "{csv}");

    // 2. Many more timer passes in the period, then a restart: still one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(desk.stop());
    desk.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(imap.count(LEAD, "INBOX").await, 1, "exactly once");

    // 3. A ticket, then a stranger's and an agent's request for a report.
    imap.append(
        HELP,
        "INBOX",
        &mail(
            CAROL,
            HELP,
            "VPN down",
            "v1@customer.test",
            "",
            "It is red.",
        ),
    )
    .await;
    desk.wait_tickets(1, T);
    imap.append(
        HELP,
        "INBOX",
        &mail(
            EVE,
            REPORT,
            "numbers",
            "e1@customer.test",
            "",
            "#report last 1d",
        ),
    )
    .await;
    imap.append(
        HELP,
        "INBOX",
        &mail(
            AGENT,
            REPORT,
            "numbers",
            "a1@desk.test",
            DKIM,
            "Hello,\r\n#report last 1d by team",
        ),
    )
    .await;
    // Alice also hears of the new ticket: the answer is her second mail.
    let got = imap.wait_for(AGENT, "INBOX", 2, T).await;
    let answer: Vec<_> = got
        .iter()
        .filter(|m| subject(m).starts_with("Report: "))
        .collect();
    assert_eq!(answer.len(), 1, "one answer");
    let m = parse(answer[0]).unwrap();
    assert_eq!(m.in_reply_to, vec!["a1@desk.test"]);
    assert!(m.text.contains("#report last 1d by team"), "{}", m.text);
    assert!(m.text.contains("Report by team"), "{}", m.text);
    let (_, csv) = csv_of(&m);
    assert!(csv.lines().any(|l| l.starts_with("it,1,")), "{csv}");
    // The stranger's came first and ran nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(imap.count(EVE, "INBOX").await, 0, "no answer to a stranger");
    assert_eq!(desk.tickets().len(), 1, "no ticket from help+report@");
    assert_eq!(imap.count(LEAD, "INBOX").await, 1);
    assert!(desk.stop());
}
