//! Checks the TLS trust keys of a `[[mailbox]]` or `[smtp]` table into a
//! [`TlsTrust`]: the CA file is read and parsed now, the pin decoded, and
//! turning verification off is allowed only with `allow_insecure`.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::check::Validator;
use super::raw::RawTlsTrust;
use super::tls::{parse_pin, TlsTrust};
use super::TlsMode;

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
