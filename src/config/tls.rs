//! How a mailbox or the SMTP server proves who it is: the system's trust
//! store, plus the admin's internal CA (`ca_file`), plus an optional pin of
//! the server's certificate (`tls_pin`). Turning verification off
//! (`tls_verify = false`) needs `allow_insecure = true` and is warned about at
//! every start. Checked once at load; the certificates are read then, so a
//! missing or broken file is a config error, not a failed connection later.

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

/// `sha256:` and 64 hex digits, colons between bytes allowed (as
/// `openssl x509 -fingerprint -sha256` prints them).
pub fn parse_pin(pin: &str) -> Option<[u8; 32]> {
    let hex_part = pin.trim().strip_prefix("sha256:")?;
    let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(digits).ok()?;
    bytes.try_into().ok()
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
