//! SMTP connections of our own, kept open and reused: lettre's transport
//! opens its sockets with Nagle's algorithm on, so the end-of-data line
//! (written apart from the body) waited for the server's delayed ACK, about
//! 40 ms a mail; and it offers no TCP keepalive, so a connection silently
//! dropped by a firewall was only noticed at the next send's timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::config::{SmtpConfig, TlsMode};
use crate::daemon::tls;

/// An idle connection older than this is closed rather than reused (Postfix
/// drops idle clients after `smtpd_timeout`, 300 s by default).
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Idle probes on a quiet connection: a peer that vanished is noticed in
/// about a minute and a half instead of at the next mail.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Why a mail did not go.
#[derive(Debug)]
pub enum SendError {
    /// No SMTP conversation was possible (connect, TLS, timeout, dropped).
    Unreachable(String),
    /// The server answered, or lettre refused: its error says which.
    Smtp(lettre::transport::smtp::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unreachable(why) => f.write_str(why),
            SendError::Smtp(e) => write!(f, "{e}"),
        }
    }
}

/// A pool of SMTP connections to the one configured server.
pub struct Pool {
    cfg: SmtpConfig,
    hello: ClientId,
    max_idle: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Pool {
    pub fn new(cfg: &SmtpConfig, max_idle: usize) -> Pool {
        Pool {
            cfg: cfg.clone(),
            hello: ClientId::default(),
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn unreachable(&self, what: &str, why: impl std::fmt::Display) -> SendError {
        SendError::Unreachable(format!(
            "cannot {what} SMTP server {}:{}: {why}",
            self.cfg.host, self.cfg.port
        ))
    }

    /// Runs `fut` within the configured timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, SendError>>,
    ) -> Result<T, SendError> {
        match tokio::time::timeout(self.cfg.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(self.unreachable(what, "timed out")),
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((c, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && !c.has_broken() {
                return Some(c);
            }
        }
        None
    }

    fn give_back(&self, c: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle && !c.has_broken() {
            idle.push((c, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let host = self.cfg.host.as_str();
        let tcp = self
            .bounded("connect to", async {
                TcpStream::connect((host, self.cfg.port))
                    .await
                    .map_err(|e| self.unreachable("connect to", e))
            })
            .await?;
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_TIME)
            .with_interval(KEEPALIVE_INTERVAL);
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let smtp = |e| SendError::Smtp(e);
        self.bounded("talk to", async {
            let mut conn = match self.cfg.tls {
                TlsMode::Implicit => {
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(|e| self.unreachable("start TLS with", e))?;
                    let tls = crate::daemon::tls::connector(&self.cfg.tls_trust)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| self.unreachable("start TLS with", tls::explain(&e)))?;
                    tls::check_pin(&self.cfg.tls_trust, tls::leaf_of(&tls))
                        .map_err(|e| self.unreachable("trust", e))?;
                    AsyncSmtpConnection::connect_with_transport(Box::new(Tls(tls)), &self.hello)
                        .await
                        .map_err(smtp)?
                }
                TlsMode::None | TlsMode::Starttls => {
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                        .await
                        .map_err(smtp)?
                }
            };
            if self.cfg.tls == TlsMode::Starttls {
                let params = tls::starttls_parameters(host, &self.cfg.tls_trust).map_err(smtp)?;
                conn.starttls(params, &self.hello)
                    .await
                    .map_err(|e| self.unreachable("start TLS with", e))?;
                let leaf = conn.peer_certificate().ok();
                tls::check_pin(&self.cfg.tls_trust, leaf.as_deref())
                    .map_err(|e| self.unreachable("trust", e))?;
            }
            if let Some((user, oauth2)) = &self.cfg.oauth2 {
                crate::daemon::oauth2::smtp_auth(&mut conn, user, oauth2)
                    .await
                    .map_err(|e| self.unreachable("log in to", e))?;
            }
            if let Some((user, pass)) = &self.cfg.credentials {
                let creds = Credentials::new(user.clone(), pass.clone());
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                    .await
                    .map_err(smtp)?;
            }
            Ok(conn)
        })
        .await
    }

    /// Sends one mail on an idle connection, or a new one.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let sent = self
            .bounded("send to", async {
                conn.send(envelope, raw).await.map_err(SendError::Smtp)
            })
            .await;
        match sent {
            Ok(_) => {
                self.give_back(conn);
                Ok(())
            }
            Err(e) => {
                // Whatever state the conversation is in, it is not reused.
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
                Err(e)
            }
        }
    }

    /// Whether the server answers (a NOOP on a fresh connection, kept for reuse).
    pub async fn answers(&self) -> bool {
        self.check().await.is_ok()
    }

    /// Connects as for a send (EHLO, STARTTLS or TLS, AUTH) and says NOOP,
    /// sending nothing: `deskgate doctor`'s SMTP check, and `answers`.
    pub async fn check(&self) -> Result<(), SendError> {
        let mut conn = self.connect().await?;
        match tokio::time::timeout(self.cfg.timeout, conn.test_connected()).await {
            Ok(true) => {
                self.give_back(conn);
                Ok(())
            }
            Ok(false) => Err(self.unreachable("talk to", "it did not answer NOOP")),
            Err(_) => Err(self.unreachable("talk to", "timed out")),
        }
    }
}

/// A TLS stream lettre can talk over (it needs the peer address).
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
