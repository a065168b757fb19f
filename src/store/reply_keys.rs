//! The keys that sign per-ticket reply addresses, by epoch. The newest
//! signs; an older one keeps verifying until its `valid_until`, so a
//! rotation does not break the reply addresses in notifications already
//! sent (for the grace period), and a leaked key stops working after it.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::layout::{REPLY_KEY, T};
use crate::store::{Store, StoreError};

/// The ring's key in the meta tree.
const REPLY_KEYS: &[u8] = b"reply_keys";
/// Most keys kept: each rotation adds one; expired ones are dropped.
const MAX_KEYS: usize = 8;

/// One signing key and its epoch (named in the reply address).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyKey {
    pub epoch: u32,
    pub key: Vec<u8>,
    /// None: the current key. Some: retired, verifies until then.
    pub valid_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ReplyKey {
    // Never print a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyKey")
            .field("epoch", &self.epoch)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

/// The ring as the running process holds it: shared by the engine and every
/// policy it hands out, so a rotation (through the control socket) takes
/// effect for the next mail without a reload.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<RwLock<Arc<Vec<ReplyKey>>>>);

impl KeyRing {
    pub fn new(keys: Vec<ReplyKey>) -> KeyRing {
        KeyRing(Arc::new(RwLock::new(Arc::new(keys))))
    }

    /// The keys now, oldest first, the signing one last.
    pub fn get(&self) -> Arc<Vec<ReplyKey>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, keys: Vec<ReplyKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.get().iter()).finish()
    }
}

fn fresh_key() -> Result<Vec<u8>, StoreError> {
    let mut key = vec![0u8; 32];
    getrandom::getrandom(&mut key)
        .map_err(|e| StoreError::Aborted(format!("no randomness for the reply key: {e}")))?;
    Ok(key)
}

fn decode(bytes: &[u8]) -> Result<Vec<ReplyKey>, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Aborted(format!("cannot read the reply keys: {e}")))
}

fn encode(keys: &[ReplyKey]) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(keys)
        .map_err(|e| StoreError::Aborted(format!("cannot write the reply keys: {e}")))
}

impl Store {
    /// The reply keys, oldest first, the current (signing) one last. Made on
    /// first use; a store from before epochs keeps its single key as epoch 1.
    pub fn reply_keys(&self) -> Result<Vec<ReplyKey>, StoreError> {
        let meta = T::Meta as u8;
        if let Some(v) = self.db.get(meta, REPLY_KEYS)? {
            return decode(&v);
        }
        let key = match self.db.get(meta, REPLY_KEY)? {
            Some(k) => k.to_vec(),
            None => fresh_key()?,
        };
        let ring = encode(&[ReplyKey {
            epoch: 1,
            key,
            valid_until: None,
        }])?;
        // Two processes racing here: the first write wins and both read it back.
        let kept = self.db.put_if_absent(meta, REPLY_KEYS, &ring)?;
        self.db.sync()?;
        match Some(kept) {
            Some(v) => decode(&v),
            None => Err(StoreError::Aborted("the reply keys vanished".into())),
        }
    }

    /// Makes a new current key; the previous one verifies until `now +
    /// grace`. Keys already expired at `now` are dropped. Returns the ring.
    pub fn rotate_reply_key(
        &self,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> Result<Vec<ReplyKey>, StoreError> {
        let meta = T::Meta as u8;
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::days(365));
        loop {
            let old = self.reply_keys()?;
            let mut ring: Vec<ReplyKey> = old
                .iter()
                .filter(|k| k.valid_until.is_none_or(|u| u > now))
                .cloned()
                .collect();
            for k in ring.iter_mut().filter(|k| k.valid_until.is_none()) {
                k.valid_until = Some(now + grace);
            }
            let epoch = old.iter().map(|k| k.epoch).max().unwrap_or(0) + 1;
            ring.push(ReplyKey {
                epoch,
                key: fresh_key()?,
                valid_until: None,
            });
            let drop = ring.len().saturating_sub(MAX_KEYS);
            ring.drain(..drop);
            let (old_bytes, new_bytes) = (encode(&old)?, encode(&ring)?);
            if self
                .db
                .compare_and_swap(meta, REPLY_KEYS, Some(&old_bytes), Some(&new_bytes))?
            {
                self.db.sync()?;
                return Ok(ring);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_previous_key_for_the_grace_period() {
        let s = Store::temporary().unwrap();
        let first = s.reply_keys().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].epoch, 1);
        assert_eq!(s.reply_keys().unwrap(), first, "made once");
        let now = Utc::now();
        let day = std::time::Duration::from_secs(86_400);
        let ring = s.rotate_reply_key(now, day).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(ring[0].key, first[0].key);
        assert_eq!(ring[0].valid_until, Some(now + chrono::Duration::days(1)));
        assert_eq!((ring[1].epoch, ring[1].valid_until), (2, None));
        assert_ne!(ring[1].key, ring[0].key);
        assert_eq!(s.reply_keys().unwrap(), ring, "stored");
        // Two days on, epoch 1 has expired and is dropped.
        let later = s
            .rotate_reply_key(now + chrono::Duration::days(2), day)
            .unwrap();
        let epochs: Vec<u32> = later.iter().map(|k| k.epoch).collect();
        assert_eq!(epochs, [2, 3]);
    }

    #[test]
    fn a_store_from_before_epochs_keeps_its_key() {
        let s = Store::temporary().unwrap();
        s.db.put_direct(T::Meta as u8, REPLY_KEY, b"old key")
            .unwrap();
        let ring = s.reply_keys().unwrap();
        assert_eq!(ring[0].key, b"old key");
        assert_eq!(ring[0].epoch, 1);
    }

    #[test]
    fn the_ring_has_a_budget() {
        let s = Store::temporary().unwrap();
        let now = Utc::now();
        for _ in 0..20 {
            s.rotate_reply_key(now, std::time::Duration::from_secs(3600))
                .unwrap();
        }
        let ring = s.reply_keys().unwrap();
        assert_eq!(ring.len(), MAX_KEYS);
        assert_eq!(ring.last().unwrap().epoch, 21);
    }
}
