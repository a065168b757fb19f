//! Reading `Authentication-Results` headers (RFC 8601): who stamped the
//! header (its authserv-id) and what each method said. Pure reading; what a
//! result proves is decided by the desk (`desk::trust`).
//!
//! Only the topmost header is read. The receiving MTA prepends its own, so
//! any header below it was there before the mail reached us: written by
//! whoever sent it, whatever server it names.

/// Most method results read from one header: a real one carries a handful
/// (spf, dkim per signature, dmarc, arc); more is noise or an attack.
const MAX_RESULTS: usize = 32;
/// Most properties read per result (`header.d`, `header.i`, `header.s` …).
const MAX_PROPS: usize = 16;
/// Headers longer than this are not read at all.
const MAX_LEN: usize = 8 * 1024;
/// Deepest nesting of `( comments )` followed before giving up on the header.
const MAX_COMMENT_DEPTH: usize = 8;

/// One header: the server that wrote it and its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Lower-case, without a trailing dot.
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// `dkim=pass header.d=example.com header.s=s1`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// Lower-case method name: `dkim`, `dmarc`, `spf` …
    pub method: String,
    /// Lower-case result: `pass`, `fail`, `none` …
    pub result: String,
    /// `(ptype.property, value)`, both lower-case, quotes removed.
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    /// The value of the first property of that name (`header.d`).
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The topmost `Authentication-Results` header, read; `None` when the mail
/// has none or the topmost one cannot be read (a lower one is never used in
/// its place).
pub fn topmost(headers: &[(String, String)]) -> Option<AuthResults> {
    let (_, value) = headers
        .iter()
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("Authentication-Results"))?;
    parse(value)
}

/// Reads one header value; `None` when it is too long, its comments are
/// unbalanced or too deep, or it names no server.
pub fn parse(value: &str) -> Option<AuthResults> {
    if value.len() > MAX_LEN {
        return None;
    }
    let text = strip_comments(value)?.to_ascii_lowercase();
    let mut parts = text.split(';');
    // "authserv-id [version]"
    let authserv_id = parts
        .next()?
        .split_whitespace()
        .next()?
        .trim_end_matches('.')
        .to_string();
    if authserv_id.is_empty() {
        return None;
    }
    let results = parts.filter_map(method_result).take(MAX_RESULTS).collect();
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// `method[/version]=result prop=value …`; `None` for `none` and for junk.
fn method_result(part: &str) -> Option<MethodResult> {
    let mut words = part.split_whitespace();
    let (method, result) = words.next()?.split_once('=')?;
    let method = method.split('/').next().unwrap_or(method);
    if method.is_empty() || result.is_empty() {
        return None;
    }
    let props = words
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .filter(|(k, _)| k.contains('.'))
        .take(MAX_PROPS)
        .collect();
    Some(MethodResult {
        method: method.to_string(),
        result: result.to_string(),
        props,
    })
}

/// The value without its `( comments )` (RFC 5322 CFWS), each replaced by a
/// space; quoted strings are kept whole. `None` when unbalanced or too deep.
fn strip_comments(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                if depth > MAX_COMMENT_DEPTH {
                    return None;
                }
            }
            ')' if !quoted => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    (depth == 0 && !quoted).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> Vec<(String, String)> {
        vec![("Authentication-Results".into(), v.into())]
    }

    #[test]
    fn reads_server_methods_and_properties() {
        let ar = topmost(&h(
            "MX.Desk.Test. 1; spf=pass smtp.mailfrom=desk.test;\r\n dkim=pass (2048-bit key) header.d=Desk.Test header.s=s1; dmarc=pass (p=reject) header.from=desk.test",
        ))
        .unwrap();
        assert_eq!(ar.authserv_id, "mx.desk.test");
        let methods: Vec<&str> = ar.results.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["spf", "dkim", "dmarc"]);
        assert_eq!(ar.results[1].result, "pass");
        assert_eq!(ar.results[1].prop("header.d"), Some("desk.test"));
        assert_eq!(ar.results[1].prop("header.s"), Some("s1"));
        assert_eq!(ar.results[2].prop("header.from"), Some("desk.test"));
    }

    #[test]
    fn only_the_topmost_header_is_read() {
        let headers = vec![
            ("Received".to_string(), "from x".to_string()),
            (
                "Authentication-Results".to_string(),
                "mx.desk.test; none".to_string(),
            ),
            (
                "authentication-results".to_string(),
                "mx.desk.test; dkim=pass header.d=desk.test".to_string(),
            ),
        ];
        let ar = topmost(&headers).unwrap();
        assert!(ar.results.is_empty(), "{ar:?}");
        assert_eq!(topmost(&[]), None);
    }

    #[test]
    fn a_comment_cannot_smuggle_a_result() {
        // The pass is inside a comment: not a result.
        let ar = parse("mx.desk.test; dkim=fail (dkim=pass header.d=desk.test) header.d=desk.test")
            .unwrap();
        assert_eq!(ar.results.len(), 1);
        assert_eq!(ar.results[0].result, "fail");
        // A comment hiding the authserv-id in front of a real one is fine.
        assert_eq!(
            parse("(hi) mx.desk.test; none").unwrap().authserv_id,
            "mx.desk.test"
        );
    }

    #[test]
    fn unreadable_headers_are_not_read() {
        assert_eq!(parse("mx.desk.test; dkim=pass (unbalanced"), None);
        assert_eq!(parse("mx.desk.test; dkim=pass )"), None);
        assert_eq!(
            parse(&format!("mx; {}", "(".repeat(9) + &")".repeat(9))),
            None
        );
        assert_eq!(
            parse(&format!("mx; dkim=pass {}", "x".repeat(MAX_LEN))),
            None
        );
        assert_eq!(parse("; dkim=pass header.d=desk.test"), None);
        assert_eq!(parse(""), None);
        let many = format!("mx; {}", "dkim=pass header.d=a;".repeat(100));
        assert_eq!(parse(&many).unwrap().results.len(), MAX_RESULTS);
    }
}
