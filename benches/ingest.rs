//! Ingest benchmark against the real Dovecot and Postfix (not a test).
//!
//! `cargo bench --bench ingest` (or `DESKGATE_BENCH_MAILS=2000 cargo bench --bench ingest`):
//! 1. loads N mails (default 10,000, ~1.8 KB each) into the help mailbox over IMAP;
//! 2. measures the ceiling: a plain IMAP `UID FETCH BODY.PEEK[]` of all of them
//!    in batches of 500, with the same IMAP library deskgate uses;
//!    Then the same fetch plus the `UID STORE +FLAGS (\Seen)` deskgate must
//!    send for each committed batch: the server's share of the work alone;
//! 3. starts deskgate and measures its ingest rate until the daemon's log says
//!    every mail is committed, flushed and marked on the server (read from the
//!    log, so measuring takes no CPU from the daemon): from the mailbox being
//!    open, like the plain fetch (whose clock starts after its login), and
//!    from process start; then how long until every acknowledgement has been
//!    handed to SMTP;
//! 4. with deskgate idle in IMAP IDLE, appends M mails (default 50) one at a
//!    time and measures arrival (APPEND done) to acknowledgement visible in the
//!    requester's IMAP inbox: p50 and p99;
//! 5. reports deskgate's peak RSS (VmHWM).
//!
//! `DESKGATE_BENCH_INGEST_ONLY=1` stops after step 3's ingest figure (quick
//! iterations); `DESKGATE_BENCH_BATCHES=1` prints the daemon's per-batch
//! timings (fetch, commit, flush, mark). `DESKGATE_BENCH_BATCH_SIZE` (default
//! 500, the daemon's) and `DESKGATE_BENCH_CACHE` (e.g. `8 MiB`) try other
//! batch and cache sizes: they set the daemon's peak memory
//! (docs/performance.md).
//!
//! `DESKGATE_BENCH_MONITOR=1` runs `deskgate stats --json` every 250 ms
//! during the ingest, as a monitoring script would.
//!
//! Prints a table and writes `target/bench-ingest.json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;

fn main() {
    // `cargo bench` passes --bench; nothing else is taken from the command line.
    let n = env_usize("DESKGATE_BENCH_MAILS", 10_000);
    let m = env_usize("DESKGATE_BENCH_LATENCY_MAILS", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n, m));
}

/// Plain fetch of every mail, as fast as the IMAP library allows.
async fn plain_fetch(imap: Imap) -> (usize, Duration) {
    fetch_all(imap, false).await
}

/// Fetch plus what deskgate must also ask of the server for every batch:
/// flag it `\Seen` once it is committed (the bench's `after_processing`).
/// With Maildir, Dovecot renames one file per flagged mail, which is CPU the
/// server takes from the same cores. Clears the flags again afterwards, so
/// deskgate finds the mailbox as the plain fetch did.
async fn fetch_and_flag(imap: Imap) -> (usize, Duration) {
    let r = fetch_all(imap, true).await;
    let mut s = imap.login(HELP).await;
    s.select("INBOX").await.unwrap();
    let _: Vec<_> = s
        .uid_store("1:*", "-FLAGS.SILENT (\\Seen)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    s.logout().await.ok();
    r
}

async fn fetch_all(imap: Imap, flag: bool) -> (usize, Duration) {
    let mut s = imap.login(HELP).await;
    let start = Instant::now();
    if flag {
        s.select("INBOX").await.unwrap();
    } else {
        s.examine("INBOX").await.unwrap();
    }
    let uids: Vec<u32> = s.uid_search("ALL").await.unwrap().into_iter().collect();
    let mut sorted = uids.clone();
    sorted.sort_unstable();
    let mut bytes = 0usize;
    let mut count = 0usize;
    for chunk in sorted.chunks(500) {
        let set = deskgate::daemon::imap::uid_set(chunk);
        let fetches: Vec<_> = s
            .uid_fetch(&set, "(UID BODY.PEEK[])")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for f in &fetches {
            if let Some(b) = f.body() {
                bytes += b.len();
                count += 1;
            }
        }
        if flag {
            let _: Vec<_> = s
                .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
        }
    }
    let took = start.elapsed();
    s.logout().await.ok();
    assert!(bytes > 0);
    (count, took)
}

fn stats(desk: &Deskgate) -> serde_json::Value {
    desk.json(&["stats", "--json"])
}

/// When the daemon's log says `n` mails were committed in all.
fn committed_at(log: &str, n: usize) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut total = 0;
    for line in log.lines().filter(|l| l.contains("batch committed")) {
        total += line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("mails="))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if total >= n {
            let stamp = line.split_whitespace().next()?;
            return chrono::DateTime::parse_from_rfc3339(stamp)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc));
        }
    }
    None
}

/// When the daemon's log says the mailbox was opened (logged in, folder
/// selected): the point the plain fetch's clock starts from too.
fn opened_at(log: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let line = log
        .lines()
        .find(|l| l.contains("connected") && l.contains("mailbox="))?;
    chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next()?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A monitoring script's load: `deskgate stats --json` every 250 ms, as a
/// separate process through the control socket, while the daemon ingests
/// (`DESKGATE_BENCH_MONITOR=1`): `stats` must not slow ingest.
struct Monitor {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl Monitor {
    fn start(config: &std::path::Path) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, config) = (stop.clone(), config.to_path_buf());
        let thread = std::thread::spawn(move || {
            let (mut polls, mut failed) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_deskgate"))
                    .arg("-c")
                    .arg(&config)
                    .args(["stats", "--json"])
                    .output();
                match out {
                    Ok(o) if o.status.success() => polls += 1,
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            (polls, failed)
        });
        Monitor { stop, thread }
    }

    /// Polls answered and failed.
    fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn run(n: usize, m: usize) {
    eprintln!("starting mail servers…");
    let servers = MailServers::start(&[HELP, ALICE]);
    let imap = servers.imap();

    eprintln!("loading {n} mails over IMAP APPEND…");
    let t = Instant::now();
    load_printer_mails(imap, n).await;
    eprintln!("loaded in {:.1}s", t.elapsed().as_secs_f64());

    let mut best = Duration::MAX;
    for _ in 0..3 {
        let (count, took) = plain_fetch(imap).await;
        assert_eq!(count, n);
        best = best.min(took);
    }
    let ceiling = n as f64 / best.as_secs_f64();
    eprintln!("plain fetch: {ceiling:.0} mails/s");
    let (count, took) = fetch_and_flag(imap).await;
    assert_eq!(count, n);
    let flag_ceiling = n as f64 / took.as_secs_f64();
    eprintln!("fetch and flag \\Seen: {flag_ceiling:.0} mails/s");

    let batch_size = env_usize("DESKGATE_BENCH_BATCH_SIZE", 500) as u32;
    let mut extra = String::from("[limits]\nauto_replies_per_recipient = 1000000\n");
    if let Ok(cache) = std::env::var("DESKGATE_BENCH_CACHE") {
        extra.push_str(&format!("[store]\ncache = \"{cache}\"\n"));
    }
    let extra: &'static str = Box::leak(extra.into_boxed_str());
    eprintln!("batch size {batch_size}");
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            batch_size,
            // The latency probes all come from one requester.
            extra,
            log: "info",
            ..DeskOptions::default()
        },
    );
    let start = Instant::now();
    let start_wall = chrono::Utc::now();
    desk.start();
    let pid = desk.pid().expect("running");
    let monitor = std::env::var_os("DESKGATE_BENCH_MONITOR").map(|_| Monitor::start(&desk.config));
    // The end is read from the daemon's own log (the time of the "batch
    // committed" line that completes N mails: committed, flushed and marked
    // on the server), so polling does not take CPU from the daemon.
    // Two clocks: from process start (includes exec, opening the store,
    // connecting and logging in), and from the mailbox being open, which is
    // where the plain fetch's clock starts (after its login).
    let (ingest, ingest_open) = loop {
        let log = desk.logs();
        if let Some(done) = committed_at(&log, n) {
            let opened = opened_at(&log).unwrap_or(start_wall);
            break (
                (done - start_wall).to_std().unwrap_or_default(),
                (done - opened).to_std().unwrap_or_default(),
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "ingest never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        stats(&desk)["tickets"].as_u64().unwrap_or(0) as usize,
        n,
        "every mail is a ticket"
    );
    if let Some(m) = monitor {
        let (polls, failed) = m.stop();
        eprintln!("monitor: `deskgate stats` answered {polls} times every 250 ms during ingest ({failed} failed)");
    }
    let ingest_rate = n as f64 / ingest.as_secs_f64();
    let open_rate = n as f64 / ingest_open.as_secs_f64();
    eprintln!(
        "deskgate ingest: {open_rate:.0} mails/s from mailbox open ({:.0}% of plain fetch), {ingest_rate:.0} mails/s from process start",
        open_rate / ceiling * 100.0
    );
    if std::env::var_os("DESKGATE_BENCH_BATCHES").is_some() {
        for line in desk.logs().lines().filter(|l| {
            l.contains("batch committed") || l.contains("connected") || l.contains("running")
        }) {
            eprintln!("{line}");
        }
    }
    if std::env::var_os("DESKGATE_BENCH_INGEST_ONLY").is_some() {
        eprintln!("peak RSS so far: {} MiB", peak_rss_kib(pid) / 1024);
        assert!(desk.stop(), "deskgate did not stop cleanly");
        return;
    }
    let acks_out = loop {
        if stats(&desk)["delivered"].as_u64().unwrap_or(0) as usize >= n {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "acks never drained: {}",
            stats(&desk)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rss_ingest = peak_rss_kib(pid);
    eprintln!(
        "all {n} acknowledgements handed to SMTP after {:.1}s",
        acks_out.as_secs_f64()
    );

    // Latency: one mail at a time while deskgate sits in IDLE.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut watcher = imap.login(ALICE).await;
    let mut appender = imap.login(HELP).await;
    let mut lat = Vec::with_capacity(m);
    for i in 0..m {
        let raw = mail(
            ALICE,
            HELP,
            &format!("Latency probe {i}"),
            &format!("lat{i}@customer.test"),
            "",
            "ping",
        );
        let t0 = Instant::now();
        appender.append("INBOX", None, None, &raw).await.unwrap();
        loop {
            let mb = watcher.examine("INBOX").await.unwrap();
            if mb.exists as usize > i {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "ack {i} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lat.sort();
    let p50 = percentile(&lat, 0.50);
    let p99 = percentile(&lat, 0.99);
    let rss_peak = peak_rss_kib(pid);
    assert!(desk.stop(), "deskgate did not stop cleanly");

    let report = serde_json::json!({
        "mails": n,
        "plain_fetch_mails_per_s": ceiling.round(),
        "fetch_and_flag_mails_per_s": flag_ceiling.round(),
        "deskgate_ingest_mails_per_s": open_rate.round(),
        "ingest_share_of_ceiling": (open_rate / ceiling * 100.0).round() / 100.0,
        "ingest_seconds": ingest_open.as_secs_f64(),
        "ingest_from_process_start_mails_per_s": ingest_rate.round(),
        "ingest_from_process_start_seconds": ingest.as_secs_f64(),
        "all_acks_handed_to_smtp_seconds": acks_out.as_secs_f64(),
        "latency_probes": m,
        "arrival_to_ack_p50_ms": p50.as_secs_f64() * 1000.0,
        "arrival_to_ack_p99_ms": p99.as_secs_f64() * 1000.0,
        "peak_rss_mib_after_ingest": rss_ingest as f64 / 1024.0,
        "peak_rss_mib": rss_peak as f64 / 1024.0,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    println!("\n| measure | value |\n|---|---|");
    println!("| mails ingested | {n} |");
    println!("| plain IMAP fetch (ceiling) | {ceiling:.0} mails/s |");
    println!("| IMAP fetch + flag \\Seen, as deskgate must (no processing) | {flag_ceiling:.0} mails/s |");
    println!("| deskgate ingest, mailbox open → every ticket committed | {open_rate:.0} mails/s ({:.0}% of ceiling) |", open_rate / ceiling * 100.0);
    println!(
        "| the same from process start | {ingest_rate:.0} mails/s ({:.2} s) |",
        ingest.as_secs_f64()
    );
    println!(
        "| all acknowledgements handed to SMTP | {:.1} s after start |",
        acks_out.as_secs_f64()
    );
    println!(
        "| arrival → acknowledgement in requester's inbox, p50 | {:.0} ms |",
        p50.as_secs_f64() * 1000.0
    );
    println!(
        "| arrival → acknowledgement in requester's inbox, p99 | {:.0} ms |",
        p99.as_secs_f64() * 1000.0
    );
    println!(
        "| deskgate peak RSS | {:.0} MiB |",
        rss_peak as f64 / 1024.0
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-ingest.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).ok();
    eprintln!("written {}", out.display());
}
