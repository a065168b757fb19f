//! The IMAP edge: connecting (implicit TLS, STARTTLS or plain on loopback),
//! logging in, and the handful of commands ingest needs, each bounded by the
//! mailbox's network timeout.

use std::collections::BTreeSet;
use std::future::Future;
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
    #[error("cannot log in to {host} as {user}: {}", refusal(.source))]
    Login {
        host: String,
        user: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("cannot log in to {host} as {user}: {source}")]
    OAuth2 {
        host: String,
        user: String,
        #[source]
        source: crate::daemon::oauth2::OAuth2Error,
    },
    #[error("cannot {what}: {}", in_words(.source))]
    Command {
        what: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("cannot {what}: the server closed the connection")]
    Closed { what: String },
}

/// What the server said, in its own words: async-imap hands a NO or BAD as
/// Rust debug text (`code: None, info: Some("[AUTHENTICATIONFAILED] …")`).
fn server_text(raw: &str) -> &str {
    raw.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(text, _)| text)
        .unwrap_or(raw)
}

/// An IMAP error as a person reads it.
pub fn in_words(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    match e {
        Error::No(raw) => format!("the server said no: {}", server_text(raw)),
        Error::Bad(raw) => format!("the server called the command bad: {}", server_text(raw)),
        Error::Io(io) => format!("the connection failed: {io}"),
        Error::ConnectionLost => "the server closed the connection".into(),
        other => other.to_string(),
    }
}

/// A failed login, as a person reads it.
fn refusal(e: &async_imap::error::Error) -> String {
    match e {
        async_imap::error::Error::No(raw) => format!(
            "the server refused the user name or password (it said: {})",
            server_text(raw)
        ),
        other => in_words(other),
    }
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

async fn start_tls(cfg: &MailboxConfig, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ImapError> {
    let name =
        rustls::pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| ImapError::Tls {
            host: cfg.host.clone(),
            reason: e.to_string(),
        })?;
    let connector = crate::daemon::tls::connector(&cfg.tls_trust);
    match tokio::time::timeout(cfg.timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => {
            crate::daemon::tls::check_pin(&cfg.tls_trust, crate::daemon::tls::leaf_of(&s))
                .map_err(|reason| ImapError::Tls {
                    host: cfg.host.clone(),
                    reason,
                })?;
            Ok(s)
        }
        Ok(Err(e)) => Err(ImapError::Tls {
            host: cfg.host.clone(),
            reason: crate::daemon::tls::explain(&e),
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

/// Connects, starts TLS as configured and reads the greeting: a client
/// ready to log in (see `imap_login::connect`).
pub async fn open(cfg: &MailboxConfig) -> Result<async_imap::Client<ImapStream>, ImapError> {
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
    keep_alive(&tcp);
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
    Ok(client)
}

/// `LOGIN` with the configured password.
pub async fn password_login(
    cfg: &MailboxConfig,
    client: async_imap::Client<ImapStream>,
) -> Result<ImapSession, ImapError> {
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

/// TCP keepalive on the IMAP socket: first probe after a minute of silence.
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(15));

/// A silently dead peer (NAT timeout, pulled cable) shows up as an error
/// within minutes instead of a read that waits forever in IDLE. Best effort:
/// a socket that refuses keeps the per-command timeouts.
fn keep_alive(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&KEEPALIVE);
}

/// A whole response may take this many network timeouts: a server that
/// drips one item just inside each timeout cannot hold the mailbox forever.
pub const RESPONSE_TIMEOUTS: u32 = 10;

/// Collects a FETCH/STORE response stream, bounding the wait for each item
/// by the mailbox's timeout and the whole response by
/// [`RESPONSE_TIMEOUTS`] of them.
pub async fn collect_bounded<S, T>(
    cfg: &MailboxConfig,
    what: &str,
    stream: S,
) -> Result<Vec<T>, ImapError>
where
    S: futures::Stream<Item = Result<T, async_imap::error::Error>>,
{
    match collect_within(cfg.timeout, cfg.timeout * RESPONSE_TIMEOUTS, stream).await {
        Ok(v) => Ok(v),
        Err(Some(source)) => Err(ImapError::Command {
            what: what.to_string(),
            source,
        }),
        Err(None) => Err(timeout_error(cfg, what)),
    }
}

/// Collects a FETCH response expected to carry about `bytes` bytes: like
/// [`collect_bounded`], plus one second per [`MIN_RATE`] bytes, so a large
/// batch on a slow link is not cut off (and refetched forever).
pub async fn collect_sized<S, T>(
    cfg: &MailboxConfig,
    what: &str,
    bytes: u64,
    stream: S,
) -> Result<Vec<T>, ImapError>
where
    S: futures::Stream<Item = Result<T, async_imap::error::Error>>,
{
    let overall = cfg.timeout * RESPONSE_TIMEOUTS + Duration::from_secs(bytes / MIN_RATE);
    match collect_within(cfg.timeout, overall, stream).await {
        Ok(v) => Ok(v),
        Err(Some(source)) => Err(ImapError::Command {
            what: what.to_string(),
            source,
        }),
        Err(None) => Err(timeout_error(cfg, what)),
    }
}

/// The slowest transfer (bytes per second) a whole FETCH response is allowed.
pub const MIN_RATE: u64 = 64 * 1024;

/// Collects `stream`; `Err(None)` when an item or the whole takes too long.
async fn collect_within<S, T, E>(
    per_item: Duration,
    overall: Duration,
    stream: S,
) -> Result<Vec<T>, Option<E>>
where
    S: futures::Stream<Item = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + overall;
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    loop {
        let until = deadline.min(tokio::time::Instant::now() + per_item);
        match tokio::time::timeout_at(until, stream.try_next()).await {
            Ok(Ok(Some(v))) => out.push(v),
            Ok(Ok(None)) => return Ok(out),
            Ok(Err(source)) => return Err(Some(source)),
            Err(_) => return Err(None),
        }
    }
}

/// The search for mail past `last_uid`, or None when no UID can follow it
/// (4294967295 is the last one IMAP has).
pub fn search_after(last_uid: u32) -> Option<String> {
    Some(format!("UID {}:*", last_uid.checked_add(1)?))
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
        if end.checked_add(1) == Some(u) {
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
    fn a_refused_login_reads_as_plain_words() {
        let e = async_imap::error::Error::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert_eq!(
            refusal(&e),
            "the server refused the user name or password (it said: [AUTHENTICATIONFAILED] Authentication failed.)"
        );
        assert_eq!(
            in_words(&async_imap::error::Error::No("plain".into())),
            "the server said no: plain"
        );
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[3]), "3");
        assert_eq!(uid_set(&[5, 1, 2, 3, 7, 9, 10]), "1:3,5,7,9:10");
        assert_eq!(uid_set(&[u32::MAX, u32::MAX - 1]), "4294967294:4294967295");
    }

    #[test]
    fn no_search_past_the_last_uid() {
        assert_eq!(search_after(0).as_deref(), Some("UID 1:*"));
        assert_eq!(
            search_after(u32::MAX - 1).as_deref(),
            Some("UID 4294967295:*")
        );
        assert_eq!(search_after(u32::MAX), None);
    }

    /// A server dripping one item just inside the per-item timeout is cut
    /// off by the overall deadline (virtual time: the test does not sleep).
    #[tokio::test(start_paused = true)]
    async fn a_dripping_response_meets_the_overall_deadline() {
        let drip = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_secs(9)).await;
            Some((Ok::<u32, std::io::Error>(n), n + 1))
        });
        let started = tokio::time::Instant::now();
        let r = collect_within(Duration::from_secs(10), Duration::from_secs(100), drip).await;
        assert!(matches!(r, Err(None)), "{:?}", r.map(|v| v.len()));
        assert_eq!(started.elapsed(), Duration::from_secs(100));
        let short = futures::stream::iter([Ok::<u32, std::io::Error>(1), Ok(2)]);
        assert_eq!(
            collect_within(Duration::from_secs(1), Duration::from_secs(2), short)
                .await
                .unwrap(),
            [1, 2]
        );
    }

    #[tokio::test]
    async fn imap_sockets_keep_alive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        keep_alive(&tcp);
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    }
}
