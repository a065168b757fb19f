//! The control socket: sled lets only one process open the store, so while
//! the daemon runs the CLI asks it over a Unix socket instead. One JSON
//! [`Query`] per line in, one JSON [`Answer`] per line out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use std::sync::Arc;

use tokio::sync::Notify;

use crate::engine::queries::{answer, Answer, Query};
use crate::engine::Engine;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REQUEST: u64 = 64 * 1024;

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("cannot listen on control socket {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot talk to the daemon on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot understand the daemon's answer: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the socket, replacing a stale one (the store lock already
    /// guarantees no other daemon is using this state).
    pub fn bind(path: &Path) -> Result<ControlServer, ControlError> {
        let bind_err = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(bind_err)?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves queries until shutdown. `wake` is notified after a query that may
    /// have queued mail, so the sender picks it up at once.
    pub async fn run(self, engine: Arc<Engine>, wake: Arc<Notify>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((stream, _)) => {
                        let engine = engine.clone();
                        let wake = wake.clone();
                        tracker.spawn(async move {
                            if let Err(e) = serve(stream, engine, wake).await {
                                debug!(error = %e, "control connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.cancelled() => break,
            }
        }
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(stream: UnixStream, engine: Arc<Engine>, wake: Arc<Notify>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let mut line = String::new();
    match tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    let reply = match serde_json::from_str::<Query>(&line) {
        Ok(q) => {
            let mutates = q.mutates();
            let reply = tokio::task::spawn_blocking(move || answer(&engine, &q))
                .await
                .unwrap_or_else(|e| Answer::Error {
                    message: e.to_string(),
                });
            if mutates {
                wake.notify_one();
            }
            reply
        }
        Err(e) => Answer::Error {
            message: format!("cannot parse query: {e}"),
        },
    };
    let mut bytes = serde_json::to_vec(&reply)
        .unwrap_or_else(|_| b"{\"answer\":\"error\",\"message\":\"encode\"}".to_vec());
    bytes.push(b'\n');
    tokio::time::timeout(IO_TIMEOUT, write.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write"))??;
    Ok(())
}

/// Asks a running daemon. `Ok(None)` means no daemon is listening.
pub async fn ask(path: &Path, q: &Query) -> Result<Option<Answer>, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(io(e)),
    };
    let work = async {
        let (read, mut write) = stream.into_split();
        let mut req = serde_json::to_vec(q)?;
        req.push(b'\n');
        write.write_all(&req).await.map_err(io)?;
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .await
            .map_err(io)?;
        Ok::<_, ControlError>(serde_json::from_str(&line)?)
    };
    let limit = q.answer_timeout();
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(ControlError::Timeout(limit)),
    }
}
