//! Small value types that the file and the checked form share.

use serde::Deserialize;

/// Support tier: tickets escalate from L1 to L2 to L3.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
pub enum Tier {
    #[default]
    L1,
    L2,
    L3,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS before login.
    Starttls,
    /// No encryption: only for loopback unless `allow_insecure` is set.
    None,
}
