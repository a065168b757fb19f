//! Store benchmark at scale (not a test): builds a desk of N tickets through
//! the real engine (no IMAP: `Engine::ingest_batch` on ~1.8 KB mails, each
//! with its acknowledgement queued), then times what an admin and the
//! daemon do on it.
//!
//! `cargo bench --bench store` (N = 100,000), `DESKGATE_BENCH_TICKETS=1000000`
//! for a million. `DESKGATE_BENCH_SENDERS` (default 5,000) is how many
//! addresses write: few senders under raised limits is the case where a
//! per-recipient history would grow with every mail. `DESKGATE_BENCH_CACHE_MIB`
//! sets sled's cache (default: the daemon's default); `DESKGATE_BENCH_DIR`
//! where the store is built (default: the system's temporary folder). Reports, as a table and in `target/bench-store.json`:
//! the build rate at the start and at the end (does ingest slow as the desk
//! grows?), `tickets list` first page, `tickets show`, `stats`, a timer pass
//! with 100 tickets due, reopening the store (start to ready), the store's
//! size on disk against the raw mail it holds, and peak RSS. Each figure is
//! printed against its target (issue #13), with the load average (the
//! machine is shared). Idle RSS and a cold start are measured in a fresh
//! process (this binary again, with `DESKGATE_BENCH_IDLE_STATE` set), which
//! opens the built store, answers a list, a show and stats, and reports.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use common::{env_usize, ms, time};
use deskgate::desk::policy::Policy;
use deskgate::engine::clock::ManualClock;
use deskgate::engine::queries::{answer, Answer, Query};
use deskgate::engine::Engine;
use deskgate::store::{Store, StoreOptions};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

/// CPU seconds this process has used (all threads): on a machine shared
/// with other builds, CPU per mail says more than mails per second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// "met" or "MISSED", for a figure against its target.
fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The child process: opens the store at `state`, answers what an admin
/// asks first, and prints `open_ms list_ms show_ms stats_ms rss_mib`.
fn idle_child(state: &std::path::Path, n: usize, options: StoreOptions) {
    let dir = state.parent().unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (engine, open) = time(|| {
        let store = Store::open_with(state, options).unwrap();
        Engine::new(store, clock, policy(dir))
    });
    let list = Query::ListTickets {
        status: None,
        overdue: false,
        due_within_secs: None,
        limit: Some(50),
    };
    let (_, list_t) = time(|| answer(&engine, &list));
    let (_, show_t) = time(|| {
        answer(
            &engine,
            &Query::ShowTicket {
                id: 1000 + n as u64 / 3,
            },
        )
    });
    let (_, stats_t) = time(|| answer(&engine, &Query::Stats));
    // Idle: what stays resident once the first answers are given.
    std::thread::sleep(std::time::Duration::from_millis(500));
    println!(
        "{:.1} {:.2} {:.2} {:.3} {}",
        ms(open),
        ms(list_t),
        ms(show_t),
        ms(stats_t),
        status_mib("VmRSS:")
    );
}

/// Runs [`idle_child`] in a fresh process: (open, list, show, stats ms; RSS MiB).
fn idle_figures(state: &std::path::Path) -> Option<(f64, f64, f64, f64, u64)> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env("DESKGATE_BENCH_IDLE_STATE", state)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    Some((
        f.first()?.parse().ok()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
        f.get(4)?.parse().ok()?,
    ))
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().map(|m| m.len()).unwrap_or(0);
                    if e.path().is_dir() {
                        dir_size(&e.path())
                    } else {
                        m
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Table names by number (`src/store/layout.rs`), for the size report.
const TABLES: &[&str] = &[
    "Meta",
    "Tickets",
    "Messages",
    "Events",
    "MessageIds",
    "Dedupe",
    "Outbox",
    "Deliveries",
    "Raw",
    "Blobs",
    "Quarantine",
    "Checkpoints",
    "OutboxDue",
    "Addresses",
    "AutoSent",
    "Ignored",
    "SentIds",
    "TimerDue",
    "TimerOf",
    "Attempts",
    "OutboxInDoubt",
    "TicketIndex",
    "ReportFacts",
    "Digests",
    "ReportIndex",
];

/// About `len` bytes of lines of words drawn at random (seeded by `seed`).
fn varied_body(seed: u64, len: usize) -> String {
    const WORDS: &[&str] = &[
        "printer",
        "error",
        "update",
        "floor",
        "again",
        "shows",
        "network",
        "cannot",
        "login",
        "since",
        "yesterday",
        "please",
        "help",
        "the",
        "a",
        "with",
        "after",
        "restart",
        "driver",
        "queue",
        "paper",
        "jam",
        "tray",
        "office",
        "laptop",
        "screen",
        "monday",
        "account",
        "password",
        "reset",
        "works",
        "not",
        "still",
        "when",
        "I",
        "try",
        "print",
        "document",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = String::with_capacity(len + 100);
    let mut line = 0;
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = WORDS[(x >> 33) as usize % WORDS.len()];
        out.push_str(w);
        line += w.len() + 1;
        if line > 72 {
            out.push_str("\r\n");
            line = 0;
        } else {
            out.push(' ');
        }
    }
    out.push_str(&format!("\r\nreference {seed:x}-{x:x}\r\n"));
    out
}

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
name = "help"
host = "127.0.0.1"
tls = "none"
user = "help@desk.test"
password_file = "pw"
[smtp]
host = "127.0.0.1"
tls = "none"
[limits]
auto_replies_per_recipient = 1000000
[[sla]]
name = "standard"
first_response = {{ normal = "4h" }}
resolution = {{ normal = "5d" }}
"#,
        templates.display()
    );
    std::fs::write(dir.join("pw"), "x").unwrap();
    let cfg = deskgate::config::Config::from_str_at(&text, &dir.join("d.toml")).unwrap();
    Policy::from_config(&cfg).unwrap()
}

fn main() {
    let n = env_usize("DESKGATE_BENCH_TICKETS", 100_000);
    let senders = env_usize("DESKGATE_BENCH_SENDERS", 5000).max(1);
    let batch_ms = env_usize("DESKGATE_BENCH_BATCH_MS", 100) as i64;
    let options = match std::env::var("DESKGATE_BENCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(mib) => StoreOptions {
            cache_bytes: mib << 20,
        },
        None => StoreOptions::default(),
    };
    if let Ok(state) = std::env::var("DESKGATE_BENCH_IDLE_STATE") {
        return idle_child(state.as_ref(), n, options);
    }
    let dir = match std::env::var("DESKGATE_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let state = dir.path().join("state");
    let build_load = std::cell::RefCell::new(String::new());
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let body = "The shared printer on the third floor shows error 0x42 again after the update.\r\n"
        .repeat(20);
    // DESKGATE_BENCH_VARIED=1: every mail its own text (words drawn at
    // random), so compression is not flattered by one line repeated.
    let varied = std::env::var_os("DESKGATE_BENCH_VARIED").is_some();
    let mut raw_bytes = 0u64;
    let mut rates = Vec::new();
    let mut cpu_per_mail: Vec<f64> = Vec::new();
    {
        let engine = Engine::new(
            Store::open_with(&state, options).unwrap(),
            clock.clone(),
            policy(dir.path()),
        );
        let batch = 500;
        let mut done = 0;
        let mut window = (Instant::now(), 0usize, cpu_seconds());
        while done < n {
            let mails: Vec<Vec<u8>> = (done..(done + batch).min(n))
                .map(|i| {
                    format!(
                        "From: user{}@outside.example\r\nTo: help@desk.test\r\nSubject: Printer problem {i}\r\nMessage-ID: <s{i}@outside.example>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
                        i % senders,
                        body = if varied { varied_body(i as u64, body.len()) } else { body.clone() }
                    )
                    .into_bytes()
                })
                .collect();
            raw_bytes += mails.iter().map(|m| m.len() as u64).sum::<u64>();
            let raws: Vec<&[u8]> = mails.iter().map(|m| m.as_slice()).collect();
            engine.ingest_batch(&raws, "help").unwrap();
            // Mail arrives over time (by default 5,000 a second), as it
            // does for the daemon, whose clock is real;
            // `DESKGATE_BENCH_BATCH_MS=0` freezes the clock instead.
            clock.advance(chrono::Duration::milliseconds(batch_ms));
            done += raws.len();
            window.1 += raws.len();
            if window.1 >= n / 10 || done == n {
                rates.push(window.1 as f64 / window.0.elapsed().as_secs_f64());
                cpu_per_mail.push((cpu_seconds() - window.2) * 1e6 / window.1 as f64);
                eprintln!(
                    "{done} tickets, {:.0} mails/s, {:.0} µs CPU per mail (load {})",
                    rates.last().unwrap(),
                    cpu_per_mail.last().unwrap(),
                    load_average()
                );
                *build_load.borrow_mut() = load_average();
                window = (Instant::now(), 0, cpu_seconds());
            }
        }
        engine.store().flush_blocking().unwrap();
    }
    let size = dir_size(&state);
    if let Ok(file) = std::env::var("DESKGATE_BENCH_BACKUP") {
        // Every key and value as stored (before sled's own overhead), for
        // `scripts`-free accounting of where the bytes go.
        let store = Store::open(&state).unwrap();
        let s = store.backup(file.as_ref()).unwrap();
        eprintln!("logical data: {} keys, {} bytes", s.keys, s.bytes);
        for (table, keys, bytes) in store.table_sizes().unwrap() {
            let name = TABLES.get(table as usize).unwrap_or(&"?");
            eprintln!(
                "  table {table:>2} {name:<14} {keys:>8} keys {:>8.1} MiB",
                bytes as f64 / 1048576.0
            );
        }
    }
    let (engine, start) = time(|| {
        let store = Store::open_with(&state, options).unwrap();
        Engine::new(store, clock.clone(), policy(dir.path()))
    });
    // The first timer pass builds the timer index once (a new store has none).
    let (_, index_build) = time(|| engine.run_timers().unwrap());
    let list = Query::ListTickets {
        status: None,
        overdue: false,
        due_within_secs: None,
        limit: Some(50),
    };
    let (page, list_t) = time(|| answer(&engine, &list));
    assert!(matches!(page, Answer::Tickets { ref tickets, .. } if tickets.len() == 50));
    let id = 1000 + n as u64 / 2;
    let (shown, show_t) = time(|| answer(&engine, &Query::ShowTicket { id }));
    assert!(matches!(shown, Answer::Ticket { view: Some(_) }));
    let (_, stats_t) = time(|| answer(&engine, &Query::Stats));
    // 100 tickets due: make 100 tickets' first warning come due by creating
    // them 3.5 h before the pass, the rest of the desk 4 days later.
    clock.advance(chrono::Duration::days(4));
    let later: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("From: late{i}@outside.example\r\nTo: help@desk.test\r\nSubject: Late {i}\r\nMessage-ID: <late{i}@outside.example>\r\n\r\nhelp\r\n").into_bytes())
        .collect();
    let raws: Vec<&[u8]> = later.iter().map(|m| m.as_slice()).collect();
    engine.ingest_batch(&raws, "help").unwrap();
    // Every older ticket has breached by now: fire those first (not timed),
    // so the timed pass is the 100 warnings.
    let (_, catch_up) = time(|| engine.run_timers().unwrap());
    clock.advance(chrono::Duration::minutes(200));
    let (fired, timer_t) = time(|| engine.run_timers().unwrap());
    let (_, idle_timer_t) = time(|| engine.run_timers().unwrap());
    drop(engine);
    // The first open after a build replays all the log written since the
    // last open (sled 0.34 writes its snapshot only when it opens); the
    // second is a restart with nothing written in between.
    let idle = idle_figures(&state);
    let restart = idle_figures(&state);
    let (first, last) = (
        rates.first().copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
    );
    let kept = if first > 0.0 { last / first } else { 0.0 };
    let report = serde_json::json!({
        "tickets": n,
        "build_mails_per_s_first_tenth": rates.first(),
        "build_mails_per_s_last_tenth": rates.last(),
        "tickets_list_first_page_ms": ms(list_t),
        "tickets_show_ms": ms(show_t),
        "stats_ms": ms(stats_t),
        "timer_pass_due": fired,
        "timer_pass_ms": ms(timer_t),
        "timer_pass_nothing_due_ms": ms(idle_timer_t),
        "timer_index_build_s": index_build.as_secs_f64(),
        "breach_catch_up_s": catch_up.as_secs_f64(),
        "store_open_ms": ms(start),
        "store_bytes": size,
        "raw_mail_bytes": raw_bytes,
        "store_to_raw": size as f64 / raw_bytes as f64,
        "peak_rss_mib": peak_rss_mib(),
        "build_rate_kept": kept,
        "build_cpu_us_per_mail_first_tenth": cpu_per_mail.first(),
        "build_cpu_us_per_mail_last_tenth": cpu_per_mail.last(),
        "fresh_process_open_ms": idle.map(|i| i.0),
        "fresh_process_list_ms": idle.map(|i| i.1),
        "fresh_process_show_ms": idle.map(|i| i.2),
        "fresh_process_stats_ms": idle.map(|i| i.3),
        "idle_rss_mib": idle.map(|i| i.4),
        "restart_open_ms": restart.map(|i| i.0),
        "restart_idle_rss_mib": restart.map(|i| i.4),
        "load_average_build_end": build_load.borrow().clone(),
        "load_average_end": load_average(),
    });
    println!("\n| measure ({n} tickets) | value | target | |\n|---|---|---|---|");
    let row = |what: &str, value: String, target: &str, ok: bool| {
        println!("| {what} | {value} | {target} | {} |", verdict(ok))
    };
    row(
        "build rate, first / last tenth",
        format!("{first:.0} / {last:.0} mails/s ({:.0}%)", kept * 100.0),
        "last >= 90% of first",
        kept >= 0.9,
    );
    let (cpu_first, cpu_last) = (
        cpu_per_mail.first().copied().unwrap_or(0.0),
        cpu_per_mail.last().copied().unwrap_or(0.0),
    );
    row(
        "build CPU per mail, first / last tenth",
        format!("{cpu_first:.0} / {cpu_last:.0} µs"),
        "last <= first / 0.9",
        cpu_last * 0.9 <= cpu_first,
    );
    row(
        "`tickets list`, first page of 50",
        format!("{:.1} ms", ms(list_t)),
        "< 50 ms",
        ms(list_t) < 50.0,
    );
    row(
        "`tickets show`",
        format!("{:.1} ms", ms(show_t)),
        "< 20 ms",
        ms(show_t) < 20.0,
    );
    row(
        "`stats`",
        format!("{:.2} ms", ms(stats_t)),
        "< 20 ms",
        ms(stats_t) < 20.0,
    );
    row(
        &format!("timer pass, {fired} tickets due"),
        format!("{:.1} ms", ms(timer_t)),
        "< 50 ms (100 due)",
        ms(timer_t) < 50.0 && fired >= 100,
    );
    row(
        "timer pass, nothing due",
        format!("{:.2} ms", ms(idle_timer_t)),
        "",
        true,
    );
    row(
        "store open to engine ready",
        format!("{:.0} ms", ms(start)),
        "< 1 s",
        ms(start) < 1000.0,
    );
    if let Some((open, list, show, stats, rss)) = idle {
        row(
            "fresh process: open / list / show / stats",
            format!("{open:.0} / {list:.1} / {show:.1} / {stats:.2} ms"),
            "< 1 s / 50 / 20 / 20 ms",
            open < 1000.0 && list < 50.0 && show < 20.0 && stats < 20.0,
        );
        row(
            "idle RSS (fresh process)",
            format!("{rss} MiB"),
            "<= 32 MiB",
            rss <= 32,
        );
    }
    if let Some((open, _, _, _, rss)) = restart {
        row(
            "restart (nothing written since): open / idle RSS",
            format!("{open:.0} ms / {rss} MiB"),
            "< 1 s / <= 32 MiB",
            open < 1000.0 && rss <= 32,
        );
    }
    row(
        "timer index built once (new store)",
        format!("{:.1} s", index_build.as_secs_f64()),
        "",
        true,
    );
    row(
        "store on disk / raw mail",
        format!(
            "{:.0} MiB / {:.0} MiB ({:.2}x)",
            size as f64 / 1048576.0,
            raw_bytes as f64 / 1048576.0,
            size as f64 / raw_bytes as f64
        ),
        "<= 2x",
        (size as f64) <= 2.0 * raw_bytes as f64,
    );
    row(
        "peak RSS (build included)",
        format!("{} MiB", peak_rss_mib()),
        "<= 64 MiB",
        peak_rss_mib() <= 64,
    );
    println!(
        "\nload average: {} at the end of the build, {} now (2 cores)",
        build_load.borrow(),
        load_average()
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-store.json");
    let _ = std::fs::write(out, serde_json::to_string_pretty(&report).unwrap());
}
