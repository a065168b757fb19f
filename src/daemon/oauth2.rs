//! OAuth2 logins: the access token from `oauth2_token_command` (run when a
//! token is needed) or `oauth2_token_file`, cached until it expires (a JWT's
//! own `exp`, otherwise `oauth2_token_lifetime`) or the server refuses it;
//! then IMAP `AUTHENTICATE OAUTHBEARER` (when offered) or `XOAUTH2`, and SMTP
//! `AUTH XOAUTH2` (lettre knows no OAUTHBEARER). A refused token is fetched
//! again once per connect. The token is never logged: only the program or
//! file it came from is named.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::Auth;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::{OAuth2, TokenSource};

/// A token command that takes longer is killed (fetching a token is one
/// HTTPS request; the connection it is for has its own timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// Real access tokens are a few KiB; anything bigger is not one.
const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// How much of a failed command's stderr goes into the error.
const MAX_STDERR_CHARS: usize = 400;
/// A cached token this close to its expiry is fetched again: it must still
/// be valid when the server checks it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum TokenError {
    #[error("cannot run the token command {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the token command {program} did not finish within {}s", COMMAND_TIMEOUT.as_secs())]
    Timeout { program: String },
    #[error("the token command {program} failed ({status}){}", said(.stderr))]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read the token file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{from} gave no token")]
    Empty { from: String },
    #[error("{from} gave more than {} KiB, not a token", MAX_TOKEN_BYTES / 1024)]
    TooLarge { from: String },
    #[error("{from} gave something that is not a token (not one line of printable characters)")]
    Malformed { from: String },
}

fn said(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said: {stderr}")
    }
}

#[derive(Debug, Error)]
pub enum OAuth2Error {
    #[error("cannot get an OAuth2 token: {0}")]
    Token(#[from] TokenError),
    #[error("the server refused the OAuth2 token, a freshly fetched one too ({0})")]
    Refused(String),
    #[error("the server does not offer AUTH XOAUTH2")]
    NotOffered,
}

/// Tokens by where they came from, with when each stops being used.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenSource, (String, SystemTime)>>,
    /// One fetch at a time per source: the mailbox and SMTP starting
    /// together run the command once, not twice.
    fetching: Mutex<HashMap<TokenSource, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenCache {
    /// The cached token, unless it expires within [`EXPIRY_MARGIN`] of `now`.
    pub fn get(&self, source: &TokenSource, now: SystemTime) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (token, until) = entries.get(source)?;
        (now + EXPIRY_MARGIN < *until).then(|| token.clone())
    }

    fn fetch_lock(&self, source: &TokenSource) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(source.clone()).or_default().clone()
    }

    pub fn put(&self, source: &TokenSource, token: String, until: SystemTime) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(source.clone(), (token, until));
    }
}

/// One cache for the process: a mailbox and SMTP with the same command
/// share the token, and it survives reconnects.
static CACHE: LazyLock<TokenCache> = LazyLock::new(TokenCache::default);

/// When a token fetched at `now` stops being used: a JWT says (`exp`),
/// anything else is used for `lifetime`.
pub fn expiry(token: &str, now: SystemTime, lifetime: Duration) -> SystemTime {
    jwt_exp(token)
        .map(|exp| UNIX_EPOCH + Duration::from_secs(exp))
        .unwrap_or(now + lifetime)
}

/// The `exp` claim of a JWT (the signature is the server's business).
fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    (exp.is_finite() && exp >= 0.0).then_some(exp as u64)
}

/// A token: the cached one, or (when `fresh`, or none is cached) a new one.
pub async fn token(o: &OAuth2, fresh: bool) -> Result<String, TokenError> {
    let lock = CACHE.fetch_lock(&o.source);
    let _fetching = lock.lock().await;
    let now = SystemTime::now();
    if !fresh {
        if let Some(t) = CACHE.get(&o.source, now) {
            return Ok(t);
        }
    }
    let t = fetch(&o.source).await?;
    let until = expiry(&t, now, o.lifetime);
    tracing::debug!(
        from = %describe(&o.source),
        valid_for_secs = until.duration_since(now).unwrap_or_default().as_secs(),
        "fetched an OAuth2 token"
    );
    CACHE.put(&o.source, t.clone(), until);
    Ok(t)
}

fn describe(source: &TokenSource) -> String {
    match source {
        TokenSource::Command(argv) => format!("the token command {}", program(argv)),
        TokenSource::File(p) => format!("the token file {}", p.display()),
    }
}

fn program(argv: &[String]) -> String {
    argv.first().cloned().unwrap_or_default()
}

async fn fetch(source: &TokenSource) -> Result<String, TokenError> {
    let raw = match source {
        TokenSource::Command(argv) => run(argv).await?,
        TokenSource::File(path) => read_file(path).await?,
    };
    check_token(&raw, || describe(source))
}

/// The trimmed token, if it looks like one.
fn check_token(raw: &[u8], from: impl Fn() -> String) -> Result<String, TokenError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge { from: from() });
    }
    let text = std::str::from_utf8(raw).map_err(|_| TokenError::Malformed { from: from() })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty { from: from() });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Malformed { from: from() });
    }
    Ok(token.to_string())
}

async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, TokenError> {
    let err = |source| TokenError::File {
        path: path.display().to_string(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(err)?;
    let (raw, _) = read_capped(file, MAX_TOKEN_BYTES + 1).await.map_err(err)?;
    Ok(raw)
}

/// Runs the token command (no shell, no stdin) and returns its stdout.
async fn run(argv: &[String]) -> Result<Vec<u8>, TokenError> {
    let program = program(argv);
    let mut child = tokio::process::Command::new(&program)
        .args(argv.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| TokenError::Spawn {
            program: program.clone(),
            source,
        })?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (out, err) = tokio::join!(
            read_capped_opt(stdout, MAX_TOKEN_BYTES + 1),
            read_capped_opt(stderr, MAX_STDERR_CHARS * 4)
        );
        (out, err, child.wait().await)
    };
    // On a timeout the child is dropped, which kills it.
    let Ok((out, err, status)) = tokio::time::timeout(COMMAND_TIMEOUT, work).await else {
        return Err(TokenError::Timeout { program });
    };
    let status = status.map_err(|source| TokenError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        return Err(TokenError::Failed {
            program,
            status: exit_words(status),
            stderr: stderr_words(&err),
        });
    }
    Ok(out)
}

fn exit_words(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "it failed".into(),
    }
}

/// The command's complaint on one line, shortened.
fn stderr_words(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match one_line.char_indices().nth(MAX_STDERR_CHARS) {
        Some((at, _)) => format!("{} …", &one_line[..at]),
        None => one_line,
    }
}

async fn read_capped_opt<R: AsyncRead + Unpin>(r: Option<R>, cap: usize) -> Vec<u8> {
    match r {
        Some(r) => read_capped(r, cap)
            .await
            .map(|(v, _)| v)
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Reads to the end, keeping at most `cap` bytes: a chatty child is not
/// blocked on a full pipe, and its output does not fill memory.
async fn read_capped<R: AsyncRead + Unpin>(
    mut r: R,
    cap: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, cut));
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        cut |= n > room;
    }
}

/// The SASL mechanisms for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sasl {
    XOAuth2,
    /// RFC 7628.
    OAuthBearer,
}

impl Sasl {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sasl::XOAuth2 => "XOAUTH2",
            Sasl::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The client's first (and only) message.
    pub(crate) fn initial(self, user: &str, host: &str, port: u16, token: &str) -> String {
        match self {
            Sasl::XOAuth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
            Sasl::OAuthBearer => {
                let authzid = user.replace('=', "=3D").replace(',', "=2C");
                format!(
                    "n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
                )
            }
        }
    }

    /// The answer to the server's error challenge, which ends the exchange
    /// with a NO (RFC 7628 asks for a single ^A; XOAUTH2 for nothing).
    pub(crate) fn after_error(self) -> &'static [u8] {
        match self {
            Sasl::XOAuth2 => b"",
            Sasl::OAuthBearer => b"\x01",
        }
    }
}

/// SMTP `AUTH XOAUTH2` as `user`; a refused token is replaced by a freshly
/// fetched one once. Done by hand rather than with lettre's `auth`, which
/// cannot answer the server's error challenge and so leaves the
/// conversation stuck instead of free for the second try.
pub async fn smtp_auth(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    o: &OAuth2,
) -> Result<(), OAuth2Error> {
    if !conn
        .server_info()
        .supports_auth_mechanism(Mechanism::Xoauth2)
    {
        return Err(OAuth2Error::NotOffered);
    }
    let mut fresh = false;
    loop {
        let token = token(o, fresh).await?;
        let creds = Credentials::new(user.to_string(), token);
        let refusal = match Auth::new(Mechanism::Xoauth2, creds, None) {
            Ok(auth) => match conn.command(auth).await {
                Ok(r) if r.has_code(334) => match conn.command("\r\n").await {
                    Ok(_) => "the server sent an error challenge".to_string(),
                    Err(e) => e.to_string(),
                },
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if fresh {
            return Err(OAuth2Error::Refused(refusal));
        }
        tracing::info!("the SMTP server refused the OAuth2 token; fetching a fresh one");
        fresh = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"HS256"}"#), b(claims))
    }

    #[test]
    fn a_jwt_says_when_it_expires_anything_else_gets_the_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let hour = Duration::from_secs(3600);
        assert_eq!(
            expiry(&jwt(r#"{"sub":"a","exp":5000}"#), now, hour),
            UNIX_EPOCH + Duration::from_secs(5000)
        );
        assert_eq!(
            expiry(&jwt(r#"{"exp":4000.7}"#), now, hour),
            UNIX_EPOCH + Duration::from_secs(4000)
        );
        assert_eq!(expiry("ya29.opaque-token", now, hour), now + hour);
        assert_eq!(expiry(&jwt(r#"{"sub":"a"}"#), now, hour), now + hour);
        assert_eq!(expiry("a.!!!.c", now, hour), now + hour);
        assert_eq!(expiry(&jwt(r#"{"exp":-5}"#), now, hour), now + hour);
    }

    #[test]
    fn a_token_near_its_expiry_is_not_used() {
        let cache = TokenCache::default();
        let src = TokenSource::Command(vec!["get-token".into()]);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(cache.get(&src, t0), None);
        cache.put(&src, "tok".into(), t0 + Duration::from_secs(600));
        assert_eq!(cache.get(&src, t0).as_deref(), Some("tok"));
        assert_eq!(
            cache.get(&src, t0 + Duration::from_secs(539)).as_deref(),
            Some("tok")
        );
        assert_eq!(cache.get(&src, t0 + Duration::from_secs(540)), None);
        let other = TokenSource::File("/run/token".into());
        assert_eq!(cache.get(&other, t0), None);
    }

    #[test]
    fn only_a_line_of_printable_characters_is_a_token() {
        let from = || "the token command t".to_string();
        assert_eq!(
            check_token(b"  abc.def-_~+/=\n", from).unwrap(),
            "abc.def-_~+/="
        );
        assert!(matches!(
            check_token(b"\n \n", from),
            Err(TokenError::Empty { .. })
        ));
        assert!(matches!(
            check_token(b"two words", from),
            Err(TokenError::Malformed { .. })
        ));
        assert!(matches!(
            check_token(b"a\nb", from),
            Err(TokenError::Malformed { .. })
        ));
        assert!(matches!(
            check_token(&[0xff, 0xfe], from),
            Err(TokenError::Malformed { .. })
        ));
        let big = vec![b'a'; MAX_TOKEN_BYTES + 1];
        assert!(matches!(
            check_token(&big, from),
            Err(TokenError::TooLarge { .. })
        ));
    }

    #[test]
    fn sasl_messages_follow_the_specs() {
        assert_eq!(
            Sasl::XOAuth2.initial("help@desk.test", "h", 993, "T"),
            "user=help@desk.test\x01auth=Bearer T\x01\x01"
        );
        assert_eq!(
            Sasl::OAuthBearer.initial("a=b,c@d", "imap.test", 993, "T"),
            "n,a=a=3Db=2Cc@d,\x01host=imap.test\x01port=993\x01auth=Bearer T\x01\x01"
        );
    }

    #[tokio::test]
    async fn a_failing_command_is_explained_with_its_stderr() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "echo 'invalid_client: bad secret' >&2; exit 3".into(),
        ];
        let e = run(&argv).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "the token command /bin/sh failed (exit status 3); it said: invalid_client: bad secret"
        );
        let e = run(&["/nonexistent/get-token".to_string()])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot run the token command /nonexistent/get-token: "),
            "{e}"
        );
        let out = run(&["/bin/echo".to_string(), "tok".into()]).await.unwrap();
        assert_eq!(out, b"tok\n");
    }
}
