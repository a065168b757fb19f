//! Backups: the whole store as one file, consistent, written while the
//! daemon runs (commits wait for it) or while it is stopped, and restored
//! only into an empty state directory.
//!
//! The file: the line `deskgate-backup 1\n`, the store format (u32 BE), then
//! every key and value of the store's tree as `len u32 BE, bytes` pairs, and
//! last the number of pairs (u64 BE) and a SHA-256 of everything before it.
//! A file that is cut short or altered fails the check before anything is
//! restored.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::db::Db;
use super::error::StoreError;
use super::layout::FORMAT;

const MAGIC: &[u8] = b"deskgate-backup 1\n";
/// The oldest store format a backup can hold.
const OLDEST_FORMAT: u32 = 2;
/// Largest key or value a backup may hold (sled's own values are far smaller).
const MAX_ITEM: usize = 1 << 30;

/// What a backup or a restore handled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub keys: u64,
    pub bytes: u64,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backup(format!("cannot {what} {}: {e}", path.display()))
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every key of `db` to `path` (through a temporary file renamed into
/// place, so a failed backup never leaves a half file under the real name).
pub fn write(db: &Db, path: &Path) -> Result<BackupSummary, StoreError> {
    let tmp = path.with_extension("partial");
    let file = std::fs::File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
    let mut out = Hashing {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let w = |out: &mut Hashing<_>, bytes: &[u8]| {
        out.write_all(bytes).map_err(|e| io_error("write", &tmp, e))
    };
    w(&mut out, MAGIC)?;
    w(&mut out, &FORMAT.to_be_bytes())?;
    let keys = db.snapshot(|key, value| {
        w(&mut out, &(key.len() as u32).to_be_bytes())?;
        w(&mut out, key)?;
        w(&mut out, &(value.len() as u32).to_be_bytes())?;
        w(&mut out, value)
    })?;
    w(&mut out, &keys.to_be_bytes())?;
    let digest = out.hash.clone().finalize();
    let bytes = out.bytes;
    let mut inner = out.inner;
    inner
        .write_all(&digest)
        .and_then(|_| inner.flush())
        .map_err(|e| io_error("write", &tmp, e))?;
    let file = inner
        .into_inner()
        .map_err(|e| io_error("write", &tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io_error("sync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("rename", path, e))?;
    Ok(BackupSummary { keys, bytes })
}

/// Reads a backup, checks it whole, and only then hands its pairs to `put`
/// (in order, in bounded runs).
pub fn read(
    path: &Path,
    mut put: impl FnMut(Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError>,
) -> Result<BackupSummary, StoreError> {
    let summary = check(path)?;
    let file = std::fs::File::open(path).map_err(|e| io_error("open", path, e))?;
    let mut r = BufReader::new(file);
    let mut head = vec![0u8; MAGIC.len() + 4];
    r.read_exact(&mut head)
        .map_err(|e| io_error("read", path, e))?;
    let mut run = Vec::new();
    for _ in 0..summary.keys {
        let key = item(&mut r, path)?;
        let value = item(&mut r, path)?;
        run.push((key, value));
        if run.len() >= 10_000 {
            put(std::mem::take(&mut run))?;
        }
    }
    put(run)?;
    Ok(summary)
}

fn item(r: &mut impl Read, path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| io_error("read", path, e))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ITEM {
        return Err(StoreError::Backup(format!(
            "cannot restore {}: it is damaged (an item of {len} bytes)",
            path.display()
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)
        .map_err(|e| io_error("read", path, e))?;
    Ok(buf)
}

/// The whole file against its checksum, and its format against ours.
fn check(path: &Path) -> Result<BackupSummary, StoreError> {
    let damaged = |why: &str| {
        StoreError::Backup(format!(
            "cannot restore {}: {why}; nothing was restored",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| io_error("open", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| io_error("read", path, e))?
        .len();
    if size < (MAGIC.len() + 4 + 8 + 32) as u64 {
        return Err(damaged("it is too short to be a deskgate backup"));
    }
    let mut r = BufReader::new(file);
    let mut hash = Sha256::new();
    let mut head = vec![0u8; MAGIC.len() + 4];
    r.read_exact(&mut head)
        .map_err(|e| io_error("read", path, e))?;
    if &head[..MAGIC.len()] != MAGIC {
        return Err(damaged("it is not a deskgate backup"));
    }
    let format = u32::from_be_bytes(head[MAGIC.len()..].try_into().unwrap_or([0; 4]));
    // Format 2 was the first with backups; an older format restored is
    // converted by the next open, like any store of that format.
    if !(OLDEST_FORMAT..=FORMAT).contains(&format) {
        return Err(damaged(&format!(
            "it holds store format {format}, this release restores formats {OLDEST_FORMAT} to {FORMAT}"
        )));
    }
    hash.update(&head);
    // Everything up to the digest, hashed; the count is the 8 bytes before it.
    let mut left = size - head.len() as u64 - 32;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail = Vec::new();
    while left > 0 {
        let n = (left as usize).min(buf.len());
        r.read_exact(&mut buf[..n])
            .map_err(|e| io_error("read", path, e))?;
        hash.update(&buf[..n]);
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(8);
        tail.drain(..keep);
        left -= n as u64;
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest)
        .map_err(|e| io_error("read", path, e))?;
    if hash.finalize().as_slice() != digest {
        return Err(damaged(
            "its checksum does not match (cut short or altered)",
        ));
    }
    let keys = u64::from_be_bytes(tail.as_slice().try_into().unwrap_or([0; 8]));
    Ok(BackupSummary { keys, bytes: size })
}

#[cfg(test)]
mod tests {
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::records::{Checkpoint, Ticket};
    use crate::store::Store;

    fn filled(dir: &std::path::Path) -> Store {
        let store = Store::open(dir).unwrap();
        for id in 1000..1010 {
            store
                .transact(|tx| {
                    let mut t = Ticket::new(
                        id,
                        format!("subject {id}"),
                        Party {
                            name: None,
                            address: EmailAddress::parse("a@b.c").unwrap(),
                        },
                        "help",
                        chrono::Utc::now(),
                    );
                    tx.index_message_id(&format!("m{id}@b.c"), id)?;
                    tx.next_ticket_id(1000)?;
                    tx.put_raw(&format!("raw{id}"), b"bytes")?;
                    t.tags.push("x".into());
                    tx.put_ticket(&t)
                })
                .unwrap();
        }
        store
            .set_checkpoint(
                "help",
                Checkpoint {
                    uid_validity: 3,
                    last_uid: 42,
                },
            )
            .unwrap();
        store
    }

    #[test]
    fn a_backup_restores_into_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(&dir.path().join("a"));
        let key = store.reply_keys().unwrap();
        let file = dir.path().join("desk.backup");
        let made = store.backup(&file).unwrap();
        assert!(made.keys > 30, "{made:?}");
        let restored = Store::restore(&dir.path().join("b"), &file).unwrap();
        assert_eq!(restored.keys, made.keys);
        let b = Store::open_when_free(&dir.path().join("b"));
        assert_eq!(b.ticket_count(), 10);
        assert_eq!(b.ticket(1004).unwrap().unwrap().subject, "subject 1004");
        assert_eq!(b.ticket_of_message("m1007@b.c").unwrap(), Some(1007));
        assert_eq!(b.checkpoint("help").unwrap().unwrap().last_uid, 42);
        assert_eq!(
            b.reply_keys().unwrap(),
            key,
            "signed addresses keep working"
        );
        let next = b.transact(|tx| tx.next_ticket_id(1000)).unwrap();
        assert_eq!(next, 1010);
    }

    #[test]
    fn a_damaged_backup_restores_nothing_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(&dir.path().join("a"));
        let file = dir.path().join("desk.backup");
        store.backup(&file).unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let err = Store::restore(&dir.path().join("b"), &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum does not match"), "{err}");
        assert_eq!(
            Store::open_when_free(&dir.path().join("b")).ticket_count(),
            0
        );
        std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
        let err = Store::restore(&dir.path().join("c"), &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing was restored"), "{err}");
    }

    #[test]
    fn a_restore_never_mixes_with_a_store_that_holds_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(&dir.path().join("a"));
        let file = dir.path().join("desk.backup");
        store.backup(&file).unwrap();
        drop(filled(&dir.path().join("b")));
        drop(Store::open_when_free(&dir.path().join("b")));
        let err = Store::restore(&dir.path().join("b"), &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already holds a store"), "{err}");
    }
}
