//! Times the engine alone (no IMAP, no SMTP): parse, thread, compose, commit.
use std::sync::Arc;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;

use deskgate::desk::policy::Policy;
use deskgate::desk::templates::Templates;
use deskgate::engine::clock::SystemClock;
use deskgate::engine::Engine;
use deskgate::mail::address::{EmailAddress, Party};
use deskgate::store::Store;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut policy = Policy::new(
        Party {
            name: Some("Help".into()),
            address: EmailAddress::parse("help@desk.test").unwrap(),
        },
        Templates::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
            .unwrap(),
    );
    policy.limits.auto_replies_per_recipient = u32::MAX;
    let engine = Engine::new(store.clone(), Arc::new(SystemClock), policy);
    let body = "The shared printer on the third floor shows error 0x42 again after the update.\r\n"
        .repeat(20);
    let mails: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("From: user{i}@outside.example\r\nTo: help@desk.test\r\nSubject: Printer problem {i}\r\nMessage-ID: <b{i}@outside.example>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}").into_bytes())
        .collect();
    let t = Instant::now();
    for _ in 0..n {
        let _ = deskgate::mail::parse::parse(&mails[0]).unwrap();
    }
    println!("parse only: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for chunk in mails.chunks(500) {
        let raws: Vec<&[u8]> = chunk.iter().map(|m| m.as_slice()).collect();
        engine.ingest_batch(&raws, "help").unwrap();
    }
    let ingest = t.elapsed();
    let t = Instant::now();
    store.flush_blocking().unwrap();
    println!(
        "engine ingest_batch: {:.0}/s (flush {:?})",
        n as f64 / ingest.as_secs_f64(),
        t.elapsed()
    );
}
