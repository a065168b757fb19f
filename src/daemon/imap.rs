//! The IMAP edge: connecting (implicit TLS, STARTTLS or plain on loopback),
//! logging in, and the handful of commands ingest needs, each bounded by the
//! mailbox's network timeout.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use futures::TryStreamExt;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_util::either::Either;

use crate::config::{MailboxConfig, TlsMode};

pub type ImapStream = Either<TcpStream, TlsStream<TcpStream>>;
pub type ImapSession = Session<ImapStream>;

#[derive(Debug, Error)]
pub enum ImapError {
    #[error("cannot {what}: no answer from {host} within {secs}s")]
    Timeout {
        what: String,
        host: String,
        secs: u64,
    },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS with {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("cannot log in to {host} as {user}: {source}")]
    Login {
        host: String,
        user: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("cannot {what}: {source}")]
    Command {
        what: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("cannot {what}: the server closed the connection")]
    Closed { what: String },
}

/// Runs one IMAP step under the mailbox's timeout.
pub async fn bounded<T, F>(cfg: &MailboxConfig, what: &str, fut: F) -> Result<T, ImapError>
where
    F: Future<Output = Result<T, async_imap::error::Error>>,
{
    match tokio::time::timeout(cfg.timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ImapError::Command {
            what: what.to_string(),
            source,
        }),
        Err(_) => Err(timeout_error(cfg, what)),
    }
}

fn timeout_error(cfg: &MailboxConfig, what: &str) -> ImapError {
    ImapError::Timeout {
        what: what.to_string(),
        host: cfg.host.clone(),
        secs: cfg.timeout.as_secs(),
    }
}

pub(crate) fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    // ring supports the safe defaults; this cannot fail with it.
    .expect("ring provider supports default TLS versions");
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn start_tls(cfg: &MailboxConfig, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ImapError> {
    let name =
        rustls::pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| ImapError::Tls {
            host: cfg.host.clone(),
            reason: e.to_string(),
        })?;
    match tokio::time::timeout(cfg.timeout, tls_connector().connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ImapError::Tls {
            host: cfg.host.clone(),
            reason: e.to_string(),
        }),
        Err(_) => Err(timeout_error(cfg, "complete the TLS handshake")),
    }
}

async fn read_greeting<T>(
    cfg: &MailboxConfig,
    client: &mut async_imap::Client<T>,
) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match tokio::time::timeout(cfg.timeout, client.read_response()).await {
        Ok(Some(Ok(_))) => Ok(()),
        Ok(Some(Err(e))) => Err(ImapError::Command {
            what: "read the server greeting".into(),
            source: e.into(),
        }),
        Ok(None) => Err(ImapError::Closed {
            what: "read the server greeting".into(),
        }),
        Err(_) => Err(timeout_error(cfg, "read the server greeting")),
    }
}

/// Connects and logs in.
pub async fn connect(cfg: &MailboxConfig) -> Result<ImapSession, ImapError> {
    let tcp = match tokio::time::timeout(
        cfg.timeout,
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(ImapError::Connect {
                host: cfg.host.clone(),
                port: cfg.port,
                source,
            })
        }
        Err(_) => return Err(timeout_error(cfg, "connect")),
    };
    let _ = tcp.set_nodelay(true);
    let stream: ImapStream = match cfg.tls {
        TlsMode::None => Either::Left(tcp),
        TlsMode::Implicit => Either::Right(start_tls(cfg, tcp).await?),
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            read_greeting(cfg, &mut client).await?;
            bounded(
                cfg,
                "start TLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            Either::Right(start_tls(cfg, client.into_inner()).await?)
        }
    };
    let mut client = async_imap::Client::new(stream);
    if cfg.tls != TlsMode::Starttls {
        read_greeting(cfg, &mut client).await?;
    }
    match tokio::time::timeout(cfg.timeout, client.login(&cfg.user, &cfg.password)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err((source, _))) => Err(ImapError::Login {
            host: cfg.host.clone(),
            user: cfg.user.clone(),
            source,
        }),
        Err(_) => Err(timeout_error(cfg, "log in")),
    }
}

/// Collects a FETCH/STORE response stream, bounding the wait for each item.
pub async fn collect_bounded<S, T>(
    cfg: &MailboxConfig,
    what: &str,
    stream: S,
) -> Result<Vec<T>, ImapError>
where
    S: futures::Stream<Item = Result<T, async_imap::error::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(cfg.timeout, stream.try_next()).await {
            Ok(Ok(Some(v))) => out.push(v),
            Ok(Ok(None)) => return Ok(out),
            Ok(Err(source)) => {
                return Err(ImapError::Command {
                    what: what.to_string(),
                    source,
                })
            }
            Err(_) => return Err(timeout_error(cfg, what)),
        }
    }
}

/// Formats UIDs as a compact IMAP sequence set: `1:5,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let sorted: BTreeSet<u32> = uids.iter().copied().collect();
    let mut parts = Vec::new();
    let mut iter = sorted.into_iter();
    let Some(mut start) = iter.next() else {
        return String::new();
    };
    let mut end = start;
    for u in iter {
        if u == end + 1 {
            end = u;
        } else {
            parts.push(range(start, end));
            start = u;
            end = u;
        }
    }
    parts.push(range(start, end));
    parts.join(",")
}

fn range(a: u32, b: u32) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}:{b}")
    }
}

/// Quotes a folder name for the commands async-imap does not quote itself (UID COPY);
/// config validation already refused `"`, `\` and control characters.
pub fn quoted(folder: &str) -> String {
    format!("\"{folder}\"")
}

/// How long to stay in one IDLE before re-issuing it: servers may drop an
/// IDLE after 30 minutes (RFC 2177), NAT boxes much sooner.
pub const IDLE_REFRESH: Duration = Duration::from_secs(5 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[3]), "3");
        assert_eq!(uid_set(&[5, 1, 2, 3, 7, 9, 10]), "1:3,5,7,9:10");
    }
}
