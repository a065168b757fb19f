//! The manager's report (`deskgate report`): what came in, what was done,
//! how fast, against which promises, and where the time went, over a
//! period. Every figure is computed from the stored tickets and their audit
//! trail (no sampling); the definitions are the README's "Reports" section,
//! and each is one function here or in [`figures`].
//!
//! Pure: the records, the policy (calendars, teams, tiers) and the period
//! come in as values. The store keeps each ticket's report facts
//! (`store::report_facts`) so a report reads only the tickets its period
//! touches; [`facts`] turns those back into records, and `backlog.rs`
//! counts the rest of the backlog from the store's open tickets per day
//! (`store::open_days`) or, entry by entry, from the open index's keys.

use std::borrow::Cow;

mod backlog;
pub mod facts;
pub mod figures;
mod output;

pub use backlog::BacklogCount;
pub use output::*;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::desk::policy::Policy;
use crate::desk::sla::{self, Target};
use crate::store::records::{Event, EventKind, Priority, Status, Ticket};
use crate::store::report_facts::{OpenKeys, ReportFacts};

use figures::{age_bucket, calendar_of, tier_name, tier_of, working_time, Summary};

/// What the rows of a report are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Team,
    /// The ticket's assignee.
    Agent,
    /// The tier of the ticket's team.
    Tier,
    Priority,
    /// The mailbox the ticket came in at.
    Queue,
    /// The domain of the requester's address.
    Domain,
}

/// Which tickets a report counts (all of these that are given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub team: Option<String>,
    pub agent: Option<String>,
    pub tag: Option<String>,
}

impl Filter {
    pub fn admits(&self, t: &Ticket) -> bool {
        self.admits_keys(&Keys::of(t))
    }

    fn admits_keys(&self, t: &Keys<'_>) -> bool {
        self.team.as_deref().is_none_or(|x| t.team == Some(x))
            && self
                .agent
                .as_deref()
                .is_none_or(|x| t.assignee.is_some_and(|a| a.eq_ignore_ascii_case(x)))
            && self
                .tag
                .as_deref()
                .is_none_or(|x| t.tags.iter().any(|g| g == x))
    }

    fn is_empty(&self) -> bool {
        self.team.is_none() && self.agent.is_none() && self.tag.is_none()
    }
}

/// What a report filters and groups a ticket by: from the ticket, or from
/// its entry in the open index.
struct Keys<'a> {
    team: Option<&'a str>,
    assignee: Option<&'a str>,
    tags: &'a [String],
    priority: Priority,
    mailbox: &'a str,
    /// Lower case.
    domain: Cow<'a, str>,
}

impl Keys<'_> {
    fn of(t: &Ticket) -> Keys<'_> {
        Keys {
            team: t.team.as_deref(),
            assignee: t.assignee.as_deref(),
            tags: &t.tags,
            priority: t.priority,
            mailbox: &t.mailbox,
            domain: Cow::Owned(t.requester.address.domain().to_ascii_lowercase()),
        }
    }

    fn of_open(k: &OpenKeys) -> Keys<'_> {
        Keys {
            team: k.team.as_deref(),
            assignee: k.assignee.as_deref(),
            tags: &k.tags,
            priority: k.priority,
            mailbox: &k.mailbox,
            domain: Cow::Borrowed(&k.domain),
        }
    }
}

/// A report's question: the period `[since, until)`, the rows, the filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(default)]
    pub by: Option<GroupBy>,
    #[serde(default)]
    pub filter: Filter,
}

impl Spec {
    /// The backlog age bucket of a ticket created at `created_at`, at the
    /// end of the period.
    pub fn backlog_bucket(&self, created_at: DateTime<Utc>) -> usize {
        age_bucket(self.until - created_at)
    }
}

/// One ticket and its audit trail, as the store holds them.
pub struct Record {
    pub ticket: Ticket,
    pub events: Vec<Event>,
}

/// Most tickets listed under effort per ticket.
const TICKETS_LISTED: usize = 50;

fn in_period(spec: &Spec, at: DateTime<Utc>) -> bool {
    spec.since <= at && at < spec.until
}

/// The row a ticket counts in.
pub fn group_key(policy: &Policy, by: GroupBy, t: &Ticket) -> String {
    key_of(policy, by, &Keys::of(t))
}

fn key_of(policy: &Policy, by: GroupBy, t: &Keys<'_>) -> String {
    match by {
        GroupBy::Team => t.team.unwrap_or("-").into(),
        GroupBy::Agent => t.assignee.unwrap_or("-").into(),
        GroupBy::Tier => tier_name(tier_of(policy, t.team)).into(),
        GroupBy::Priority => t.priority.as_str().into(),
        GroupBy::Queue => t.mailbox.into(),
        GroupBy::Domain => t.domain.clone().into_owned(),
    }
}

/// The ticket's status at `at`, from its trail: the last change before
/// then, or new.
pub fn status_at(r: &Record, at: DateTime<Utc>) -> Option<Status> {
    if r.ticket.created_at >= at {
        return None;
    }
    let mut s = Status::New;
    for e in r.events.iter().filter(|e| e.at < at) {
        if let EventKind::StatusChanged { to, .. } = &e.kind {
            s = *to;
        }
    }
    Some(s)
}

/// Adds one ticket's figures to its group.
fn count(policy: &Policy, spec: &Spec, r: &Record, g: &mut Group, samples: &mut Samples) {
    let t = &r.ticket;
    let cal = calendar_of(policy, t);
    if in_period(spec, t.created_at) {
        g.created += 1;
    }
    for e in r.events.iter().filter(|e| in_period(spec, e.at)) {
        if let EventKind::StatusChanged { from, to, .. } = &e.kind {
            if to.is_finished() && !from.is_finished() {
                g.resolved += 1;
                samples
                    .res_business
                    .push(working_time(cal, &t.pauses, t.created_at, e.at).num_seconds());
                samples.res_wall.push((e.at - t.created_at).num_seconds());
            }
            if *to == Status::Closed {
                g.closed += 1;
            }
            if from.is_finished() && !to.is_finished() {
                g.reopened += 1;
            }
        }
    }
    if let Some(fr) = t.first_response_at.filter(|&f| in_period(spec, f)) {
        samples
            .fr_business
            .push(working_time(cal, &t.pauses, t.created_at, fr).num_seconds());
        samples.fr_wall.push((fr - t.created_at).num_seconds());
    }
    if t.merged_into.is_none() && status_at(r, spec.until).is_some_and(|s| !s.is_finished()) {
        g.backlog += 1;
        g.backlog_age[spec.backlog_bucket(t.created_at)] += 1;
    }
    if in_period(spec, t.created_at) {
        if let Some(p) = policy.sla(t.sla.as_deref()) {
            for s in sla::status(t, p, spec.until) {
                let done = match s.target {
                    Target::FirstResponse => t.first_response_at,
                    Target::Resolution => t.resolved_at,
                }
                .filter(|&d| d < spec.until);
                let row = sla_row(g, s.target);
                match (done, s.due) {
                    (Some(d), due) if due.is_none_or(|due| d <= due) => row.met += 1,
                    (Some(_), _) => row.breached += 1,
                    (None, Some(due)) if due <= spec.until => row.breached += 1,
                    (None, _) => row.running += 1,
                }
            }
        }
    }
    g.effort_minutes += t
        .effort
        .iter()
        .filter(|e| in_period(spec, e.at))
        .map(|e| e.minutes as u64)
        .sum::<u64>();
}

impl Group {
    /// Nothing in the period and no backlog: a row of zeros (a team whose
    /// tickets are all long done), which a report leaves out.
    fn is_empty(&self) -> bool {
        *self
            == Group {
                key: self.key.clone(),
                ..Group::default()
            }
    }
}

fn sla_row(g: &mut Group, target: Target) -> &mut SlaFigures {
    if let Some(i) = g.sla.iter().position(|s| s.target == target) {
        return &mut g.sla[i];
    }
    g.sla.push(SlaFigures {
        target,
        met: 0,
        breached: 0,
        running: 0,
        share_met: None,
    });
    g.sla.sort_by_key(|s| s.target.key() != "first_response");
    let i = g.sla.iter().position(|s| s.target == target).unwrap_or(0);
    &mut g.sla[i]
}

fn merge(into: &mut (Group, Samples), one: &(Group, Samples)) {
    let (g, s) = into;
    let (o, os) = one;
    g.created += o.created;
    g.resolved += o.resolved;
    g.closed += o.closed;
    g.reopened += o.reopened;
    g.backlog += o.backlog;
    for (a, b) in g.backlog_age.iter_mut().zip(o.backlog_age) {
        *a += b;
    }
    for x in &o.sla {
        let row = sla_row(g, x.target);
        row.met += x.met;
        row.breached += x.breached;
        row.running += x.running;
    }
    g.effort_minutes += o.effort_minutes;
    s.fr_business.extend_from_slice(&os.fr_business);
    s.fr_wall.extend_from_slice(&os.fr_wall);
    s.res_business.extend_from_slice(&os.res_business);
    s.res_wall.extend_from_slice(&os.res_wall);
}

#[derive(Default)]
struct Samples {
    fr_business: Vec<i64>,
    fr_wall: Vec<i64>,
    res_business: Vec<i64>,
    res_wall: Vec<i64>,
}

fn finish(mut g: Group, s: Samples) -> Group {
    g.first_response = Times {
        business: Summary::of(s.fr_business),
        wall: Summary::of(s.fr_wall),
    };
    g.resolution = Times {
        business: Summary::of(s.res_business),
        wall: Summary::of(s.res_wall),
    };
    g.reopen_rate = (g.resolved > 0).then(|| g.reopened as f64 / g.resolved as f64);
    for x in &mut g.sla {
        let decided = x.met + x.breached;
        x.share_met = (decided > 0).then(|| x.met as f64 / decided as f64);
    }
    g
}

/// The report over `records` (every ticket the store holds; the filter is
/// applied here).
pub fn build<'a>(
    policy: &Policy,
    spec: &Spec,
    records: impl IntoIterator<Item = &'a Record>,
) -> Report {
    let mut b = Builder::new(policy, spec);
    for r in records {
        b.add(r);
    }
    b.finish()
}

/// A report being added up, one ticket at a time: the store is read as a
/// stream, never held whole.
pub struct Builder<'p> {
    policy: &'p Policy,
    spec: Spec,
    total: (Group, Samples),
    groups: BTreeMap<String, (Group, Samples)>,
    esc: BTreeMap<String, (u64, BTreeMap<String, u64>)>,
    effort: EffortTally,
}

impl<'p> Builder<'p> {
    pub fn new(policy: &'p Policy, spec: &Spec) -> Builder<'p> {
        Builder {
            policy,
            spec: spec.clone(),
            total: Default::default(),
            groups: BTreeMap::new(),
            esc: BTreeMap::new(),
            effort: EffortTally::default(),
        }
    }

    /// Whether a ticket can count at all (the filter, and created before
    /// the end): the caller need not read the trail of one that cannot.
    pub fn wants(&self, t: &Ticket) -> bool {
        self.spec.filter.admits(t) && t.created_at < self.spec.until
    }

    pub fn add(&mut self, r: &Record) {
        let (policy, spec) = (self.policy, &self.spec);
        if !self.wants(&r.ticket) {
            return;
        }
        // Each ticket's figures once, added to all and to its row.
        let mut one = (Group::default(), Samples::default());
        count(policy, spec, r, &mut one.0, &mut one.1);
        merge(&mut self.total, &one);
        if let Some(by) = spec.by {
            let key = group_key(policy, by, &r.ticket);
            merge(self.groups.entry(key).or_default(), &one);
        }
        for e in r.events.iter().filter(|e| in_period(spec, e.at)) {
            if let EventKind::Escalated {
                from_team,
                to_team,
                reason,
            } = &e.kind
            {
                let key = format!(
                    "{}->{}",
                    tier_name(tier_of(policy, from_team.as_deref())),
                    tier_name(tier_of(policy, Some(to_team)))
                );
                let x = self.esc.entry(key).or_default();
                x.0 += 1;
                *x.1.entry(reason.clone()).or_default() += 1;
            }
        }
        self.effort.add(policy, spec, &r.ticket);
    }

    /// Adds a ticket from its stored facts: the same figures as its
    /// ticket and trail.
    pub fn add_facts(&mut self, f: &ReportFacts) {
        if f.created_at < self.spec.until {
            self.add(&facts::record_of(f));
        }
    }

    pub fn finish(self) -> Report {
        let (total, samples) = self.total;
        Report {
            since: self.spec.since,
            until: self.spec.until,
            by: self.spec.by,
            groups: self
                .groups
                .into_iter()
                .map(|(key, (g, s))| finish(Group { key, ..g }, s))
                .filter(|g| !g.is_empty())
                .collect(),
            total: finish(
                Group {
                    key: "all".into(),
                    ..total
                },
                samples,
            ),
            escalations: self
                .esc
                .into_iter()
                .map(|(transition, (count, reasons))| {
                    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
                    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    Escalations {
                        transition,
                        count,
                        reasons,
                    }
                })
                .collect(),
            effort: self.effort.finish(),
        }
    }
}

#[derive(Default)]
struct EffortTally {
    total: u64,
    agent: BTreeMap<String, u64>,
    team: BTreeMap<String, u64>,
    tier: BTreeMap<String, u64>,
    tag: BTreeMap<String, u64>,
    ticket: BTreeMap<u64, u64>,
}

impl EffortTally {
    /// Time booked in the period counts for the agent who booked it and for
    /// the ticket's team, tier and tags as they are now.
    fn add(&mut self, policy: &Policy, spec: &Spec, t: &Ticket) {
        let team = t.team.clone().unwrap_or_else(|| "-".into());
        let tier = tier_name(tier_of(policy, t.team.as_deref())).to_string();
        for e in t.effort.iter().filter(|e| in_period(spec, e.at)) {
            let m = e.minutes as u64;
            self.total += m;
            *self.agent.entry(e.agent.clone()).or_default() += m;
            *self.team.entry(team.clone()).or_default() += m;
            *self.tier.entry(tier.clone()).or_default() += m;
            if t.tags.is_empty() {
                *self.tag.entry("-".into()).or_default() += m;
            }
            for g in &t.tags {
                *self.tag.entry(g.clone()).or_default() += m;
            }
            *self.ticket.entry(t.id).or_default() += m;
        }
    }

    fn finish(self) -> EffortReport {
        let total = self.total;
        let shares = |m: BTreeMap<String, u64>| -> Vec<Share> {
            let mut v: Vec<Share> = m
                .into_iter()
                .map(|(key, minutes)| Share {
                    key,
                    minutes,
                    share: if total == 0 {
                        0.0
                    } else {
                        minutes as f64 / total as f64
                    },
                })
                .collect();
            v.sort_by(|a, b| b.minutes.cmp(&a.minutes).then_with(|| a.key.cmp(&b.key)));
            v
        };
        let mut by_ticket = shares(
            self.ticket
                .into_iter()
                .map(|(id, m)| (format!("#{id}"), m))
                .collect(),
        );
        by_ticket.truncate(TICKETS_LISTED);
        EffortReport {
            total_minutes: total,
            by_agent: shares(self.agent),
            by_team: shares(self.team),
            by_tier: shares(self.tier),
            by_tag: shares(self.tag),
            by_ticket,
        }
    }
}
