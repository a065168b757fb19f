//! Per-mail attempt counts: how often processing of one IMAP UID started
//! without committing. Raised and flushed before a mail is processed and
//! cleared once it commits, so a mail that crashes the daemon (a panic, an
//! abort, an OOM kill) is recognised when the daemon comes back.
//!
//! Kept in their own table, written outside ticket transactions like the
//! checkpoints themselves.

use super::layout::T;
use super::{Store, StoreError};

fn key(mailbox: &str, uid_validity: u32, uid: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(mailbox.len() + 9);
    k.extend_from_slice(mailbox.as_bytes());
    k.push(0);
    k.extend_from_slice(&uid_validity.to_be_bytes());
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

fn count_of(v: Option<sled::IVec>) -> u32 {
    v.and_then(|v| Some(u32::from_be_bytes(v.as_ref().try_into().ok()?)))
        .unwrap_or(0)
}

impl Store {
    /// How often processing of each UID started without committing.
    pub fn attempts(
        &self,
        mailbox: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> Result<Vec<u32>, StoreError> {
        let table = T::Attempts as u8;
        uids.iter()
            .map(|&u| {
                Ok(count_of(
                    self.db.get(table, &key(mailbox, uid_validity, u))?,
                ))
            })
            .collect()
    }

    /// Counts one more attempt for each UID and makes that durable before
    /// returning: the count must survive the crash it is there to detect.
    pub fn raise_attempts(
        &self,
        mailbox: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> Result<Vec<u32>, StoreError> {
        let table = T::Attempts as u8;
        let mut counts = Vec::with_capacity(uids.len());
        let mut raised: std::collections::HashMap<Vec<u8>, u32> = Default::default();
        for &u in uids {
            let k = key(mailbox, uid_validity, u);
            let before = match raised.get(&k) {
                Some(&n) => n,
                None => count_of(self.db.get(table, &k)?),
            };
            let n = before.saturating_add(1);
            raised.insert(k, n);
            counts.push(n);
        }
        let writes = raised
            .into_iter()
            .map(|(k, n)| (k, Some(n.to_be_bytes().to_vec())));
        self.db.write_direct(table, writes)?;
        self.db.sync()?;
        Ok(counts)
    }

    /// Forgets the counts of UIDs that committed. Not flushed: a count lost
    /// in a crash only means one needless mail-by-mail pass.
    pub fn clear_attempts(
        &self,
        mailbox: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> Result<(), StoreError> {
        let removes = uids.iter().map(|&u| (key(mailbox, uid_validity, u), None));
        self.db.write_direct(T::Attempts as u8, removes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_up_survive_reopen_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.attempts("help", 7, &[1, 2]).unwrap(), [0, 0]);
            assert_eq!(s.raise_attempts("help", 7, &[1, 2]).unwrap(), [1, 1]);
            assert_eq!(s.raise_attempts("help", 7, &[2]).unwrap(), [2]);
            // A UID twice in one call counts twice, as one at a time did.
            assert_eq!(s.raise_attempts("help", 9, &[4, 4]).unwrap(), [1, 2]);
            assert_eq!(s.attempts("help", 9, &[4]).unwrap(), [2]);
            assert_eq!(s.attempts("other", 7, &[2]).unwrap(), [0]);
            assert_eq!(s.attempts("help", 8, &[2]).unwrap(), [0]);
        }
        // sled lets go of its lock a moment after the last handle.
        let s = Store::open_when_free(dir.path());
        assert_eq!(s.attempts("help", 7, &[1, 2]).unwrap(), [1, 2]);
        s.clear_attempts("help", 7, &[2]).unwrap();
        assert_eq!(s.attempts("help", 7, &[1, 2]).unwrap(), [1, 0]);
        assert_eq!(s.checkpoint("help").unwrap(), None);
    }
}
