//! The checked view of the configuration that the desk's rules read: built
//! once per (re)load and swapped whole, so one mail is handled wholly by one
//! version.

use std::collections::HashMap;

use crate::config::rules::Rule;
use crate::config::sla::{SlaPolicy, Timers};
use crate::config::{Agent, Config, Limits, SubjectTag, Team, Trust};
use crate::desk::queue_def::Queue;
use crate::desk::templates::{TemplateError, Templates};
use crate::desk::threading::TokenMatcher;
use crate::mail::address::{EmailAddress, Party};
use crate::store::records::TicketId;
use crate::store::KeyRing;

/// Everything the engine needs from the configuration, swapped whole on reload
/// so that one mail is handled wholly by one version.
#[derive(Debug)]
pub struct Policy {
    pub desk: Party,
    pub envelope_from: EmailAddress,
    pub first_ticket: TicketId,
    pub matcher: TokenMatcher,
    pub templates: Templates,
    pub limits: Limits,
    pub rules: Vec<Rule>,
    pub teams: Vec<Team>,
    pub agents: Vec<Agent>,
    /// Default team of each mailbox, by mailbox name.
    pub mailbox_teams: HashMap<String, String>,
    pub trust: Trust,
    pub comment_address: Option<EmailAddress>,
    /// Sign and verify per-ticket reply addresses, the signing one last;
    /// set by the engine from the store.
    pub reply_keys: KeyRing,
    pub slas: Vec<SlaPolicy>,
    pub default_sla: Option<String>,
    pub timers: Timers,
    /// `[[queue]]`s: help addresses besides `desk`'s (see `desk::queue`).
    pub queues: Vec<Queue>,
    /// `[desk] timezone`: digests are scheduled, and their periods named, in it.
    pub timezone: chrono_tz::Tz,
    /// `[[digest]]`: reports mailed on a schedule.
    pub digests: Vec<crate::config::checked::Digest>,
}

impl Policy {
    /// A policy with the documented defaults for everything but the desk and templates.
    pub fn new(desk: Party, templates: Templates) -> Policy {
        Policy {
            envelope_from: desk.address.clone(),
            desk,
            first_ticket: 1000,
            matcher: TokenMatcher::new(&SubjectTag::default()),
            templates,
            limits: Limits::default(),
            rules: Vec::new(),
            teams: Vec::new(),
            agents: Vec::new(),
            mailbox_teams: HashMap::new(),
            trust: Trust::default(),
            comment_address: None,
            reply_keys: KeyRing::default(),
            slas: Vec::new(),
            default_sla: None,
            timers: Timers::default(),
            queues: Vec::new(),
            timezone: chrono_tz::UTC,
            digests: Vec::new(),
        }
    }

    pub fn sla(&self, name: Option<&str>) -> Option<&SlaPolicy> {
        let name = name?;
        self.slas.iter().find(|s| s.name == name)
    }

    pub fn team(&self, name: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.name == name)
    }

    pub fn agent(&self, address: &EmailAddress) -> Option<&Agent> {
        self.agents.iter().find(|a| a.address == *address)
    }

    /// The configured agent with this address (as stored on a ticket).
    pub fn agent_address(&self, address: &str) -> Option<&EmailAddress> {
        self.agents
            .iter()
            .map(|a| &a.address)
            .find(|a| a.as_str() == address)
    }

    pub fn from_config(cfg: &Config) -> Result<Policy, TemplateError> {
        let mut templates = Templates::load(&cfg.desk.templates)?;
        let digest_templates: Vec<&str> = cfg.digests.iter().map(|d| d.template.as_str()).collect();
        templates.load_more(&cfg.desk.templates, &digest_templates)?;
        Ok(Policy {
            desk: Party {
                name: Some(cfg.desk.name.clone()),
                address: cfg.desk.address.clone(),
            },
            envelope_from: cfg.smtp.envelope_from.clone(),
            first_ticket: cfg.desk.first_ticket,
            matcher: TokenMatcher::new(&cfg.desk.subject_tag),
            templates,
            limits: cfg.limits.clone(),
            rules: cfg.rules.clone(),
            teams: cfg.teams.clone(),
            agents: cfg.agents.clone(),
            mailbox_teams: cfg
                .mailboxes
                .iter()
                .filter_map(|m| Some((m.name.clone(), m.default_team.clone()?)))
                .collect(),
            trust: cfg.trust.clone(),
            comment_address: cfg.desk.comment_address.clone(),
            reply_keys: KeyRing::default(),
            slas: cfg.slas.clone(),
            default_sla: cfg.desk.default_sla.clone(),
            timers: cfg.timers.clone(),
            queues: queues_of(cfg)?,
            timezone: cfg.desk.timezone,
            digests: cfg.digests.clone(),
        })
    }
}

/// The config's queues; their bounce address is the desk-wide one only when
/// `[smtp] envelope_from` names an address other than the desk's.
fn queues_of(cfg: &Config) -> Result<Vec<Queue>, TemplateError> {
    let shared = Some(&cfg.smtp.envelope_from).filter(|e| **e != cfg.desk.address);
    cfg.queues
        .iter()
        .map(|q| Queue::load(q, &cfg.desk.name, &cfg.desk.templates, shared))
        .collect()
}

#[cfg(test)]
impl Policy {
    /// The repository's templates, loaded once per test that needs a policy.
    pub(crate) fn test_templates() -> Templates {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        Templates::load(&dir).expect("the repository's templates load")
    }

    /// The documented defaults for help@desk.test (named `name`), with the
    /// repository's templates: the desk most unit tests run.
    pub(crate) fn for_tests(name: Option<&str>) -> Policy {
        Policy::new(
            Party {
                name: name.map(str::to_string),
                address: EmailAddress::parse("help@desk.test").expect("a valid address"),
            },
            Policy::test_templates(),
        )
    }
}
