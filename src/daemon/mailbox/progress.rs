//! How far a pass gets, as pure decisions the IMAP code only carries out:
//! which mails of a FETCH answer are processed and which are tried again,
//! when a UID the server never delivers is given up, and where the
//! checkpoint may move. Kept apart from the network so each rule is tested
//! with the answers a real server cannot be made to send.

use std::collections::{BTreeMap, BTreeSet};

/// Passes in a row a searched UID may come back from FETCH without its mail
/// before the checkpoint passes it anyway: a server that lists a UID but
/// never delivers it (a damaged message file, a broken index) must not hold
/// every later mail's checkpoint back forever. Five passes is a few poll
/// intervals, long past any expunge race or passing server hiccup.
pub const GIVE_UP_PASSES: u32 = 5;

/// One batch's FETCH answer, sorted.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivered<'a> {
    /// Each asked-for mail the server delivered, by UID, once.
    pub mails: Vec<(u32, &'a [u8])>,
    /// Asked-for UIDs the answer lacked: not processed, tried again.
    pub missing: Vec<u32>,
    /// Answer items without a UID or body, or for a UID not asked for.
    pub incomplete: usize,
}

/// Sorts a FETCH answer (each item's UID and body, when it had them)
/// against the UIDs asked for. Only an item with both, for an asked UID,
/// is processed; a second item for the same UID is ignored.
pub fn sort_fetched<'a>(
    asked: &[u32],
    items: impl IntoIterator<Item = (Option<u32>, Option<&'a [u8]>)>,
) -> Delivered<'a> {
    let wanted: BTreeSet<u32> = asked.iter().copied().collect();
    let mut got: BTreeMap<u32, &'a [u8]> = BTreeMap::new();
    let mut incomplete = 0usize;
    for item in items {
        match item {
            (Some(uid), Some(body)) if wanted.contains(&uid) => {
                got.entry(uid).or_insert(body);
            }
            _ => incomplete += 1,
        }
    }
    let missing = wanted
        .iter()
        .filter(|u| !got.contains_key(u))
        .copied()
        .collect();
    Delivered {
        mails: got.into_iter().collect(),
        missing,
        incomplete,
    }
}

/// The new checkpoint: the highest searched UID below which every searched
/// UID is `done` (processed, or given up). Mail not delivered or that failed
/// holds it back, so it is fetched again.
pub fn checkpoint_after(last_uid: u32, searched: &[u32], done: &BTreeSet<u32>) -> u32 {
    let mut cp = last_uid;
    for &uid in searched {
        if !done.contains(&uid) {
            break;
        }
        cp = cp.max(uid);
    }
    cp
}

/// Counts, per UID above the checkpoint, the passes in a row FETCH did not
/// deliver it. Holds only UIDs of the current search, so it is bounded by
/// the mail in hand, not by history.
#[derive(Debug, Default)]
pub struct Undelivered {
    passes: BTreeMap<u32, u32>,
    given_up: BTreeSet<u32>,
}

impl Undelivered {
    /// A new pass searched `searched`: UIDs no longer listed (expunged, or
    /// behind the checkpoint) are forgotten.
    pub fn start_pass(&mut self, searched: &[u32]) {
        let listed: BTreeSet<u32> = searched.iter().copied().collect();
        self.passes.retain(|u, _| listed.contains(u));
        self.given_up.retain(|u| listed.contains(u));
    }

    /// Records one FETCH answer (the UIDs it delivered and those it
    /// lacked); returns the UIDs given up just now (each
    /// once, for the warning and the count).
    pub fn record(
        &mut self,
        delivered: impl IntoIterator<Item = u32>,
        missing: &[u32],
    ) -> Vec<u32> {
        for uid in delivered {
            self.passes.remove(&uid);
        }
        let mut newly = Vec::new();
        for &uid in missing {
            if self.given_up.contains(&uid) {
                continue;
            }
            let n = self.passes.entry(uid).or_insert(0);
            *n += 1;
            if *n >= GIVE_UP_PASSES {
                self.passes.remove(&uid);
                self.given_up.insert(uid);
                newly.push(uid);
            }
        }
        newly
    }

    /// UIDs the checkpoint may pass without their mail.
    pub fn given_up(&self) -> &BTreeSet<u32> {
        &self.given_up
    }

    /// After a UIDVALIDITY change the old UIDs mean nothing.
    pub fn clear(&mut self) {
        self.passes.clear();
        self.given_up.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(u: &[u32]) -> BTreeSet<u32> {
        u.iter().copied().collect()
    }

    #[test]
    fn only_items_with_an_asked_uid_and_a_body_are_processed() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        let d = sort_fetched(
            &[5, 6, 7, 8],
            [
                (Some(5), Some(a)),
                (Some(6), None),    // no body
                (None, Some(b)),    // no UID
                (Some(9), Some(b)), // not asked for
                (Some(8), Some(b)),
                (Some(5), Some(b)), // again: the first counts
            ],
        );
        assert_eq!(d.mails, vec![(5, a), (8, b)]);
        assert_eq!(d.missing, vec![6, 7]);
        assert_eq!(d.incomplete, 3);
    }

    #[test]
    fn the_last_uid_imap_has_is_processed_and_passed_without_overflow() {
        let body: &[u8] = b"x";
        let d = sort_fetched(&[u32::MAX - 1, u32::MAX], [(Some(u32::MAX), Some(body))]);
        assert_eq!(d.mails, vec![(u32::MAX, body)]);
        assert_eq!(d.missing, vec![u32::MAX - 1]);
        assert_eq!(
            checkpoint_after(u32::MAX - 2, &[u32::MAX - 1, u32::MAX], &set(&[u32::MAX])),
            u32::MAX - 2
        );
        assert_eq!(
            checkpoint_after(u32::MAX - 1, &[u32::MAX], &set(&[u32::MAX])),
            u32::MAX
        );
        assert_eq!(checkpoint_after(u32::MAX, &[], &set(&[])), u32::MAX);
    }

    #[test]
    fn the_checkpoint_passes_only_processed_uids() {
        assert_eq!(checkpoint_after(4, &[5, 6, 7], &set(&[5, 7])), 5);
        assert_eq!(checkpoint_after(4, &[5, 6, 7], &set(&[6, 7])), 4);
        assert_eq!(checkpoint_after(4, &[5, 6, 7], &set(&[5, 6, 7])), 7);
        // Never backwards.
        assert_eq!(checkpoint_after(9, &[5], &set(&[5])), 9);
    }

    /// A UID FETCH never delivers holds the checkpoint for GIVE_UP_PASSES
    /// passes, then is passed, reported once.
    #[test]
    fn a_uid_never_delivered_is_given_up_after_five_passes() {
        let body: &[u8] = b"m";
        let mut u = Undelivered::default();
        let mut last = 4;
        let mut reported = Vec::new();
        for pass in 1..=GIVE_UP_PASSES + 2 {
            // Each pass refetches what the checkpoint did not pass.
            let searched: Vec<u32> = [5, 6].into_iter().filter(|&x| x > last).collect();
            u.start_pass(&searched);
            let d = sort_fetched(
                &searched,
                searched
                    .iter()
                    .filter(|&&x| x == 6)
                    .map(|&x| (Some(x), Some(body))),
            );
            reported.extend(u.record(d.mails.iter().map(|(x, _)| *x), &d.missing));
            let mut done: BTreeSet<u32> = d.mails.iter().map(|(x, _)| *x).collect();
            done.extend(u.given_up());
            last = checkpoint_after(last, &searched, &done);
            if pass < GIVE_UP_PASSES {
                assert_eq!(last, 4, "pass {pass}");
            } else {
                assert_eq!(last, 6, "pass {pass}");
            }
        }
        assert_eq!(reported, vec![5]);
    }

    #[test]
    fn a_delivery_in_between_starts_the_count_again() {
        let body: &[u8] = b"m";
        let mut u = Undelivered::default();
        let pass = |u: &mut Undelivered, delivered: bool| {
            u.start_pass(&[5]);
            let items: Vec<(Option<u32>, Option<&[u8]>)> = if delivered {
                vec![(Some(5), Some(body))]
            } else {
                Vec::new()
            };
            let d = sort_fetched(&[5], items);
            u.record(d.mails.iter().map(|(x, _)| *x), &d.missing)
        };
        for _ in 0..GIVE_UP_PASSES - 1 {
            assert!(pass(&mut u, false).is_empty());
        }
        assert!(pass(&mut u, true).is_empty());
        for _ in 0..GIVE_UP_PASSES - 1 {
            assert!(pass(&mut u, false).is_empty());
        }
        assert_eq!(pass(&mut u, false), vec![5]);
        // Given up once: not reported again.
        assert!(pass(&mut u, false).is_empty());
        // Expunged (no longer searched): forgotten.
        u.start_pass(&[7]);
        assert!(u.given_up().is_empty());
    }
}
