//! The poison-mail guard: a batch is processed under attempt counts kept in
//! the store, so a mail that makes processing fail, panic or crash the
//! daemon is quarantined after a few tries instead of wedging its mailbox.

use tracing::{info, warn};

use crate::desk::outcome::Outcome;
use crate::engine::{Engine, EngineError};

/// Attempts (a crash, a kill, a panic or an error each count one) after
/// which a mail is quarantined instead of processed again.
pub const MAX_ATTEMPTS: u32 = 3;

/// Where one mail is processed, for the attempt counts.
pub(super) struct Place<'a> {
    pub(super) mailbox: &'a str,
    pub(super) uid_validity: u32,
}

/// Ingests a batch, guarded against poison mail. Every UID's attempt count
/// is raised (and flushed) before processing and cleared once it commits.
/// If the batch fails (an error or a panic), or a mail in it failed before
/// (the daemon died while processing it), it goes mail by mail: a mail that
/// panics is quarantined at once, one that errs is left for the next pass,
/// and one already tried [`MAX_ATTEMPTS`] times is quarantined unprocessed.
/// So one poison mail never wedges its mailbox in a refetch or crash loop.
/// Only store failures are errors; mails missing from the result were not
/// processed and must not be marked.
pub(super) fn ingest_guarded(
    engine: &Engine,
    mails: &[(u32, Vec<u8>)],
    at: &Place<'_>,
    after: Option<std::sync::mpsc::Receiver<()>>,
) -> Result<Vec<(u32, Outcome)>, EngineError> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let store = engine.store();
    let (mailbox, validity) = (at.mailbox, at.uid_validity);
    // Returns at once when the previous batch is done (or there is none).
    let wait_for_previous = || {
        if let Some(rx) = &after {
            let _ = rx.recv();
        }
    };
    let uids: Vec<u32> = mails.iter().map(|(uid, _)| *uid).collect();
    let retried = store
        .attempts(mailbox, validity, &uids)?
        .iter()
        .any(|&n| n > 0);
    if !retried {
        store.raise_attempts(mailbox, validity, &uids)?;
        let raws: Vec<&[u8]> = mails.iter().map(|(_, raw)| raw.as_slice()).collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let batch = engine.prepare_batch(&raws)?;
            wait_for_previous();
            engine.commit_batch(&batch, mailbox)
        }));
        match result {
            Ok(Ok(outcomes)) => {
                forget_attempts(engine, at, &uids);
                return Ok(uids.into_iter().zip(outcomes).collect());
            }
            Ok(Err(e)) => {
                warn!(mailbox, error = %e, "processing a batch failed; retrying mail by mail")
            }
            Err(_) => warn!(
                mailbox,
                "processing a batch panicked; retrying mail by mail"
            ),
        }
    } else {
        info!(
            mailbox,
            "a mail of this batch failed before; processing it mail by mail"
        );
    }
    wait_for_previous();
    let mut out = Vec::with_capacity(mails.len());
    for (uid, raw) in mails {
        let attempt = store
            .raise_attempts(mailbox, validity, &[*uid])?
            .first()
            .copied()
            .unwrap_or(1);
        let outcome = if attempt > MAX_ATTEMPTS {
            warn!(
                mailbox,
                uid, "mail failed {MAX_ATTEMPTS} times; quarantining it"
            );
            engine.quarantine_raw(
                raw,
                mailbox,
                &format!(
                    "processing this mail failed {MAX_ATTEMPTS} times (an error, a crash or the daemon being stopped while on it)"
                ),
            )?
        } else {
            match catch_unwind(AssertUnwindSafe(|| engine.ingest(raw, mailbox))) {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    warn!(mailbox, uid, attempt, error = %e, "cannot process mail; trying again on the next pass");
                    continue;
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    engine.quarantine_raw(
                        raw,
                        mailbox,
                        &format!("internal error while processing: {what}"),
                    )?
                }
            }
        };
        forget_attempts(engine, at, &[*uid]);
        out.push((*uid, outcome));
    }
    Ok(out)
}

/// Clears the attempt counts of committed mail; a failure only costs a
/// needless mail-by-mail pass later, so it is logged, not returned.
fn forget_attempts(engine: &Engine, at: &Place<'_>, uids: &[u32]) {
    if let Err(e) = engine
        .store()
        .clear_attempts(at.mailbox, at.uid_validity, uids)
    {
        warn!(mailbox = at.mailbox, error = %e, "cannot clear attempt counts");
    }
}

// The remaining tests need faults that exist in debug builds only.
#[cfg(test)]
#[cfg(debug_assertions)]
mod tests {
    use super::*;
    use crate::desk::policy::Policy;
    use crate::engine::clock::SystemClock;
    use crate::store::Store;
    use std::sync::Arc;

    /// In debug builds this mail trips a debug assertion inside mail-parser
    /// (found by the fuzzer): a real panic to recover from.
    #[cfg(debug_assertions)]
    #[test]
    fn a_panicking_mail_is_quarantined_and_the_others_go_on() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let poison =
            std::fs::read(repo.join("tests/fixtures/parser-panic-nested-rfc822.eml")).unwrap();
        let good = |n: u32| {
            format!("From: a@c.test\r\nSubject: ok {n}\r\nMessage-ID: <g{n}@c>\r\n\r\nhi\r\n")
                .into_bytes()
        };
        // A small batch (parsed in line) and a large one (parsed on a helper
        // thread while the transaction applies it).
        for (size, poison_at) in [(3, 1), (100, 57)] {
            let dir = tempfile::tempdir().unwrap();
            let policy = Policy::for_tests(None);
            let engine = Engine::new(
                Store::open(dir.path()).unwrap(),
                Arc::new(SystemClock),
                policy,
            );
            let mut mails: Vec<(u32, Vec<u8>)> = (0..size).map(|i| (i, good(i))).collect();
            mails[poison_at as usize].1 = poison.clone();
            let at = Place {
                mailbox: "help",
                uid_validity: 1,
            };
            let out = ingest_guarded(&engine, &mails, &at, None).unwrap();
            for (uid, o) in &out {
                if *uid == poison_at {
                    assert!(
                        matches!(o, Outcome::Quarantined { reason, .. } if reason.contains("internal error")),
                        "{out:?}"
                    );
                } else {
                    assert!(matches!(o, Outcome::Created { .. }), "{uid}: {o:?}");
                }
            }
            assert_eq!(engine.store().quarantine().unwrap().len(), 1);
        }
    }

    /// A mail whose processing fails (an error, not a panic) does not fail
    /// its batch forever: the others commit mail by mail, it is left for the
    /// next pass, and after three attempts it is quarantined.
    #[test]
    fn an_erring_mail_is_quarantined_after_three_attempts() {
        std::env::set_var("DESKGATE_TEST_FAULTS", "1");
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::for_tests(None);
        let engine = Engine::new(
            Store::open(dir.path()).unwrap(),
            Arc::new(SystemClock),
            policy,
        );
        let mail = |n: u32, extra: &str| {
            format!(
                "From: a@c.test\r\nSubject: ok {n}\r\nMessage-ID: <e{n}@c>\r\n{extra}\r\nhi\r\n"
            )
            .into_bytes()
        };
        let mails = vec![
            (10, mail(10, "")),
            (11, mail(11, "X-Deskgate-Test-Fault: error\r\n")),
            (12, mail(12, "")),
        ];
        let at = Place {
            mailbox: "help",
            uid_validity: 1,
        };
        let first = ingest_guarded(&engine, &mails, &at, None).unwrap();
        assert_eq!(first.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [10, 12]);
        assert_eq!(engine.store().ticket_count(), 2);
        let second = ingest_guarded(&engine, &mails[1..], &at, None).unwrap();
        assert_eq!(second.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [12]);
        let third = ingest_guarded(&engine, &mails[1..], &at, None).unwrap();
        assert!(
            matches!(&third[0], (11, Outcome::Quarantined { reason, .. }) if reason.contains("failed 3 times")),
            "{third:?}"
        );
        assert_eq!(engine.store().quarantine().unwrap().len(), 1);
        assert_eq!(
            engine.store().attempts("help", 1, &[10, 11, 12]).unwrap(),
            [0, 0, 0]
        );
    }
}
