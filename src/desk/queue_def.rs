//! A queue as loaded from the config: its From, its envelope sender, its
//! defaults and its templates. Apart from `desk::queue` (which chooses and
//! uses queues) so that `Policy` can hold queues without importing the
//! rules that read the policy.

use crate::config::QueueConfig;
use crate::desk::templates::{TemplateError, Templates};
use crate::mail::address::{EmailAddress, Party};

/// One `[[queue]]`, ready to send from.
#[derive(Debug)]
pub struct Queue {
    pub name: String,
    /// From: its display name (the desk's when unset) and address.
    pub party: Party,
    /// MAIL FROM: the queue's address, unless `[smtp] envelope_from` names
    /// another bounce address for all of the desk's mail.
    pub envelope_from: EmailAddress,
    /// The `[[mailbox]]` that receives the address.
    pub mailbox: String,
    pub default_team: Option<String>,
    pub default_sla: Option<String>,
    /// The desk's templates with the queue's own folder laid over them.
    pub templates: Option<Templates>,
}

impl Queue {
    /// `desk_templates` is the folder the queue's own templates fall back to,
    /// file by file; `desk_name` the From name when the queue has none;
    /// `envelope_from` the desk-wide bounce address when one is configured.
    pub fn load(
        q: &QueueConfig,
        desk_name: &str,
        desk_templates: &std::path::Path,
        envelope_from: Option<&EmailAddress>,
    ) -> Result<Queue, TemplateError> {
        let templates = match &q.templates {
            Some(dir) => Some(Templates::load_layered(&[dir, desk_templates])?),
            None => None,
        };
        Ok(Queue {
            name: q.name.clone(),
            party: Party {
                name: Some(q.display_name.clone().unwrap_or_else(|| desk_name.into())),
                address: q.address.clone(),
            },
            envelope_from: envelope_from.cloned().unwrap_or_else(|| q.address.clone()),
            mailbox: q.mailbox.clone(),
            default_team: q.default_team.clone(),
            default_sla: q.default_sla.clone(),
            templates,
        })
    }
}
