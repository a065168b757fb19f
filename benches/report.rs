//! Report benchmark (not a test): builds a desk of N tickets through the
//! real engine (`Engine::ingest_batch`), a thousand a day, half of them
//! answered, timed (`#time`) and resolved by an agent, one in ten escalated,
//! on an office-hours SLA calendar; then times what a manager and an agent
//! ask of it: `report` over the last 7 and 30 days (all, and by team), over
//! the last whole calendar month, over the whole history, `board`, `tickets
//! next` and a `tickets search` that matches nothing (the worst case: every
//! message read).
//!
//! `cargo bench --bench report` (N = 100,000), `DESKGATE_BENCH_TICKETS=N`
//! for another size. Prints a table and writes `target/bench-report.json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Datelike, Utc};
use common::{env_usize, ms, time};
use deskgate::desk::policy::Policy;
use deskgate::desk::report::{Filter, GroupBy, Spec};
use deskgate::engine::clock::ManualClock;
use deskgate::engine::queries::{answer, Answer, Query};
use deskgate::engine::Engine;
use deskgate::store::Store;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn policy(dir: &std::path::Path) -> Policy {
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let text = format!(
        r#"
[desk]
address = "help@desk.test"
storage = "state"
templates = "{}"
default_sla = "standard"
[[mailbox]]
name = "it"
host = "127.0.0.1"
tls = "none"
user = "help@desk.test"
password_file = "pw"
default_team = "it"
[smtp]
host = "127.0.0.1"
tls = "none"
[limits]
auto_replies_per_recipient = 1000000
[trust]
authserv_ids = ["mx.desk.test"]
[[agent]]
address = "alice@desk.test"
teams = ["it"]
[[agent]]
address = "bob@desk.test"
teams = ["it-l2"]
[[team]]
name = "it"
tier = "L1"
escalates_to = "it-l2"
[[team]]
name = "it-l2"
tier = "L2"
[[calendar]]
name = "office"
timezone = "Europe/Berlin"
weekdays = "09:00-17:00"
[[sla]]
name = "standard"
calendar = "office"
first_response = {{ normal = "4h" }}
resolution = {{ normal = "5d" }}
"#,
        templates.display()
    );
    std::fs::write(dir.join("pw"), "x").unwrap();
    let cfg = deskgate::config::Config::from_str_at(&text, &dir.join("d.toml")).unwrap();
    Policy::from_config(&cfg).unwrap()
}

const PER_DAY: usize = 1000;

fn main() {
    let n = env_usize("DESKGATE_BENCH_TICKETS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::new(
        Store::open(&dir.path().join("state")).unwrap(),
        clock.clone(),
        policy(dir.path()),
    );
    let body = "The shared printer on the third floor shows error 0x42 again.\r\n".repeat(5);
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let day = (done / PER_DAY) as i64;
        let batch: Vec<usize> = (done..(done + 500).min(n)).collect();
        clock.set(
            t0 + chrono::Duration::days(day)
                + chrono::Duration::seconds((done % PER_DAY) as i64 * 30),
        );
        let mails: Vec<Vec<u8>> = batch
            .iter()
            .map(|i| format!("From: user{}@c{}.example\r\nTo: help@desk.test\r\nSubject: Printer problem {i}\r\nMessage-ID: <s{i}@outside.example>\r\n\r\n{body}", i % 5000, i % 50).into_bytes())
            .collect();
        let raws: Vec<&[u8]> = mails.iter().map(|m| m.as_slice()).collect();
        engine.ingest_batch(&raws, "it").unwrap();
        clock.set(clock_now(&engine) + chrono::Duration::hours(3));
        let replies: Vec<Vec<u8>> = batch
            .iter()
            .filter(|i| *i % 2 == 0 || *i % 10 == 1)
            .map(|&i| {
                let id = 1000 + i;
                let body = if i % 10 == 1 {
                    "#escalate\r\n#time 5m"
                } else {
                    "#time 20m\r\n#status resolved\r\nDone, it prints again."
                };
                format!("Authentication-Results: mx.desk.test; dkim=pass header.d=desk.test\r\nFrom: alice@desk.test\r\nTo: help@desk.test\r\nSubject: Re: [#{id}] x\r\nMessage-ID: <a{i}@desk.test>\r\n\r\n{body}\r\n").into_bytes()
            })
            .collect();
        let raws: Vec<&[u8]> = replies.iter().map(|m| m.as_slice()).collect();
        engine.ingest_batch(&raws, "it").unwrap();
        done += batch.len();
        if done % (n / 10).max(1) < 500 {
            eprintln!("{done} tickets ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    engine.store().flush_blocking().unwrap();
    let build_s = started.elapsed().as_secs_f64();
    let now = clock_now(&engine);
    let spec = |since: DateTime<Utc>, by| Query::Report {
        spec: Spec {
            since,
            until: now,
            by,
            filter: Filter::default(),
        },
    };
    let last30 = now - chrono::Duration::days(30);
    let last7 = now - chrono::Duration::days(7);
    let (_, report_7) = time(|| answer(&engine, &spec(last7, None)));
    // The last whole calendar month before now.
    let month_end = now.date_naive().with_day(1).unwrap();
    let month_start = month_end.pred_opt().unwrap().with_day(1).unwrap();
    let month = Query::Report {
        spec: Spec {
            since: month_start.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            until: month_end.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            by: None,
            filter: Filter::default(),
        },
    };
    let (_, report_month) = time(|| answer(&engine, &month));
    let (r, report_30) = time(|| answer(&engine, &spec(last30, None)));
    let Answer::Report { report } = r else {
        panic!("{r:?}")
    };
    assert!(report.total.created > 0);
    let (_, report_30_team) = time(|| answer(&engine, &spec(last30, Some(GroupBy::Team))));
    let (r, report_all) = time(|| answer(&engine, &spec(t0, Some(GroupBy::Tier))));
    let Answer::Report { report: all } = r else {
        panic!("{r:?}")
    };
    assert_eq!(all.total.created as usize, n);
    let (_, board_t) = time(|| {
        answer(
            &engine,
            &Query::Board {
                team: None,
                agent: None,
            },
        )
    });
    let (_, next_t) = time(|| {
        answer(
            &engine,
            &Query::Next {
                team: None,
                agent: None,
                limit: 20,
            },
        )
    });
    let (_, search_t) = time(|| {
        answer(
            &engine,
            &Query::Search {
                text: "no such words anywhere".into(),
                limit: 50,
            },
        )
    });
    let out = serde_json::json!({
        "tickets": n,
        "build_s": build_s,
        "report_last_7_days_ms": ms(report_7),
        "report_last_30_days_ms": ms(report_30),
        "report_last_month_ms": ms(report_month),
        "report_last_30_days_by_team_ms": ms(report_30_team),
        "report_whole_history_by_tier_ms": ms(report_all),
        "board_ms": ms(board_t),
        "tickets_next_ms": ms(next_t),
        "tickets_search_no_match_ms": ms(search_t),
    });
    println!("\n| measure ({n} tickets) | value |\n|---|---|");
    println!("| build | {build_s:.0} s |");
    println!("| report, last 7 days | {:.0} ms |", ms(report_7));
    println!("| report, last 30 days | {:.0} ms |", ms(report_30));
    println!(
        "| report, last calendar month | {:.0} ms |",
        ms(report_month)
    );
    println!(
        "| report, last 30 days, by team | {:.0} ms |",
        ms(report_30_team)
    );
    println!(
        "| report, whole history, by tier | {:.0} ms |",
        ms(report_all)
    );
    println!("| board | {:.0} ms |", ms(board_t));
    println!("| tickets next | {:.0} ms |", ms(next_t));
    println!("| tickets search (no match) | {:.0} ms |", ms(search_t));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
}

fn clock_now(e: &Engine) -> DateTime<Utc> {
    e.now()
}
