//! The managers' views behind `report`, `board`, `tickets next` and
//! `tickets search`: each reads the store and hands the records to the pure
//! code in `desk` (report, board, next).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::desk::report::figures::AGE_BUCKET_NAMES;
use crate::desk::report::BacklogCount;
use crate::engine::Engine;
use crate::store::open_days::{uncount_open, Bucketing};
use crate::store::records::{Status, Ticket, TicketId};
use crate::store::{ListFilter, StoreError};

/// A report from the stored report facts (`store::report_facts`): the
/// facts of the tickets the period touches (or that changed after it), and
/// the rest of the backlog from the open tickets counted per creation day
/// (all, or by the one key the rows and filter use), or, when they use
/// several, entry by entry from the open index. Exact — the same figures as
/// reading every ticket and its trail ([`report_full_scan`]) — at the cost
/// of the period's tickets, not of the whole desk.
pub(crate) fn report(
    engine: &Engine,
    spec: &crate::desk::report::Spec,
) -> Result<crate::desk::report::Report, StoreError> {
    let store = engine.store();
    let policy = engine.policy();
    let mut b = crate::desk::report::Builder::new(&policy, spec);
    if store.report_period_holds_all(spec.since, spec.until)? {
        // Every ticket is read, so the backlog is all counted from facts.
        for f in store.all_report_facts() {
            b.add_facts(&f?);
        }
        return Ok(b.finish());
    }
    let read = store.report_tickets(spec.since, spec.until)?;
    // The read tickets still in the open index: counted from their facts,
    // so not again in the backlog.
    let mut read_open = Vec::new();
    for &id in &read {
        if let Some(f) = store.report_facts(id)? {
            b.add_facts(&f);
            if f.is_open() && f.created_at < spec.until {
                read_open.push((f.created_at, f.open_keys()));
            }
        }
    }
    let dim = match b.backlog_count() {
        BacklogCount::Counted(dim) => dim,
        BacklogCount::PerTicket => {
            for entry in store.open_created_before(spec.until) {
                let entry = entry?;
                if !read.contains(&entry.id) {
                    b.add_open(entry.created_at, &entry.keys()?);
                }
            }
            return Ok(b.finish());
        }
    };
    let how = Bucketing {
        until: spec.until,
        buckets: AGE_BUCKET_NAMES.len(),
        bucket_of: |created| spec.backlog_bucket(created),
    };
    let mut counted = store.open_backlog_counts(dim, &how)?;
    for (created, keys) in &read_open {
        uncount_open(dim, &how, &mut counted, *created, keys);
    }
    for (value, by_bucket) in counted {
        match dim {
            None => b.add_open_counts(None, &by_bucket),
            Some(d) => {
                if let Some(keys) = d.keys_with(&value) {
                    b.add_open_counts(Some(&keys), &by_bucket);
                }
            }
        }
    }
    Ok(b.finish())
}

/// The report from every ticket and its whole trail: what [`report`] must
/// equal (its test oracle).
#[cfg(test)]
pub(crate) fn report_full_scan(
    engine: &Engine,
    spec: &crate::desk::report::Spec,
) -> Result<crate::desk::report::Report, StoreError> {
    let store = engine.store();
    let policy = engine.policy();
    let mut b = crate::desk::report::Builder::new(&policy, spec);
    for t in store.tickets() {
        let ticket = t?;
        if !b.wants(&ticket) {
            continue;
        }
        let events = store.events(ticket.id)?;
        b.add(&crate::desk::report::Record { ticket, events });
    }
    Ok(b.finish())
}

/// The tickets in each of `statuses` (updated at its `since` or later) on
/// the board or in `tickets next`, streamed from the list index
/// (`store::list_index`) by status, and by team and assignee when asked:
/// an agent's view reads that agent's tickets, one at a time, never the
/// desk's all at once.
fn open_tickets<'a>(
    engine: &'a Engine,
    statuses: &'a [(Status, Option<DateTime<Utc>>)],
    team: Option<&str>,
    agent: Option<&str>,
) -> impl Iterator<Item = Result<Ticket, StoreError>> + 'a {
    let team = team.map(str::to_string);
    let spellings = assignee_spellings(agent);
    statuses.iter().flat_map(move |&(s, since)| {
        let team = team.clone();
        spellings.clone().into_iter().flat_map(move |assignee| {
            let mut filters = vec![ListFilter::Status(s)];
            filters.extend(team.clone().map(ListFilter::Team));
            filters.extend(assignee.map(ListFilter::Assignee));
            engine
                .store()
                .ticket_list(&filters, since, None)
                .map(|r| r.map(|(_, t)| t))
        })
    })
}

/// The assignee values the list index is read under for `agent` (or every
/// ticket for none). The index holds an assignee as stored, and the desk
/// stores an agent as its address in lower case (`EmailAddress`), so an
/// agent asked for as `Alice@Desk.test` is read under `alice@desk.test`;
/// and under the spelling as asked too, which finds an assignee stored in
/// that very spelling (a hand-made import). [`belongs`] then matches as
/// before, ignoring case.
fn assignee_spellings(agent: Option<&str>) -> Vec<Option<String>> {
    let Some(agent) = agent else {
        return vec![None];
    };
    let lower = agent.to_ascii_lowercase();
    if lower == agent {
        vec![Some(lower)]
    } else {
        vec![Some(lower), Some(agent.to_string())]
    }
}

/// Whether a ticket belongs to the asked team and agent (either may be absent).
fn belongs(t: &Ticket, team: Option<&str>, agent: Option<&str>) -> bool {
    team.is_none_or(|x| t.team.as_deref() == Some(x))
        && agent.is_none_or(|x| crate::desk::next::assigned_to(t, x))
}

pub(crate) fn board(
    engine: &Engine,
    team: Option<&str>,
    agent: Option<&str>,
) -> Result<crate::desk::board::Board, StoreError> {
    use crate::desk::board::{self, Facts};
    let store = engine.store();
    let policy = engine.policy();
    let now = engine.now();
    let mut placed = Vec::new();
    // A resolved ticket is on the board only while recent, and resolving
    // it updated it: older ones are not read (they are most of a desk).
    let on_board = [
        (Status::New, None),
        (Status::Open, None),
        (Status::Waiting, None),
        (Status::Resolved, Some(now - board::RESOLVED_RECENT)),
    ];
    for t in open_tickets(engine, &on_board, team, agent) {
        let t = t?;
        if t.status == Status::Closed || t.merged_into.is_some() || !belongs(&t, team, agent) {
            continue;
        }
        // The report facts say whether it was escalated and when a reply
        // was last relayed; only an open ticket with one can be a
        // follow-up: its trail and mail are read only then.
        let (escalated, replied) = match store.report_facts(t.id)? {
            Some(f) => (!f.escalations.is_empty(), f.replied_at.is_some()),
            None => (board::escalated(&store.events(t.id)?), true),
        };
        let follow_up = t.status == Status::Open
            && replied
            && board::follow_up(&policy, &store.messages(t.id)?, &store.events(t.id)?);
        let facts = Facts {
            ticket: &t,
            escalated,
            follow_up,
        };
        if let Some(lane) = board::lane_of(&policy, &facts, now) {
            placed.push((lane, board::card(&policy, &t, now)));
        }
    }
    Ok(board::board(placed, now))
}

pub(crate) fn next(
    engine: &Engine,
    team: Option<&str>,
    agent: Option<&str>,
    limit: usize,
) -> Result<(Vec<crate::desk::next::Candidate>, bool), StoreError> {
    use crate::desk::next;
    let policy = engine.policy();
    let now = engine.now();
    let mut first = next::FirstInOrder::new(limit);
    let actionable = [(Status::New, None), (Status::Open, None)];
    for t in open_tickets(engine, &actionable, team, agent) {
        let t = t?;
        if next::actionable(&t) && belongs(&t, team, agent) {
            first.push(next::candidate(&t, policy.sla(t.sla.as_deref()), now));
        }
    }
    Ok(first.finish())
}

/// Longest excerpt shown around a match, in characters either side.
const EXCERPT: usize = 40;

pub(crate) fn search(
    engine: &Engine,
    text: &str,
    limit: usize,
) -> Result<(Vec<SearchHit>, bool), StoreError> {
    let store = engine.store();
    let needle = text.to_lowercase();
    let mut hits = Vec::new();
    let mut more = false;
    if needle.trim().is_empty() {
        return Ok((hits, more));
    }
    for t in store.tickets_newest_first() {
        let t = t?;
        let requester = t.requester.display();
        let found = if t.subject.to_lowercase().contains(&needle) {
            Some(("subject", None))
        } else if requester.to_lowercase().contains(&needle) {
            Some(("requester", None))
        } else {
            store
                .messages(t.id)?
                .iter()
                .find_map(|m| excerpt(&m.text, &needle))
                .map(|x| ("message", Some(x)))
        };
        let Some((found_in, excerpt)) = found else {
            continue;
        };
        if hits.len() >= limit {
            more = true;
            break;
        }
        hits.push(SearchHit {
            id: t.id,
            subject: t.subject,
            status: t.status,
            requester,
            updated_at: t.updated_at,
            found_in: found_in.into(),
            excerpt,
        });
    }
    Ok((hits, more))
}

/// The text around the first case-insensitive match of `needle` (already
/// lower case), on one line.
pub(crate) fn excerpt(text: &str, needle: &str) -> Option<String> {
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let chars: Vec<char> = text.chars().collect();
    let n: Vec<char> = needle.chars().collect();
    // Lower-casing can change lengths (rarely); then match on the text alone.
    let hay = if lower.len() == chars.len() {
        &lower
    } else {
        &chars
    };
    let at = hay.windows(n.len()).position(|w| w == n.as_slice())?;
    let start = at.saturating_sub(EXCERPT);
    let end = (at + n.len() + EXCERPT).min(chars.len());
    let mut s: String = chars[start..end]
        .iter()
        .map(|&c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    Some(s)
}

/// A ticket `tickets search` found, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub requester: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// "subject", "requester" or "message".
    pub found_in: String,
    /// The text around the first match (messages only).
    pub excerpt: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::desk::policy::Policy;
    use crate::desk::report::figures::AGE_BUCKET_DAYS;
    use crate::desk::report::{Filter, GroupBy, Spec};
    use crate::engine::clock::ManualClock;
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::records::{Effort, Event, EventKind, Pause, Priority};
    use crate::store::Store;

    /// The report fixture's desk: teams on three tiers, an office-hours SLA.
    fn engine(dir: &Path) -> Engine {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("tests/fixtures/report/desk.toml"))
            .unwrap()
            .replace(
                "templates = \"../../../templates\"",
                &format!(
                    "templates = {:?}",
                    root.join("templates").display().to_string()
                ),
            );
        std::fs::write(dir.join("pw"), "x").unwrap();
        let cfg = crate::config::Config::from_str_at(&text, &dir.join("desk.toml")).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap();
        Engine::new(
            Store::open(&dir.join("state")).unwrap(),
            Arc::new(ManualClock::new(t0.with_timezone(&Utc))),
            Policy::from_config(&cfg).unwrap(),
        )
    }

    /// xorshift64*: random enough histories, the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len() as u64) as usize]
        }
    }

    const TEAMS: [Option<&str>; 5] = [
        None,
        Some("it"),
        Some("it-l2"),
        Some("it-l3"),
        Some("billing"),
    ];
    const AGENTS: [Option<&str>; 3] = [None, Some("alice@desk.test"), Some("Bob@desk.test")];
    const STATUSES: [Status; 5] = [
        Status::New,
        Status::Open,
        Status::Waiting,
        Status::Resolved,
        Status::Closed,
    ];

    /// A ticket `id` from `requester` at mailbox `queue`, created at `created`.
    fn ticket(id: TicketId, requester: &str, queue: &str, created: DateTime<Utc>) -> Ticket {
        let requester = Party {
            name: None,
            address: EmailAddress::parse(requester).unwrap(),
        };
        Ticket::new(id, format!("s{id}"), requester, queue, created)
    }

    /// Writes `n` tickets with random histories over about 20 days, each
    /// in several transactions (and sometimes several writes in one), the
    /// way the desk writes them.
    fn random_desk(e: &Engine, rng: &mut Rng, n: u64, t0: DateTime<Utc>) {
        for id in 1..=n {
            // Sub-millisecond times: the index keeps whole milliseconds.
            let created = t0 + Duration::microseconds(rng.below(20 * 86_400 * 1_000_000) as i64);
            let mut t = ticket(
                id,
                &format!("u{}@D{}.test", id % 7, id % 3),
                ["it", "billing"][rng.below(2) as usize],
                created,
            );
            t.team = rng.pick(&TEAMS).map(str::to_string);
            t.priority = *rng.pick(&[Priority::Normal, Priority::High, Priority::Low]);
            t.sla = (rng.below(4) != 0).then(|| "standard".to_string());
            let mut at = created;
            let steps = rng.below(7);
            let mut status = Status::New;
            e.store()
                .transact(|tx| {
                    let ev = Event {
                        at,
                        actor: "x".into(),
                        kind: EventKind::Created {
                            mailbox: t.mailbox.clone(),
                        },
                    };
                    tx.add_event(&mut t, &ev)?;
                    tx.put_ticket(&t)
                })
                .unwrap();
            for _ in 0..steps {
                at += Duration::microseconds(rng.below(3 * 86_400 * 1_000_000) as i64);
                e.store()
                    .transact(|tx| {
                        for _ in 0..=rng.below(2) {
                            let mut evs = Vec::new();
                            match rng.below(8) {
                                0..=2 => {
                                    let to = *rng.pick(&STATUSES);
                                    if to != status {
                                        evs.push(EventKind::StatusChanged {
                                            from: status,
                                            to,
                                            reason: "r".into(),
                                        });
                                        if to == Status::Waiting {
                                            t.pauses.push(Pause {
                                                start: at,
                                                end: None,
                                            });
                                        } else if let Some(p) = t.pauses.last_mut() {
                                            p.end.get_or_insert(at);
                                        }
                                        if to.is_finished() && t.resolved_at.is_none() {
                                            t.resolved_at = Some(at);
                                        }
                                        status = to;
                                        t.status = to;
                                    }
                                }
                                3 => {
                                    let to_team = rng.pick(&TEAMS[1..]).unwrap().to_string();
                                    evs.push(EventKind::Escalated {
                                        from_team: t.team.clone(),
                                        to_team: to_team.clone(),
                                        reason: rng.pick(&["hard", "vip"]).to_string(),
                                    });
                                    t.team = Some(to_team);
                                }
                                4 => {
                                    let minutes = 1 + rng.below(60) as u32;
                                    t.effort.push(Effort {
                                        agent: rng.pick(&AGENTS[1..]).unwrap().to_string(),
                                        minutes,
                                        at,
                                    });
                                    evs.push(EventKind::EffortLogged { minutes });
                                }
                                5 => {
                                    t.first_response_at.get_or_insert(at);
                                    evs.push(EventKind::ReplyRelayed { to: vec![] });
                                }
                                6 => {
                                    t.assignee = rng.pick(&AGENTS).map(str::to_string);
                                    t.tags = rng
                                        .pick(&[
                                            vec![],
                                            vec!["vip".to_string()],
                                            vec!["vip".into(), "net".into()],
                                        ])
                                        .clone();
                                }
                                _ => {
                                    if rng.below(4) == 0 {
                                        t.merged_into = Some(1 + rng.below(n));
                                    }
                                }
                            }
                            for kind in evs {
                                tx.add_event(
                                    &mut t,
                                    &Event {
                                        at,
                                        actor: "x".into(),
                                        kind,
                                    },
                                )?;
                            }
                            t.updated_at = at;
                            tx.put_ticket(&t)?;
                        }
                        Ok(())
                    })
                    .unwrap();
            }
        }
    }

    #[test]
    fn the_board_shows_only_the_recently_resolved() {
        use crate::desk::board::{Lane, RESOLVED_RECENT};
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let now = e.now();
        // Resolved just inside and just outside the recent window, and one
        // resolved long ago but updated since (a comment): its resolution
        // time, not its update, decides.
        let cases = [
            (1, RESOLVED_RECENT - Duration::minutes(1), None),
            (2, RESOLVED_RECENT + Duration::minutes(1), None),
            (3, Duration::days(30), Some(Duration::hours(1))),
        ];
        e.store()
            .transact(|tx| {
                for (id, ago, updated_ago) in cases {
                    let resolved = now - ago;
                    let mut t = ticket(id, "u@d.test", "it", resolved - Duration::days(1));
                    t.set_status(Status::Resolved, resolved);
                    t.updated_at = updated_ago.map_or(resolved, |u| now - u);
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .unwrap();
        let b = board(&e, None, None).unwrap();
        let resolved: Vec<_> = b
            .lanes
            .iter()
            .filter(|l| l.lane == Lane::Resolved)
            .flat_map(|l| l.cards.iter().map(|c| c.id))
            .collect();
        assert_eq!(resolved, [1]);
    }

    #[test]
    fn the_backlog_from_the_per_day_counts_is_exact_at_every_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        random_desk(&e, &mut rng, 300, t0);
        let filter = |team: Option<&str>, agent: Option<&str>, tag: Option<&str>| Filter {
            team: team.map(str::to_string),
            agent: agent.map(str::to_string),
            tag: tag.map(str::to_string),
        };
        // Every way the backlog is read: all counted, counted by each key
        // (rows, a filter, both on one key), and entry by entry.
        let asks = [
            (None, filter(None, None, None)),
            (Some(GroupBy::Team), filter(None, None, None)),
            (Some(GroupBy::Agent), filter(None, None, None)),
            (Some(GroupBy::Tier), filter(None, None, None)),
            (Some(GroupBy::Priority), filter(None, None, None)),
            (Some(GroupBy::Queue), filter(None, None, None)),
            (Some(GroupBy::Domain), filter(None, None, None)),
            (None, filter(Some("it"), None, None)),
            (None, filter(None, Some("bob@desk.test"), None)),
            (None, filter(None, None, Some("vip"))),
            (Some(GroupBy::Tier), filter(Some("it-l2"), None, None)),
            (Some(GroupBy::Agent), filter(None, None, Some("net"))),
        ];
        let mut untils = Vec::new();
        for id in [3, 120] {
            let created = e.store().ticket(id).unwrap().unwrap().created_at;
            // On a ticket's creation, and exactly one bucket bound later
            // (the bound is exclusive: the ticket moves to the next bucket).
            untils.push(created);
            for days in AGE_BUCKET_DAYS {
                let bound = created + Duration::days(days);
                untils.extend([
                    bound - Duration::nanoseconds(1),
                    bound,
                    bound + Duration::nanoseconds(1),
                ]);
            }
        }
        for _ in 0..8 {
            untils.push(t0 + Duration::microseconds(rng.below(45 * 86_400 * 1_000_000) as i64));
        }
        let mut periods: Vec<_> = untils
            .iter()
            .map(|&until| {
                let back = rng.below(10 * 86_400 * 1_000_000) as i64;
                (until - Duration::microseconds(back), until)
            })
            .collect();
        // The whole history, read in ticket order instead of by the index.
        let whole = (t0 - Duration::days(1), t0 + Duration::days(400));
        assert!(e.store().report_period_holds_all(whole.0, whole.1).unwrap());
        assert!(!e
            .store()
            .report_period_holds_all(t0 + Duration::days(1), whole.1)
            .unwrap());
        periods.push(whole);
        let mut seen_backlog = 0;
        for (round, &(since, until)) in periods.iter().enumerate() {
            for (by, filter) in &asks {
                let spec = Spec {
                    since,
                    until,
                    by: *by,
                    filter: filter.clone(),
                };
                let fast = report(&e, &spec).unwrap();
                let full = report_full_scan(&e, &spec).unwrap();
                assert_eq!(fast, full, "round {round}: {spec:?}");
                seen_backlog += fast.total.backlog;
            }
        }
        assert!(seen_backlog > 0, "the periods have a backlog to count");
    }

    #[test]
    fn the_report_from_facts_equals_the_report_from_every_trail() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        random_desk(&e, &mut rng, 300, t0);
        let bys = [
            None,
            Some(GroupBy::Team),
            Some(GroupBy::Agent),
            Some(GroupBy::Tier),
            Some(GroupBy::Priority),
            Some(GroupBy::Queue),
            Some(GroupBy::Domain),
        ];
        let filters = [
            Filter::default(),
            Filter {
                team: Some("it".into()),
                ..Filter::default()
            },
            Filter {
                agent: Some("bob@desk.test".into()),
                tag: Some("vip".into()),
                ..Filter::default()
            },
        ];
        for round in 0..60 {
            let a = t0 + Duration::microseconds(rng.below(30 * 86_400 * 1_000_000) as i64)
                - Duration::days(3);
            let b = a + Duration::microseconds(rng.below(12 * 86_400 * 1_000_000) as i64);
            let spec = Spec {
                since: a,
                until: b,
                by: *rng.pick(&bys),
                filter: rng.pick(&filters).clone(),
            };
            let fast = report(&e, &spec).unwrap();
            let full = report_full_scan(&e, &spec).unwrap();
            assert_eq!(fast, full, "round {round}: {spec:?}");
        }
        // The whole history, and a period ending on a ticket's own moment.
        let last = e.store().ticket(7).unwrap().unwrap().updated_at;
        for (since, until) in [
            (t0 - Duration::days(1), t0 + Duration::days(40)),
            (t0, last),
        ] {
            let spec = Spec {
                since,
                until,
                by: Some(GroupBy::Team),
                filter: Filter::default(),
            };
            assert_eq!(
                report(&e, &spec).unwrap(),
                report_full_scan(&e, &spec).unwrap()
            );
        }
    }

    /// `tickets next` as it was first written: every ticket of the desk
    /// read, filtered, ordered and cut (what [`next`] must equal).
    fn next_of_every_ticket(
        e: &Engine,
        team: Option<&str>,
        agent: Option<&str>,
        limit: usize,
    ) -> (Vec<crate::desk::next::Candidate>, bool) {
        use crate::desk::next;
        let mut cands = Vec::new();
        for t in e.store().tickets() {
            let t = t.unwrap();
            if next::actionable(&t) && belongs(&t, team, agent) {
                cands.push(next::candidate(
                    &t,
                    e.policy().sla(t.sla.as_deref()),
                    e.now(),
                ));
            }
        }
        let mut all = next::order(cands);
        let more = all.len() > limit;
        all.truncate(limit);
        (all, more)
    }

    /// The asked agents: as stored, and in another case than stored (the
    /// desk stores addresses in lower case; the fixture's `Bob@desk.test`
    /// stands for an import that kept its spelling, asked as spelled).
    const ASKED_AGENTS: [Option<&str>; 4] = [
        None,
        Some("alice@desk.test"),
        Some("ALICE@Desk.test"),
        Some("Bob@desk.test"),
    ];

    #[test]
    fn next_with_a_limit_is_every_candidate_ordered_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let t0 = e.now() - Duration::days(20);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        random_desk(&e, &mut rng, 400, t0);
        let mut listed = 0;
        for team in TEAMS {
            for agent in ASKED_AGENTS {
                for limit in [0, 1, 3, 10, 50, 10_000] {
                    let want = next_of_every_ticket(&e, team, agent, limit);
                    let got = next(&e, team, agent, limit).unwrap();
                    assert_eq!(got, want, "team {team:?}, agent {agent:?}, limit {limit}");
                    if agent == Some("ALICE@Desk.test") {
                        listed += got.0.len();
                    }
                }
            }
        }
        assert!(
            listed > 0,
            "alice, asked in another case, has work to order"
        );
    }

    #[test]
    fn the_board_of_a_team_or_agent_is_the_whole_board_s_cards_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let t0 = e.now() - Duration::days(20);
        let mut rng = Rng(0x0bad_cafe_f00d_d00d);
        random_desk(&e, &mut rng, 400, t0);
        let whole = board(&e, None, None).unwrap();
        for team in TEAMS {
            for agent in ASKED_AGENTS {
                let mut want = whole.clone();
                for lane in &mut want.lanes {
                    lane.cards.retain(|c| {
                        team.is_none_or(|x| c.team.as_deref() == Some(x))
                            && agent.is_none_or(|x| {
                                c.assignee
                                    .as_deref()
                                    .is_some_and(|a| a.eq_ignore_ascii_case(x))
                            })
                    });
                    lane.count = lane.cards.len() as u64;
                }
                let got = board(&e, team, agent).unwrap();
                assert_eq!(got, want, "team {team:?}, agent {agent:?}");
            }
        }
    }

    /// Writes `n` new tickets assigned to `assignee`, created a minute
    /// apart from `t0` on the standard SLA, each updated when created.
    fn assigned_tickets(e: &Engine, first: TicketId, n: u64, assignee: &str, t0: DateTime<Utc>) {
        e.store()
            .transact(|tx| {
                for id in first..first + n {
                    let created = t0 + Duration::minutes((id - first) as i64);
                    let mut t = ticket(id, "u@d.test", "it", created);
                    t.assignee = Some(assignee.to_string());
                    t.sla = Some("standard".into());
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn an_agent_asked_in_another_case_finds_the_tickets_stored_in_lower_case() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let t0 = e.now() - Duration::days(1);
        assigned_tickets(&e, 1, 3, "alice@desk.test", t0);
        assigned_tickets(&e, 4, 2, "bob@desk.test", t0);
        let (list, more) = next(&e, None, Some("Alice@Desk.TEST"), 20).unwrap();
        assert_eq!(list.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(!more);
        let b = board(&e, None, Some("Alice@Desk.TEST")).unwrap();
        let mut ids: Vec<_> = b
            .lanes
            .iter()
            .flat_map(|l| l.cards.iter().map(|c| c.id))
            .collect();
        ids.sort();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn next_by_mail_orders_all_of_an_agent_s_tickets_however_many() {
        // More new tickets than the mail path once read (the 500 updated
        // last): the ones due first are the oldest, updated longest ago.
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let t0 = e.now() - Duration::days(2);
        assigned_tickets(&e, 1, 620, "alice@desk.test", t0);
        let alice = EmailAddress::parse("alice@desk.test").unwrap();
        let policy = e.policy();
        let by_mail = e
            .store()
            .transact(|tx| crate::desk::next_mail::for_agent(tx, &policy, &alice, e.now()))
            .unwrap();
        let shown = crate::desk::next_mail::SHOWN;
        assert_eq!(
            by_mail,
            next(&e, None, Some("alice@desk.test"), shown).unwrap()
        );
        assert_eq!(
            by_mail.0.iter().map(|c| c.id).collect::<Vec<_>>(),
            (1..=shown as u64).collect::<Vec<_>>()
        );
        assert!(by_mail.1);
    }
}
