//! Logging in to a mailbox: a password `LOGIN`, or an OAuth2 token with
//! `AUTHENTICATE OAUTHBEARER` (RFC 7628) where the server offers it, else
//! `XOAUTH2`. Here rather than in `imap` so the connection code does not
//! depend on the token code, nor the other way round.

use async_imap::imap_proto::{Capability, Response};
use async_imap::types::UnsolicitedResponse;

use crate::config::{MailboxConfig, OAuth2};
use crate::daemon::imap::{self, ImapError, ImapSession, ImapStream};
use crate::daemon::oauth2::{token, OAuth2Error, Sasl};

/// Connects and logs in.
pub async fn connect(cfg: &MailboxConfig) -> Result<ImapSession, ImapError> {
    let client = imap::open(cfg).await?;
    match &cfg.oauth2 {
        Some(o) => oauth2_login(cfg, o, client).await,
        None => imap::password_login(cfg, client).await,
    }
}

/// Answers async-imap's AUTHENTICATE exchange.
struct Exchange {
    sasl: Sasl,
    first: Option<String>,
}

impl async_imap::Authenticator for Exchange {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        match self.first.take() {
            Some(first) => first.into_bytes(),
            None => self.sasl.after_error().to_vec(),
        }
    }
}

/// Whether CAPABILITY lists `AUTH=OAUTHBEARER`.
async fn offers_oauthbearer(
    cfg: &MailboxConfig,
    client: &mut async_imap::Client<ImapStream>,
) -> Result<bool, ImapError> {
    let (tx, rx) = async_channel::bounded(64);
    imap::bounded(
        cfg,
        "ask the server how to log in",
        client.run_command_and_check_ok("CAPABILITY", Some(tx)),
    )
    .await?;
    let mut offered = false;
    while let Ok(u) = rx.try_recv() {
        if let UnsolicitedResponse::Other(data) = u {
            if let Response::Capabilities(caps) = data.parsed() {
                offered |= caps.iter().any(
                    |c| matches!(c, Capability::Auth(m) if m.eq_ignore_ascii_case("OAUTHBEARER")),
                );
            }
        }
    }
    Ok(offered)
}

/// Logs in to the mailbox with a token; a refused token is replaced by a
/// freshly fetched one once.
async fn oauth2_login(
    cfg: &MailboxConfig,
    o: &OAuth2,
    mut client: async_imap::Client<ImapStream>,
) -> Result<ImapSession, ImapError> {
    let failed = |source: OAuth2Error| ImapError::OAuth2 {
        host: cfg.host.clone(),
        user: cfg.user.clone(),
        source,
    };
    let sasl = if offers_oauthbearer(cfg, &mut client).await? {
        Sasl::OAuthBearer
    } else {
        Sasl::XOAuth2
    };
    let mut fresh = false;
    loop {
        let token = token(o, fresh).await.map_err(|e| failed(e.into()))?;
        let exchange = Exchange {
            sasl,
            first: Some(sasl.initial(&cfg.user, &cfg.host, cfg.port, &token)),
        };
        let attempt = tokio::time::timeout(cfg.timeout, client.authenticate(sasl.name(), exchange));
        match attempt.await {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err((async_imap::error::Error::No(_), again))) if !fresh => {
                tracing::info!(
                    mailbox = %cfg.name,
                    "{} refused the OAuth2 token; fetching a fresh one",
                    cfg.host
                );
                client = again;
                fresh = true;
            }
            Ok(Err((e @ async_imap::error::Error::No(_), _))) => {
                return Err(failed(OAuth2Error::Refused(imap::in_words(&e))))
            }
            Ok(Err((source, _))) => {
                return Err(ImapError::Command {
                    what: format!("log in with {}", sasl.name()),
                    source,
                })
            }
            Err(_) => {
                return Err(ImapError::Timeout {
                    what: "log in".into(),
                    host: cfg.host.clone(),
                    secs: cfg.timeout.as_secs(),
                })
            }
        }
    }
}
