//! Routing rules as the config file writes them, and their checked,
//! compiled form (regexes built once, names checked against the teams,
//! agents, SLAs and templates that exist). Evaluating them against a mail is
//! the desk's job (`desk::routing`).

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::mail::address::EmailAddress;
use crate::store::records::Priority;

// ---------------------------------------------------------------------------
// Raw config forms.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: String,
    /// "all" (default) or "any" of the conditions.
    #[serde(default, rename = "match")]
    pub(crate) combine: Combine,
    #[serde(default)]
    pub(crate) when: Vec<RawCondition>,
    #[serde(default)]
    pub(crate) set: RawSet,
    /// Template for the acknowledgement, or "none" for no acknowledgement.
    pub(crate) acknowledge: Option<String>,
    /// "ignore" (kept, no ticket, no reply) or "reject" (polite reply, no ticket).
    pub(crate) action: Option<String>,
    pub(crate) reject_template: Option<String>,
    #[serde(default = "yes")]
    pub(crate) stop: bool,
    #[serde(default)]
    pub(crate) on_replies: bool,
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
    pub(crate) field: String,
    pub(crate) equals: Option<String>,
    pub(crate) contains: Option<String>,
    pub(crate) regex: Option<String>,
    /// For `size`: bytes, or "10 MB".
    pub(crate) greater_than: Option<bytesize::ByteSize>,
    /// For `has_attachments`.
    pub(crate) is: Option<bool>,
    #[serde(default)]
    pub(crate) not: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSet {
    pub(crate) team: Option<String>,
    pub(crate) priority: Option<Priority>,
    pub(crate) assignee: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// An SLA policy by name.
    pub(crate) sla: Option<String>,
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

pub(crate) fn compile_condition(c: RawCondition) -> Result<Condition, (String, String)> {
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
