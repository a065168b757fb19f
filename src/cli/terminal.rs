//! What may reach a terminal from mail. Subjects, names, bodies and server
//! messages are someone else's text: an ESC starts an escape sequence (retitle
//! the window, rewrite the screen, on some terminals worse), a CR overwrites
//! the line, and bidi or invisible marks make text read other than it is
//! (`\u{202E}fdp.exe`). Every text view passes through [`safe`] last, so no
//! field can forget it.

/// Bidi overrides, embeddings and isolates, direction marks, and the
/// invisible characters that hide or split text on screen.
fn is_formatting(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'
            | '\u{FEFF}'
    )
}

/// `text` with every control character but line feed and tab, and every
/// formatting character, shown as a visible `\u{…}` escape instead.
pub fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c.is_control() && c != '\n' && c != '\t') || is_formatting(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Raw mail as text for a terminal: CRLF line ends become line ends, and
/// the rest goes through [`safe`] (a lone CR is shown, not obeyed).
pub fn safe_mail(raw: &str) -> String {
    safe(&raw.replace("\r\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_formatting_but_keeps_lines() {
        assert_eq!(safe("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(safe("x\r\ny\tz\n"), "x\\u{d}\ny\tz\n");
        assert_eq!(safe("\u{202E}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(safe("caf\u{e9} \u{1F600}"), "caf\u{e9} \u{1F600}");
        assert_eq!(safe_mail("a\r\nb\rc"), "a\nb\\u{d}c");
    }
}
