//! How a mailbox or the SMTP server proves who it is: the system's trust
//! store, plus the admin's internal CA (`ca_file`), plus an optional pin of
//! the server's certificate (`tls_pin`). Turning verification off
//! (`tls_verify = false`) needs `allow_insecure = true` and is warned about at
//! every start. Checked once at load; the certificates are read then, so a
//! missing or broken file is a config error, not a failed connection later.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::check::Validator;
use super::TlsMode;

/// The checked trust settings of one server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// Certificates (DER) from `ca_file`, trusted besides the system's.
    pub extra_roots: Vec<Vec<u8>>,
    /// SHA-256 of the server's own certificate (DER): if set, only that
    /// certificate is accepted, on top of the chain check.
    pub pin_sha256: Option<[u8; 32]>,
    /// Whether the chain and host name are checked (false only with
    /// `allow_insecure`).
    pub verify: bool,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("extra_roots", &self.extra_roots.len())
            .field("pinned", &self.pin_sha256.is_some())
            .field("verify", &self.verify)
            .finish()
    }
}

/// The raw settings, as written in a `[[mailbox]]` or `[smtp]` table.
pub(super) struct RawTlsTrust<'a> {
    pub tls: TlsMode,
    pub allow_insecure: bool,
    pub ca_file: Option<&'a Path>,
    pub tls_pin: Option<&'a str>,
    pub tls_verify: bool,
}

/// `sha256:` and 64 hex digits, colons between bytes allowed (as
/// `openssl x509 -fingerprint -sha256` prints them).
pub fn parse_pin(pin: &str) -> Option<[u8; 32]> {
    let hex_part = pin.trim().strip_prefix("sha256:")?;
    let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(digits).ok()?;
    bytes.try_into().ok()
}

/// Every certificate in a PEM file, or why there is none.
fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&data) {
        match c {
            Ok(c) => certs.push(c.as_ref().to_vec()),
            Err(e) => {
                return Err(format!(
                    "{} is not a PEM certificate file: {e}",
                    path.display()
                ))
            }
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

impl Validator {
    pub(super) fn check_tls_trust(
        &mut self,
        key: &str,
        host: &str,
        raw: RawTlsTrust<'_>,
        base: &Path,
    ) -> TlsTrust {
        if raw.tls == TlsMode::None {
            for (set, name) in [
                (raw.ca_file.is_some(), "ca_file"),
                (raw.tls_pin.is_some(), "tls_pin"),
                (!raw.tls_verify, "tls_verify"),
            ] {
                if set {
                    self.problem(
                        format!("{key}.{name}"),
                        "only makes sense with tls = \"implicit\" or \"starttls\"",
                    );
                }
            }
            return TlsTrust::default();
        }
        let mut trust = TlsTrust {
            verify: raw.tls_verify,
            ..TlsTrust::default()
        };
        if !raw.tls_verify {
            if raw.allow_insecure {
                self.warnings.push(format!(
                    "{key}.tls_verify = false: the certificate of {host} is not checked{}, so anyone on the network path can pose as it and read the password and the mail",
                    if raw.tls_pin.is_some() { " (only the pin is)" } else { "" }
                ));
            } else {
                self.problem(
                    format!("{key}.tls_verify"),
                    "false turns off certificate checks; it is allowed only together with allow_insecure = true (prefer ca_file for an internal CA, or tls_pin)",
                );
            }
        }
        if let Some(file) = raw.ca_file {
            let path: PathBuf = base.join(file);
            match read_certificates(&path) {
                Ok(certs) => trust.extra_roots = certs,
                Err(e) => self.problem(format!("{key}.ca_file"), e),
            }
        }
        if let Some(pin) = raw.tls_pin {
            match parse_pin(pin) {
                Some(p) => trust.pin_sha256 = Some(p),
                None => self.problem(
                    format!("{key}.tls_pin"),
                    "must be \"sha256:\" and the 64 hex digits of the certificate's SHA-256 fingerprint",
                ),
            }
        }
        trust
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_sha256_fingerprints_with_or_without_colons() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_pin(&format!("sha256:{hex64}")), Some([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&format!("sha256:{colons}")), Some([0xab; 32]));
        assert_eq!(parse_pin(&hex64), None, "the algorithm is named");
        assert_eq!(parse_pin("sha256:abcd"), None, "too short");
        assert_eq!(parse_pin(&format!("sha256:{}", "zz".repeat(32))), None);
        assert_eq!(parse_pin(&format!("sha1:{hex64}")), None);
    }
}
