//! The `Digests` table (23): when each `[[digest]]` was last sent, and the
//! reports asked for by mail (`help+report@`) not answered yet.
//!
//! A digest's mark is written in the transaction that queues its mails, so
//! a crash sends a period at most once; a request is written in the
//! transaction that files the asking mail and removed in the one that
//! queues the answer, so an accepted request is answered exactly once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::TxResult;
use super::layout::{decode, tx_decode, tx_encode, T};
use super::{Store, StoreError, Tx};
use crate::mail::address::Party;

/// Key prefix of a digest's last send time (then the digest's name).
const SENT: u8 = b'd';
/// Key prefix of a pending report request (then its id, u64 BE).
const REQUEST: u8 = b'r';

fn sent_key(name: &str) -> Vec<u8> {
    let mut k = vec![SENT];
    k.extend_from_slice(name.as_bytes());
    k
}

fn request_key(id: u64) -> [u8; 9] {
    let mut k = [REQUEST; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// A report an agent asked for by mail, waiting for the timer pass (a
/// report reads every ticket: never inside the mail's transaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRequest {
    pub id: u64,
    /// The proven agent who asked, who gets the answer.
    pub to: Party,
    /// The asking mail's Message-ID: the answer threads under it.
    pub message_id: Option<String>,
    pub subject: String,
    /// The `#report` line as written (its options, checked already).
    pub line: String,
    pub asked_at: DateTime<Utc>,
}

impl Tx<'_> {
    /// The start of the last period the digest was sent for.
    pub fn digest_sent(&self, name: &str) -> TxResult<Option<DateTime<Utc>>> {
        self.ws
            .get(T::Digests as u8, &sent_key(name))
            .map_err(StoreError::from)?
            .map(|v| tx_decode("digest mark", &v))
            .transpose()
    }

    pub fn set_digest_sent(&self, name: &str, period: DateTime<Utc>) -> TxResult<()> {
        self.ws.insert(
            T::Digests as u8,
            &sent_key(name),
            tx_encode("digest mark", &period)?,
        );
        Ok(())
    }

    pub fn put_report_request(&self, r: &ReportRequest) -> TxResult<()> {
        self.ws.insert(
            T::Digests as u8,
            &request_key(r.id),
            tx_encode("report request", r)?,
        );
        Ok(())
    }

    /// Removes a request; false when it was gone already (answered).
    pub fn take_report_request(&self, id: u64) -> TxResult<bool> {
        let key = request_key(id);
        let there = self
            .ws
            .get(T::Digests as u8, &key)
            .map_err(StoreError::from)?
            .is_some();
        self.ws.remove(T::Digests as u8, &key);
        Ok(there)
    }
}

impl Store {
    /// The start of the last period the digest was sent for.
    pub fn digest_sent(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.db
            .get(T::Digests as u8, &sent_key(name))?
            .map(|v| decode("digest mark", &v))
            .transpose()
    }

    /// Pending report requests, oldest first, at most `limit`.
    pub fn report_requests(&self, limit: usize) -> Result<Vec<ReportRequest>, StoreError> {
        self.db
            .scan_prefix(T::Digests as u8, &[REQUEST])
            .take(limit)
            .map(|r| decode("report request", &r?.1))
            .collect()
    }
}
