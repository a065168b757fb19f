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

use tokio::sync::{Notify, Semaphore};

use crate::daemon::reload::ReloadRequest;
use crate::engine::queries::{answer, Answer, Query};
use crate::engine::Engine;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REQUEST: u64 = 64 * 1024;
/// Connections served at once; one more is told the daemon is busy, so a
/// stuck or hostile client cannot pile up tasks and file descriptors.
pub const MAX_CONNECTIONS: usize = 16;
/// The socket's mode, set explicitly rather than left to the umask: only
/// its owner (the daemon's user) and root may connect.
const SOCKET_MODE: u32 = 0o600;

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
    /// The store's owner: besides root, the only user answered.
    owner: u32,
}

/// Who may ask: root and the store's owner. The socket's mode already keeps
/// others out; this holds even if the mode or a parent folder is loosened.
pub fn peer_allowed(peer_uid: u32, owner_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == owner_uid
}

impl ControlServer {
    /// Binds the socket, replacing a stale one (the store lock already
    /// guarantees no other daemon is using this state). It is bound under a
    /// temporary name, given its mode, then renamed into place, so it is never
    /// reachable with the umask's mode. `owner` is the store owner's uid.
    pub fn bind(path: &Path, owner: u32) -> Result<ControlServer, ControlError> {
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
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(bind_err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                bind_err(e)
            })?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            owner,
        })
    }

    /// Serves queries until shutdown. `wake` is notified after a query that may
    /// have queued mail, so the sender picks it up at once; `reload` reaches
    /// the reload task, which answers with its verdict.
    pub async fn run(
        self,
        engine: Arc<Engine>,
        wake: Arc<Notify>,
        side: DaemonSide,
        shutdown: CancellationToken,
    ) {
        let side = Arc::new(side);
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        // Refusals get slots of their own: a flood of them is dropped unanswered.
        let refusals = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((stream, _)) => {
                        let admitted = self.admit(&stream).and_then(|()| {
                            slots.clone().try_acquire_owned().map_err(|_| {
                                "the daemon is busy with other control connections; try again".to_string()
                            })
                        });
                        let slot = match admitted {
                            Ok(slot) => slot,
                            Err(message) => {
                                if let Ok(r) = refusals.clone().try_acquire_owned() {
                                    tracker.spawn(async move {
                                        refuse(stream, message).await;
                                        drop(r);
                                    });
                                }
                                continue;
                            }
                        };
                        let engine = engine.clone();
                        let wake = wake.clone();
                        let side = side.clone();
                        tracker.spawn(async move {
                            if let Err(e) = serve(stream, engine, wake, &side).await {
                                debug!(error = %e, "control connection ended with an error");
                            }
                            drop(slot);
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

impl ControlServer {
    /// Checks the peer's uid (SO_PEERCRED); the refusal says why in plain words.
    fn admit(&self, stream: &UnixStream) -> Result<(), String> {
        match stream.peer_cred() {
            Ok(c) if peer_allowed(c.uid(), self.owner) => Ok(()),
            Ok(c) => {
                warn!(
                    uid = c.uid(),
                    "control socket: refused a user who is neither root nor the store's owner"
                );
                Err(format!(
                    "not allowed: uid {} is neither root nor the store's owner (uid {})",
                    c.uid(),
                    self.owner
                ))
            }
            Err(e) => Err(format!("not allowed: cannot tell who is asking: {e}")),
        }
    }
}

/// Answers a connection that will not be served with one error line. The
/// request is read first (bounded), or closing on it would reset the
/// connection before the client reads why.
async fn refuse(stream: UnixStream, message: String) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let mut line = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), reader.read_line(&mut line)).await;
    let mut bytes = serde_json::to_vec(&Answer::Error { message })
        .unwrap_or_else(|_| b"{\"answer\":\"error\",\"message\":\"refused\"}".to_vec());
    bytes.push(b'\n');
    let _ = tokio::time::timeout(Duration::from_secs(1), write.write_all(&bytes)).await;
}

/// What only the running daemon can answer: reloads and its tasks' state.
pub struct DaemonSide {
    pub reload: tokio::sync::mpsc::Sender<ReloadRequest>,
    pub status: Arc<crate::daemon::status::Status>,
    pub gauges: Arc<crate::daemon::notify::Gauges>,
}

/// The budget of one query: 64 KiB, and room for a `tickets reply` whose
/// attachments (base64 in JSON, 4/3 of their size) fill `max_message_size`.
fn request_limit(engine: &Engine) -> u64 {
    MAX_REQUEST + engine.policy().limits.max_message_size.saturating_mul(3) / 2
}

async fn serve(
    stream: UnixStream,
    engine: Arc<Engine>,
    wake: Arc<Notify>,
    side: &DaemonSide,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let limit = request_limit(&engine);
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, limit));
    let mut line = String::new();
    match tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    let cut = line.len() as u64 >= limit && !line.ends_with('\n');
    let reply = match serde_json::from_str::<Query>(&line) {
        Err(_) if cut => Answer::Error {
            message: format!(
                "the request is over {} (64 KiB, plus max_message_size for attachments)",
                bytesize::ByteSize::b(limit)
            ),
        },
        Ok(Query::Reload) => ask_reload(&side.reload).await,
        Ok(Query::Status) => status(&engine, side).await,
        Ok(q) => {
            let mutates = q.mutates();
            let reply = tokio::task::spawn_blocking(move || answer(&engine, &q))
                .await
                .unwrap_or_else(|_| Answer::Error {
                    message: "the query failed inside the daemon; see its log".into(),
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

/// The daemon's own state, with the outbox read off the async workers.
async fn status(engine: &Arc<Engine>, side: &DaemonSide) -> Answer {
    let mut mailboxes = side.status.mailboxes();
    for m in &mut mailboxes {
        m.waiting = side.gauges.waiting_of(&m.name);
    }
    let store = engine.store().clone();
    let outbox = tokio::task::spawn_blocking(move || {
        let (pending, failed) = store.outbox_counts();
        let oldest = store.outbox().ok().and_then(|entries| {
            entries
                .iter()
                .filter(|e| !e.failed)
                .map(|e| e.created_at)
                .min()
        });
        (pending, failed, oldest)
    })
    .await;
    let Ok((outbox_pending, outbox_failed, outbox_oldest)) = outbox else {
        return Answer::Error {
            message: "cannot read the outbox; see the daemon's log".into(),
        };
    };
    Answer::Status {
        status: Box::new(crate::daemon::status::DaemonStatus {
            mailboxes,
            outbox_pending,
            outbox_failed,
            outbox_oldest,
            timers_last_run: side.status.timers_last_run(),
            started_at: side.status.started_at,
        }),
    }
}

/// Hands a reload to the reload task and waits for its verdict.
async fn ask_reload(reload: &tokio::sync::mpsc::Sender<ReloadRequest>) -> Answer {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if reload.send(tx).await.is_err() {
        return Answer::Error {
            message: "the daemon's reload task is not running; see its log".into(),
        };
    }
    match tokio::time::timeout(IO_TIMEOUT, rx).await {
        Ok(Ok(Ok(report))) => Answer::Reloaded {
            warnings: report.warnings,
            restart: report.restart,
        },
        Ok(Ok(Err(message))) => Answer::Error {
            message: format!(
                "the new config was refused; still running with the last good one:\n{message}"
            ),
        },
        Ok(Err(_)) => Answer::Error {
            message: "the reload task stopped before answering; see the daemon's log".into(),
        },
        Err(_) => Answer::Error {
            message: format!(
                "no verdict on the reload within {}s; see the daemon's log",
                IO_TIMEOUT.as_secs()
            ),
        },
    }
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
        // A daemon that refuses us may close before reading; its answer is
        // still there to read, so a failed write only counts without one.
        let written = write.write_all(&req).await;
        let mut line = String::new();
        let read = BufReader::new(read).read_line(&mut line).await;
        if line.is_empty() {
            written.map_err(io)?;
            read.map_err(io)?;
        }
        Ok::<_, ControlError>(serde_json::from_str(&line)?)
    };
    let limit = q.answer_timeout();
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(ControlError::Timeout(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_owner_are_answered() {
        assert!(peer_allowed(0, 998));
        assert!(peer_allowed(998, 998));
        assert!(!peer_allowed(1000, 998));
        assert!(!peer_allowed(65534, 0));
    }
}
