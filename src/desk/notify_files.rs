//! Which of a requester's files travel with the agents' notification: all
//! of them, in order, while their total stays within `[limits]
//! notification_attachments` (each agent's notification carries its own
//! copy, so the limit is below `max_message_size`). A file that does not fit,
//! or that the store did not keep (the mail was over `max_message_size`), is
//! named in the notification's text with how to get it, and on the ticket.

use bytesize::ByteSize;

use crate::mail::outgoing::OutgoingAttachment;
use crate::mail::parse::Attachment;
use crate::store::records::{AttachmentMeta, FileNotSent, TicketId};

/// The files a notification carries and those it only names.
#[derive(Debug, Default)]
pub struct Chosen {
    pub attached: Vec<OutgoingAttachment>,
    pub not_sent: Vec<FileNotSent>,
}

/// `files` are the mail's attachments, `metas` what the store kept of each
/// (the same order: `desk::prepare` builds one from the other).
pub fn choose(files: &[Attachment], metas: &[AttachmentMeta], limit: u64) -> Chosen {
    let mut chosen = Chosen::default();
    let mut total = 0u64;
    for (f, meta) in files.iter().zip(metas) {
        let size = f.bytes.len() as u64;
        let why = if meta.dropped {
            Some("not kept: the mail was over the size limit (max_message_size); the original stays in the help mailbox".to_string())
        } else if limit == 0 {
            Some("notifications carry no files here (notification_attachments = 0)".to_string())
        } else if total.saturating_add(size) > limit {
            Some(format!(
                "over the {} a notification carries (notification_attachments)",
                ByteSize::b(limit)
            ))
        } else {
            None
        };
        match why {
            Some(why) => chosen.not_sent.push(FileNotSent {
                name: f.name.clone(),
                content_type: f.content_type.clone(),
                size,
                why,
            }),
            None => {
                total += size;
                chosen.attached.push(OutgoingAttachment {
                    name: f.name.clone(),
                    content_type: f.content_type.clone(),
                    bytes: f.bytes.clone(),
                });
            }
        }
    }
    chosen
}

/// The lines a notification's text ends with when files stayed behind:
/// each by name, type and size, why, and the command that writes it out.
pub fn note(ticket: TicketId, not_sent: &[FileNotSent]) -> String {
    if not_sent.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\n[deskgate: files of this mail not attached here:");
    for f in not_sent {
        out.push_str(&format!(
            "\n  - {} ({}, {}): {}",
            f.name,
            f.content_type,
            ByteSize::b(f.size),
            f.why
        ));
        if !f.why.starts_with("not kept") {
            out.push_str(&format!(
                "; get it with: deskgate tickets attachment {ticket} {}",
                shell_word(&f.name)
            ));
        }
    }
    out.push(']');
    out
}

/// The name as one shell word: quoted unless it is plainly safe.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@'))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: usize) -> (Attachment, AttachmentMeta) {
        (
            Attachment {
                name: name.into(),
                content_type: "application/pdf".into(),
                bytes: vec![7; size],
            },
            AttachmentMeta {
                name: name.into(),
                content_type: "application/pdf".into(),
                size: size as u64,
                sha256: "x".into(),
                dropped: false,
            },
        )
    }

    fn split(v: Vec<(Attachment, AttachmentMeta)>) -> (Vec<Attachment>, Vec<AttachmentMeta>) {
        v.into_iter().unzip()
    }

    #[test]
    fn files_go_along_while_the_total_fits() {
        let (files, metas) = split(vec![
            file("a.pdf", 600),
            file("b.pdf", 500),
            file("c.pdf", 400),
        ]);
        let c = choose(&files, &metas, 1000);
        let names: Vec<&str> = c.attached.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a.pdf", "c.pdf"], "the total is the limit");
        assert_eq!(c.attached[0].bytes, files[0].bytes);
        assert_eq!(c.not_sent.len(), 1);
        assert_eq!(c.not_sent[0].name, "b.pdf");
        assert_eq!(c.not_sent[0].size, 500);
        let all = choose(&files, &metas, 1500);
        assert_eq!((all.attached.len(), all.not_sent.len()), (3, 0));
        assert_eq!(note(1000, &all.not_sent), "");
    }

    #[test]
    fn zero_attaches_nothing_and_unkept_files_are_never_attached() {
        let (files, mut metas) = split(vec![file("a b.pdf", 10), file("it's.zip", 10)]);
        let none = choose(&files, &metas, 0);
        assert!(none.attached.is_empty());
        assert!(none.not_sent[0]
            .why
            .contains("notification_attachments = 0"));
        metas[1].dropped = true;
        let c = choose(&files, &metas, 1 << 20);
        assert_eq!(c.attached.len(), 1);
        let text = note(1042, &c.not_sent);
        assert!(
            text.contains("it's.zip (application/pdf, 10 B): not kept"),
            "{text}"
        );
        assert!(
            !text.contains("tickets attachment"),
            "nothing to get: {text}"
        );
        let text = note(1042, &none.not_sent);
        assert!(
            text.contains("get it with: deskgate tickets attachment 1042 'a b.pdf'"),
            "{text}"
        );
        assert!(text.contains(r"1042 'it'\''s.zip'"), "{text}");
    }
}
