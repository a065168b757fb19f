#![cfg(test)]
//! Engine tests of the store at scale (issue 13): each failed before its fix.

use super::*;

/// Raw mail is keyed in filing order (`store::raw_key`), so a new mail's
/// bytes go to the newest leaves of the tree, not to a random one: keyed by
/// hash alone, the build slowed as the store outgrew sled's cache.
#[test]
fn raw_mail_is_keyed_in_filing_order() {
    let (_d, e, c) = engine();
    let mut keys = Vec::new();
    for i in 0..20u64 {
        let raw = mail(
            &format!("a{i}@c.test"),
            &format!("Help {i}"),
            &format!("{i}@c"),
            "",
        );
        assert!(matches!(
            e.ingest(&raw, "help").unwrap(),
            Outcome::Created { .. }
        ));
        c.advance(chrono::Duration::seconds(1));
        let m = e.store().messages(1000 + i).unwrap();
        let key = m[0].raw_key.clone().expect("raw kept");
        assert_eq!(
            e.store().raw(&key).unwrap().as_deref(),
            Some(raw.as_slice())
        );
        keys.push(key);
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "raw keys in filing order");
}

/// A quarantined mail filed on retry is stored under its own key: the
/// quarantine's copy, read by nothing any more, goes in the same transaction.
#[test]
fn a_retried_quarantined_mail_leaves_no_second_copy() {
    let (_d, e, _c) = engine();
    let raw = mail("a@c.test", "Help", "q1@c", "");
    let Outcome::Quarantined { id, .. } = e.quarantine_raw(&raw, "help", "parser crashed").unwrap()
    else {
        panic!("not quarantined")
    };
    let entry = e.store().quarantine_entry(id).unwrap().unwrap();
    assert!(e.store().raw(&entry.raw_key).unwrap().is_some());
    assert!(matches!(
        e.retry_quarantined(id).unwrap(),
        Outcome::Created { .. }
    ));
    let filed = e.store().messages(1000).unwrap()[0]
        .raw_key
        .clone()
        .unwrap();
    assert_eq!(
        e.store().raw(&filed).unwrap().as_deref(),
        Some(raw.as_slice())
    );
    assert!(
        e.store().raw(&entry.raw_key).unwrap().is_none(),
        "no orphan copy"
    );
}
