//! Fuzzes a full `Engine::ingest` (parse, classify, thread, compose, one sled
//! transaction) against one store that lives for the whole fuzzing process, so
//! later inputs thread onto tickets earlier inputs created. Only a store
//! failure may be an error; a panic or an `Err` is a bug.
//!
//! The store is a temporary directory named `deskgate-fuzz-engine-*` under the
//! system temp dir; libFuzzer exits without running destructors, so remove it
//! after a run.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use deskgate::mail::address::{EmailAddress, Party};
use deskgate::engine::clock::ManualClock;
use deskgate::desk::templates::Templates;
use deskgate::engine::Engine;
use deskgate::desk::policy::Policy;
use deskgate::store::Store;
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("deskgate-fuzz-engine-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let store = Store::open(&dir).expect("open sled store");
        let clock = Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        // Like src/engine.rs's tests: documented defaults (first ticket 1000,
        // "[#{id}]" subject tag, default limits), the repository's templates.
        let policy = Policy::new(
            Party {
                name: Some("Help".into()),
                address: EmailAddress::parse("help@desk.test").unwrap(),
            },
            Templates::load(Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../templates"
            )))
            .expect("load templates"),
        );
        Engine::new(store, clock, policy)
    })
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    if let Err(e) = engine.ingest(data, "help") {
        panic!("Engine::ingest returned an error: {e}");
    }
});
