//! How each audit-trail event reads to a person, for `tickets show`.

use crate::store::records::EventKind;

/// One line of the audit trail for `tickets show`.
pub fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::Created { mailbox } => format!("created from mail to {mailbox}"),
        EventKind::StatusChanged { from, to, reason } => {
            format!("status {from} -> {to} ({reason})")
        }
        EventKind::MailDelivered {
            message_id,
            attempts,
            ..
        } => {
            format!("delivered <{message_id}> to the SMTP server after {attempts} attempt(s)")
        }
        EventKind::MailFailed {
            message_id,
            error,
            attempts,
            ..
        } => {
            format!("delivery of <{message_id}> failed after {attempts} attempt(s): {error}")
        }
        EventKind::AckSkipped { reason } => format!("no acknowledgement sent: {reason}"),
        EventKind::Routed {
            rules,
            team,
            priority,
            assignee,
            tags,
        } => format!(
            "routed{}: team {}, priority {priority}, assignee {}{}",
            if rules.is_empty() {
                String::new()
            } else {
                format!(" by {}", rules.join(", "))
            },
            team.as_deref().unwrap_or("-"),
            assignee.as_deref().unwrap_or("-"),
            if tags.is_empty() {
                String::new()
            } else {
                format!(", tags {}", tags.join(" "))
            }
        ),
        EventKind::AutoReplyHeld { kind, to, reason } => {
            format!("{kind} to {to} held back: {reason}")
        }
        EventKind::DeliveryFailed {
            recipient,
            status,
            diagnostic,
            hard,
            ..
        } => format!(
            "{} delivery failure for {recipient}{}{}",
            if *hard { "permanent" } else { "temporary" },
            status
                .as_deref()
                .map(|s| format!(" (status {s})"))
                .unwrap_or_default(),
            diagnostic
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        EventKind::DeliveryConfirmed {
            recipient, action, ..
        } => format!("delivery report for {recipient}: {action}"),
        EventKind::AddressUndeliverable {
            address,
            hard_bounces,
        } => {
            format!("{address} marked undeliverable after {hard_bounces} hard bounces: no more automatic mail")
        }
        EventKind::AttachmentsNotSent { mail, files } => {
            let files: Vec<String> = files
                .iter()
                .map(|f| format!("{} ({} bytes): {}", f.name, f.size, f.why))
                .collect();
            format!("{mail} sent without {}", files.join("; "))
        }
        EventKind::FieldChanged { field, from, to } => format!("{field}: {from} -> {to}"),
        EventKind::Escalated {
            from_team,
            to_team,
            reason,
        } => {
            format!(
                "escalated from {} to {to_team}: {reason}",
                from_team.as_deref().unwrap_or("-")
            )
        }
        EventKind::EffortLogged { minutes } => format!("logged {minutes} min of work"),
        EventKind::Linked { kind, ticket } => format!("linked: {kind:?} #{ticket}").to_lowercase(),
        EventKind::MergedInto { ticket } => {
            format!("merged into #{ticket}; later mail goes there")
        }
        EventKind::MergedFrom { ticket } => format!("ticket #{ticket} merged into this one"),
        EventKind::ReplyRelayed { to } => format!("reply relayed to {}", to.join(", ")),
        EventKind::CommentAdded => "internal comment added".into(),
        EventKind::PossibleForgery { from, why } => {
            format!("POSSIBLE FORGERY: mail claims to be from agent {from} but {why}; no command run, nothing relayed")
        }
        EventKind::CommandsRefused { errors } => {
            format!("commands refused, nothing changed: {}", errors.join("; "))
        }
        EventKind::SlaWarning { target, due } => {
            format!("{target} target due {due}: warning sent")
        }
        EventKind::SlaBreached { target, due } => {
            format!("{target} target BREACHED (was due {due})")
        }
        EventKind::WaitingReminder => "reminder sent to the requester".into(),
    }
}
