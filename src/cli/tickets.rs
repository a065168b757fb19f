//! `deskgate tickets …`: list (paged, filtered by the store's list index),
//! show, attachment, next and search; set, comment, reply, merge and link
//! change a ticket (`cli::steer`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::steer::{self, AsAgent, SetArgs};
use super::{ask, board, list_args, print_json, render, times, unexpected, write_attachment};
use crate::desk::steer::Action;
use crate::engine::queries::{Answer, Query, TicketQuery};
use crate::store::records::Status;

/// A `--due-within` horizon: a duration, at most 100 years (further out no
/// date can be computed, and no SLA target is that long).
fn parse_horizon(s: &str) -> Result<std::time::Duration, String> {
    const MAX: std::time::Duration = std::time::Duration::from_secs(100 * 31_557_600);
    let d = humantime::parse_duration(s).map_err(|e| format!("\"{s}\" is not a duration: {e}"))?;
    if d > MAX {
        return Err(format!("\"{s}\" is too long: at most 100 years"));
    }
    Ok(d)
}

#[derive(Subcommand)]
pub enum TicketsCommand {
    /// Write one attachment out: by its number in `tickets show` or by name.
    Attachment {
        id: u64,
        /// The attachment's number (1, 2 …) or file name.
        which: String,
        /// The file to write (default: the attachment's own name, in the
        /// current folder; `-` for standard output).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// List tickets.
    List {
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Only tickets with a breached SLA target.
        #[arg(long)]
        overdue: bool,
        /// Only tickets with an SLA target due within this time (e.g. 1h, 30m).
        #[arg(long, value_parser = parse_horizon)]
        due_within: Option<std::time::Duration>,
        /// Only tickets of this team.
        #[arg(long)]
        team: Option<String>,
        /// Only tickets assigned to this agent.
        #[arg(long)]
        assignee: Option<String>,
        /// Only tickets of this requester (an address).
        #[arg(long)]
        requester: Option<String>,
        /// Only tickets with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only tickets updated since: a time ago (7d, 12h) or a date
        /// (2026-11-30, or RFC 3339).
        #[arg(long, value_parser = list_args::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many tickets, most recently updated first.
        #[arg(long, default_value_t = 50, conflicts_with = "all")]
        limit: usize,
        /// Every ticket that matches, most recently updated first.
        #[arg(long)]
        all: bool,
        /// The next page: the token the previous page printed.
        #[arg(long)]
        page: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with its whole history.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// What to work on first: by SLA due time, then priority, then age.
    Next {
        #[arg(long, conflicts_with = "team")]
        agent: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Tickets whose subject, requester or message text contains TEXT
    /// (case-insensitive), newest first.
    Search {
        text: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Change a ticket's status, assignee, priority, team or tags, or log
    /// effort: the same as the mail commands (#status, #assign …).
    Set {
        id: u64,
        #[command(flatten)]
        set: SetArgs,
        #[command(flatten)]
        who: AsAgent,
    },
    /// Add an internal comment (the team hears of it, never the requester);
    /// the text from --file or standard input.
    Comment {
        id: u64,
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        who: AsAgent,
    },
    /// Reply to the requester and watchers from the help address; the text
    /// from --file or standard input.
    Reply {
        id: u64,
        #[arg(long)]
        file: Option<PathBuf>,
        /// A file to attach (repeat for more).
        #[arg(long)]
        attach: Vec<PathBuf>,
        #[command(flatten)]
        who: AsAgent,
    },
    /// Merge ticket ID into ticket INTO (as #merge INTO on ticket ID).
    Merge {
        id: u64,
        into: u64,
        #[command(flatten)]
        who: AsAgent,
    },
    /// Relate two tickets (both sides); --parent makes OTHER the parent of
    /// ID, --problem makes OTHER the problem ticket ID is an incident of.
    Link {
        id: u64,
        other: u64,
        #[arg(long, conflicts_with = "problem")]
        parent: bool,
        #[arg(long)]
        problem: bool,
        #[command(flatten)]
        who: AsAgent,
    },
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    any_user: bool,
    tm: &times::Times,
    command: TicketsCommand,
) -> Result<()> {
    match command {
        TicketsCommand::List {
            status,
            overdue,
            due_within,
            team,
            assignee,
            requester,
            tag,
            since,
            limit,
            all,
            page,
            json,
        } => {
            let q = Query::ListPage(TicketQuery {
                status,
                team,
                assignee: assignee.map(list_args::agent),
                requester: requester.map(|r| list_args::address(&r)).transpose()?,
                tag,
                since,
                overdue,
                due_within_secs: due_within.map(|d| d.as_secs()),
                limit: (!all).then_some(limit),
                page,
            });
            match rt.block_on(ask(config, any_user, q))? {
                Answer::Tickets { tickets, .. } if json => print_json(&tickets)?,
                Answer::Tickets {
                    tickets,
                    more,
                    next,
                } => {
                    print!("{}", render::render_ticket_list(&tickets, more, tm));
                    if let Some(next) = next {
                        println!("next page: --page {next}");
                    }
                }
                other => bail!(unexpected(other)),
            }
        }
        TicketsCommand::Attachment { id, which, output } => {
            let q = Query::Attachment { ticket: id, which };
            match rt.block_on(ask(config, any_user, q))? {
                Answer::Attachment { name, hex, .. } => {
                    let bytes = hex::decode(hex).context("the daemon sent bad hex")?;
                    write_attachment(&name, &bytes, output)?
                }
                other => bail!(unexpected(other)),
            }
        }
        TicketsCommand::Show { id, json } => {
            match rt.block_on(ask(config, any_user, Query::ShowTicket { id }))? {
                Answer::Ticket { view: Some(v) } if json => print_json(&v)?,
                Answer::Ticket { view: Some(v) } => {
                    print!("{}", render::render_ticket(&v, tm))
                }
                Answer::Ticket { view: None } => bail!("no ticket {id}"),
                other => bail!(unexpected(other)),
            }
        }
        TicketsCommand::Next {
            agent,
            team,
            limit,
            json,
        } => match rt.block_on(ask(config, any_user, Query::Next { team, agent, limit }))? {
            Answer::Next { tickets, .. } if json => print_json(&tickets)?,
            Answer::Next { tickets, more } => print!(
                "{}",
                board::render_next(&tickets, more, tm, chrono::Utc::now())
            ),
            other => bail!(unexpected(other)),
        },
        TicketsCommand::Set { id, set, who } => {
            let lines = set.lines();
            if lines.is_empty() {
                bail!("say what to change: --status, --assignee, --priority, --team, --tag, --time or --escalate");
            }
            steer::run(rt, config, any_user, id, who, Action::Commands { lines })?
        }
        TicketsCommand::Comment { id, file, who } => {
            let text = steer::text_of(file.as_deref())?;
            steer::run(rt, config, any_user, id, who, Action::Comment { text })?
        }
        TicketsCommand::Reply {
            id,
            file,
            attach,
            who,
        } => {
            let attachments = steer::attachments(&attach)?;
            let text = steer::text_of(file.as_deref())?;
            let action = Action::Reply { text, attachments };
            steer::run(rt, config, any_user, id, who, action)?
        }
        TicketsCommand::Merge { id, into, who } => {
            let lines = vec![format!("#merge {into}")];
            steer::run(rt, config, any_user, id, who, Action::Commands { lines })?
        }
        TicketsCommand::Link {
            id,
            other,
            parent,
            problem,
            who,
        } => {
            let kind = match (parent, problem) {
                (_, true) => "problem",
                (true, _) => "parent",
                _ => "link",
            };
            let lines = vec![format!("#{kind} {other}")];
            steer::run(rt, config, any_user, id, who, Action::Commands { lines })?
        }
        TicketsCommand::Search { text, limit, json } => {
            if text.trim().is_empty() {
                bail!("say what to search for");
            }
            match rt.block_on(ask(config, any_user, Query::Search { text, limit }))? {
                Answer::Found { hits, .. } if json => print_json(&hits)?,
                Answer::Found { hits, more } => {
                    print!("{}", board::render_hits(&hits, more, tm))
                }
                other => bail!(unexpected(other)),
            }
        }
    }
    Ok(())
}
