//! The store's own error type: callers never see sled's.

use thiserror::Error;

use super::codec::CodecError;
use super::db::DbError;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: another deskgate process has it open (sled allows one process); use the CLI while the daemon runs, it asks the daemon")]
    Locked { path: String },
    #[error("cannot open the store at {path}: it is in use by another `deskgate run` (which holds {path}/daemon.lock); stop that one first, or give this one its own storage")]
    InUse { path: String },
    #[error("cannot open the store at {path}: cannot lock {path}/daemon.lock: {source}")]
    DaemonLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("cannot access the store: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot open the store at {path}: it was written by a newer deskgate (store format {found}; this release reads formats up to {supported}); run the newer release, or restore a backup made by this one")]
    NewerFormat {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{0}")]
    Backup(String),
    /// An export or import (`export.rs`, `import.rs`), in plain words.
    #[error("{0}")]
    Transfer(String),
    #[error("cannot convert the store from format {from}: {why}")]
    Migrate { from: u32, why: String },
    #[error("cannot decode stored {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A stored value in none of the encodings `codec.rs` reads.
    #[error("cannot decode stored {what}: {source}")]
    Unreadable {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("cannot encode {what}: {source}")]
    Unwritable {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("transaction aborted: {0}")]
    Aborted(String),
}

/// What a step inside a transaction returns; any error aborts the whole
/// transaction and nothing of it is written.
pub type TxResult<T> = Result<T, StoreError>;
