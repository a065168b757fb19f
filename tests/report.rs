//! Reports, the board, `tickets next` and `tickets search` against a desk
//! with a known week (tests/fixtures/report/): every figure is compared with
//! the one worked out by hand in tests/fixtures/report/expected.md. The
//! store is built through the real engine on a manual clock; no mail
//! crosses a wire, so no servers are needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deskgate::config::Config;
use deskgate::desk::policy::Policy;
use deskgate::desk::report::{Filter, GroupBy, Report, Spec};
use deskgate::desk::sla::Target;
use deskgate::engine::clock::ManualClock;
use deskgate::engine::queries::{answer, Answer, Query};
use deskgate::engine::Engine;
use deskgate::store::Store;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

/// The fixture desk with its store in `dir`, written as `dir/desk.toml`.
fn config(dir: &Path) -> Config {
    let text = std::fs::read_to_string(fixtures().join("desk.toml"))
        .unwrap()
        .replace(
            "storage = \"state\"",
            &format!("storage = {:?}", dir.join("state").display().to_string()),
        )
        .replace(
            "templates = \"../../../templates\"",
            &format!(
                "templates = {:?}",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("templates")
                    .display()
                    .to_string()
            ),
        );
    std::fs::write(dir.join("pw"), "x").unwrap();
    std::fs::write(dir.join("desk.toml"), &text).unwrap();
    Config::from_str_at(&text, &dir.join("desk.toml")).unwrap()
}

fn requester(from: &str, subject: &str, id: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: help@desk.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n").into_bytes()
}

/// An agent's mail, proven by a DKIM pass the desk trusts.
fn agent(from: &str, ticket: u64, id: &str, body: &str) -> Vec<u8> {
    format!("Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\nFrom: {from}\r\nTo: help@desk.test\r\nSubject: Re: [#{ticket}] x\r\nMessage-ID: <{id}>\r\n\r\n{}\r\n", body.replace('\n', "\r\n")).into_bytes()
}

/// The week of expected.md, through the engine.
fn build(dir: &Path) -> Engine {
    let cfg = config(dir);
    let clock = Arc::new(ManualClock::new(utc("2026-02-20T10:00:00Z")));
    let e = Engine::new(
        Store::open(&cfg.desk.storage).unwrap(),
        clock.clone(),
        Policy::from_config(&cfg).unwrap(),
    );
    let at = |t: &str| clock.set(utc(t));
    let mail = |raw: Vec<u8>, mailbox: &str| {
        e.ingest(&raw, mailbox).unwrap();
    };
    mail(
        requester("old@gamma.test", "Old issue", "r0@g", "still?"),
        "it",
    );
    at("2026-03-02T09:00:00Z");
    mail(
        requester(
            "Carol <carol@alpha.test>",
            "Printer",
            "r1@a",
            "The printer jams on page two.",
        ),
        "it",
    );
    at("2026-03-02T10:00:00Z");
    mail(
        agent(
            "alice@desk.test",
            1001,
            "a1@d",
            "#assign alice@desk.test\n#time 30m\n\nPlease try again.",
        ),
        "it",
    );
    at("2026-03-02T16:00:00Z");
    mail(
        requester("dan@beta.test", "VPN down", "r2@b", "No tunnel since noon."),
        "it",
    );
    at("2026-03-03T09:00:00Z");
    mail(
        requester(
            "frank@alpha.test",
            "Invoice copy",
            "r3@a",
            "Please send a copy.",
        ),
        "billing",
    );
    at("2026-03-03T09:30:00Z");
    mail(
        agent(
            "gina@desk.test",
            1003,
            "g1@d",
            "#tag invoice\n#time 10m\n#status closed\nAttached.",
        ),
        "billing",
    );
    mail(
        agent("alice@desk.test", 1002, "a2@d", "#escalate\n#time 1h"),
        "it",
    );
    at("2026-03-03T10:00:00Z");
    mail(
        agent(
            "bob@desk.test",
            1002,
            "b1@d",
            "#priority high\nWe are on it.",
        ),
        "it",
    );
    at("2026-03-03T11:00:00Z");
    mail(
        agent(
            "alice@desk.test",
            1001,
            "a3@d",
            "#status resolved\n#time 15m\nFixed.",
        ),
        "it",
    );
    at("2026-03-03T14:00:00Z");
    mail(
        agent(
            "bob@desk.test",
            1002,
            "b2@d",
            "#status waiting\nPlease send logs.",
        ),
        "it",
    );
    at("2026-03-04T09:00:00Z");
    mail(
        requester(
            "carol@alpha.test",
            "Re: [#1001] Printer",
            "r4@a",
            "Still broken.",
        ),
        "it",
    );
    at("2026-03-04T10:00:00Z");
    mail(
        requester(
            "dan@beta.test",
            "Re: [#1002] VPN down",
            "r5@b",
            "Logs attached.",
        ),
        "it",
    );
    at("2026-03-04T11:00:00Z");
    mail(
        agent("bob@desk.test", 1002, "b3@d", "#escalate\n#time 45m"),
        "it",
    );
    at("2026-03-04T12:00:00Z");
    mail(
        requester("dan@beta.test", "New laptop", "r6@b", "Mine is slow."),
        "it",
    );
    at("2026-03-04T15:00:00Z");
    mail(
        agent(
            "erin@desk.test",
            1002,
            "e1@d",
            "#status resolved\n#time 2h\nReplaced the certificate.",
        ),
        "it",
    );
    at("2026-03-06T16:30:00Z");
    mail(
        requester("hank@beta.test", "Password reset", "r7@b", "Locked out."),
        "it",
    );
    at("2026-03-09T10:00:00Z");
    mail(
        requester("ivy@delta.test", "After the period", "r8@d", "Later."),
        "it",
    );
    mail(
        agent("alice@desk.test", 1005, "a4@d", "Try the reset link."),
        "it",
    );
    e
}

fn week(by: Option<GroupBy>) -> Spec {
    Spec {
        since: utc("2026-03-02T00:00:00Z"),
        until: utc("2026-03-09T00:00:00Z"),
        by,
        filter: Filter::default(),
    }
}

fn report(e: &Engine, spec: Spec) -> Report {
    match answer(e, &Query::Report { spec }) {
        Answer::Report { report } => *report,
        other => panic!("{other:?}"),
    }
}

const H: i64 = 3600;

#[test]
fn every_figure_matches_the_hand_computed_week() {
    let dir = tempfile::tempdir().unwrap();
    let e = build(dir.path());
    let r = report(&e, week(None));
    let g = &r.total;
    assert_eq!((g.created, g.resolved, g.closed, g.reopened), (5, 3, 1, 1));
    assert_eq!(g.reopen_rate, Some(1.0 / 3.0));
    assert_eq!(g.backlog, 4);
    assert_eq!(g.backlog_age, [0, 1, 2, 1, 0]);

    let fr = &g.first_response;
    assert_eq!(fr.business.count, 3);
    assert_eq!(
        (
            fr.business.median_secs,
            fr.business.p90_secs,
            fr.business.mean_secs
        ),
        (Some(H), Some(2 * H), Some(4200))
    );
    assert_eq!(
        (fr.wall.median_secs, fr.wall.p90_secs, fr.wall.mean_secs),
        (Some(H), Some(18 * H), Some(23400))
    );
    let res = &g.resolution;
    assert_eq!(res.business.count, 3);
    assert_eq!(
        (
            res.business.median_secs,
            res.business.p90_secs,
            res.business.mean_secs
        ),
        (Some(10 * H), Some(11 * H), Some(25800))
    );
    assert_eq!(
        (res.wall.median_secs, res.wall.p90_secs, res.wall.mean_secs),
        (Some(26 * H), Some(47 * H), Some(88200))
    );

    let sla: Vec<_> = g
        .sla
        .iter()
        .map(|s| (s.target, s.met, s.breached, s.running, s.share_met))
        .collect();
    assert_eq!(
        sla,
        [
            (Target::FirstResponse, 3, 1, 1, Some(0.75)),
            (Target::Resolution, 1, 3, 1, Some(0.25)),
        ]
    );

    let esc: Vec<_> = r
        .escalations
        .iter()
        .map(|x| (x.transition.as_str(), x.count, x.reasons.clone()))
        .collect();
    assert_eq!(
        esc,
        [
            (
                "L1->L2",
                1,
                vec![("#escalate by alice@desk.test".to_string(), 1)]
            ),
            (
                "L2->L3",
                1,
                vec![("#escalate by bob@desk.test".to_string(), 1)]
            ),
        ]
    );

    let eff = &r.effort;
    let keys = |v: &[deskgate::desk::report::Share]| -> Vec<(String, u64)> {
        v.iter().map(|s| (s.key.clone(), s.minutes)).collect()
    };
    let kv = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, m)| (k.to_string(), *m)).collect()
    };
    assert_eq!(eff.total_minutes, 280);
    assert_eq!(
        keys(&eff.by_agent),
        kv(&[
            ("erin@desk.test", 120),
            ("alice@desk.test", 105),
            ("bob@desk.test", 45),
            ("gina@desk.test", 10)
        ])
    );
    assert_eq!(
        keys(&eff.by_team),
        kv(&[("it-l3", 225), ("it", 45), ("billing", 10)])
    );
    assert_eq!(keys(&eff.by_tier), kv(&[("L3", 225), ("L1", 55)]));
    assert_eq!(keys(&eff.by_tag), kv(&[("-", 270), ("invoice", 10)]));
    assert_eq!(
        keys(&eff.by_ticket),
        kv(&[("#1002", 225), ("#1001", 45), ("#1003", 10)])
    );
    assert_eq!(eff.by_team[0].share, 225.0 / 280.0);
    assert_eq!(g.effort_minutes, 280);
}

#[test]
fn groups_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let e = build(dir.path());
    let r = report(&e, week(Some(GroupBy::Team)));
    let rows: Vec<_> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.key.as_str(),
                g.created,
                g.resolved,
                g.closed,
                g.reopened,
                g.backlog,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("billing", 1, 1, 1, 0, 0),
            ("it", 3, 1, 0, 1, 4),
            ("it-l3", 1, 1, 0, 0, 0)
        ]
    );
    let r = report(&e, week(Some(GroupBy::Queue)));
    let rows: Vec<_> = r
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.created))
        .collect();
    assert_eq!(rows, [("billing", 1), ("it", 4)]);
    let r = report(&e, week(Some(GroupBy::Domain)));
    let rows: Vec<_> = r
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.created))
        .collect();
    assert_eq!(
        rows,
        [("alpha.test", 2), ("beta.test", 3), ("gamma.test", 0)]
    );
    let mut spec = week(None);
    spec.filter.agent = Some("ALICE@desk.test".into());
    let r = report(&e, spec);
    assert_eq!(
        (r.total.created, r.total.resolved, r.total.reopened),
        (1, 1, 1)
    );
    assert_eq!(r.effort.total_minutes, 45, "only #1001's time");
    let mut spec = week(None);
    spec.filter.tag = Some("invoice".into());
    assert_eq!(report(&e, spec).total.closed, 1);
}

fn deskgate(dir: &Path, args: &[&str]) -> Output {
    // sled lets go of the store a moment after the engine is dropped.
    for _ in 0..100 {
        let o = Command::new(env!("CARGO_BIN_EXE_deskgate"))
            .arg("-c")
            .arg(dir.join("desk.toml"))
            .args(args)
            .output()
            .expect("run deskgate");
        if o.status.success() || !String::from_utf8_lossy(&o.stderr).contains("lock") {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the store stayed locked");
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_command_line_shows_the_report_board_next_and_search() {
    let dir = tempfile::tempdir().unwrap();
    drop(build(dir.path()));

    // Dates are read in the desk's zone (Berlin): the week starts at 23:00 UTC
    // on Sunday, which changes nothing here, and shows as local time.
    let text = ok(&deskgate(
        dir.path(),
        &[
            "report",
            "--since",
            "2026-03-02",
            "--until",
            "2026-03-09",
            "--by",
            "team",
        ],
    ));
    assert!(
        text.contains("2026-03-02 00:00 CET to 2026-03-09 00:00 CET (7d)"),
        "{text}"
    );
    assert!(text.contains("│ it-l3 "), "{text}");
    assert!(text.contains("first response, business"), "{text}");
    assert!(
        text.contains("26h") || text.contains("1d 2h"),
        "durations read as such: {text}"
    );
    assert!(text.contains("L1->L2"), "{text}");
    assert!(text.contains("4h 40m"), "280 minutes of effort: {text}");

    let csv = ok(&deskgate(
        dir.path(),
        &[
            "report",
            "--since",
            "2026-03-02",
            "--until",
            "2026-03-09",
            "--csv",
        ],
    ));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let all: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| all[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("group"), "all");
    assert_eq!(
        (col("created"), col("resolved"), col("backlog")),
        ("5", "3", "4")
    );
    assert_eq!(col("resolution_business_median_secs"), "36000");
    assert_eq!(col("sla_first_response_share_met"), "0.7500");

    let json = ok(&deskgate(
        dir.path(),
        &["report", "--month", "2026-03", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["since"], "2026-02-28T23:00:00Z", "RFC 3339 UTC: {json}");
    assert_eq!(v["total"]["created"], 6);

    let board = ok(&deskgate(dir.path(), &["board", "--team", "it"]));
    assert!(board.contains("Follow-up (1), oldest #1001"), "{board}");
    assert!(board.contains("New (3), oldest #1000"), "{board}");
    assert!(board.contains("Open (1), oldest #1005"), "{board}");
    let json = ok(&deskgate(dir.path(), &["board", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["lanes"].as_array().unwrap().len(), 6);

    let next = ok(&deskgate(dir.path(), &["tickets", "next", "--team", "it"]));
    let order: Vec<&str> = next
        .lines()
        .filter_map(|l| l.split('#').nth(1))
        .map(|s| s.split_whitespace().next().unwrap())
        .collect();
    // Earliest due first: #1000 first response (Feb 20 14:00), #1001
    // resolution (Mar 3 17:00), #1004 first response (Mar 4 16:00), #1006
    // first response (Mar 9 14:00), #1005 resolution (Mar 10 16:30).
    assert_eq!(order, ["1000", "1001", "1004", "1006", "1005"], "{next}");

    let found = ok(&deskgate(dir.path(), &["tickets", "search", "PAGE TWO"]));
    assert!(found.contains("#1001"), "{found}");
    assert!(
        found.contains("in a message: The printer jams on page two."),
        "{found}"
    );
    let found = ok(&deskgate(
        dir.path(),
        &["tickets", "search", "beta.test", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&found).unwrap();
    let ids: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1005, 1004, 1002]);
}
