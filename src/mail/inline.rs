//! Inline images: the pictures an HTML mail shows in its text, sent as
//! parts of a `multipart/related` with a `Content-ID` and referenced as
//! `cid:` URLs (RFC 2387, RFC 2392). deskgate relays text, so each picture
//! travels as a named attachment and the text says `[image: NAME]` where it
//! was; without that the reader sees a file called "attachment" and no hint
//! of where it belonged.
//!
//! Pure. Both rewrites are one regex pass (linear in the text).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// `<img … src="cid:…" …>`, whichever quotes; the URL in group 1, 2 or 3.
static IMG_CID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)<img\b[^>]*?\ssrc\s*=\s*(?:"\s*cid:([^"]{1,500})"|'\s*cid:([^']{1,500})'|cid:([^\s>"']{1,500}))[^>]*>"#,
    )
    .expect("valid regex")
});

/// How Outlook's text alternative marks a picture: `[cid:image001.png@01DA…]`.
static TEXT_CID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\[cid:([^\]\s]{1,500})\]").expect("valid regex"));

/// The name of an unnamed image part: `image-N.EXT`, N its place among the
/// mail's attachments (so two never collide), EXT from its type. `None` for
/// anything but an image.
pub fn unnamed_image_name(content_type: &str, position: usize) -> Option<String> {
    let sub = content_type.strip_prefix("image/")?;
    let ext = match sub {
        "jpeg" | "pjpeg" => "jpg",
        "svg+xml" => "svg",
        s if !s.is_empty() && s.len() <= 10 && s.chars().all(|c| c.is_ascii_alphanumeric()) => s,
        _ => "img",
    };
    Some(format!("image-{position}.{ext}"))
}

/// Content-IDs of a mail's parts and the names their attachments got.
#[derive(Debug, Default)]
pub struct InlineNames(HashMap<String, String>);

impl InlineNames {
    /// Remembers `name` for the part whose `Content-ID` header is `content_id`.
    pub fn insert(&mut self, content_id: &str, name: &str) {
        let id = content_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        if !id.is_empty() {
            self.0.insert(id.to_lowercase(), name.to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name for a `cid:` URL's part after the scheme (percent-encoded, RFC 2392).
    fn name_of(&self, url: &str) -> Option<&str> {
        let id = percent_decode(url.trim());
        self.0.get(&id.to_lowercase()).map(String::as_str)
    }

    /// Replaces each `<img>` of a known `cid:` picture with `[image: NAME]`
    /// (HTML-escaped: the HTML is converted to text afterwards).
    pub fn in_html<'a>(&self, html: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(html);
        }
        IMG_CID.replace_all(html, |c: &Captures<'_>| {
            let url = c
                .get(1)
                .or(c.get(2))
                .or(c.get(3))
                .map_or("", |m| m.as_str());
            match self.name_of(url) {
                Some(name) => format!("[image: {}]", escape_html(name)),
                None => c[0].to_string(),
            }
        })
    }

    /// Replaces `[cid:…]` of a known picture in plain text with `[image: NAME]`.
    pub fn in_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        TEXT_CID.replace_all(text, |c: &Captures<'_>| match self.name_of(&c[1]) {
            Some(name) => format!("[image: {name}]"),
            None => c[0].to_string(),
        })
    }
}

/// `%40` → `@`; anything that is not a valid escape stays as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_images_get_a_name_from_their_type() {
        assert_eq!(
            unnamed_image_name("image/jpeg", 2).as_deref(),
            Some("image-2.jpg")
        );
        assert_eq!(
            unnamed_image_name("image/png", 1).as_deref(),
            Some("image-1.png")
        );
        assert_eq!(
            unnamed_image_name("image/svg+xml", 3).as_deref(),
            Some("image-3.svg")
        );
        assert_eq!(
            unnamed_image_name("image/x/../..", 4).as_deref(),
            Some("image-4.img")
        );
        assert_eq!(unnamed_image_name("application/pdf", 1), None);
    }

    #[test]
    fn only_known_pictures_are_replaced() {
        let mut n = InlineNames::default();
        n.insert("<a@b>", "a<b>.png");
        let html =
            r#"<p>x<IMG width=1 SRC="cid:a%40b">y<img src="cid:unknown@b"><img src=cid:A@B></p>"#;
        assert_eq!(
            n.in_html(html),
            r#"<p>x[image: a&lt;b&gt;.png]y<img src="cid:unknown@b">[image: a&lt;b&gt;.png]</p>"#
        );
        assert_eq!(
            n.in_text("see [cid:a@b] and [cid:c@d]"),
            "see [image: a<b>.png] and [cid:c@d]"
        );
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("x%zz%41"), "x%zzA");
        assert!(matches!(
            InlineNames::default().in_html("<img src=cid:x>"),
            Cow::Borrowed(_)
        ));
    }
}
