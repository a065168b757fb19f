//! Text clean-up shared by parsing and composing: HTML to text, trimming the
//! quoted history clients append to replies, and making header text safe.

/// The most HTML handed to html2text: its cost grows much faster than the
/// input on deeply nested markup (500 KB of nested `<div>`s took 52 s), and a
/// mail is parsed before its transaction, so a hostile body must stay cheap.
pub const HTML2TEXT_MAX_BYTES: usize = 256 * 1024;
/// The deepest element nesting handed to html2text; real mail stays far below.
pub const HTML2TEXT_MAX_DEPTH: usize = 100;

/// Converts an HTML body to readable plain text; never fails. HTML past the
/// budget above (or that html2text cannot render) goes through a linear tag
/// stripper instead, so the time spent is bounded by the size of the mail.
pub fn html_to_text(html: &str) -> String {
    if html.len() > HTML2TEXT_MAX_BYTES || nesting_depth(html) > HTML2TEXT_MAX_DEPTH {
        return strip_tags(html);
    }
    match html2text::from_read(html.as_bytes(), 100) {
        Ok(t) => t,
        Err(_) => strip_tags(html),
    }
}

/// Elements that never have content, so they do not nest.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
/// Elements whose end starts a new line in stripped text.
const BLOCK: [&str; 22] = [
    "address",
    "article",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "p",
    "pre",
    "table",
    "tr",
];

/// One tag: its lower-case name, whether it closes (`</x>`), and whether it
/// closes itself (`<x/>`); `end` is the byte after its `>`.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    end: usize,
}

/// Reads the tag starting at `start` (a `<`). Linear in the tag's length.
fn read_tag(html: &str, start: usize) -> Option<Tag> {
    let rest = &html[start + 1..];
    let gt = rest.find('>')?;
    let inner = &rest[..gt];
    let (closing, body) = match inner.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, inner),
    };
    let name: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(Tag {
        name,
        closing,
        self_closing: inner.ends_with('/'),
        end: start + 1 + gt + 1,
    })
}

/// How deep elements nest, in one pass (void and self-closing tags do not count).
fn nesting_depth(html: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut at = 0;
    while let Some(off) = html[at..].find('<') {
        let start = at + off;
        let Some(tag) = read_tag(html, start) else {
            break;
        };
        at = tag.end;
        if tag.name.is_empty() || VOID.contains(&tag.name.as_str()) || tag.self_closing {
            continue;
        }
        if tag.closing {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

/// Linear fallback: drops tags, comments, scripts and styles, starts a line
/// at block elements and decodes the common entities.
fn strip_tags(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut at = 0;
    while let Some(off) = html[at..].find('<') {
        push_text(&mut out, &html[at..at + off]);
        let start = at + off;
        if html[start..].starts_with("<!--") {
            at = lower[start..]
                .find("-->")
                .map_or(html.len(), |e| start + e + 3);
            continue;
        }
        let Some(tag) = read_tag(html, start) else {
            at = html.len();
            break;
        };
        at = tag.end;
        if !tag.closing && (tag.name == "script" || tag.name == "style") {
            let close = format!("</{}", tag.name);
            at = lower[at..].find(&close).map_or(html.len(), |e| at + e);
            continue;
        }
        if BLOCK.contains(&tag.name.as_str()) && !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
    }
    if at < html.len() {
        push_text(&mut out, &html[at..]);
    }
    out.trim().to_string()
}

fn push_text(out: &mut String, text: &str) {
    if !text.contains('&') {
        out.push_str(text);
        return;
    }
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let entity = rest
            .find(';')
            .filter(|&e| e <= 8)
            .and_then(|e| entity(&rest[1..e]).map(|c| (c, e)));
        match entity {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" | "#39" => '\'',
        "nbsp" => ' ',
        _ => {
            let n = name.strip_prefix('#')?;
            let code = match n.strip_prefix(['x', 'X']) {
                Some(h) => u32::from_str_radix(h, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code).filter(|c| !c.is_control() || *c == '\n')?
        }
    })
}

/// Makes text from an incoming header safe to store and to reuse in an outgoing
/// header: CR, LF and every other control character become a space, runs of
/// whitespace collapse, and the result is capped in length.
pub fn clean_header_text(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars));
    let mut last_space = true;
    // Counted as they are pushed: counting `out` again after every push
    // made a long header cost the square of its length.
    let mut chars = 0;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
        chars += 1;
        if chars >= max_chars {
            break;
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// `s` with every CRLF turned into LF (a lone CR stays): what
/// `s.replace("\r\n", "\n")` gives, found with a byte search for CR
/// instead of a substring search over every mail's whole text.
pub fn crlf_to_lf(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut from = 0;
    for (i, _) in s.match_indices('\r') {
        if s.as_bytes().get(i + 1) == Some(&b'\n') {
            out.push_str(&s[from..i]);
            from = i + 1;
        }
    }
    out.push_str(&s[from..]);
    out
}

/// Removes the quoted history a mail client appends below (or above) a reply,
/// so a ticket shows what was said, not the whole thread again.
///
/// Recognises `>`-quoted blocks, "On … wrote:" attribution lines (Gmail,
/// Thunderbird, Apple Mail, in a few languages), Outlook's "-----Original
/// Message-----" and its "From: … Sent: …" header block, and signatures
/// after "-- ". When trimming would leave nothing, the original is kept.
pub fn trim_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if is_attribution(t, lines.get(i + 1).map(|l| l.trim())) || is_outlook_separator(t) {
            cut = i;
            break;
        }
        if line.trim_end() == "--" {
            cut = i;
            break;
        }
        if is_outlook_header_block(&lines[i..]) {
            cut = i;
            break;
        }
    }
    let mut kept: Vec<&str> = lines[..cut].to_vec();
    // Drop a trailing block of quoted lines (bottom-posting leftovers) and blank lines.
    while let Some(last) = kept.last() {
        let t = last.trim();
        if t.is_empty() || t.starts_with('>') {
            kept.pop();
        } else {
            break;
        }
    }
    let result = kept.join("\n");
    if result.trim().is_empty() {
        text.trim_end().to_string()
    } else {
        result
    }
}

fn is_attribution(line: &str, next: Option<&str>) -> bool {
    const STARTS: [&str; 7] = ["on ", "am ", "le ", "el ", "il ", "op ", "den "];
    const VERBS: [&str; 7] = [
        "wrote",
        "schrieb",
        "écrit",
        "escribió",
        "scritto",
        "schreef",
        "skrev",
    ];
    // The openings are ASCII, so an ASCII comparison finds the same lines
    // without lowercasing every line of every mail.
    if !STARTS
        .iter()
        .any(|s| starts_with_ignore_ascii_case(line, s))
    {
        return false;
    }
    let lower = line.to_lowercase();
    if lower.ends_with(':') && VERBS.iter().any(|v| lower.contains(v)) {
        return true;
    }
    // Gmail wraps long attribution lines: "On Mon, … <a@b>\nwrote:".
    next.is_some_and(|n| {
        let n = n.to_lowercase();
        line.contains('@') && n.ends_with(':') && VERBS.iter().any(|v| n.starts_with(v))
    })
}

fn is_outlook_separator(line: &str) -> bool {
    let dashed = || {
        let l = line.trim_matches('-').trim().to_lowercase();
        l == "original message" || l == "ursprüngliche nachricht" || l == "message d'origine"
    };
    line.starts_with("-----") && dashed() || line.starts_with("________________________________")
}

/// Whether `line` starts with `prefix` (ASCII) in any case.
fn starts_with_ignore_ascii_case(line: &str, prefix: &str) -> bool {
    line.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Outlook without a separator: a block of "From:", "Sent:"/"Date:", "To:" and "Subject:" lines.
fn is_outlook_header_block(lines: &[&str]) -> bool {
    let first = lines.first().map(|l| l.trim()).unwrap_or("");
    if !(first.starts_with("From:") || first.starts_with("Von:") || first.starts_with("De :")) {
        return false;
    }
    let window: Vec<&str> = lines.iter().take(6).map(|l| l.trim()).collect();
    let has = |p: &[&str]| window.iter().any(|l| p.iter().any(|x| l.starts_with(x)));
    has(&["Sent:", "Date:", "Gesendet:", "Envoyé :"]) && has(&["Subject:", "Betreff:", "Objet :"])
}

/// Makes an attachment name safe to show and to use as a file name: no path,
/// no control characters, not hidden, not empty, bounded length.
pub fn sanitize_file_name(name: Option<&str>) -> String {
    let raw = name.unwrap_or("");
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    out = out.trim().trim_start_matches('.').to_string();
    if out.chars().count() > 120 {
        // Keep a short extension: it tells people (and programs) what the file is.
        let ext: String = match out.rsplit_once('.') {
            Some((_, e)) if !e.is_empty() && e.chars().count() <= 10 => format!(".{e}"),
            _ => String::new(),
        };
        let keep = 120 - ext.chars().count();
        out = out.chars().take(keep).collect::<String>() + &ext;
    }
    if out.is_empty() {
        "attachment".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_loses_crlf_and_controls() {
        assert_eq!(
            clean_header_text("Hi\r\nBcc: evil@x\t\u{7}there", 200),
            "Hi Bcc: evil@x there"
        );
        assert_eq!(clean_header_text("  a  ", 200), "a");
        assert_eq!(clean_header_text(&"x".repeat(1000), 10).len(), 10);
    }

    #[test]
    fn a_long_header_is_cleaned_in_linear_time() {
        let long = "word ".repeat(80_000);
        let started = std::time::Instant::now();
        let cleaned = clean_header_text(&long, long.len());
        // Unoptimised test build: counting the output again after every
        // character took seconds here.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(cleaned, long.trim_end());
        assert_eq!(clean_header_text("é ü  ß x", 3), "é ü");
        assert_eq!(clean_header_text("ab  ", 3), "ab");
    }

    #[test]
    fn crlf_to_lf_is_replace() {
        for s in [
            "",
            "\r",
            "\n",
            "\r\n",
            "\r\r\n",
            "\r\n\r\n",
            "\n\r",
            "a\r\nb\rc\nd\r",
            "é\r\nü\r\r\n\r",
            "no breaks at all",
        ] {
            assert_eq!(crlf_to_lf(s), s.replace("\r\n", "\n"), "{s:?}");
        }
    }

    #[test]
    fn attribution_openings_are_found_in_any_case_but_only_in_ascii() {
        assert_eq!(trim_quoted("Hi\nON Monday, Bob WROTE:\n> x"), "Hi");
        assert_eq!(trim_quoted("Hi\nDen 3 mars skrev Bo:\n> x"), "Hi");
        // Non-ASCII capitals that lowercase to ASCII (dotted I, the Kelvin
        // sign) begin no opening: such lines are kept, as before.
        for line in [
            "\u{130}l 3 marzo, Bo ha scritto:",
            "\u{212A}on Monday, Bob wrote:",
        ] {
            let text = format!("Hi\n{line}\n> x");
            assert_eq!(trim_quoted(&text), format!("Hi\n{line}"), "{line}");
        }
        assert_eq!(trim_quoted("Hi\n----- Original Message -----\nold"), "Hi");
        assert_eq!(
            trim_quoted("Hi\n----- Notes -----\nmore"),
            "Hi\n----- Notes -----\nmore"
        );
    }

    #[test]
    fn html_becomes_text() {
        let t = html_to_text("<p>Hello <b>world</b></p><ul><li>one</li></ul>");
        assert!(t.contains("Hello"), "{t}");
        assert!(t.contains("world"), "{t}");
        assert!(t.contains("one"), "{t}");
        assert!(!t.contains("<p>"));
    }

    /// Block and inline elements nested `depth` deep, text at every level.
    fn nested_html(depth: usize) -> String {
        let mut s = String::new();
        for i in 0..depth {
            s.push_str(if i % 2 == 0 { "<div>" } else { "<span>x " });
        }
        s.push_str("deepest &amp; last");
        for i in (0..depth).rev() {
            s.push_str(if i % 2 == 0 { "</div>" } else { "</span>" });
        }
        s
    }

    #[test]
    fn deeply_nested_html_converts_in_linear_time() {
        let html = nested_html(100_000);
        assert!(html.len() > 1_000_000, "{}", html.len());
        let started = std::time::Instant::now();
        let t = html_to_text(&html);
        let took = started.elapsed();
        assert!(t.contains("deepest & last"), "{}", &t[t.len() - 40..]);
        assert!(!t.contains('<'));
        // Unoptimised test build; the release figure is in the README.
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
        // Under the budget but too deep: the stripper too, also quickly.
        let started = std::time::Instant::now();
        let t = html_to_text(&nested_html(5_000));
        assert!(t.contains("deepest & last"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn stripper_keeps_lines_and_drops_scripts() {
        let t = strip_tags(
            "<p>Hello&nbsp;<b>you</b></p><script>alert(1)</script><!-- <p>no</p> --><div>a &lt;b&gt; &#233;</div>",
        );
        assert_eq!(t, "Hello you\na <b> é");
        assert_eq!(nesting_depth("<div><br><img src=x/><p>a</p></div>"), 2);
    }

    #[test]
    fn trims_gmail_style() {
        let t = "Thanks, that fixed it.\n\nOn Mon, 3 Mar 2025 at 10:00, Help Desk <help@desk.test> wrote:\n> Please try again\n";
        assert_eq!(trim_quoted(t), "Thanks, that fixed it.");
    }

    #[test]
    fn trims_wrapped_gmail_attribution() {
        let t = "Yes.\n\nOn Mon, 3 Mar 2025 at 10:00, Help Desk <help@desk.test>\nwrote:\n> hi";
        assert_eq!(trim_quoted(t), "Yes.");
    }

    #[test]
    fn trims_outlook() {
        let t = "Works now.\r\n\r\n-----Original Message-----\r\nFrom: Help\r\nSent: Monday\r\nSubject: x";
        assert_eq!(trim_quoted(t), "Works now.");
        let t2 = "Works now.\n\nFrom: Help Desk <help@desk.test>\nSent: Monday, March 3, 2025 10:00\nTo: Bob\nSubject: [#1] x\n\nold";
        assert_eq!(trim_quoted(t2), "Works now.");
    }

    #[test]
    fn trims_trailing_quote_and_signature() {
        assert_eq!(trim_quoted("ok\n> old\n> older\n"), "ok");
        assert_eq!(trim_quoted("ok\n-- \nBob\nPhone 123"), "ok");
    }

    #[test]
    fn trims_thunderbird() {
        let t =
            "Done, closing.\n\nOn 3/3/25 10:00 AM, Help Desk wrote:\n> Please confirm\n> thanks";
        assert_eq!(trim_quoted(t), "Done, closing.");
    }

    #[test]
    fn trims_apple_mail() {
        let t = "Yes it works\n\n> On 3 Mar 2025, at 10:00, Help Desk <help@desk.test> wrote:\n> \n> Please confirm";
        assert_eq!(trim_quoted(t), "Yes it works");
        let t2 = "Yes it works\n\nOn 3 Mar 2025, at 10:00, Help Desk <help@desk.test> wrote:\n\n> Please confirm";
        assert_eq!(trim_quoted(t2), "Yes it works");
    }

    #[test]
    fn trims_outlook_underscore_separator() {
        let t = "Thanks!\r\n\r\n________________________________\r\nFrom: Help Desk\r\nSent: Monday\r\n";
        assert_eq!(trim_quoted(t), "Thanks!");
    }

    #[test]
    fn keeps_all_quote_mail() {
        assert_eq!(trim_quoted("> only quote"), "> only quote");
    }

    #[test]
    fn german_attribution() {
        let t = "Danke!\n\nAm 03.03.2025 um 10:00 schrieb Help Desk <help@desk.test>:\n> x";
        assert_eq!(trim_quoted(t), "Danke!");
    }

    #[test]
    fn file_names_are_sanitised() {
        assert_eq!(sanitize_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(sanitize_file_name(Some("C:\\x\\a\r\nb.txt")), "a__b.txt");
        assert_eq!(sanitize_file_name(Some(".bashrc")), "bashrc");
        assert_eq!(sanitize_file_name(None), "attachment");
        assert_eq!(sanitize_file_name(Some("..")), "attachment");
        let long = format!("{}.pdf", "a".repeat(300));
        let cut = sanitize_file_name(Some(&long));
        assert_eq!(cut.chars().count(), 120);
        assert!(cut.ends_with(".pdf"));
    }
}
