//! TLS for IMAP and SMTP: which certificates a server may show. The chain is
//! checked against the system's trust store (`/etc/ssl/certs`, through
//! rustls-native-certs; the bundled Mozilla roots when the system has none)
//! plus the admin's `ca_file`; a `tls_pin` must then also match the server's
//! own certificate. `tls_verify = false` (config-checked: only with
//! `allow_insecure`) skips the chain check but still verifies the handshake's
//! signatures and, if set, the pin.

use std::sync::{Arc, OnceLock};

use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::TlsTrust;

/// The system's roots, read once: the files do not change under a running
/// daemon often enough to be worth re-reading per connection.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

fn root_store(trust: &TlsTrust) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let system = system_roots();
    if system.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        // A root the parser rejects is skipped, as browsers do.
        let _ = roots.add_parsable_certificates(system.iter().cloned());
    }
    let _ = roots.add_parsable_certificates(
        trust
            .extra_roots
            .iter()
            .map(|der| CertificateDer::from(der.clone())),
    );
    roots
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for one server's trust settings.
pub fn connector(trust: &TlsTrust) -> tokio_rustls::TlsConnector {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // ring supports the safe defaults; this cannot fail with it.
        .expect("ring provider supports default TLS versions");
    let config = if trust.verify {
        builder
            .with_root_certificates(root_store(trust))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// lettre's STARTTLS parameters for the same settings (lettre runs that
/// handshake itself; the pin is checked after it with [`check_pin`]).
pub fn starttls_parameters(
    host: &str,
    trust: &TlsTrust,
) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut b =
        TlsParameters::builder(host.to_string()).certificate_store(CertificateStore::Default);
    for der in &trust.extra_roots {
        b = b.add_root_certificate(Certificate::from_der(der.clone())?);
    }
    if !trust.verify {
        b = b.dangerous_accept_invalid_certs(true);
    }
    b.build_rustls()
}

/// The SHA-256 fingerprint of a certificate, as `tls_pin` writes it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    format!("sha256:{}", hex::encode(digest))
}

/// With a pin set, the server's own certificate must be the pinned one.
pub fn check_pin(trust: &TlsTrust, leaf: Option<&[u8]>) -> Result<(), String> {
    let Some(pin) = trust.pin_sha256 else {
        return Ok(());
    };
    let Some(leaf) = leaf else {
        return Err("the server showed no certificate to check against tls_pin".into());
    };
    if Sha256::digest(leaf).as_slice() == pin {
        Ok(())
    } else {
        Err(format!(
            "the server's certificate ({}) is not the one tls_pin names (sha256:{})",
            fingerprint(leaf),
            hex::encode(pin)
        ))
    }
}

/// The leaf certificate of an established client connection.
pub fn leaf_of<T>(tls: &tokio_rustls::client::TlsStream<T>) -> Option<&[u8]> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref())
}

/// A human reading of a handshake error: "invalid peer certificate:
/// UnknownIssuer" says nothing to an admin about what to change.
pub fn explain(error: &std::io::Error) -> String {
    let text = error.to_string();
    if text.contains("UnknownIssuer") {
        format!("{text}: the server's certificate is not signed by a CA this machine trusts; for an internal CA set ca_file")
    } else if text.contains("NotValidForName") {
        format!("{text}: the certificate does not name this host; use the host name the certificate carries")
    } else if text.contains("Expired") {
        format!("{text}: the server's certificate has expired")
    } else {
        text
    }
}

/// `tls_verify = false`: any chain is accepted, but the handshake must still
/// be signed by the key of the certificate shown (so a pin means something).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_accepts_only_its_certificate() {
        let cert = b"certificate bytes";
        let mut trust = TlsTrust {
            verify: true,
            ..TlsTrust::default()
        };
        assert!(check_pin(&trust, Some(cert)).is_ok(), "no pin: anything");
        trust.pin_sha256 = Some(Sha256::digest(cert).into());
        assert!(check_pin(&trust, Some(cert)).is_ok());
        let e = check_pin(&trust, Some(b"another")).unwrap_err();
        assert!(e.contains("is not the one tls_pin names"), "{e}");
        assert!(check_pin(&trust, None).is_err());
    }
}
