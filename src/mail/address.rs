//! Email addresses as deskgate compares them.

use serde::{Deserialize, Serialize};

/// A syntactically plausible `local@domain` address, lower-cased.
///
/// Mail systems treat the local part as case-sensitive in theory and
/// case-insensitive in practice; lower-casing once means threading, watcher
/// lists and loop checks all agree on what "the same address" is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Accepts `local@domain` with no whitespace, control characters or angle
    /// brackets; anything else is not an address we would ever send to.
    pub fn parse(s: &str) -> Option<EmailAddress> {
        let s = s.trim();
        let (local, domain) = s.rsplit_once('@')?;
        let bad = |c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '\\')
        };
        if local.is_empty()
            || domain.is_empty()
            || s.len() > 254
            || s.chars().any(bad)
            || local.contains('@')
        {
            return None;
        }
        if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return None;
        }
        Some(EmailAddress(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address with the display name it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: Option<String>,
    pub address: EmailAddress,
}

impl Party {
    /// `Name <addr>` or the bare address, for humans.
    pub fn display(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => format!("{n} <{}>", self.address),
            _ => self.address.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        let a = EmailAddress::parse(" Alice@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "alice@example.com");
        assert_eq!(a.local_part(), "alice");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn rejects_junk() {
        for s in [
            "",
            "a",
            "@b",
            "a@",
            "a b@c",
            "a@b\r\nBcc: x@y",
            "<a@b>",
            "a@.b",
            "a@b..c",
        ] {
            assert!(EmailAddress::parse(s).is_none(), "{s:?}");
        }
    }
}
