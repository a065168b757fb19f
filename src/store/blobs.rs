//! Each attachment stored once. An inbound mail's attachments are in its
//! raw mail already, so `Blobs` holds for them only a reference to that raw
//! mail (`codec::IN_RAW`), and a read parses the raw mail again and takes
//! the part whose bytes hash to the blob's key. Attachments that are in no
//! stored raw mail (imported, or of mail whose raw mail is not kept) are
//! stored whole. When retention prunes a raw mail, the attachments that
//! referred to it are written whole in the same transaction (see
//! `retention.rs`), so an attachment never goes with its mail.
//!
//! The hash is checked on every read: if a parser of another release took
//! other bytes from the same mail, the attachment reads as missing, never
//! as wrong bytes.

use super::codec::{self, Bytes};
use super::db::Db;
use super::error::StoreError;
use super::layout::T;
use crate::mail::parse::{parse, sha256_hex};

/// The stored raw mail `stored` (under `key`) as received.
pub(super) fn raw_bytes(key: &str, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    match codec::decode_bytes(key.as_bytes(), stored) {
        Ok(Bytes::Here(b)) => Ok(b),
        Ok(Bytes::InRaw(_)) => Err(StoreError::Unreadable {
            what: "raw mail",
            source: codec::CodecError::BadReference,
        }),
        Err(source) => Err(StoreError::Unreadable {
            what: "raw mail",
            source,
        }),
    }
}

/// The bytes of the attachment of `raw` that hash to `sha256`.
pub(super) fn attachment_in(raw: &[u8], sha256: &str) -> Option<Vec<u8>> {
    parse(raw)
        .ok()?
        .attachments
        .into_iter()
        .map(|a| a.bytes)
        .find(|b| sha256_hex(b) == sha256)
}

/// The bytes of the blob `stored` under `sha256`: kept whole, or read from
/// the raw mail it refers to (None when that mail no longer holds it).
pub(super) fn resolve(db: &Db, sha256: &str, stored: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let decoded = codec::decode_bytes(sha256.as_bytes(), stored).map_err(|source| {
        StoreError::Unreadable {
            what: "attachment",
            source,
        }
    })?;
    match decoded {
        Bytes::Here(b) => Ok(Some(b)),
        Bytes::InRaw(key) => match db.get(T::Raw as u8, key.as_bytes())? {
            Some(raw) => Ok(attachment_in(&raw_bytes(&key, &raw)?, sha256)),
            None => Ok(None),
        },
    }
}

/// The raw mail a blob refers to, if it is a reference.
pub(super) fn referred_raw(sha256: &str, stored: &[u8]) -> Option<String> {
    match codec::decode_bytes(sha256.as_bytes(), stored) {
        Ok(Bytes::InRaw(key)) => Some(key),
        _ => None,
    }
}
