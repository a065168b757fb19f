//! Answering the CLI's questions (the messages are in `protocol`): views of
//! the store and the few changes the CLI asks for, shared by the control
//! socket (daemon running) and the CLI (store opened directly). Rendering
//! them as text is the CLI's (`cli::render`).

pub use crate::engine::protocol::*;
use crate::engine::views;
use crate::engine::{Engine, EngineError};
use crate::store::records::Ticket;
use crate::store::{list_index, StoreError};

/// Answers a query; blocking (sled), so async callers use spawn_blocking.
pub fn answer(engine: &Engine, q: &Query) -> Answer {
    let result = match q {
        Query::QuarantineRetry { id } => retry(engine, *id),
        Query::OutboxRelease { id } => release(engine, *id),
        Query::Steer(req) => steer(engine, req),
        Query::RotateReplyKey { grace_secs } => engine
            .rotate_reply_key(grace_secs.map(std::time::Duration::from_secs))
            .map(|keys| Answer::KeyRotated { keys }),
        _ => run(engine, q).map_err(EngineError::from),
    };
    result.unwrap_or_else(|e| Answer::Error {
        message: e.to_string(),
    })
}

fn retry(engine: &Engine, id: u64) -> Result<Answer, EngineError> {
    let outcome = engine.retry_quarantined(id)?;
    engine.store().flush_blocking()?;
    Ok(Answer::Retried {
        outcome: format!("{outcome:?}"),
    })
}

fn steer(engine: &Engine, req: &crate::desk::steer::Request) -> Result<Answer, EngineError> {
    Ok(match engine.steer(req)? {
        Ok(Steered { done, change }) => {
            engine.store().flush_blocking()?;
            Answer::Steered {
                done,
                change: Some(Box::new(change)),
            }
        }
        Err(problems) => Answer::Refused { problems },
    })
}

/// An admin's "send it anyway" for mail held as possibly sent twice.
fn release(engine: &Engine, id: u64) -> Result<Answer, EngineError> {
    if !engine.store().release_held_outbox(id, engine.now())? {
        return Ok(Answer::Error {
            message: format!("cannot release outbox mail {id}: it is not held as uncertain"),
        });
    }
    engine.store().flush_blocking()?;
    Ok(Answer::Retried {
        outcome: format!("outbox mail {id} released: it is sent now"),
    })
}

/// Longest raw mail shown by `quarantine show`.
const SHOW_LIMIT: usize = 64 * 1024;

pub(crate) fn sla_of(engine: &Engine, t: &Ticket) -> Vec<crate::desk::sla::TargetStatus> {
    let policy = engine.policy();
    policy
        .sla(t.sla.as_deref())
        .map(|p| crate::desk::sla::status(t, p, engine.now()))
        .unwrap_or_default()
}

fn run(engine: &Engine, q: &Query) -> Result<Answer, StoreError> {
    let store = engine.store();
    Ok(match q {
        Query::ListTickets {
            status,
            overdue,
            due_within_secs,
            limit,
        } => list(
            engine,
            &TicketQuery {
                status: *status,
                overdue: *overdue,
                due_within_secs: *due_within_secs,
                limit: *limit,
                ..TicketQuery::default()
            },
        )?,
        Query::ListPage(q) => list(engine, q)?,
        Query::ShowTicket { id } => Answer::Ticket {
            view: match store.ticket(*id)? {
                Some(ticket) => {
                    // Messages of merged tickets show here, in time order.
                    let mut messages = store.messages(*id)?;
                    for from in &ticket.merged_from {
                        messages.extend(store.messages(*from)?);
                    }
                    messages.sort_by_key(|m| (m.recorded_at, m.ticket, m.seq));
                    Some(Box::new(TicketView {
                        messages,
                        events: store.events(*id)?,
                        sla: sla_of(engine, &ticket),
                        ticket,
                    }))
                }
                None => None,
            },
        },
        Query::Outbox => Answer::Outbox {
            entries: store
                .outbox()?
                .into_iter()
                .map(OutboxSummary::from)
                .collect(),
        },
        Query::Quarantine => Answer::Quarantine {
            entries: store.quarantine()?,
        },
        Query::QuarantineShow { id } => {
            let entry = store.quarantine_entry(*id)?;
            let raw = match &entry {
                Some(e) => store.raw(&e.raw_key)?.map(|r| {
                    let end = r.len().min(SHOW_LIMIT);
                    String::from_utf8_lossy(&r[..end]).into_owned()
                }),
                None => None,
            };
            Answer::QuarantineItem { entry, raw }
        }
        Query::QuarantineRaw { id } => Answer::RawMail {
            hex: match store.quarantine_entry(*id)? {
                Some(e) => store.raw(&e.raw_key)?.map(hex::encode),
                None => None,
            },
        },
        Query::Ignored => Answer::Ignored {
            entries: store.ignored()?,
        },
        // Handled by `answer`, which has the engine.
        Query::QuarantineRetry { .. }
        | Query::OutboxRelease { .. }
        | Query::RotateReplyKey { .. }
        | Query::Steer(_) => Answer::Error {
            message: "this change needs the engine".into(),
        },
        Query::Attachment { ticket, which } => {
            use crate::engine::attachment::{find, Found};
            match find(store, *ticket, which)? {
                Found::File { meta, bytes } => Answer::Attachment {
                    name: meta.name,
                    content_type: meta.content_type,
                    hex: hex::encode(bytes),
                },
                Found::NoTicket => Answer::Error {
                    message: format!("no ticket {ticket}"),
                },
                Found::NoSuch { names } if names.is_empty() => Answer::Error {
                    message: format!("ticket {ticket} has no attachments"),
                },
                Found::NoSuch { names } => Answer::Error {
                    message: format!(
                        "ticket {ticket} has no attachment \"{which}\"; it has: {}",
                        names
                            .iter()
                            .enumerate()
                            .map(|(i, n)| format!("{} {n}", i + 1))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                Found::NotStored { name } => Answer::Error {
                    message: format!(
                        "{name} was not stored: its mail was over the size limit (max_message_size); the original is still on the IMAP server"
                    ),
                },
            }
        }
        Query::Recurring { since_secs, min } => {
            let until = engine.now();
            let length = chrono::Duration::seconds((*since_secs).min(100 * 366 * 86_400) as i64);
            let (since, previous_since) = (until - length, until - length - length);
            let period = |since, until| crate::desk::digest::Period { since, until };
            let r = crate::engine::recurring::compared(
                store,
                period(since, until),
                period(previous_since, since),
                *min,
            )?;
            Answer::Recurring {
                clusters: r.compared.issues,
                gone: r.compared.gone,
                since,
                until,
                previous_since,
                tickets_read: r.tickets_read,
                truncated: r.truncated,
            }
        }
        Query::Reload => Answer::Error {
            message: "only the running daemon can reload its config".into(),
        },
        Query::Status => Answer::Error {
            message: "only the running daemon knows its status".into(),
        },
        Query::Backup { path } => Answer::BackedUp {
            summary: store.backup(path)?,
        },
        Query::Export { path } => Answer::Exported {
            summary: store.export(path, engine.now())?,
        },
        Query::Prune { rules, dry_run } => {
            let summary =
                crate::store::retention::prune(store, rules, engine.now(), None, *dry_run)?;
            if !dry_run {
                store.flush_blocking()?;
            }
            Answer::Pruned { summary }
        }
        Query::Report { spec } => Answer::Report {
            report: Box::new(views::report(engine, spec)?),
        },
        Query::Board { team, agent } => Answer::Board {
            board: views::board(engine, team.as_deref(), agent.as_deref())?,
        },
        Query::Next { team, agent, limit } => {
            let (tickets, more) = views::next(engine, team.as_deref(), agent.as_deref(), *limit)?;
            Answer::Next { tickets, more }
        }
        Query::Search { text, limit } => {
            let (hits, more) = views::search(engine, text, *limit)?;
            Answer::Found { hits, more }
        }
        Query::Stats => {
            let (pending, failed) = store.outbox_counts();
            Answer::Stats {
                stats: Stats {
                    tickets: store.ticket_count(),
                    outbox_pending: pending,
                    outbox_failed: failed,
                    delivered: store.delivery_count(),
                    quarantined: store.quarantine_count(),
                },
            }
        }
    })
}

/// A page of `tickets list`, read from the list index: it costs the page,
/// plus what overdue and due-within skip.
fn list(engine: &Engine, q: &TicketQuery) -> Result<Answer, StoreError> {
    let before = match q.page.as_deref() {
        None => None,
        Some(token) => match list_index::parse_position(token) {
            Some(p) => Some(p),
            None => {
                return Ok(Answer::Error {
                    message: format!(
                        "\"{token}\" is not a page of tickets list (use the one it printed)"
                    ),
                })
            }
        },
    };
    let now = engine.now();
    let horizon = q
        .due_within_secs
        .map(|s| now + chrono::Duration::seconds(s.min(i64::MAX as u64 / 2) as i64));
    let mut tickets = Vec::new();
    let mut last = None;
    let mut more = false;
    for item in engine.store().ticket_list(&q.filters(), q.since, before) {
        let (pos, t) = item?;
        if q.overdue || horizon.is_some() {
            let targets = sla_of(engine, &t);
            let is_overdue = targets
                .iter()
                .any(|x| x.state == crate::desk::sla::TargetState::Breached);
            let due_soon = horizon.is_some_and(|h| {
                targets.iter().any(|x| {
                    x.state == crate::desk::sla::TargetState::Running
                        && x.due.is_some_and(|d| d <= h)
                })
            });
            if (q.overdue && !is_overdue) || (horizon.is_some() && !due_soon) {
                continue;
            }
        }
        if q.limit.is_some_and(|n| tickets.len() >= n) {
            more = true;
            break;
        }
        last = Some(pos);
        tickets.push(t);
    }
    let next = more
        .then(|| last.map(|p| list_index::position_token(&p)))
        .flatten();
    Ok(Answer::Tickets {
        tickets,
        more,
        next,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::desk::policy::Policy;
    use crate::engine::clock::SystemClock;
    use crate::store::records::{Status, TicketId};
    use crate::store::Store;

    fn engine_with_tickets(n: usize) -> Engine {
        let policy = Policy::for_tests(None);
        let e = Engine::new(Store::temporary().unwrap(), Arc::new(SystemClock), policy);
        for i in 0..n {
            let raw = format!(
                "From: u{i}@c.test\r\nTo: help@desk.test\r\nSubject: s{i}\r\nMessage-ID: <p{i}@c.test>\r\n\r\nx\r\n"
            );
            e.ingest(raw.as_bytes(), "help").unwrap();
        }
        e
    }

    fn list(e: &Engine, limit: Option<usize>) -> (Vec<TicketId>, bool) {
        let q = Query::ListTickets {
            status: None,
            overdue: false,
            due_within_secs: None,
            limit,
        };
        match answer(e, &q) {
            Answer::Tickets { tickets, more, .. } => (tickets.iter().map(|t| t.id).collect(), more),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_page_is_the_newest_tickets_and_says_when_there_are_more() {
        let e = engine_with_tickets(5);
        assert_eq!(list(&e, Some(2)), (vec![1004, 1003], true));
        assert_eq!(
            list(&e, Some(5)),
            (vec![1004, 1003, 1002, 1001, 1000], false)
        );
        assert_eq!(list(&e, None).0.len(), 5);
    }

    fn page(e: &Engine, q: TicketQuery) -> (Vec<TicketId>, Option<String>) {
        match answer(e, &Query::ListPage(q)) {
            Answer::Tickets { tickets, next, .. } => (tickets.iter().map(|t| t.id).collect(), next),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filters_page_through_the_index_with_a_token() {
        let e = engine_with_tickets(6);
        let mine = TicketQuery {
            requester: Some("u4@c.test".into()),
            ..TicketQuery::default()
        };
        assert_eq!(page(&e, mine).0, [1004]);
        let first = TicketQuery {
            limit: Some(4),
            status: Some(Status::New),
            ..TicketQuery::default()
        };
        let (ids, next) = page(&e, first.clone());
        assert_eq!(ids, [1005, 1004, 1003, 1002]);
        let rest = page(
            &e,
            TicketQuery {
                page: next,
                ..first.clone()
            },
        );
        assert_eq!(rest, (vec![1001, 1000], None));
        let bad = TicketQuery {
            page: Some("x".into()),
            ..first
        };
        let Answer::Error { message } = answer(&e, &Query::ListPage(bad)) else {
            panic!()
        };
        assert!(message.contains("is not a page"), "{message}");
    }

    #[test]
    fn a_filtered_list_crosses_the_control_socket_whole() {
        let q = Query::ListPage(TicketQuery {
            team: Some("it".into()),
            since: Some(chrono::Utc::now()),
            page: Some("1-2".into()),
            ..TicketQuery::default()
        });
        let text = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Query>(&text).unwrap(), q);
    }

    #[test]
    fn search_finds_subjects_requesters_and_message_text() {
        let e = engine_with_tickets(3);
        let q = |text: &str| match answer(
            &e,
            &Query::Search {
                text: text.into(),
                limit: 10,
            },
        ) {
            Answer::Found { hits, .. } => hits
                .iter()
                .map(|h| (h.id, h.found_in.clone()))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(q("S1"), [(1001, "subject".to_string())]);
        assert_eq!(q("u2@c.TEST"), [(1002, "requester".to_string())]);
        assert_eq!(q("nothing like it"), []);
        assert_eq!(
            views::excerpt("Line one\nthe PRINTER jams", "printer").unwrap(),
            "Line one the PRINTER jams"
        );
    }

    #[test]
    fn stats_are_counted_not_scanned() {
        let e = engine_with_tickets(3);
        let Answer::Stats { stats } = answer(&e, &Query::Stats) else {
            panic!()
        };
        assert_eq!((stats.tickets, stats.outbox_pending), (3, 3));
    }
}
