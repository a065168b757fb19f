//! Quarantine: mail that cannot be understood is kept with the reason, never
//! dropped and never retried forever.

use chrono::{DateTime, Utc};

use crate::desk::outcome::{describe, Outcome};
use crate::mail::parse::sha256_hex;
use crate::store::records::{Disposition, QuarantineEntry};
use crate::store::{Tx, TxResult};

/// Keeps a mail that cannot be filed, with the reason: it never blocks the
/// mails behind it, and an admin can retry it.
pub fn quarantine_in_tx(
    tx: &Tx<'_>,
    raw: &[u8],
    mailbox: &str,
    reason: &str,
    key: &str,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    if let Some(d) = tx.disposition(key)? {
        return Ok(Outcome::Duplicate { ticket: d.ticket });
    }
    let raw_key = sha256_hex(raw);
    tx.put_raw(&raw_key, raw)?;
    let id = tx.generate_id()?;
    tx.put_quarantine(&QuarantineEntry {
        id,
        mailbox: mailbox.to_string(),
        reason: reason.to_string(),
        at: now,
        raw_key,
        size: raw.len() as u64,
    })?;
    let outcome = Outcome::Quarantined {
        id,
        reason: reason.to_string(),
    };
    tx.put_disposition(
        key,
        &Disposition {
            ticket: None,
            at: now,
            outcome: describe(&outcome),
        },
    )?;
    Ok(outcome)
}
