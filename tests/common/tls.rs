//! The test servers with TLS (`MAILSERVERS_TLS=1`, see tests/support/tls.sh):
//! a CA made for the run, STARTTLS on the usual ports, implicit TLS on two
//! more.

use std::path::PathBuf;

use super::{MailServers, ServerOptions};

pub struct TlsServers {
    pub servers: MailServers,
    pub imaps_port: u16,
    pub smtps_port: u16,
    /// The CA that signed the servers' certificate.
    pub ca: PathBuf,
    /// A CA that did not.
    pub wrong_ca: PathBuf,
    /// `sha256:…` of the servers' certificate, as `tls_pin` takes it.
    pub pin: String,
}

impl TlsServers {
    pub fn start(users: &[&str]) -> TlsServers {
        let (servers, env) =
            MailServers::start_env(users, &ServerOptions::default(), Some("MAILSERVERS_TLS"));
        TlsServers {
            imaps_port: env.port("IMAPS_PORT"),
            smtps_port: env.port("SMTPS_PORT"),
            ca: env.get("TLS_CA").into(),
            wrong_ca: env.get("TLS_WRONG_CA").into(),
            pin: env.get("TLS_CERT_SHA256"),
            servers,
        }
    }
}
