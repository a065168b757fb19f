//! The test servers with OAuth2 (`MAILSERVERS_OAUTH2=1`, see
//! tests/support/oauth2.sh): Dovecot checks HS256 JWTs against a key made
//! for the run, for IMAP and (through its SASL socket) for Postfix's SMTP
//! AUTH; the test mints the tokens with that key.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};

use super::{MailServers, ServerOptions};

pub struct OAuth2Servers {
    pub servers: MailServers,
    key: Vec<u8>,
}

impl OAuth2Servers {
    pub fn start(users: &[&str]) -> OAuth2Servers {
        let (servers, env) =
            MailServers::start_env(users, &ServerOptions::default(), Some("MAILSERVERS_OAUTH2"));
        let key = base64::engine::general_purpose::STANDARD
            .decode(env.get("OAUTH2_KEY"))
            .expect("a base64 key");
        OAuth2Servers { key, servers }
    }

    /// An HS256 JWT for `user` that expires `exp_in` seconds from now
    /// (negative: already expired).
    pub fn token(&self, user: &str, exp_in: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "sub": user,
            "email": user,
            "iat": now - 120,
            "exp": now + exp_in,
        });
        let payload = b64(claims.to_string().as_bytes());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        let sig = b64(&mac.finalize().into_bytes());
        format!("{header}.{payload}.{sig}")
    }

    /// Dovecot's log (which SASL method each login used).
    pub fn dovecot_log(&self) -> String {
        std::fs::read_to_string(self.servers.dir.path().join("dovecot/dovecot.log"))
            .unwrap_or_default()
    }

    /// Postfix's log (`sasl_method=…` for each authenticated client).
    pub fn postfix_log(&self) -> String {
        std::fs::read_to_string(self.servers.dir.path().join("postfix/postfix.log"))
            .unwrap_or_default()
    }
}

/// Writes a token command into `dir`: its n-th run prints `tokens[n-1]`
/// (the last one ever after) and counts its runs (see [`runs`]).
pub fn token_command(dir: &Path, tokens: &[String]) -> PathBuf {
    for (i, t) in tokens.iter().enumerate() {
        std::fs::write(dir.join(format!("token-{}", i + 1)), t).unwrap();
    }
    let script = dir.join("get-token");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncd {dir}\nn=$(($(cat token-runs 2>/dev/null || echo 0) + 1))\necho $n >token-runs\n\
             [ $n -le {last} ] || n={last}\ncat token-$n\n",
            dir = dir.display(),
            last = tokens.len()
        ),
    )
    .unwrap();
    set_executable(&script);
    script
}

/// How often the command from [`token_command`] ran.
pub fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("token-runs"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

pub fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The config text with the mailbox's password line taken out (a token
/// replaces it).
pub fn without_password(config: &str) -> String {
    config.replace("password_file = \"imap-password\"\n", "")
}
