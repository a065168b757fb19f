//! What became of one mail: the result every path of the desk returns.

use crate::store::records::TicketId;

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        ticket: TicketId,
        queued: usize,
    },
    Threaded {
        ticket: TicketId,
        queued: usize,
    },
    /// Seen before (same Message-ID, or same bytes when it has none).
    Duplicate {
        ticket: Option<TicketId>,
    },
    /// A delivery report (bounce): recorded on the ticket whose outgoing mail
    /// it reports on, when it can be matched; never a new ticket.
    Bounce {
        ticket: Option<TicketId>,
        /// Addresses the report says could not be reached.
        failed: Vec<String>,
    },
    /// Kept but not made a ticket (automatic mail that threads nowhere).
    Ignored {
        reason: String,
    },
    Quarantined {
        id: u64,
        reason: String,
    },
}

impl Outcome {
    pub fn queued(&self) -> usize {
        match self {
            Outcome::Created { queued, .. } | Outcome::Threaded { queued, .. } => *queued,
            _ => 0,
        }
    }

    pub fn ticket(&self) -> Option<TicketId> {
        match self {
            Outcome::Created { ticket, .. } | Outcome::Threaded { ticket, .. } => Some(*ticket),
            Outcome::Bounce { ticket, .. } | Outcome::Duplicate { ticket } => *ticket,
            _ => None,
        }
    }
}

/// How the dedupe record describes what became of a mail.
pub fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Created { ticket, .. } => format!("created ticket {ticket}"),
        Outcome::Threaded { ticket, .. } => format!("added to ticket {ticket}"),
        Outcome::Duplicate { .. } => "duplicate".into(),
        Outcome::Ignored { reason } => format!("ignored: {reason}"),
        Outcome::Bounce {
            ticket: Some(t), ..
        } => format!("delivery report for ticket {t}"),
        Outcome::Bounce { ticket: None, .. } => "delivery report matching no mail of ours".into(),
        Outcome::Quarantined { reason, .. } => format!("quarantined: {reason}"),
    }
}
