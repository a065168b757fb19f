//! `deskgate tickets set|comment|reply|merge|link`: steering a ticket from
//! the command line. Each is turned into the mail commands an agent would
//! write (or a comment or reply) and applied by the engine in one
//! transaction (`desk::steer`), through the running daemon or the store.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{ask, terminal, unexpected};
use crate::desk::steer::{Action, Request, MAX_ATTACHMENTS};
use crate::engine::queries::{Answer, Query, Steered};
use crate::mail::outgoing::OutgoingAttachment;
use crate::store::records::Status;

/// Who acts: recorded in the audit trail.
#[derive(Args, Debug, Clone, Default)]
pub struct AsAgent {
    /// Act as this agent (address or configured name): the audit trail
    /// names them and their team's rights apply. Default: the agent whose
    /// `login` is your Unix user, else `cli:<your Unix user>`, an admin who
    /// may change any ticket.
    #[arg(long = "as", value_name = "AGENT")]
    pub as_agent: Option<String>,
    /// Print what changed as one JSON object: the ticket after the change,
    /// the audit events it added and the mails it queued.
    #[arg(long)]
    pub json: bool,
}

/// `tickets set N …`: the fields to change.
#[derive(Args, Debug, Clone, Default)]
pub struct SetArgs {
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    /// An agent (address, local part or name); `-` or `none` unassigns.
    #[arg(long)]
    pub assignee: Option<String>,
    /// low, normal, high or urgent.
    #[arg(long)]
    pub priority: Option<String>,
    #[arg(long)]
    pub team: Option<String>,
    /// A tag to add (repeat for more).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Effort to log, e.g. 15m or 1h30m.
    #[arg(long)]
    pub time: Option<String>,
    /// Move the ticket to its team's escalates_to team.
    #[arg(long)]
    pub escalate: bool,
}

impl SetArgs {
    /// The mail commands these flags stand for, in a fixed order.
    pub fn lines(&self) -> Vec<String> {
        let mut l = Vec::new();
        l.extend(self.status.map(|s| format!("#status {s}")));
        l.extend(self.assignee.as_ref().map(|a| match a.trim() {
            "-" => "#assign none".to_string(),
            a => format!("#assign {a}"),
        }));
        l.extend(self.priority.as_ref().map(|p| format!("#priority {p}")));
        l.extend(self.team.as_ref().map(|t| format!("#team {t}")));
        l.extend(self.tag.iter().map(|t| format!("#tag {t}")));
        l.extend(self.time.as_ref().map(|t| format!("#time {t}")));
        if self.escalate {
            l.push("#escalate".into());
        }
        l
    }
}

/// The Unix user at the keyboard: the one who used sudo, if any.
fn unix_user() -> String {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            let v = v.trim();
            if !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()) {
                return v.to_string();
            }
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    format!("uid{}", unsafe { libc::geteuid() })
}

/// Text from `--file`, or standard input.
pub fn text_of(file: Option<&Path>) -> Result<String> {
    /// Longer text is surely a mistake (a binary piped in).
    const MAX_TEXT: u64 = 1024 * 1024;
    let mut text = String::new();
    match file {
        Some(p) => {
            std::fs::File::open(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .take(MAX_TEXT + 1)
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read {} as text", p.display()))?;
        }
        None => {
            std::io::stdin()
                .take(MAX_TEXT + 1)
                .read_to_string(&mut text)
                .context("cannot read the text from standard input")?;
        }
    }
    if text.len() as u64 > MAX_TEXT {
        bail!("the text is over 1 MiB");
    }
    Ok(text)
}

/// A file to attach, with a content type guessed from its name.
fn attachment(path: &Path) -> Result<OutgoingAttachment> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let content_type = match ext.as_deref() {
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("zip") => "application/zip",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    Ok(OutgoingAttachment {
        name,
        content_type: content_type.into(),
        bytes,
    })
}

/// Reads every `--attach FILE`.
pub fn attachments(files: &[PathBuf]) -> Result<Vec<OutgoingAttachment>> {
    if files.len() > MAX_ATTACHMENTS {
        bail!("at most {MAX_ATTACHMENTS} attachments");
    }
    files.iter().map(|p| attachment(p)).collect()
}

/// Sends one request and says what happened.
pub fn run(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    any_user: bool,
    ticket: u64,
    who: AsAgent,
    action: Action,
) -> Result<()> {
    let req = Request {
        ticket,
        user: unix_user(),
        as_agent: who.as_agent.clone(),
        action,
    };
    match rt.block_on(ask(config, any_user, Query::Steer(req)))? {
        Answer::Steered {
            done,
            change: Some(change),
        } if who.json => super::print_json(&Steered {
            done,
            change: *change,
        }),
        Answer::Steered { done, .. } if who.json => bail!(
            "ticket {} was changed, but the running daemon is older than this deskgate and \
             does not say how: restart it for --json",
            done.ticket
        ),
        Answer::Steered { done, .. } => {
            println!(
                "ticket {}: done as {}; {} mail(s) queued",
                done.ticket,
                terminal::safe(&done.actor),
                done.queued
            );
            Ok(())
        }
        Answer::Refused { problems } => bail!(
            "nothing was changed:\n{}",
            problems
                .iter()
                .map(|p| format!("  - {}", terminal::safe(p)))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        other => bail!(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_mail_commands() {
        let set = SetArgs {
            status: Some(Status::Waiting),
            assignee: Some("-".into()),
            priority: Some("high".into()),
            team: Some("it-l2".into()),
            tag: vec!["vpn".into(), "printer".into()],
            time: Some("15m".into()),
            escalate: true,
        };
        assert_eq!(
            set.lines(),
            [
                "#status waiting",
                "#assign none",
                "#priority high",
                "#team it-l2",
                "#tag vpn",
                "#tag printer",
                "#time 15m",
                "#escalate"
            ]
        );
        let parsed = crate::desk::commands::parse(&set.lines().join("\n"));
        assert!(parsed.errors.is_empty() && parsed.rest.is_empty());
        assert_eq!(parsed.commands.len(), 8);
        let alice = SetArgs {
            assignee: Some("Alice Smith".into()),
            ..SetArgs::default()
        };
        assert_eq!(alice.lines(), ["#assign Alice Smith"]);
    }

    #[test]
    fn attachments_are_read_with_a_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.PDF");
        std::fs::write(&p, b"%PDF\x00\xff").unwrap();
        let a = attachments(std::slice::from_ref(&p)).unwrap();
        assert_eq!(a[0].name, "report.PDF");
        assert_eq!(a[0].content_type, "application/pdf");
        assert_eq!(a[0].bytes, b"%PDF\x00\xff");
        let err = attachments(&[dir.path().join("missing")]).unwrap_err();
        assert!(err.to_string().starts_with("cannot read"), "{err}");
    }
}
