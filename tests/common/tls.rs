//! The test servers with TLS (`MAILSERVERS_TLS=1`, see tests/support/tls.sh):
//! a CA made for the run, STARTTLS on the usual ports, implicit TLS on two
//! more.

use std::path::PathBuf;
use std::process::Command;

use super::MailServers;

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
        let dir = tempfile::Builder::new()
            .prefix("dg-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let out = Command::new("bash")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/mailservers.sh"))
            .arg("start")
            .arg(dir.path())
            .args(users)
            .env("MAILSERVERS_TLS", "1")
            .output()
            .expect("run mailservers.sh");
        assert!(
            out.status.success(),
            "mailservers.sh start (TLS) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env")).expect("env file");
        let get = |k: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("{k} missing in env file:\n{env}"))
        };
        let port = |k: &str| get(k).parse::<u16>().expect("a port");
        TlsServers {
            imaps_port: port("IMAPS_PORT"),
            smtps_port: port("SMTPS_PORT"),
            ca: get("TLS_CA").into(),
            wrong_ca: get("TLS_WRONG_CA").into(),
            pin: get("TLS_CERT_SHA256"),
            servers: MailServers {
                imap_port: port("IMAP_PORT"),
                smtp_port: port("SMTP_PORT"),
                dir,
            },
        }
    }
}
