//! Report benchmark (not a test): builds a desk of N tickets through the
//! real engine (`Engine::ingest_batch`), a thousand a day, half of them
//! answered, timed (`#time`) and resolved by an agent, one in ten escalated,
//! on an office-hours SLA calendar; then times what a manager and an agent
//! ask of it: `report` over the last 7 and 30 days (all, and by team), over
//! the last whole calendar month, over the whole history, `board`, `tickets
//! next` (the whole desk, and one agent's: `--agent alice@desk.test`) and a
//! `tickets search` that matches nothing (the worst case: every message
//! read).
//!
//! `cargo bench --bench report` (N = 100,000), `DESKGATE_BENCH_TICKETS=N`
//! for another size. Prints a table and writes `target/bench-report.json`.
//!
//! `DESKGATE_BENCH_DIRECT=1` writes the same desk through the store's own
//! transactions instead (`Tx::add_event`, `Tx::put_ticket`: the calls the
//! engine commits a ticket with, so the report facts, their indexes and the
//! per-day open counts are kept exactly as in the daemon), without parsing
//! or storing mail: a 1,000,000-ticket desk builds in minutes instead of
//! most of an hour. Its tickets have no messages, so `tickets search` is
//! not timed then. Its open tickets are assigned in turn to ten agents
//! (alice one of them), so `board --agent` and `tickets next --agent` read
//! a tenth of what is open; the engine path assigns none, so they find
//! nothing there.
//!
//! `DESKGATE_BENCH_KEEP=DIR` (with `DESKGATE_BENCH_DIRECT=1`) keeps the
//! desk in DIR, and a later run with the same DIR times it again without
//! building it: a change to the report code is timed at a million tickets
//! in a minute instead of after four.

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

/// The agent whose board and `tickets next` are timed: one of the ten the
/// direct build assigns the open tickets to.
const AGENT: &str = "alice@desk.test";

/// Who the direct build assigns the open ticket `i` to: ten agents in turn.
fn assignee_of(i: usize) -> String {
    match (i / 2) % 10 {
        0 => AGENT.to_string(),
        k => format!("agent{k}@desk.test"),
    }
}

fn main() {
    let n = env_usize("DESKGATE_BENCH_TICKETS", 100_000);
    let direct = env_usize("DESKGATE_BENCH_DIRECT", 0) != 0;
    // Only the direct desk is kept: the engine path would ingest its mail
    // into the kept store again.
    let kept = std::env::var_os("DESKGATE_BENCH_KEEP")
        .filter(|_| direct)
        .map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let dir_path = kept.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir_path).unwrap();
    // A kept direct desk already written (by an earlier run with the same
    // DESKGATE_BENCH_KEEP) is read as it is: the report can be timed again
    // without building a million tickets again.
    let reuse = kept.is_some() && dir_path.join("built").exists();
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::new(
        Store::open(&dir_path.join("state")).unwrap(),
        clock.clone(),
        policy(&dir_path),
    );
    let body = "The shared printer on the third floor shows error 0x42 again.\r\n".repeat(5);
    let started = Instant::now();
    let mut done = if direct { n } else { 0 };
    if direct {
        if !reuse {
            build_direct(engine.store(), n, t0);
            if kept.is_some() {
                std::fs::write(dir_path.join("built"), b"").unwrap();
            }
        }
        clock.set(t0 + chrono::Duration::days((n / PER_DAY) as i64) + chrono::Duration::hours(12));
    }
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
    let (_, board_agent_t) = time(|| {
        answer(
            &engine,
            &Query::Board {
                team: None,
                agent: Some(AGENT.into()),
            },
        )
    });
    let (_, next_agent_t) = time(|| {
        answer(
            &engine,
            &Query::Next {
                team: None,
                agent: Some(AGENT.into()),
                limit: 20,
            },
        )
    });
    let (_, search_t) = time(|| {
        if direct {
            return None;
        }
        Some(answer(
            &engine,
            &Query::Search {
                text: "no such words anywhere".into(),
                limit: 50,
            },
        ))
    });
    let search_ms = (!direct).then(|| ms(search_t));
    let out = serde_json::json!({
        "tickets": n,
        "built": if direct { "store transactions" } else { "engine" },
        "build_s": build_s,
        "report_last_7_days_ms": ms(report_7),
        "report_last_30_days_ms": ms(report_30),
        "report_last_month_ms": ms(report_month),
        "report_last_30_days_by_team_ms": ms(report_30_team),
        "report_whole_history_by_tier_ms": ms(report_all),
        "board_ms": ms(board_t),
        "tickets_next_ms": ms(next_t),
        "board_agent_ms": ms(board_agent_t),
        "tickets_next_agent_ms": ms(next_agent_t),
        "tickets_search_no_match_ms": search_ms,
    });
    // The issue's target for a report: under a second.
    let verdict = |d: std::time::Duration| {
        if d.as_secs_f64() < 1.0 {
            "met"
        } else {
            "MISSED"
        }
    };
    println!("\n| measure ({n} tickets) | value | target < 1 s |\n|---|---|---|");
    println!("| build | {build_s:.0} s | |");
    for (what, d) in [
        ("report, last 7 days", report_7),
        ("report, last 30 days", report_30),
        ("report, last calendar month", report_month),
        ("report, last 30 days, by team", report_30_team),
        ("report, whole history, by tier", report_all),
    ] {
        println!("| {what} | {:.0} ms | {} |", ms(d), verdict(d));
    }
    println!("| board | {:.0} ms | |", ms(board_t));
    println!("| tickets next | {:.0} ms | |", ms(next_t));
    println!("| board --agent {AGENT} | {:.0} ms | |", ms(board_agent_t));
    println!(
        "| tickets next --agent {AGENT} | {:.0} ms | |",
        ms(next_agent_t)
    );
    match search_ms {
        Some(t) => println!("| tickets search (no match) | {t:.0} ms | |"),
        None => println!("| tickets search (no match) | not timed: no messages | |"),
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
}

/// The desk the engine path builds (a thousand tickets a day, every other
/// one answered after 3 hours with 20 minutes booked and resolved, one in
/// ten escalated with 5 minutes booked), written ticket by ticket through
/// the store's transactions, a day per transaction.
fn build_direct(store: &Store, n: usize, t0: DateTime<Utc>) {
    use deskgate::mail::address::{EmailAddress, Party};
    use deskgate::store::records::{Effort, Event, EventKind, Status, Ticket};
    let started = Instant::now();
    for day in 0..n.div_ceil(PER_DAY) {
        store
            .transact(|tx| {
                for i in day * PER_DAY..((day + 1) * PER_DAY).min(n) {
                    let created = t0
                        + chrono::Duration::days(day as i64)
                        + chrono::Duration::seconds((i % PER_DAY) as i64 * 30);
                    let requester = Party {
                        name: None,
                        address: EmailAddress::parse(&format!(
                            "user{}@c{}.example",
                            i % 5000,
                            i % 50
                        ))
                        .expect("a valid address"),
                    };
                    let mut t = Ticket::new(
                        1000 + i as u64,
                        format!("Printer problem {i}"),
                        requester,
                        "it",
                        created,
                    );
                    t.team = Some("it".into());
                    t.sla = Some("standard".into());
                    if i % 2 == 1 {
                        t.assignee = Some(assignee_of(i));
                    }
                    let event = |at, kind| Event {
                        at,
                        actor: "alice@desk.test".into(),
                        kind,
                    };
                    tx.add_event(
                        &mut t,
                        &event(
                            created,
                            EventKind::Created {
                                mailbox: "it".into(),
                            },
                        ),
                    )?;
                    tx.put_ticket(&t)?;
                    let at = created + chrono::Duration::hours(3);
                    let book = |t: &mut Ticket, minutes| {
                        t.effort.push(Effort {
                            agent: "alice@desk.test".into(),
                            minutes,
                            at,
                        });
                        EventKind::EffortLogged { minutes }
                    };
                    let mut changes = Vec::new();
                    if i % 2 == 0 {
                        changes.push(book(&mut t, 20));
                        changes.push(EventKind::ReplyRelayed { to: vec![] });
                        changes.push(EventKind::StatusChanged {
                            from: Status::New,
                            to: Status::Resolved,
                            reason: "agent".into(),
                        });
                        t.first_response_at = Some(at);
                        t.resolved_at = Some(at);
                        t.status = Status::Resolved;
                    } else if i % 10 == 1 {
                        changes.push(book(&mut t, 5));
                        changes.push(EventKind::Escalated {
                            from_team: Some("it".into()),
                            to_team: "it-l2".into(),
                            reason: "agent".into(),
                        });
                        t.team = Some("it-l2".into());
                    }
                    if !changes.is_empty() {
                        for kind in changes {
                            tx.add_event(&mut t, &event(at, kind))?;
                        }
                        t.updated_at = at;
                        tx.put_ticket(&t)?;
                    }
                }
                Ok(())
            })
            .expect("the bench's desk is written");
        let done = ((day + 1) * PER_DAY).min(n);
        if done % (n / 10).max(PER_DAY) < PER_DAY {
            eprintln!(
                "{done} tickets written directly ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    store.flush_blocking().expect("the bench's desk is flushed");
}

fn clock_now(e: &Engine) -> DateTime<Utc> {
    e.now()
}
