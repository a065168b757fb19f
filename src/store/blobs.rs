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

#[cfg(test)]
pub(crate) mod tests {
    use crate::mail::parse::{parse, sha256_hex};
    use crate::store::Store;

    /// A mail with one attachment, and the attachment's bytes.
    pub(crate) fn mail_with_attachment() -> (Vec<u8>, Vec<u8>) {
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
        let raw = format!(
            "From: a@b.c\r\nTo: help@desk.test\r\nSubject: log\r\nMessage-ID: <att@b.c>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nsee the log\r\n\
             --b\r\nContent-Type: application/octet-stream; name=\"log.bin\"\r\n\
             Content-Disposition: attachment; filename=\"log.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
        );
        (raw.into_bytes(), bytes)
    }

    #[test]
    fn an_attachment_is_stored_once_and_read_back_from_its_mail() {
        let (raw, bytes) = mail_with_attachment();
        assert_eq!(parse(&raw).unwrap().attachments[0].bytes, bytes);
        let (key, sha) = (sha256_hex(&raw), sha256_hex(&bytes));
        let s = Store::temporary().unwrap();
        s.transact(|tx| {
            tx.put_raw(&key, &raw)?;
            tx.put_blob_of_raw(&sha, &key)
        })
        .unwrap();
        assert_eq!(s.blob(&sha).unwrap(), Some(bytes.clone()));
        assert_eq!(s.raw(&key).unwrap(), Some(raw.clone()));
        let stored = s.get(super::T::Blobs, sha.as_bytes()).unwrap().unwrap();
        assert_eq!(stored.len(), 65, "a reference, not the bytes");
        // The same file sent again is not stored again either.
        s.transact(|tx| tx.put_blob(&sha, &bytes)).unwrap();
        let again = s.get(super::T::Blobs, sha.as_bytes()).unwrap().unwrap();
        assert_eq!(again, stored);
        // A blob whose mail is gone (or never held it) reads as missing.
        assert_eq!(s.blob(&"0".repeat(64)).unwrap(), None);
    }
}
