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
    /// The server lacks an extension this mail needs: it never can go there.
    Unsupported(&'static str),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unreachable(why) => f.write_str(why),
            SendError::Smtp(e) => write!(f, "{e}"),
            SendError::Unsupported(why) => f.write_str(why),
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

    /// Opens a mail on an idle connection, or a new one: MAIL, RCPT and
    /// DATA, up to the server's 354. Nothing can be delivered yet (the
    /// server queues a mail only after the final dot), so the caller can
    /// record "possibly sent" just before [`Ready::finish`] hands the body
    /// over, and a crash before that costs nothing.
    pub async fn open(&self, envelope: &Envelope, raw: &[u8]) -> Result<Ready<'_>, SendError> {
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let opened = self
            .bounded("send to", async {
                envelope_commands(&mut conn, envelope, raw).await
            })
            .await;
        match opened {
            Ok(()) => Ok(Ready { pool: self, conn }),
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

/// A mail the server is ready to take the body of (it answered DATA with 354).
pub struct Ready<'p> {
    pool: &'p Pool,
    conn: AsyncSmtpConnection,
}

/// How handing over the body failed.
#[derive(Debug)]
pub enum FinishError {
    /// The server answered the final dot with an error: the mail was not taken.
    Refused(lettre::transport::smtp::Error),
    /// No answer to the body (the connection dropped, timed out): the server
    /// may have queued the mail.
    Uncertain(String),
}

impl Ready<'_> {
    /// Sends the body and the final dot, and reads the server's answer.
    pub async fn finish(mut self, raw: &[u8]) -> Result<(), FinishError> {
        let sent = tokio::time::timeout(self.pool.cfg.timeout, self.conn.message(raw)).await;
        let err = match sent {
            Ok(Ok(_)) => {
                self.pool.give_back(self.conn);
                return Ok(());
            }
            Ok(Err(e)) if e.is_transient() || e.is_permanent() => FinishError::Refused(e),
            Ok(Err(e)) => {
                FinishError::Uncertain(format!("{}", self.pool.unreachable("send to", e)))
            }
            Err(_) => {
                FinishError::Uncertain(format!("{}", self.pool.unreachable("send to", "timed out")))
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.abort()).await;
        Err(err)
    }

    /// Gives up on the mail before its body: the server drops what it has.
    pub async fn cancel(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.abort()).await;
    }
}

/// MAIL FROM, RCPT TO and DATA, with the options lettre's own `send` uses
/// (SMTPUTF8 for non-ASCII addresses, 8BITMIME for a non-ASCII body).
async fn envelope_commands(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<(), SendError> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Unsupported(
                "the envelope has non-ASCII addresses but the server does not support SMTPUTF8",
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::Unsupported(
                "the mail has non-ASCII bytes but the server does not support 8BITMIME",
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let smtp = SendError::Smtp;
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(smtp)?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(smtp)?;
    }
    conn.command(Data).await.map_err(smtp)?;
    Ok(())
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
