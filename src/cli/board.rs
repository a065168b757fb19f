//! Text for the board, `tickets next` and `tickets search`.

use chrono::{DateTime, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::render::truncate;
use super::terminal::safe;
use super::times::Times;
use crate::desk::board::{Board, Card, CardSla};
use crate::desk::next::Candidate;
use crate::engine::queries::SearchHit;

/// Most cards shown per lane (`--json` has them all).
pub const CARDS_SHOWN: usize = 10;

fn sla_text(s: &CardSla, tm: &Times, now: DateTime<Utc>) -> String {
    match s {
        CardSla::None => "-".into(),
        CardSla::Breached => "BREACHED".into(),
        CardSla::Running { due } => format!("due in {}", tm.age(now, *due)),
        CardSla::Paused => "paused".into(),
        CardSla::Met => "met".into(),
    }
}

fn card_line(c: &Card, tm: &Times, now: DateTime<Utc>) -> String {
    format!(
        "  #{:<8} {:<7} age {:<8} SLA {:<14} {:<24} {}",
        c.id,
        c.priority.as_str(),
        tm.age(c.created_at, now),
        sla_text(&c.sla, tm, now),
        truncate(c.assignee.as_deref().unwrap_or("(unassigned)"), 24),
        truncate(&c.subject, 50)
    )
}

pub fn render_board(b: &Board, tm: &Times) -> String {
    let mut out = format!("Board at {}\n", tm.at(&b.at));
    for l in &b.lanes {
        out.push_str(&format!("\n{} ({})", l.title, l.count));
        match l.cards.first() {
            Some(c) => out.push_str(&format!(
                ", oldest #{} ({})\n",
                c.id,
                tm.age(c.created_at, b.at)
            )),
            None => out.push('\n'),
        }
        for c in l.cards.iter().take(CARDS_SHOWN) {
            out.push_str(&card_line(c, tm, b.at));
            out.push('\n');
        }
        if l.cards.len() > CARDS_SHOWN {
            out.push_str(&format!(
                "  … and {} more (--json for all)\n",
                l.cards.len() - CARDS_SHOWN
            ));
        }
    }
    safe(&out)
}

pub fn render_next(tickets: &[Candidate], more: bool, tm: &Times, now: DateTime<Utc>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "", "ticket", "priority", "SLA", "age", "assignee", "subject",
    ]);
    for (i, c) in tickets.iter().enumerate() {
        let sla = match (c.due, c.breached) {
            (_, true) => "BREACHED".to_string(),
            (Some(d), false) => format!("due in {}", tm.age(now, d)),
            (None, false) => "-".into(),
        };
        t.add_row(vec![
            (i + 1).to_string(),
            format!("#{}", c.id),
            c.priority.as_str().into(),
            sla,
            tm.age(c.created_at, now),
            c.assignee.clone().unwrap_or_else(|| "(unassigned)".into()),
            truncate(&c.subject, 50),
        ]);
    }
    let mut out = format!("{t}\n");
    if more {
        out.push_str("more tickets are in hand (--limit N for more)\n");
    } else {
        out.push_str(&format!("{} ticket(s) to work on\n", tickets.len()));
    }
    safe(&out)
}

pub fn render_hits(hits: &[SearchHit], more: bool, tm: &Times) -> String {
    let mut out = String::new();
    for h in hits {
        out.push_str(&format!(
            "#{:<8} {:<9} {:<22} {:<28} {}\n",
            h.id,
            h.status.as_str(),
            tm.at(&h.updated_at),
            truncate(&h.requester, 28),
            truncate(&h.subject, 50)
        ));
        match &h.excerpt {
            Some(x) => out.push_str(&format!("          in a message: {x}\n")),
            None => out.push_str(&format!("          in the {}\n", h.found_in)),
        }
    }
    if more {
        out.push_str(&format!(
            "the newest {} match(es); more match (--limit N for more)\n",
            hits.len()
        ));
    } else {
        out.push_str(&format!("{} ticket(s) found\n", hits.len()));
    }
    safe(&out)
}
