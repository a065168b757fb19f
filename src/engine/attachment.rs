//! One stored attachment of a ticket, by its number in `tickets show`
//! (1, 2 … across the ticket's messages, merged ones included) or by name.

use crate::store::records::{AttachmentMeta, TicketId};
use crate::store::{Store, StoreError};

/// What was found, or why nothing can be written out.
pub enum Found {
    File {
        meta: AttachmentMeta,
        bytes: Vec<u8>,
    },
    NoTicket,
    NoSuch {
        names: Vec<String>,
    },
    NotStored {
        name: String,
    },
}

pub fn find(store: &Store, ticket: TicketId, which: &str) -> Result<Found, StoreError> {
    let Some(t) = store.ticket(ticket)? else {
        return Ok(Found::NoTicket);
    };
    let mut messages = store.messages(ticket)?;
    for from in &t.merged_from {
        messages.extend(store.messages(*from)?);
    }
    messages.sort_by_key(|m| (m.recorded_at, m.ticket, m.seq));
    let all: Vec<AttachmentMeta> = messages.into_iter().flat_map(|m| m.attachments).collect();
    let by_index = which
        .parse::<usize>()
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| all.get(i));
    // The newest file of that name: a requester often sends a corrected one.
    let chosen = by_index.or_else(|| all.iter().rev().find(|a| a.name == which));
    let Some(meta) = chosen.cloned() else {
        return Ok(Found::NoSuch {
            names: all.into_iter().map(|a| a.name).collect(),
        });
    };
    if meta.dropped {
        return Ok(Found::NotStored { name: meta.name });
    }
    Ok(match store.blob(&meta.sha256)? {
        Some(bytes) => Found::File { meta, bytes },
        None => Found::NotStored { name: meta.name },
    })
}
