//! `tickets list` filters at scale (not a test): builds a desk of N tickets
//! through the real engine (`Engine::ingest_batch`, as benches/store.rs
//! does; 1 mail in 100 from vip.example, which a rule files under team
//! `vip` with tag `vip`), then times the first page of each filter, read
//! from the list index, against the walk a filter cost before it (every
//! ticket newest first, decoded and tested).
//!
//! `cargo bench --bench list` (N = 100,000; `DESKGATE_BENCH_TICKETS` for
//! another N). Prints a table; writes `target/bench-list.json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{env_usize, ms};
use deskgate::desk::policy::Policy;
use deskgate::engine::clock::ManualClock;
use deskgate::engine::queries::{answer, Answer, Query, TicketQuery};
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
[[mailbox]]
name = "help"
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
[[team]]
name = "it"
[[team]]
name = "vip"
[[rule]]
name = "VIP"
[[rule.when]]
field = "from_domain"
equals = "vip.example"
[rule.set]
team = "vip"
tags = ["vip"]
"#,
        templates.display()
    );
    std::fs::write(dir.join("pw"), "x").unwrap();
    let cfg = deskgate::config::Config::from_str_at(&text, &dir.join("d.toml")).unwrap();
    Policy::from_config(&cfg).unwrap()
}

/// The best of 5 runs: the page and its time.
fn best(engine: &Engine, q: &TicketQuery) -> (usize, Duration) {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let a = answer(engine, &Query::ListPage(q.clone()));
        times.push(t.elapsed());
        match a {
            Answer::Tickets { tickets, .. } => found = tickets.len(),
            other => panic!("{other:?}"),
        }
    }
    (found, times.into_iter().min().unwrap_or_default())
}

fn main() {
    let n = env_usize("DESKGATE_BENCH_TICKETS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::new(
        Store::open(&state).unwrap(),
        clock.clone(),
        policy(dir.path()),
    );
    let build = Instant::now();
    let batch = 500;
    let mut done = 0;
    while done < n {
        let mails: Vec<Vec<u8>> = (done..(done + batch).min(n))
            .map(|i| {
                let domain = if i % 100 == 7 { "vip.example" } else { "outside.example" };
                format!(
                    "From: user{}@{domain}\r\nTo: help@desk.test\r\nSubject: Printer problem {i}\r\nMessage-ID: <l{i}@outside.example>\r\n\r\nThe printer shows error 0x42 again.\r\n",
                    i % 5000
                )
                .into_bytes()
            })
            .collect();
        let raws: Vec<&[u8]> = mails.iter().map(|m| m.as_slice()).collect();
        engine.ingest_batch(&raws, "help").unwrap();
        done += raws.len();
        // A minute per batch: --since has something to bound.
        clock.advance(chrono::Duration::minutes(1));
    }
    engine.store().flush_blocking().unwrap();
    let build_s = build.elapsed().as_secs_f64();
    eprintln!("{n} tickets in {build_s:.0} s");

    let page = |f: &dyn Fn(&mut TicketQuery)| {
        let mut q = TicketQuery {
            limit: Some(50),
            ..TicketQuery::default()
        };
        f(&mut q);
        q
    };
    let cases: Vec<(&str, TicketQuery)> = vec![
        ("no filter", page(&|_| {})),
        (
            "--status new",
            page(&|q| q.status = Some(deskgate::store::records::Status::New)),
        ),
        ("--team vip (1%)", page(&|q| q.team = Some("vip".into()))),
        (
            "--requester (1 ticket in 5,000)",
            page(&|q| q.requester = Some("user8@outside.example".into())),
        ),
        (
            "--team vip --requester (1% and 1 in 5,000)",
            page(&|q| {
                q.team = Some("vip".into());
                q.requester = Some("user7@vip.example".into());
            }),
        ),
        (
            "--team it --tag vip (99% and 1%, none match)",
            page(&|q| {
                q.team = Some("it".into());
                q.tag = Some("vip".into());
            }),
        ),
        (
            "--since 10m (5,000 match)",
            page(&move |q| {
                q.since = Some(t0 + chrono::Duration::minutes((n / 500) as i64 - 10));
            }),
        ),
    ];
    println!("\n| first page of 50 ({n} tickets) | found | time |\n|---|---|---|");
    let mut rows = Vec::new();
    for (name, q) in &cases {
        let (found, t) = best(&engine, q);
        rows.push(serde_json::json!({"filter": name, "found": found, "ms": ms(t)}));
        println!("| {name} | {found} | {:.2} ms |", ms(t));
    }
    // The walk a requester filter was before the index: every ticket,
    // newest first, decoded and tested until the page is full.
    let scan = Instant::now();
    let found = engine
        .store()
        .tickets_newest_first()
        .map(|t| t.unwrap())
        .filter(|t| t.requester.address.as_str() == "user8@outside.example")
        .take(50)
        .count();
    let scan_ms = ms(scan.elapsed());
    println!("| before: --requester as a walk of every ticket | {found} | {scan_ms:.1} ms |");
    let report = serde_json::json!({
        "tickets": n,
        "build_s": build_s,
        "pages": rows,
        "requester_walk_before_ms": scan_ms,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-list.json");
    let _ = std::fs::write(out, serde_json::to_string_pretty(&report).unwrap());
}
