//! Outbox benchmark against the real Postfix (not a test).
//!
//! `cargo bench --bench outbox` (or `DESKGATE_BENCH_MAILS=5000 cargo bench --bench outbox`):
//! 1. the ceiling: a plain lettre client (its pooled transport, the same
//!    number of connections as deskgate's `outbox.concurrency`, 4) submits
//!    `DESKGATE_BENCH_BASELINE_MAILS` (default 2,000) acknowledgement-sized
//!    mails to the same Postfix;
//! 2. loads N mails (default 10,000) into the help mailbox, starts deskgate,
//!    and measures the rate at which its outbox hands the N acknowledgements
//!    to Postfix (first to last "delivered" line of the daemon's log; every
//!    delivery is recorded and flushed in chunks, as always);
//! 3. while that backlog drains, appends M fresh mails (default 50), one
//!    every 100 ms, and measures arrival (APPEND done) to the acknowledgement
//!    accepted by Postfix (the "delivered" line of its ticket): p50 / p99.
//!
//! Prints a table and writes `target/bench-outbox.json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use lettre::AsyncTransport;

const CONNECTIONS: u32 = 4;

fn main() {
    let n = env_usize("DESKGATE_BENCH_MAILS", 10_000);
    let base = env_usize("DESKGATE_BENCH_BASELINE_MAILS", 2_000);
    let m = env_usize("DESKGATE_BENCH_LATENCY_MAILS", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n, base, m));
}

/// A plain lettre client: `n` mails over `CONNECTIONS` pooled connections.
async fn plain_submit(port: u16, n: usize) -> Duration {
    let t = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(CONNECTIONS))
        .build();
    let body = printer_body();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS as usize {
        let t = t.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(CONNECTIONS as usize) {
                let to = format!("base{i}@outside.example");
                let raw = mail(
                    HELP,
                    &to,
                    "Re: [#1] ack",
                    &format!("base{i}@desk.test"),
                    "Auto-Submitted: auto-replied\r\n",
                    &body,
                );
                let env = lettre::address::Envelope::new(
                    Some(HELP.parse().unwrap()),
                    vec![to.parse().unwrap()],
                )
                .unwrap();
                t.send_raw(&env, &raw).await.expect("plain send");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

/// `DESKGATE_BENCH_LOG` (default `info`): e.g. `info,deskgate=debug` to see
/// each fresh mail committed and picked by the sender in `target/bench-outbox.log`.
fn log_level() -> &'static str {
    match std::env::var("DESKGATE_BENCH_LOG") {
        Ok(v) if !v.is_empty() => Box::leak(v.into_boxed_str()),
        _ => "info",
    }
}

fn stamp(line: &str) -> Option<DateTime<Utc>> {
    chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// (time, ticket) of every "delivered" line in the daemon's log.
fn deliveries(log: &str) -> Vec<(DateTime<Utc>, Option<u64>)> {
    log.lines()
        .filter(|l| l.contains(" delivered"))
        .filter_map(|l| {
            let ticket = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ticket="))
                .and_then(|v| {
                    v.trim_start_matches("Some(")
                        .trim_end_matches(')')
                        .parse()
                        .ok()
                });
            Some((stamp(l)?, ticket))
        })
        .collect()
}

/// Where a fresh mail's time goes, from the debug log (None at `info`):
/// APPEND done → ticket committed ("mail processed") → picked by the sender
/// ("sending") → accepted by Postfix ("delivered"); p50 and p99 of each.
fn stages(log: &str, n: usize, arrivals: &[DateTime<Utc>]) -> Option<String> {
    let find = |marker: &str, ticket: u64| {
        let needle = [
            format!("ticket: {ticket},"),
            format!("ticket=Some({ticket})"),
        ];
        log.lines()
            .find(|l| l.contains(marker) && needle.iter().any(|x| l.contains(x.as_str())))
            .and_then(stamp)
    };
    let mut s: [Vec<Duration>; 3] = Default::default();
    for (i, arrived) in arrivals.iter().enumerate() {
        let t = 1000 + (n + i) as u64;
        let (Some(c), Some(p), Some(d)) = (
            find("mail processed", t),
            find(" sending ", t),
            find(" delivered ", t),
        ) else {
            continue;
        };
        for (k, (a, b)) in [(*arrived, c), (c, p), (p, d)].into_iter().enumerate() {
            s[k].push((b - a).to_std().unwrap_or_default());
        }
    }
    if s[0].is_empty() {
        return None;
    }
    Some(
        s.iter_mut()
            .map(|v| {
                v.sort();
                format!(
                    "{} ; {} ms",
                    percentile(v, 0.5).as_millis(),
                    percentile(v, 0.99).as_millis()
                )
            })
            .collect::<Vec<_>>()
            .join(" / "),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn run(n: usize, base: usize, m: usize) {
    eprintln!("starting mail servers…");
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();

    let took = plain_submit(servers.smtp_port, base).await;
    let ceiling = base as f64 / took.as_secs_f64();
    eprintln!(
        "plain lettre client, {CONNECTIONS} connections: {ceiling:.0} mails/s ({base} mails)"
    );

    eprintln!("loading {n} mails over IMAP APPEND…");
    load_printer_mails(imap, n).await;

    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            batch_size: 500,
            extra: "[limits]\nauto_replies_per_recipient = 1000000",
            log: log_level(),
            ..DeskOptions::default()
        },
    );
    desk.start();
    let start = Instant::now();
    // Latency probes once the backlog is queued and draining.
    loop {
        if deliveries(&desk.logs()).len() >= 100.min(n) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "nothing sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = desk.json(&["stats", "--json"])["outbox_pending"]
        .as_u64()
        .unwrap_or(0);
    let mut arrivals = Vec::new();
    let mut s = imap.login(HELP).await;
    for i in 0..m {
        let raw = mail(
            &format!("fresh{i}@outside.example"),
            HELP,
            &format!("Fresh question {i}"),
            &format!("fresh{i}@outside.example"),
            "",
            "short",
        );
        s.append("INBOX", None, None, &raw).await.expect("append");
        arrivals.push(Utc::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.logout().await.ok();
    let total = n + m;
    let all = loop {
        let d = deliveries(&desk.logs());
        if d.len() >= total {
            break d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "outbox never drained ({} of {total})",
            d.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The burst's tickets are 1000.., the fresh ones follow in order.
    let burst: Vec<DateTime<Utc>> = all
        .iter()
        .filter(|(_, t)| t.is_some_and(|t| t < 1000 + n as u64))
        .map(|(at, _)| *at)
        .collect();
    let (first, last) = (burst.iter().min().unwrap(), burst.iter().max().unwrap());
    let rate = burst.len() as f64
        / (*last - *first)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64()
            .max(1e-3);
    let mut lat: Vec<Duration> = (0..m)
        .filter_map(|i| {
            let ticket = 1000 + (n + i) as u64;
            let at = all.iter().find(|(_, t)| *t == Some(ticket))?.0;
            Some((at - arrivals[i]).to_std().unwrap_or_default())
        })
        .collect();
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let stages = stages(&desk.logs(), n, &arrivals);
    let logs = desk.logs();
    desk.stop();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::write(dir.join("bench-outbox.log"), &logs).ok();

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| plain lettre client, {CONNECTIONS} connections, {base} mails | {ceiling:.0} mails/s |"
    );
    println!("| deskgate outbox, {n} acknowledgements (recorded per chunk) | **{rate:.0} mails/s** ({:.0}% of the plain client) |", rate / ceiling * 100.0);
    println!("| fresh mail → ack accepted by SMTP, {} probes while {queued} acks were queued, p50 / p99 | **{} ms / {} ms** |", lat.len(), p50.as_millis(), p99.as_millis());
    if let Some(st) = &stages {
        println!("| of which (debug log) arrival → committed / → picked by the sender / → accepted, p50 ; p99 | {st} |");
    }
    let json = serde_json::json!({
        "mails": n,
        "plain_client_mails_per_s": ceiling,
        "outbox_mails_per_s": rate,
        "fresh_probes": lat.len(),
        "queued_at_probe": queued,
        "fresh_ack_p50_ms": p50.as_millis() as u64,
        "fresh_ack_p99_ms": p99.as_millis() as u64,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-outbox.json");
    std::fs::write(out, serde_json::to_string_pretty(&json).unwrap()).ok();
}
