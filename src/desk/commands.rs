//! Commands an agent writes at the top of a mail: `#status resolved`,
//! `#assign alice`, `#time 45m` … Pure: parsing and shape checks here; checks
//! against the store (does ticket N exist?) happen when they are applied.
//!
//! Commands are the lines before any other text (blank lines allowed between
//! them). Parsing is all-or-nothing: one bad line and none are applied, and the
//! agent is told which line and why.

use crate::store::records::{Priority, Status, TicketId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status(Status),
    /// An agent by address or name; `None` unassigns.
    Assign(Option<String>),
    Priority(Priority),
    Team(String),
    Escalate,
    /// Effort in minutes.
    Time(u32),
    Tag(String),
    Link(TicketId),
    Parent(TicketId),
    Merge(TicketId),
    /// Keep this mail internal: recorded and shared with the team only.
    Comment,
    /// Send me the full list of commands (changes nothing).
    Help,
    /// This ticket is an incident of problem ticket N: its parent, recorded
    /// as a problem link.
    Problem(TicketId),
    /// Send me my own ordered list of tickets (changes nothing).
    Next,
}

impl Command {
    /// Whether the command changes a ticket (`#comment`, `#help` and
    /// `#next` only shape or answer the mail).
    pub fn changes(&self) -> bool {
        !matches!(self, Command::Comment | Command::Help | Command::Next)
    }
}

/// A line that is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// 1-based line number in the agent's text.
    pub line: usize,
    pub text: String,
    pub why: String,
}

/// The commands at the top of a text, and the text that remains.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub commands: Vec<Command>,
    pub errors: Vec<CommandError>,
    /// The text after the command lines (what may be relayed).
    pub rest: String,
}

pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t.is_empty() {
            i += 1;
            continue;
        }
        // "#1042 is broken" or "# heading" are text, not commands.
        let Some(body) = t
            .strip_prefix('#')
            .filter(|b| b.starts_with(|c: char| c.is_ascii_alphabetic()))
        else {
            break;
        };
        match parse_one(body) {
            Ok(c) => parsed.commands.push(c),
            Err(why) => parsed.errors.push(CommandError {
                line: i + 1,
                text: t.to_string(),
                why,
            }),
        }
        i += 1;
    }
    parsed.rest = lines[i..].join("\n").trim().to_string();
    parsed
}

fn ticket_number(word: Option<&str>, cmd: &str) -> Result<TicketId, String> {
    let w = word.ok_or_else(|| format!("#{cmd} needs a ticket number, e.g. #{cmd} 1042"))?;
    w.trim_start_matches('#')
        .parse::<TicketId>()
        .map_err(|_| format!("\"{w}\" is not a ticket number"))
}

fn parse_one(body: &str) -> Result<Command, String> {
    let mut words = body.split_whitespace();
    let name = words.next().unwrap_or("").to_ascii_lowercase();
    let arg = words.next();
    let extra = words.next();
    if extra.is_some() && name != "assign" {
        return Err(format!("#{name} takes one word"));
    }
    let need = |what: &str| format!("#{name} needs {what}");
    Ok(match name.as_str() {
        "status" => Command::Status(match arg.map(|a| a.to_ascii_lowercase()).as_deref() {
            Some("open") => Status::Open,
            Some("waiting") => Status::Waiting,
            Some("resolved") => Status::Resolved,
            Some("closed") => Status::Closed,
            Some(other) => return Err(format!("unknown status \"{other}\": use open, waiting, resolved or closed")),
            None => return Err(need("a status: open, waiting, resolved or closed")),
        }),
        "assign" => {
            let who: Vec<&str> = body.split_whitespace().skip(1).collect();
            match who.join(" ").as_str() {
                "" => return Err(need("an agent (address or name), or \"none\"")),
                "none" | "nobody" => Command::Assign(None),
                w => Command::Assign(Some(w.to_string())),
            }
        }
        "priority" => Command::Priority(match arg.map(|a| a.to_ascii_lowercase()).as_deref() {
            Some("low") => Priority::Low,
            Some("normal") => Priority::Normal,
            Some("high") => Priority::High,
            Some("urgent") => Priority::Urgent,
            Some(other) => return Err(format!("unknown priority \"{other}\": use low, normal, high or urgent")),
            None => return Err(need("a priority: low, normal, high or urgent")),
        }),
        "team" => Command::Team(arg.ok_or_else(|| need("a team name"))?.to_string()),
        "escalate" => {
            if arg.is_some() {
                return Err("#escalate takes no argument".into());
            }
            Command::Escalate
        }
        "time" => {
            let a = arg.ok_or_else(|| need("a duration, e.g. 45m or 1h30m"))?;
            let d = humantime::parse_duration(a).map_err(|_| format!("\"{a}\" is not a duration (try 45m, 1h30m)"))?;
            let minutes = d.as_secs().div_ceil(60);
            if minutes == 0 || minutes > 24 * 60 {
                return Err(format!("\"{a}\" must be between 1 minute and 24 hours"));
            }
            Command::Time(minutes as u32)
        }
        "tag" => {
            let t = arg.ok_or_else(|| need("a word"))?;
            if t.chars().any(|c| c.is_control()) || t.len() > 64 {
                return Err(format!("\"{t}\" is not a usable tag"));
            }
            Command::Tag(t.to_lowercase())
        }
        "link" => Command::Link(ticket_number(arg, "link")?),
        "parent" => Command::Parent(ticket_number(arg, "parent")?),
        "merge" => Command::Merge(ticket_number(arg, "merge")?),
        "comment" => {
            if arg.is_some() {
                return Err("#comment takes no argument (write the comment below it)".into());
            }
            Command::Comment
        }
        "help" => Command::Help,
        "problem" => Command::Problem(ticket_number(arg, "problem")?),
        "next" => {
            if arg.is_some() {
                return Err("#next takes no argument".into());
            }
            Command::Next
        }
        other => {
            return Err(format!(
                "unknown command #{other}: use #status, #assign, #priority, #team, #escalate, #time, #tag, #link, #parent, #problem, #merge, #comment, #next or #help (the full list)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_at_the_top_then_text() {
        let p = parse("#status resolved\n#time 1h30m\n\n#assign Alice Smith\n#tag VPN\nFixed the VPN profile.\n#status open stays text");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.commands,
            vec![
                Command::Status(Status::Resolved),
                Command::Time(90),
                Command::Assign(Some("Alice Smith".into())),
                Command::Tag("vpn".into()),
            ]
        );
        assert_eq!(p.rest, "Fixed the VPN profile.\n#status open stays text");
    }

    #[test]
    fn only_commands_leaves_no_text() {
        let p = parse("#priority urgent\n#team it-l2\n#escalate\n#link 7\n#parent #8\n#merge 9\n#comment\n#assign none");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.commands.len(), 8);
        assert_eq!(p.commands[4], Command::Parent(8));
        assert_eq!(p.commands[7], Command::Assign(None));
        assert_eq!(p.rest, "");
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let p = parse("#status done\n#time forever\n#frobnicate\n#merge\nHello");
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4]);
        assert!(p.errors[0].why.contains("unknown status \"done\""));
        assert!(p.errors[2].why.contains("unknown command #frobnicate"));
        assert_eq!(p.rest, "Hello");
    }

    #[test]
    fn hash_text_is_not_a_command() {
        let p = parse("#1042 is the ticket\n#status open");
        assert!(p.commands.is_empty() && p.errors.is_empty());
        assert!(p.rest.starts_with("#1042"));
    }

    #[test]
    fn time_bounds() {
        assert!(parse("#time 0m").errors.len() == 1);
        assert_eq!(parse("#help").commands, vec![Command::Help]);
        assert!(parse("#time 25h").errors.len() == 1);
        assert_eq!(parse("#next").commands, vec![Command::Next]);
        assert_eq!(parse("#time 45m").commands, vec![Command::Time(45)]);
        assert_eq!(parse("#time 90s").commands, vec![Command::Time(2)]);
    }

    #[test]
    fn problem_names_a_ticket_and_next_takes_nothing() {
        let p = parse("#problem #1042\n#next\n#status open");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.commands,
            vec![
                Command::Problem(1042),
                Command::Next,
                Command::Status(Status::Open)
            ]
        );
        assert!(!Command::Next.changes() && Command::Problem(1).changes());
        let bad = parse("#problem\n#problem soon\n#next week");
        let why: Vec<&str> = bad.errors.iter().map(|e| e.why.as_str()).collect();
        assert_eq!(
            why,
            [
                "#problem needs a ticket number, e.g. #problem 1042",
                "\"soon\" is not a ticket number",
                "#next takes no argument",
            ]
        );
    }
}
