//! An agent's mail without proof: stored, nothing run, and the team warned —
//! but a forger can send thousands, so the warnings are rate-limited per
//! claimed sender and per ticket (the rest is recorded on the ticket, not
//! mailed), and wrong reply-address tags are counted per sender (someone
//! guessing tags shows up in the history).

use chrono::{DateTime, Duration, Utc};

use crate::desk::agent_tell::{tell_agents, AgentMail, Tell};
use crate::desk::audit::event;
use crate::desk::policy::Policy;
use crate::desk::proof::Unproven;
use crate::desk::workers::team_members;
use crate::store::records::{EventKind, Ticket};
use crate::store::{Tx, TxResult};

/// Most forgery warnings mailed about one claimed sender per window.
pub const WARNINGS_PER_SENDER: usize = 3;
/// Most forgery warnings mailed about one ticket per window.
pub const WARNINGS_PER_TICKET: usize = 3;
/// The window for both.
const WARNING_WINDOW: Duration = Duration::hours(1);
/// How long wrong tags are remembered for the count.
const WRONG_TAG_WINDOW: Duration = Duration::hours(24);

// The logs live with the auto-reply logs; their keys hold spaces, so no
// address can collide with them.
fn sender_log(from: &str) -> String {
    format!("forgery warnings naming {from}")
}
fn ticket_log(t: &Ticket) -> String {
    format!("forgery warnings on ticket {}", t.id)
}
fn wrong_tag_log(from: &str) -> String {
    format!("wrong reply tags from {from}")
}

/// How many sends the log under `key` holds within `window` (a fixed-size
/// count, see [`SendWindow`](crate::store::records::SendWindow)); with
/// `record`, counts one more at `now`. Returns the count before.
fn count_and_log(
    tx: &Tx<'_>,
    key: &str,
    now: DateTime<Utc>,
    window: Duration,
    record: bool,
) -> TxResult<usize> {
    let window = window
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(3600));
    let mut log = tx.auto_sent(key)?;
    let before = log.count(now, window) as usize;
    if record {
        log.record(now, window);
        tx.put_auto_sent(key, &log)?;
    }
    Ok(before)
}

/// Files an unproven agent mail on `t` (already holding the message) and
/// warns the team unless the rate limit says otherwise. Returns mails queued.
pub fn file_unproven(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    a: &AgentMail<'_>,
    unproven: &Unproven,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let from = a.agent.address.as_str();
    let mut why = unproven.why.clone();
    if unproven.wrong_tag {
        let earlier = count_and_log(tx, &wrong_tag_log(from), now, WRONG_TAG_WINDOW, true)?;
        why = format!(
            "{why} ({} wrong tag(s) in {from}'s name within 24 hours)",
            earlier + 1
        );
    }
    tx.add_event(
        t,
        &event(
            now,
            from,
            EventKind::PossibleForgery {
                from: from.to_string(),
                why,
            },
        ),
    )?;
    let by_sender = count_and_log(tx, &sender_log(from), now, WARNING_WINDOW, false)?;
    let by_ticket = count_and_log(tx, &ticket_log(t), now, WARNING_WINDOW, false)?;
    if by_sender >= WARNINGS_PER_SENDER || by_ticket >= WARNINGS_PER_TICKET {
        let reason = if by_sender >= WARNINGS_PER_SENDER {
            format!("no forgery warning: {by_sender} already sent about mail in {from}'s name within the hour")
        } else {
            format!(
                "no forgery warning: {by_ticket} already sent about this ticket within the hour"
            )
        };
        tx.add_event(t, &event(now, "deskgate", EventKind::AckSkipped { reason }))?;
        return Ok(0);
    }
    count_and_log(tx, &sender_log(from), now, WARNING_WINDOW, true)?;
    count_and_log(tx, &ticket_log(t), now, WARNING_WINDOW, true)?;
    // The real agent is told too: someone is writing in their name.
    let members = team_members(policy, t, None);
    tell_agents(
        tx,
        policy,
        t,
        members,
        Tell {
            kind: "forgery warning",
            template: "forgery.txt",
            text: &a.record.text,
        },
        a,
        now,
    )
}
