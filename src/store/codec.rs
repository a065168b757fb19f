//! How values are written into sled: the first byte of every value this
//! release writes says how the rest is encoded, so a store can hold values
//! of older releases and of this one side by side, and no migration is
//! needed (old values are rewritten compactly when their record next
//! changes).
//!
//! Records: `{`, `[` or `"` first is JSON (older releases); [`PACK`] is
//! MessagePack with field names, [`PACK_ZSTD`] the same compressed. MessagePack
//! and not postcard: postcard is not self-describing, so a record gaining a
//! field (`#[serde(default)]`, the way records grow here) would need a new
//! version, and it cannot read `flatten`, tagged enums, `untagged` or
//! `skip_serializing_if`, which `Event`, `SendWindow` and `Outgoing` use for
//! their JSON shape (the CLI's `--json` and exports print that shape).
//!
//! Bytes (raw mail, attachments): [`PLAIN`] or [`ZSTD`] first; older
//! releases stored the bytes bare. A bare mail could start with any byte,
//! so where the key is the bytes' SHA-256 the hash decides (see
//! [`decode_bytes`]). An attachment that is part of a stored raw mail is
//! not stored again: its value is [`IN_RAW`] and the raw mail's key.
//!
//! Only values over [`COMPRESS_ABOVE`] bytes are compressed, and only when
//! that saves an eighth: small records are not worth the time.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A record, MessagePack with field names.
pub(super) const PACK: u8 = 0xC1;
/// A record, MessagePack compressed with zstd.
pub(super) const PACK_ZSTD: u8 = 0xC2;
/// Bytes as they are.
pub(super) const PLAIN: u8 = 0xB0;
/// Bytes compressed with zstd.
pub(super) const ZSTD: u8 = 0xB1;
/// An attachment whose bytes are read from the raw mail whose key follows.
pub(super) const IN_RAW: u8 = 0xB2;

/// Values at most this long are stored uncompressed.
pub(super) const COMPRESS_ABOVE: usize = 512;
/// zstd's fastest level: on mail text it gets most of what level 3 gets.
const LEVEL: i32 = 1;
/// No stored value expands to more than this (above any mail size limit):
/// a corrupt frame cannot make a read allocate without bound.
const MAX_PLAIN: u64 = 1 << 30;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("the value is empty")]
    Empty,
    #[error("unknown encoding (first byte {0:#04x})")]
    Unknown(u8),
    #[error("old JSON record: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}")]
    Unpack(#[source] rmp_serde::decode::Error),
    #[error("{0}")]
    Pack(#[source] rmp_serde::encode::Error),
    #[error("compression: {0}")]
    Zstd(#[source] std::io::Error),
    #[error("compressed value of unknown or too large size")]
    Size,
    #[error("an attachment reference without a mail key")]
    BadReference,
}

thread_local! {
    // Contexts are reused: making one per value costs more than compressing
    // a small mail.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `bytes` into `out` after what it already holds (the marker
/// byte), so the stored value is built in one buffer, without a copy.
fn compress_after(bytes: &[u8], out: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(LEVEL).map_err(CodecError::Zstd)?);
        }
        let Some(c) = c.as_mut() else {
            return Err(CodecError::Size);
        };
        let at = out.len() as u64;
        let mut cursor = std::io::Cursor::new(out);
        cursor.set_position(at);
        c.compress_to_buffer(bytes, &mut cursor)
            .map_err(CodecError::Zstd)?;
        Ok(cursor.into_inner())
    })
}

fn decompress(frame: &[u8]) -> Result<Vec<u8>, CodecError> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .filter(|n| *n <= MAX_PLAIN)
        .ok_or(CodecError::Size)? as usize;
    let out = DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(CodecError::Zstd)?);
        }
        match d.as_mut() {
            Some(d) => d.decompress(frame, size).map_err(CodecError::Zstd),
            None => Err(CodecError::Size),
        }
    })?;
    if out.len() != size {
        return Err(CodecError::Size);
    }
    Ok(out)
}

/// `body` behind `plain` or, compressed, behind `packed` when that pays.
fn frame(body: &[u8], plain: u8, packed: u8) -> Result<Vec<u8>, CodecError> {
    if body.len() > COMPRESS_ABOVE {
        let mut out = Vec::with_capacity(1 + zstd::zstd_safe::compress_bound(body.len()));
        out.push(packed);
        let out = compress_after(body, out)?;
        if out.len() - 1 < body.len() - body.len() / 8 {
            return Ok(out);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(plain);
    out.extend_from_slice(body);
    Ok(out)
}

/// The scratch buffer a record is packed into before it is framed, kept per
/// thread: packing into a fresh vector grows it (and copies it) several
/// times per record. A buffer grown past this is not kept.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub fn encode_record<V: Serialize>(v: &V) -> Result<Vec<u8>, CodecError> {
    let pack = |body: &mut Vec<u8>| {
        body.clear();
        rmp_serde::encode::write_named(body, v).map_err(CodecError::Pack)?;
        frame(body, PACK, PACK_ZSTD)
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut body) => {
            let framed = pack(&mut body);
            if body.capacity() > SCRATCH_KEEP {
                *body = Vec::new();
            }
            framed
        }
        // Only if a record's serialisation packed another record.
        Err(_) => pack(&mut Vec::new()),
    })
}

pub fn decode_record<V: DeserializeOwned>(stored: &[u8]) -> Result<V, CodecError> {
    match stored.first() {
        None => Err(CodecError::Empty),
        Some(b'{' | b'[' | b'"') => serde_json::from_slice(stored).map_err(CodecError::Json),
        Some(&PACK) => rmp_serde::from_slice(&stored[1..]).map_err(CodecError::Unpack),
        Some(&PACK_ZSTD) => {
            rmp_serde::from_slice(&decompress(&stored[1..])?).map_err(CodecError::Unpack)
        }
        Some(other) => Err(CodecError::Unknown(*other)),
    }
}

/// Raw mail or an attachment, compressed when that pays.
pub fn encode_bytes(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    frame(bytes, PLAIN, ZSTD)
}

/// A blob that is the attachment of the raw mail stored under `raw_key`.
pub fn encode_in_raw(raw_key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw_key.len() + 1);
    out.push(IN_RAW);
    out.extend_from_slice(raw_key.as_bytes());
    out
}

/// What a bytes value holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Bytes {
    Here(Vec<u8>),
    /// In the raw mail of this key (blobs only).
    InRaw(String),
}

fn is_sha256_hex(key: &[u8]) -> bool {
    key.len() == 64 && key.iter().all(|b| b.is_ascii_hexdigit())
}

fn sha256_is(bytes: &[u8], key: &[u8]) -> bool {
    hex::encode(Sha256::digest(bytes)).as_bytes() == key
}

/// Reads a bytes value stored under `key`. A value of an older release is
/// the bytes themselves; if one of those happens to start with a marker
/// byte, the key tells: when the key is a SHA-256 and the decoded bytes do
/// not hash to it but the value itself does, the value is old and bare.
pub fn decode_bytes(key: &[u8], stored: &[u8]) -> Result<Bytes, CodecError> {
    let decoded = match stored.first() {
        Some(&PLAIN) => Ok(Bytes::Here(stored[1..].to_vec())),
        Some(&ZSTD) => decompress(&stored[1..]).map(Bytes::Here),
        Some(&IN_RAW) => match std::str::from_utf8(&stored[1..]) {
            Ok(k) if !k.is_empty() => Ok(Bytes::InRaw(k.to_string())),
            _ => Err(CodecError::BadReference),
        },
        _ => return Ok(Bytes::Here(stored.to_vec())),
    };
    if !is_sha256_hex(key) {
        return decoded;
    }
    match decoded {
        Ok(Bytes::Here(b)) if sha256_is(&b, key) => Ok(Bytes::Here(b)),
        _ if sha256_is(stored, key) => Ok(Bytes::Here(stored.to_vec())),
        other => other,
    }
}

/// The length of the bytes a value holds, without expanding it (what a
/// prune frees is counted in mail bytes, whatever the encoding).
pub fn bytes_len(stored: &[u8]) -> u64 {
    match stored.first() {
        Some(&PLAIN) => stored.len() as u64 - 1,
        Some(&ZSTD) => zstd::zstd_safe::get_frame_content_size(&stored[1..])
            .ok()
            .flatten()
            .unwrap_or(stored.len() as u64 - 1),
        Some(&IN_RAW) => 0,
        _ => stored.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_records_are_packed_and_big_ones_compressed() {
        let small = encode_record(&vec!["a".to_string()]).unwrap();
        assert_eq!(small[0], PACK);
        let big = encode_record(&vec!["printer error 0x42 ".repeat(100)]).unwrap();
        assert_eq!(big[0], PACK_ZSTD);
        assert!(big.len() < 200, "{}", big.len());
        let back: Vec<String> = decode_record(&big).unwrap();
        assert_eq!(back, vec!["printer error 0x42 ".repeat(100)]);
    }

    /// The framing as it was before records were packed into a reused
    /// buffer and compressed in place: the stored bytes must not change.
    fn framed_as_before(body: Vec<u8>, plain: u8, packed: u8) -> Vec<u8> {
        if body.len() > COMPRESS_ABOVE {
            let z = zstd::bulk::compress(&body, LEVEL).unwrap();
            if z.len() < body.len() - body.len() / 8 {
                return [vec![packed], z].concat();
            }
        }
        [vec![plain], body].concat()
    }

    #[test]
    fn values_are_encoded_byte_for_byte_as_before() {
        // Small, big and compressible, big and not worth compressing.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let records = [
            vec!["a".to_string()],
            vec!["printer error 0x42 ".repeat(100), "x".into()],
            vec![hex::encode(&noise[..400])],
        ];
        // Twice, so the reused buffer and compressor are exercised too.
        for _ in 0..2 {
            for r in &records {
                let before = framed_as_before(rmp_serde::to_vec_named(r).unwrap(), PACK, PACK_ZSTD);
                assert_eq!(encode_record(r).unwrap(), before);
            }
            for bytes in [
                &b"short"[..],
                &b"Subject: x\r\n\r\nhello ".repeat(200),
                &noise,
            ] {
                let before = framed_as_before(bytes.to_vec(), PLAIN, ZSTD);
                assert_eq!(encode_bytes(bytes).unwrap(), before);
            }
        }
        let big = vec!["y".repeat(2 * SCRATCH_KEEP)];
        let before = framed_as_before(rmp_serde::to_vec_named(&big).unwrap(), PACK, PACK_ZSTD);
        assert_eq!(encode_record(&big).unwrap(), before);
        assert!(SCRATCH.with(|s| s.borrow().capacity()) <= SCRATCH_KEEP);
    }

    #[test]
    fn json_of_older_releases_decodes() {
        let v: Vec<u32> = decode_record(b"[1,2,3]").unwrap();
        assert_eq!(v, [1, 2, 3]);
        let s: String = decode_record(b"\"x\"").unwrap();
        assert_eq!(s, "x");
    }

    #[test]
    fn corrupt_values_are_errors() {
        for bad in [
            &b""[..],
            &[0x00, 1, 2][..],
            &[PACK, 0xFF, 0xFF][..],
            &[PACK_ZSTD, 1, 2, 3][..],
            &[PACK_ZSTD, 0x28, 0xB5, 0x2F, 0xFD, 0x00][..],
            &b"{\"broken"[..],
        ] {
            assert!(decode_record::<Vec<String>>(bad).is_err(), "{bad:?}");
        }
        assert!(decode_bytes(b"k", &[ZSTD, 9, 9]).is_err());
        assert!(decode_bytes(b"k", &[IN_RAW]).is_err());
    }

    #[test]
    fn bytes_round_trip_plain_and_compressed() {
        for bytes in [b"short".to_vec(), b"Subject: x\r\n\r\nhello ".repeat(200)] {
            let key = hex::encode(Sha256::digest(&bytes));
            let stored = encode_bytes(&bytes).unwrap();
            assert_eq!(
                decode_bytes(key.as_bytes(), &stored).unwrap(),
                Bytes::Here(bytes.clone())
            );
            assert_eq!(bytes_len(&stored), bytes.len() as u64);
        }
        let stored = encode_in_raw("abc");
        assert_eq!(
            decode_bytes(b"k", &stored).unwrap(),
            Bytes::InRaw("abc".into())
        );
    }

    #[test]
    fn old_bare_bytes_starting_with_a_marker_are_kept_whole() {
        // A mail of an older release that happens to start with a marker
        // byte: its key (its hash) says it is bare.
        for first in [PLAIN, ZSTD, IN_RAW] {
            let mut old = vec![first];
            old.extend_from_slice(b"odd mail");
            let key = hex::encode(Sha256::digest(&old));
            assert_eq!(
                decode_bytes(key.as_bytes(), &old).unwrap(),
                Bytes::Here(old.clone())
            );
        }
        let old = b"Return-Path: <a@b.c>\r\n\r\nhi".to_vec();
        assert_eq!(
            decode_bytes(b"raw1", &old).unwrap(),
            Bytes::Here(old.clone())
        );
    }
}
