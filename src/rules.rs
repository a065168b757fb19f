//! Routing rules: an ordered list of match → set → stop, in the spirit of
//! Znuny's PostMaster filters and osTicket's ticket filters.
//!
//! Rules are compiled once when the config loads (regexes included) and
//! evaluated purely against the facts of one mail; the evaluation keeps a
//! trace of every rule and why it matched or not, which `deskgate rules test`
//! prints.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
use crate::inbound::InboundMail;
use crate::model::Priority;

// ---------------------------------------------------------------------------
// Raw config forms.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: String,
    /// "all" (default) or "any" of the conditions.
    #[serde(default, rename = "match")]
    combine: Combine,
    #[serde(default)]
    when: Vec<RawCondition>,
    #[serde(default)]
    set: RawSet,
    /// Template for the acknowledgement, or "none" for no acknowledgement.
    acknowledge: Option<String>,
    /// "ignore" (kept, no ticket, no reply) or "reject" (polite reply, no ticket).
    action: Option<String>,
    reject_template: Option<String>,
    #[serde(default = "yes")]
    stop: bool,
    #[serde(default)]
    on_replies: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    #[default]
    All,
    Any,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    field: String,
    equals: Option<String>,
    contains: Option<String>,
    regex: Option<String>,
    /// For `size`: bytes, or "10 MB".
    greater_than: Option<bytesize::ByteSize>,
    /// For `has_attachments`.
    is: Option<bool>,
    #[serde(default)]
    not: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSet {
    team: Option<String>,
    priority: Option<Priority>,
    assignee: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// An SLA policy by name.
    sla: Option<String>,
}

// ---------------------------------------------------------------------------
// Compiled rules.
// ---------------------------------------------------------------------------

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The configured mailbox name the mail was fetched from.
    Mailbox,
    /// Any address in To, Cc or Delivered-To.
    To,
    From,
    FromDomain,
    Subject,
    Body,
    Header(String),
    HasAttachments,
    Size,
}

impl Field {
    /// The name used in the config file.
    pub fn name(&self) -> String {
        match self {
            Field::Mailbox => "mailbox".into(),
            Field::To => "to".into(),
            Field::From => "from".into(),
            Field::FromDomain => "from_domain".into(),
            Field::Subject => "subject".into(),
            Field::Body => "body".into(),
            Field::Header(h) => format!("header:{h}"),
            Field::HasAttachments => "has_attachments".into(),
            Field::Size => "size".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Matcher {
    Equals(String),
    Contains(String),
    Regex(Regex),
    GreaterThan(u64),
    Is(bool),
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub field: Field,
    pub matcher: Matcher,
    pub negate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckChoice {
    Template(String),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    Ignore,
    Reject { template: String },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub combine: Combine,
    pub conditions: Vec<Condition>,
    pub team: Option<String>,
    pub priority: Option<Priority>,
    pub assignee: Option<EmailAddress>,
    pub tags: Vec<String>,
    pub sla: Option<String>,
    pub acknowledge: Option<AckChoice>,
    pub action: Option<RuleAction>,
    pub stop: bool,
    pub on_replies: bool,
}

/// A problem found compiling a rule: key path and message (the config module adds the line).
pub type RuleProblem = (String, String);

/// Context for validation: what names exist.
pub struct Known<'a> {
    pub teams: &'a [String],
    pub slas: &'a [String],
    pub agents: &'a [EmailAddress],
    pub templates: &'a std::path::Path,
}

pub(crate) fn compile(
    raw: Vec<RawRule>,
    known: &Known<'_>,
    problems: &mut Vec<RuleProblem>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("rule[{i}]");
        let label = format!("rule \"{}\"", r.name);
        let mut say = |k: String, m: String| problems.push((k, format!("{label}: {m}")));
        if r.name.trim().is_empty() {
            say(format!("{key}.name"), "must not be empty".into());
        }
        let mut conditions = Vec::new();
        for (j, c) in r.when.into_iter().enumerate() {
            let ckey = format!("{key}.when[{j}]");
            match compile_condition(c) {
                Ok(cond) => conditions.push(cond),
                Err((sub, msg)) => say(format!("{ckey}{sub}"), msg),
            }
        }
        if let Some(sla) = &r.set.sla {
            if !known.slas.iter().any(|s| s == sla) {
                say(
                    format!("{key}.set.sla"),
                    format!("unknown SLA policy \"{sla}\""),
                );
            }
        }
        if let Some(team) = &r.set.team {
            if !known.teams.iter().any(|t| t == team) {
                say(
                    format!("{key}.set.team"),
                    format!("unknown team \"{team}\""),
                );
            }
        }
        let assignee = match &r.set.assignee {
            Some(a) => match EmailAddress::parse(a) {
                Some(addr) if known.agents.contains(&addr) => Some(addr),
                _ => {
                    say(
                        format!("{key}.set.assignee"),
                        format!("unknown agent \"{a}\" (list it under [[agent]])"),
                    );
                    None
                }
            },
            None => None,
        };
        for tag in &r.set.tags {
            if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
                say(
                    format!("{key}.set.tags"),
                    format!("tag \"{tag}\" must be one word"),
                );
            }
        }
        let mut template_exists = |k: String, name: &str| {
            if name.contains('/') || name.contains("..") || !known.templates.join(name).is_file() {
                say(
                    k,
                    format!(
                        "template \"{name}\" not found in {}",
                        known.templates.display()
                    ),
                );
            }
        };
        let acknowledge = match r.acknowledge.as_deref() {
            None => None,
            Some("none") => Some(AckChoice::None),
            Some(t) => {
                template_exists(format!("{key}.acknowledge"), t);
                Some(AckChoice::Template(t.to_string()))
            }
        };
        let action = match r.action.as_deref() {
            None => None,
            Some("ignore") => Some(RuleAction::Ignore),
            Some("reject") => {
                let template = r
                    .reject_template
                    .clone()
                    .unwrap_or_else(|| "rejection.txt".into());
                template_exists(format!("{key}.reject_template"), &template);
                Some(RuleAction::Reject { template })
            }
            Some(other) => {
                say(
                    format!("{key}.action"),
                    format!("\"{other}\" is not an action: use \"ignore\" or \"reject\""),
                );
                None
            }
        };
        rules.push(Rule {
            name: r.name,
            combine: r.combine,
            conditions,
            team: r.set.team,
            priority: r.set.priority,
            assignee,
            tags: r.set.tags,
            sla: r.set.sla,
            acknowledge,
            action,
            stop: r.stop,
            on_replies: r.on_replies,
        });
    }
    rules
}

fn compile_condition(c: RawCondition) -> Result<Condition, (String, String)> {
    let field = match c.field.as_str() {
        "mailbox" => Field::Mailbox,
        "to" => Field::To,
        "from" => Field::From,
        "from_domain" => Field::FromDomain,
        "subject" => Field::Subject,
        "body" => Field::Body,
        "has_attachments" => Field::HasAttachments,
        "size" => Field::Size,
        f => match f.strip_prefix("header:") {
            Some(h) if !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic() && c != ':') => Field::Header(h.to_string()),
            _ => {
                return Err((
                    ".field".into(),
                    format!(
                        "unknown field \"{f}\": use mailbox, to, from, from_domain, subject, body, header:NAME, has_attachments or size"
                    ),
                ))
            }
        },
    };
    let given = [
        c.equals.is_some(),
        c.contains.is_some(),
        c.regex.is_some(),
        c.greater_than.is_some(),
        c.is.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        return Err((
            String::new(),
            "needs exactly one of equals, contains, regex, greater_than or is".into(),
        ));
    }
    let matcher = if let Some(v) = c.equals {
        Matcher::Equals(v.to_lowercase())
    } else if let Some(v) = c.contains {
        Matcher::Contains(v.to_lowercase())
    } else if let Some(v) = c.regex {
        // Case-insensitive like the other matchers; compiled once, here.
        let re = regex::RegexBuilder::new(&v)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let one_line = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                (".regex".to_string(), format!("invalid regex: {one_line}"))
            })?;
        Matcher::Regex(re)
    } else if let Some(v) = c.greater_than {
        Matcher::GreaterThan(v.as_u64())
    } else if let Some(v) = c.is {
        Matcher::Is(v)
    } else {
        unreachable!("exactly one matcher was checked above")
    };
    let fits = match (&field, &matcher) {
        (Field::Size, Matcher::GreaterThan(_)) => true,
        (Field::HasAttachments, Matcher::Is(_)) => true,
        (Field::Size | Field::HasAttachments, _)
        | (_, Matcher::GreaterThan(_) | Matcher::Is(_)) => false,
        _ => true,
    };
    if !fits {
        return Err((
            String::new(),
            "size takes greater_than, has_attachments takes is; text fields take equals, contains or regex".into(),
        ));
    }
    Ok(Condition {
        field,
        matcher,
        negate: c.not,
    })
}

// ---------------------------------------------------------------------------
// Evaluation.
// ---------------------------------------------------------------------------

/// The facts of one mail that rules look at.
#[derive(Debug, Clone)]
pub struct MailFacts {
    pub mailbox: String,
    pub to: Vec<String>,
    pub from: Option<String>,
    pub subject: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub has_attachments: bool,
    pub size: u64,
}

impl MailFacts {
    pub fn new(mail: &InboundMail, mailbox: &str, headers: Vec<(String, String)>) -> MailFacts {
        let mut to: Vec<String> = mail
            .to
            .iter()
            .chain(&mail.cc)
            .map(|p| p.address.to_string())
            .chain(mail.delivered_to.iter().map(|a| a.to_string()))
            .collect();
        to.dedup();
        MailFacts {
            mailbox: mailbox.to_string(),
            to,
            from: mail.from.as_ref().map(|p| p.address.to_string()),
            subject: mail.subject.clone(),
            body: mail.text.clone(),
            headers,
            has_attachments: !mail.attachments.is_empty(),
            size: mail.size as u64,
        }
    }

    fn values(&self, field: &Field) -> Vec<String> {
        match field {
            Field::Mailbox => vec![self.mailbox.to_lowercase()],
            Field::To => self.to.clone(),
            Field::From => self.from.iter().cloned().collect(),
            Field::FromDomain => self
                .from
                .iter()
                .filter_map(|f| f.rsplit_once('@').map(|(_, d)| d.to_string()))
                .collect(),
            Field::Subject => vec![self.subject.to_lowercase()],
            Field::Body => vec![self.body.to_lowercase()],
            Field::Header(h) => self
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(h))
                .map(|(_, v)| v.to_lowercase())
                .collect(),
            Field::HasAttachments | Field::Size => Vec::new(),
        }
    }
}

impl Condition {
    /// Whether it holds, and a phrase saying why.
    pub fn check(&self, facts: &MailFacts) -> (bool, String) {
        let name = self.field.name();
        let (hit, why) = match &self.matcher {
            Matcher::GreaterThan(n) => (facts.size > *n, format!("size {} > {n}", facts.size)),
            Matcher::Is(b) => (
                facts.has_attachments == *b,
                format!("has_attachments is {}", facts.has_attachments),
            ),
            m => {
                let values = self.field_values(facts);
                let hit = values.iter().any(|v| match m {
                    Matcher::Equals(x) => v == x,
                    Matcher::Contains(x) => v.contains(x.as_str()),
                    Matcher::Regex(re) => re.is_match(v),
                    _ => false,
                });
                let what = match m {
                    Matcher::Equals(x) => format!("equals \"{x}\""),
                    Matcher::Contains(x) => format!("contains \"{x}\""),
                    Matcher::Regex(re) => format!("matches /{}/", re.as_str()),
                    _ => String::new(),
                };
                let shown: Vec<String> = values.iter().map(|v| shorten(v)).collect();
                (
                    hit,
                    format!(
                        "{name} {what} (value: {})",
                        if shown.is_empty() {
                            "none".into()
                        } else {
                            shown.join(", ")
                        }
                    ),
                )
            }
        };
        let result = hit != self.negate;
        let why = if self.negate {
            format!("not ({why})")
        } else {
            why
        };
        (
            result,
            format!("{} {why}", if result { "yes:" } else { "no:" }),
        )
    }

    fn field_values(&self, facts: &MailFacts) -> Vec<String> {
        facts.values(&self.field)
    }
}

fn shorten(v: &str) -> String {
    let one_line: String = v.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("\"{}…\"", one_line.chars().take(60).collect::<String>())
    } else {
        format!("\"{one_line}\"")
    }
}

/// Why one rule did or did not apply.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    pub skipped: Option<String>,
    pub conditions: Vec<String>,
}

/// The combined effect of the rules on one mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub team: Option<String>,
    pub priority: Option<Priority>,
    pub assignee: Option<EmailAddress>,
    pub tags: Vec<String>,
    pub sla: Option<String>,
    pub acknowledge: Option<AckChoice>,
    pub action: Option<RuleAction>,
    /// Names of the rules that applied, in order.
    pub applied: Vec<String>,
}

/// Runs the rules in order. `is_reply` skips rules that did not opt in to
/// replies. Later matching rules override earlier ones field by field, until
/// a matching rule says stop.
pub fn evaluate(rules: &[Rule], facts: &MailFacts, is_reply: bool) -> (Routing, Vec<RuleTrace>) {
    let mut routing = Routing::default();
    let mut trace = Vec::new();
    let mut stopped: Option<String> = None;
    for rule in rules {
        if let Some(by) = &stopped {
            trace.push(RuleTrace {
                rule: rule.name.clone(),
                matched: false,
                skipped: Some(format!("an earlier rule (\"{by}\") stopped")),
                conditions: Vec::new(),
            });
            continue;
        }
        if is_reply && !rule.on_replies {
            trace.push(RuleTrace {
                rule: rule.name.clone(),
                matched: false,
                skipped: Some("applies to new tickets only (on_replies = false)".into()),
                conditions: Vec::new(),
            });
            continue;
        }
        let checks: Vec<(bool, String)> = rule.conditions.iter().map(|c| c.check(facts)).collect();
        let matched = match rule.combine {
            Combine::All => checks.iter().all(|(b, _)| *b),
            Combine::Any => checks.is_empty() || checks.iter().any(|(b, _)| *b),
        };
        trace.push(RuleTrace {
            rule: rule.name.clone(),
            matched,
            skipped: None,
            conditions: checks.into_iter().map(|(_, w)| w).collect(),
        });
        if !matched {
            continue;
        }
        routing.applied.push(rule.name.clone());
        if rule.team.is_some() {
            routing.team = rule.team.clone();
        }
        if rule.priority.is_some() {
            routing.priority = rule.priority;
        }
        if rule.assignee.is_some() {
            routing.assignee = rule.assignee.clone();
        }
        for t in &rule.tags {
            if !routing.tags.contains(t) {
                routing.tags.push(t.clone());
            }
        }
        if rule.acknowledge.is_some() {
            routing.acknowledge = rule.acknowledge.clone();
        }
        if rule.sla.is_some() {
            routing.sla = rule.sla.clone();
        }
        if rule.action.is_some() {
            routing.action = rule.action.clone();
        }
        if rule.stop {
            stopped = Some(rule.name.clone());
        }
    }
    (routing, trace)
}

/// Renders a trace for people.
pub fn render_trace(trace: &[RuleTrace]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if trace.is_empty() {
        out.push_str("  (no rules configured)\n");
    }
    for (i, t) in trace.iter().enumerate() {
        let verdict = match (&t.skipped, t.matched) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, true) => "MATCHED".into(),
            (None, false) => "did not match".into(),
        };
        let _ = writeln!(out, "  {}. \"{}\": {verdict}", i + 1, t.rule);
        for c in &t.conditions {
            let _ = writeln!(out, "       {c}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MailFacts {
        MailFacts {
            mailbox: "legal".into(),
            to: vec!["legal@desk.test".into(), "boss@corp.test".into()],
            from: Some("ceo@bigcorp.com".into()),
            subject: "URGENT: contract review".into(),
            body: "please look at the NDA".into(),
            headers: vec![("X-Priority".into(), "1 (Highest)".into())],
            has_attachments: true,
            size: 50_000,
        }
    }

    fn cond(field: &str, m: &str, v: &str) -> RawCondition {
        let mut c = RawCondition {
            field: field.into(),
            equals: None,
            contains: None,
            regex: None,
            greater_than: None,
            is: None,
            not: false,
        };
        match m {
            "equals" => c.equals = Some(v.into()),
            "contains" => c.contains = Some(v.into()),
            "regex" => c.regex = Some(v.into()),
            "greater_than" => c.greater_than = Some(v.parse().unwrap()),
            "is" => c.is = Some(v == "true"),
            _ => unreachable!(),
        }
        c
    }

    fn check(c: RawCondition) -> bool {
        compile_condition(c).unwrap().check(&facts()).0
    }

    #[test]
    fn every_matcher_on_every_field() {
        assert!(check(cond("mailbox", "equals", "LEGAL")));
        assert!(check(cond("to", "equals", "boss@corp.test")));
        assert!(check(cond("to", "contains", "legal@")));
        assert!(check(cond("from", "regex", r"^ceo@")));
        assert!(check(cond("from_domain", "equals", "bigcorp.com")));
        assert!(!check(cond("from_domain", "equals", "corp.com")));
        assert!(check(cond("subject", "contains", "urgent")));
        assert!(check(cond("body", "regex", r"\bnda\b")));
        assert!(check(cond("header:x-priority", "regex", "^1")));
        assert!(!check(cond("header:X-Missing", "contains", "x")));
        assert!(check(cond("has_attachments", "is", "true")));
        assert!(check(cond("size", "greater_than", "10 KB")));
        assert!(!check(cond("size", "greater_than", "1 MB")));
        let mut negated = cond("subject", "contains", "urgent");
        negated.not = true;
        assert!(!check(negated));
    }

    #[test]
    fn bad_conditions_are_refused() {
        assert!(compile_condition(cond("colour", "equals", "x")).is_err());
        let e = compile_condition(cond("subject", "regex", "(")).unwrap_err();
        assert!(e.1.contains("invalid regex"), "{e:?}");
        assert!(compile_condition(cond("size", "equals", "x")).is_err());
        let mut two = cond("subject", "equals", "a");
        two.contains = Some("b".into());
        assert!(compile_condition(two).is_err());
    }

    fn rule(name: &str, conditions: Vec<RawCondition>, team: Option<&str>, stop: bool) -> RawRule {
        RawRule {
            name: name.into(),
            combine: Combine::All,
            when: conditions,
            set: RawSet {
                team: team.map(str::to_string),
                priority: Some(Priority::High),
                assignee: None,
                tags: vec![name.to_lowercase()],
                sla: None,
            },
            acknowledge: None,
            action: None,
            reject_template: None,
            stop,
            on_replies: false,
        }
    }

    fn known_compile(raw: Vec<RawRule>) -> (Vec<Rule>, Vec<RuleProblem>) {
        let teams = vec!["legal".to_string(), "it".to_string()];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let known = Known {
            teams: &teams,
            slas: &[],
            agents: &[],
            templates: &dir,
        };
        let mut problems = Vec::new();
        let rules = compile(raw, &known, &mut problems);
        (rules, problems)
    }

    #[test]
    fn order_override_and_stop() {
        let (rules, problems) = known_compile(vec![
            rule(
                "A",
                vec![cond("mailbox", "equals", "legal")],
                Some("it"),
                false,
            ),
            rule(
                "B",
                vec![cond("subject", "contains", "contract")],
                Some("legal"),
                true,
            ),
            rule("C", vec![], Some("it"), true),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let (r, trace) = evaluate(&rules, &facts(), false);
        assert_eq!(
            r.team.as_deref(),
            Some("legal"),
            "B overrides A, then stops"
        );
        assert_eq!(r.tags, vec!["a", "b"]);
        assert_eq!(r.applied, vec!["A", "B"]);
        assert!(trace[2].skipped.is_some());
        // Replies skip rules that did not opt in.
        let (r, _) = evaluate(&rules, &facts(), true);
        assert!(r.applied.is_empty());
    }

    #[test]
    fn unknown_team_and_agent_are_problems() {
        let mut r = rule("X", vec![], Some("sales"), true);
        r.set.assignee = Some("nobody@desk.test".into());
        let (_, problems) = known_compile(vec![r]);
        let text = format!("{problems:?}");
        assert!(text.contains("unknown team \\\"sales\\\""), "{text}");
        assert!(text.contains("unknown agent"), "{text}");
        assert!(text.contains("rule \\\"X\\\""), "{text}");
    }

    #[test]
    fn any_combines_with_or() {
        let mut r = rule(
            "any",
            vec![
                cond("from_domain", "equals", "nope"),
                cond("subject", "contains", "urgent"),
            ],
            None,
            true,
        );
        r.combine = Combine::Any;
        let (rules, _) = known_compile(vec![r]);
        assert!(evaluate(&rules, &facts(), false).0.applied == vec!["any"]);
    }
}
