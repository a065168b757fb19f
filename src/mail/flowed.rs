//! `format=flowed` text (RFC 3676), as mutt, Thunderbird and Apple Mail
//! send it: a line ending in a space is a soft break, joined to the next
//! line of the same quote depth; a leading space is stuffing, removed; with
//! `DelSp=yes` the space before a soft break was added by the sender and
//! goes too. Without this the stored text and every relay would carry the
//! sender's wrapping and the stuffing spaces.

/// Decodes one flowed text part (lines separated by `\n` or `\r\n`).
pub fn decode(text: &str, delsp: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    // The paragraph being joined: its quote depth and text so far.
    let mut open: Option<(usize, String)> = None;
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let depth = raw.bytes().take_while(|b| *b == b'>').count();
        let mut line = &raw[depth..];
        line = line.strip_prefix(' ').unwrap_or(line);
        // The signature separator is never flowed (RFC 3676 §4.3).
        let soft = line.ends_with(' ') && line != "-- ";
        let piece = if soft && delsp {
            &line[..line.len() - 1]
        } else {
            line
        };
        match open.take() {
            Some((d, mut acc)) if d == depth => {
                acc.push_str(piece);
                open = Some((d, acc));
            }
            Some((d, acc)) => {
                // A quote depth change ends a paragraph even after a soft break.
                out.push(with_quotes(d, &acc));
                open = Some((depth, piece.to_string()));
            }
            None => open = Some((depth, piece.to_string())),
        }
        if !soft {
            if let Some((d, acc)) = open.take() {
                out.push(with_quotes(d, &acc));
            }
        }
    }
    if let Some((d, acc)) = open {
        out.push(with_quotes(d, &acc));
    }
    out.join("\n")
}

fn with_quotes(depth: usize, text: &str) -> String {
    if depth == 0 {
        text.to_string()
    } else if text.is_empty() {
        ">".repeat(depth)
    } else {
        format!("{} {text}", ">".repeat(depth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_breaks_join_and_stuffing_goes() {
        let t = "This is a long \r\nparagraph that \r\nwraps.\r\n From the start, stuffed.\r\n\r\n-- \r\nAlice";
        assert_eq!(
            decode(t, false),
            "This is a long paragraph that wraps.\nFrom the start, stuffed.\n\n-- \nAlice"
        );
    }

    #[test]
    fn delsp_removes_the_space_before_a_soft_break() {
        assert_eq!(
            decode("Donau\r\ndampf \r\nschiff", true),
            "Donau\ndampfschiff"
        );
        assert_eq!(
            decode("Donau\r\ndampf \r\nschiff", false),
            "Donau\ndampf schiff"
        );
    }

    #[test]
    fn quoted_paragraphs_join_within_their_depth() {
        let t = "> quoted \r\n> more\r\n>> deeper \r\n>> still\r\nmine";
        assert_eq!(decode(t, false), "> quoted more\n>> deeper still\nmine");
        // A soft break followed by another depth ends the paragraph.
        assert_eq!(decode("> a \r\nb", false), "> a \nb");
    }
}
