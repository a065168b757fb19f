//! Routing rules: an ordered list of match → set → stop, in the spirit of
//! Znuny's PostMaster filters and osTicket's ticket filters.
//!
//! Rules are compiled once when the config loads (regexes included, see
//! `config::rules`) and evaluated here, purely, against the facts of one mail; the evaluation keeps a
//! trace of every rule and why it matched or not, which `deskgate rules test`
//! prints.

use serde::Serialize;

use crate::config::rules::{AckChoice, Combine, Condition, Field, Matcher, Rule, RuleAction};
use crate::mail::address::EmailAddress;
use crate::mail::parse::InboundMail;
use crate::store::records::Priority;

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
    use crate::config::rules::{
        compile, compile_condition, Known, RawCondition, RawRule, RawSet, RuleProblem,
    };

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
