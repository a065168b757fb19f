#![cfg(test)]
//! Engine tests of reports by mail (issue 15 §2): a `[[digest]]` is sent
//! once per period with an injected clock, across a restart, and a missed
//! period is sent once; `help+report@` answers proven agents only.

use super::*;
use crate::desk::recurring_compare::Change;

const DIGESTS: &str = r#"
[[digest]]
name = "weekly"
to = ["lead:it", "boss@desk.test"]
every = "monday 08:00"
by = "agent"
"#;

fn digest_config(dir: &std::path::Path, extra: &str) -> Config {
    let config = it_desk()
        .desk("timezone", "\"Europe/Berlin\"")
        .agent("alice@desk.test", Some("Alice"), &["it"])
        .team("it", "lead = \"lead@desk.test\"")
        .table("[trust]\nauthserv_ids = [\"mx.desk.test\"]")
        .table(extra);
    load_config(dir, &config)
}

fn digest_engine(dir: &std::path::Path, clock: Arc<ManualClock>, extra: &str) -> Engine {
    let cfg = digest_config(dir, extra);
    let mut tries = 0;
    let store = loop {
        match Store::open(&dir.join("state")) {
            Err(StoreError::Locked { .. }) if tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    Engine::new(store, clock, Policy::from_config(&cfg).unwrap())
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn digests(e: &Engine) -> Vec<crate::store::records::OutboxEntry> {
    outbox_of(e, "digest")
}

#[test]
fn a_digest_is_sent_once_per_period_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Monday 30 Nov 2026, 07:59 in Berlin: the week's digest is not due yet,
    // but last week's was never sent (the digest is new): that one goes.
    let clock = Arc::new(ManualClock::new(utc("2026-11-30T06:59:00Z")));
    {
        let e = digest_engine(dir.path(), clock.clone(), DIGESTS);
        e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
            .unwrap();
        assert_eq!(e.run_digests().unwrap(), 2, "the lead and the boss");
        assert_eq!(e.run_digests().unwrap(), 0, "once per period");
        let d = digests(&e);
        assert_eq!(d.len(), 2);
        let mut to: Vec<&str> = d.iter().map(|o| o.recipients[0].as_str()).collect();
        to.sort();
        assert_eq!(to, ["boss@desk.test", "lead@desk.test"]);
        let text = d[0].formatted().unwrap();
        let m = inbound::parse(text.as_bytes()).unwrap();
        assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-generated"));
        assert!(
            m.subject.starts_with("weekly: 2026-11-16 08:00 CET"),
            "{}",
            m.subject
        );
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "report-2026-11-23.csv");
        // 08:00: this week's is due, once.
        clock.set(utc("2026-11-30T07:00:00Z"));
        assert_eq!(e.run_digests().unwrap(), 2);
        assert_eq!(e.run_digests().unwrap(), 0);
        e.store().flush_blocking().unwrap();
    }
    // Restarted within the period: nothing again.
    clock.set(utc("2026-11-30T09:00:00Z"));
    {
        let e = digest_engine(dir.path(), clock.clone(), DIGESTS);
        assert_eq!(e.run_digests().unwrap(), 0, "not again after a restart");
        assert_eq!(digests(&e).len(), 4);
        let week = digests(&e)
            .into_iter()
            .map(|o| inbound::parse(o.formatted().unwrap().as_bytes()).unwrap())
            .filter(|m| {
                m.subject
                    .starts_with("weekly: 2026-11-23 08:00 CET to 2026-11-30 08:00 CET")
            })
            .count();
        assert_eq!(week, 2);
        e.store().flush_blocking().unwrap();
    }
    // Down for three weeks: the latest period only, once.
    clock.set(utc("2026-12-22T10:00:00Z"));
    let e = digest_engine(dir.path(), clock.clone(), DIGESTS);
    assert_eq!(e.run_digests().unwrap(), 2, "one period, not three");
    assert_eq!(e.run_digests().unwrap(), 0);
    let last = digests(&e)
        .into_iter()
        .map(|o| inbound::parse(o.formatted().unwrap().as_bytes()).unwrap())
        .filter(|m| {
            m.subject
                .starts_with("weekly: 2026-12-14 08:00 CET to 2026-12-21 08:00 CET")
        })
        .count();
    assert_eq!(last, 2);
}

#[test]
fn the_digest_shows_the_table_and_the_comparison_and_attaches_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-11-24T09:00:00Z")));
    let e = digest_engine(dir.path(), clock.clone(), DIGESTS);
    e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
        .unwrap();
    e.ingest(&mail("dan@c.test", "Mouse", "m1@c", ""), "it")
        .unwrap();
    clock.set(utc("2026-11-30T07:00:00Z"));
    assert_eq!(e.run_digests().unwrap(), 2);
    let o = digests(&e);
    let text = o[0].formatted().unwrap();
    let m = inbound::parse(text.as_bytes()).unwrap();
    assert!(
        m.text.contains("tickets created 2, last week 0"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("first response median none, last week none"),
        "{}",
        m.text
    );
    assert!(m.text.contains("created"), "the table: {}", m.text);
    assert!(m.text.contains("report-2026-11-30.csv"), "{}", m.text);
    let csv = String::from_utf8(m.attachments[0].bytes.clone()).unwrap();
    assert!(csv.starts_with("group,created,resolved"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("all,2,")), "{csv}");
}

/// A daily digest of the last 7 days' recurring issues for a product team.
const RECURRING_DIGEST: &str = r#"
[[digest]]
name = "product"
to = ["product@desk.test"]
report = "recurring"
every = "day 08:00"
last = "7d"
min = 2
"#;

#[test]
fn a_recurring_digest_lists_the_issues() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-11-28T09:00:00Z")));
    let extra = RECURRING_DIGEST;
    let e = digest_engine(dir.path(), clock.clone(), extra);
    for i in 0..3 {
        e.ingest(
            &mail(
                &format!("u{i}@c.test"),
                "VPN AnyConnect will not connect",
                &format!("r{i}@c"),
                "",
            ),
            "it",
        )
        .unwrap();
    }
    clock.set(utc("2026-11-29T07:30:00Z"));
    assert_eq!(e.run_digests().unwrap(), 1);
    let o = digests(&e);
    let m = inbound::parse(o[0].formatted().unwrap().as_bytes()).unwrap();
    assert!(m.text.contains("recurring issue(s)"), "{}", m.text);
    assert!(m.text.contains("#1000"), "{}", m.text);
    assert_eq!(m.attachments[0].name, "recurring-2026-11-29.csv");
}

/// Tickets in two weeks, the clock left at 29 November 07:30: in the week
/// before (from 16 November) 2 printer and 3 Outlook tickets, in the week
/// of 22–29 November 4 printer and 3 VPN tickets.
fn two_weeks_of_issues(e: &Engine, clock: &ManualClock) {
    let mut n = 0;
    let mut file = |subject: &str, count: usize| {
        for _ in 0..count {
            n += 1;
            let (from, id) = (format!("u{n}@c.test"), format!("r{n}@c"));
            e.ingest(&mail(&from, subject, &id, ""), "it").unwrap();
        }
    };
    file("Printer toner empty", 2);
    file("Outlook crashes on start", 3);
    clock.set(utc("2026-11-24T09:00:00Z"));
    file("Printer toner empty", 4);
    file("VPN AnyConnect will not connect", 3);
    clock.set(utc("2026-11-29T07:30:00Z"));
}

#[test]
fn a_recurring_digest_compares_each_issue_with_the_period_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-11-16T09:00:00Z")));
    let extra = RECURRING_DIGEST;
    let e = digest_engine(dir.path(), clock.clone(), extra);
    // The period before: 16–22 November. This period: 22–29 November.
    two_weeks_of_issues(&e, &clock);
    assert_eq!(e.run_digests().unwrap(), 1);
    let o = digests(&e);
    let m = inbound::parse(o[0].formatted().unwrap().as_bytes()).unwrap();
    let line = |words: &str| {
        m.text
            .lines()
            .find(|l| l.trim_start().starts_with("- ") && l.contains(words))
            .unwrap_or_else(|| panic!("no line with {words}: {}", m.text))
            .trim_start_matches([' ', '-'])
            .to_string()
    };
    assert!(
        m.text.contains("Compared with the period before"),
        "{}",
        m.text
    );
    let printer = line("printer");
    assert!(
        printer.ends_with(": 4 tickets, the 7 days before 2, growing"),
        "{printer}"
    );
    let vpn = line("vpn");
    assert!(
        vpn.ends_with(": 3 tickets, new (none the 7 days before)"),
        "{vpn}"
    );
    let outlook = line("outlook");
    assert!(
        outlook.ends_with(": went away (the 7 days before 3 tickets)"),
        "{outlook}"
    );
    let csv = String::from_utf8(m.attachments[0].bytes.clone()).unwrap();
    let mut rows = csv.lines();
    assert!(
        rows.next()
            .unwrap()
            .ends_with(",ticket_ids,previous_tickets"),
        "{csv}"
    );
    let previous: Vec<(String, String)> = rows
        .map(|r| {
            let cells: Vec<&str> = r.split(',').collect();
            (cells[0].to_string(), cells[cells.len() - 1].to_string())
        })
        .collect();
    assert_eq!(previous.len(), 2, "the issues of this period: {csv}");
    assert!(
        previous[0].0.contains("printer") && previous[0].1 == "2",
        "{csv}"
    );
    assert!(
        previous[1].0.contains("vpn") && previous[1].1 == "0",
        "{csv}"
    );
}

/// `deskgate recurring --last 7d` asks the same comparison as the digest:
/// the 7 days before `--last`, each issue's count, the issues gone.
#[test]
fn the_recurring_query_compares_each_issue_with_the_period_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-11-16T09:00:00Z")));
    let e = digest_engine(dir.path(), clock.clone(), "");
    // The period before: 15–22 November. This period: 22–29 November.
    two_weeks_of_issues(&e, &clock);
    let q = crate::engine::queries::Query::Recurring {
        since_secs: 7 * 86_400,
        min: 3,
    };
    let answer = crate::engine::queries::answer(&e, &q);
    let crate::engine::queries::Answer::Recurring {
        clusters,
        gone,
        since,
        previous_since,
        ..
    } = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(since, utc("2026-11-22T07:30:00Z"));
    assert_eq!(previous_since, utc("2026-11-15T07:30:00Z"));
    let issues: Vec<(usize, usize, Change)> = clusters
        .iter()
        .map(|c| (c.cluster.tickets.len(), c.previous_tickets, c.change))
        .collect();
    assert_eq!(issues, [(4, 2, Change::Growing), (3, 0, Change::New)]);
    assert!(
        clusters[0].cluster.label.contains("printer"),
        "{clusters:?}"
    );
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].label.contains("outlook"), "{gone:?}");
    assert_eq!((gone[0].previous_tickets, gone[0].tickets), (3, 0));
}

fn ask(from: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!("{extra}From: {from}\r\nTo: help+report@desk.test\r\nSubject: numbers?\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n").into_bytes()
}

const DKIM: &str = "Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\n";

#[test]
fn help_report_answers_proven_agents_only_and_explains_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-11-30T09:00:00Z")));
    let e = digest_engine(dir.path(), clock.clone(), "");
    e.ingest(&mail("carol@c.test", "VPN down", "v1@c", ""), "it")
        .unwrap();
    // A stranger, and an agent without proof: nothing runs.
    e.ingest(
        &ask("mallory@evil.test", "q1@evil.test", "", "#report last 7d"),
        "it",
    )
    .unwrap();
    e.ingest(
        &ask("alice@desk.test", "q2@desk.test", "", "#report last 7d"),
        "it",
    )
    .unwrap();
    assert_eq!(e.run_digests().unwrap(), 0);
    assert!(outbox_of(&e, "report").is_empty());
    assert_eq!(e.store().ticket_count(), 1, "no ticket from help+report@");
    // Proven: the report, threaded under the request, with the CSV.
    e.ingest(
        &ask(
            "alice@desk.test",
            "q3@desk.test",
            DKIM,
            "Hi,\r\n#report last 7d by agent\r\n",
        ),
        "it",
    )
    .unwrap();
    assert_eq!(e.run_digests().unwrap(), 1);
    assert_eq!(e.run_digests().unwrap(), 0, "answered once");
    let o = outbox_of(&e, "report");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].recipients[0].as_str(), "alice@desk.test");
    let m = inbound::parse(o[0].formatted().unwrap().as_bytes()).unwrap();
    assert_eq!(m.in_reply_to, vec!["q3@desk.test"]);
    assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
    assert!(m.text.contains("#report last 7d by agent"), "{}", m.text);
    assert!(m.text.contains("Report by agent"), "{}", m.text);
    assert_eq!(m.attachments[0].name, "report-2026-11-30.csv");
    // A bad option: a reply saying what is wrong, no report.
    e.ingest(
        &ask("alice@desk.test", "q4@desk.test", DKIM, "#report last soon"),
        "it",
    )
    .unwrap();
    let err = outbox_of(&e, "report error");
    assert_eq!(err.len(), 1);
    let m = inbound::parse(err[0].formatted().unwrap().as_bytes()).unwrap();
    assert!(
        m.text.contains("\"soon\" is not a length of time"),
        "{}",
        m.text
    );
    assert_eq!(e.run_digests().unwrap(), 0);
    assert_eq!(outbox_of(&e, "report").len(), 1);
}

#[test]
fn digest_config_errors_name_the_key_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x").unwrap();
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let config = it_desk()
        .agent("alice@desk.test", None, &["it"])
        .team("it", "")
        .table(
            r#"
[[digest]]
name = "weekly"
to = ["lead:it", "team:nope", "not an address"]
every = "someday 08:00"
report = "report"
by = "colour"
"#,
        );
    let text = config.render_with(143, 25, &templates);
    let err = Config::from_str_at(&text, &dir.path().join("d.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "digest[0].to",
        "team \"it\" has no lead",
        "there is no team \"nope\"",
        "\"not an address\" is neither an email address",
        "digest[0].every",
        "digest[0].by",
        "\"colour\" is not one of",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
}

#[test]
fn report_requests_past_the_rate_limit_are_not_filed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-11-30T09:00:00Z")));
    let e = digest_engine(
        dir.path(),
        clock.clone(),
        "[limits]\nauto_replies_per_recipient = 1",
    );
    let body = "#report last 7d";
    e.ingest(&ask("alice@desk.test", "l1@desk.test", DKIM, body), "it")
        .unwrap();
    assert_eq!(e.run_digests().unwrap(), 1);
    for i in 2..6 {
        e.ingest(
            &ask("alice@desk.test", &format!("l{i}@desk.test"), DKIM, body),
            "it",
        )
        .unwrap();
    }
    assert!(
        e.store().report_requests(10).unwrap().is_empty(),
        "nothing left for the timer pass to compute"
    );
    assert_eq!(e.run_digests().unwrap(), 0);
    assert_eq!(outbox_of(&e, "report").len(), 1);
}
