//! Checking `[[digest]]`: the schedule grammar (`every`), the recipients
//! (addresses, `team:NAME`, `lead:TEAM`), the report and its options, and
//! the template.

use std::path::Path;
use std::time::Duration;

use chrono::Weekday;

use super::check::Validator;
use super::checked::{Digest, DigestRecipient, DigestReport, Every, EveryOn, Team};
use super::raw::RawDigest;
use crate::mail::address::EmailAddress;

/// The row names of `deskgate report --by` (desk::report::GroupBy).
pub const REPORT_ROWS: &[&str] = &["team", "agent", "tier", "priority", "queue", "domain"];
/// The template a digest is rendered from unless it names another.
pub const DEFAULT_TEMPLATE: &str = "digest.txt";
/// `deskgate recurring`'s defaults.
const RECURRING_LAST: Duration = Duration::from_secs(30 * 86_400);
const RECURRING_MIN: usize = 3;
/// Most recipients one digest may name (each is one mail).
const MAX_RECIPIENTS: usize = 100;
/// Longest period a report may cover: beyond it the store read is all
/// history anyway.
const MAX_LAST: Duration = Duration::from_secs(400 * 86_400);

/// Reads `every`: `day HH:MM`, `<weekday> HH:MM` (monday … sunday) or
/// `<N>th HH:MM` (1st … 28th of the month); the time is 24-hour, in the
/// desk's time zone. The error says what is expected, in plain words.
pub fn parse_every(s: &str) -> Result<Every, String> {
    let expected = "must be \"day HH:MM\", a weekday and a time (\"monday 08:00\") or a day of the month and a time (\"1st 08:00\", up to \"28th\")";
    let mut words = s.split_whitespace();
    let (Some(on), Some(at), None) = (words.next(), words.next(), words.next()) else {
        return Err(expected.into());
    };
    let on = on.to_ascii_lowercase();
    let on = if on == "day" {
        EveryOn::Day
    } else if let Ok(d) = on.parse::<Weekday>() {
        EveryOn::Week(d)
    } else if let Some(n) = day_of_month(&on) {
        if !(1..=28).contains(&n) {
            return Err(format!(
                "\"{on}\" is not a day every month has: use 1st to 28th"
            ));
        }
        EveryOn::Month(n)
    } else {
        return Err(expected.into());
    };
    let Some((h, m)) = at.split_once(':') else {
        return Err(format!("\"{at}\" is not a time (HH:MM, 24-hour)"));
    };
    let (Ok(hour), Ok(minute)) = (h.parse::<u32>(), m.parse::<u32>()) else {
        return Err(format!("\"{at}\" is not a time (HH:MM, 24-hour)"));
    };
    if hour > 23 || minute > 59 || m.len() != 2 {
        return Err(format!("\"{at}\" is not a time (HH:MM, 24-hour)"));
    }
    Ok(Every { on, hour, minute })
}

/// "1st", "2nd", "3rd", "4th" … (or a bare number).
fn day_of_month(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let suffix = &s[digits.len()..];
    if digits.is_empty() || !["", "st", "nd", "rd", "th"].contains(&suffix) {
        return None;
    }
    digits.parse().ok()
}

impl Validator {
    pub(super) fn check_digests(
        &mut self,
        raw: &[RawDigest],
        teams: &[Team],
        templates: &Path,
    ) -> Vec<Digest> {
        let mut out = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            let key = format!("digest[{i}]");
            let before = self.problems.len();
            if d.name.trim().is_empty() || d.name.chars().any(|c| c.is_control()) {
                self.problem(format!("{key}.name"), "must not be empty");
            }
            if raw[..i].iter().any(|x| x.name == d.name) {
                self.problem(
                    format!("{key}.name"),
                    format!("digest \"{}\" is defined twice", d.name),
                );
            }
            let to = self.check_recipients(&key, &d.to, teams);
            let every = match parse_every(&d.every) {
                Ok(e) => Some(e),
                Err(why) => {
                    self.problem(format!("{key}.every"), why);
                    None
                }
            };
            let report = self.check_report(&key, d, teams);
            let template = d
                .template
                .clone()
                .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());
            let plain_name = !template.is_empty()
                && !template.contains(['/', '\\'])
                && !template.starts_with('.');
            if !plain_name {
                self.problem(
                    format!("{key}.template"),
                    "must be a file name in the templates folder",
                );
            } else if template != DEFAULT_TEMPLATE
                && templates.is_dir()
                && !templates.join(&template).is_file()
            {
                self.problem(
                    format!("{key}.template"),
                    format!("{} does not exist", templates.join(&template).display()),
                );
            }
            if let (Some(every), Some(report), true) =
                (every, report, self.problems.len() == before)
            {
                out.push(Digest {
                    name: d.name.clone(),
                    to,
                    report,
                    every,
                    template,
                });
            }
        }
        out
    }

    fn check_recipients(
        &mut self,
        key: &str,
        to: &[String],
        teams: &[Team],
    ) -> Vec<DigestRecipient> {
        if to.is_empty() {
            self.problem(format!("{key}.to"), "needs at least one recipient");
        }
        if to.len() > MAX_RECIPIENTS {
            self.problem(
                format!("{key}.to"),
                format!("names {} recipients; at most {MAX_RECIPIENTS}", to.len()),
            );
        }
        let mut out = Vec::new();
        for entry in to {
            let team = |name: &str| teams.iter().find(|t| t.name == name);
            if let Some(name) = entry.strip_prefix("team:") {
                match team(name) {
                    Some(_) => out.push(DigestRecipient::Team(name.to_string())),
                    None => self.problem(
                        format!("{key}.to"),
                        format!("\"{entry}\": there is no team \"{name}\""),
                    ),
                }
            } else if let Some(name) = entry.strip_prefix("lead:") {
                match team(name) {
                    Some(t) if t.lead.is_some() => {
                        out.push(DigestRecipient::Lead(name.to_string()))
                    }
                    Some(_) => self.problem(
                        format!("{key}.to"),
                        format!("\"{entry}\": team \"{name}\" has no lead"),
                    ),
                    None => self.problem(
                        format!("{key}.to"),
                        format!("\"{entry}\": there is no team \"{name}\""),
                    ),
                }
            } else {
                match EmailAddress::parse(entry) {
                    Some(a) => out.push(DigestRecipient::Address(a)),
                    None => self.problem(
                        format!("{key}.to"),
                        format!(
                            "\"{entry}\" is neither an email address nor team:NAME or lead:TEAM"
                        ),
                    ),
                }
            }
        }
        out
    }

    fn check_report(&mut self, key: &str, d: &RawDigest, teams: &[Team]) -> Option<DigestReport> {
        if d.last.is_some_and(|l| l.is_zero() || l > MAX_LAST) {
            self.problem(
                format!("{key}.last"),
                "must be more than 0 and at most 400d",
            );
        }
        match d.report.as_deref().unwrap_or("report") {
            "report" => {
                if d.min.is_some() {
                    self.problem(
                        format!("{key}.min"),
                        "is an option of report = \"recurring\" only",
                    );
                }
                if let Some(by) = &d.by {
                    if !REPORT_ROWS.contains(&by.as_str()) {
                        self.problem(
                            format!("{key}.by"),
                            format!("\"{by}\" is not one of {}", REPORT_ROWS.join(", ")),
                        );
                    }
                }
                if let Some(t) = &d.team {
                    if !teams.iter().any(|x| x.name == *t) {
                        self.problem(format!("{key}.team"), format!("there is no team \"{t}\""));
                    }
                }
                Some(DigestReport::Report {
                    last: d.last,
                    by: d.by.clone(),
                    team: d.team.clone(),
                    agent: d.agent.clone(),
                    tag: d.tag.clone(),
                })
            }
            "recurring" => {
                for (k, given) in [
                    ("by", d.by.is_some()),
                    ("team", d.team.is_some()),
                    ("agent", d.agent.is_some()),
                    ("tag", d.tag.is_some()),
                ] {
                    if given {
                        self.problem(
                            format!("{key}.{k}"),
                            "is an option of report = \"report\" only",
                        );
                    }
                }
                let min = d.min.unwrap_or(RECURRING_MIN);
                if !(2..=1000).contains(&min) {
                    self.problem(format!("{key}.min"), "must be between 2 and 1000");
                }
                Some(DigestReport::Recurring {
                    last: d.last.unwrap_or(RECURRING_LAST),
                    min,
                })
            }
            other => {
                self.problem(
                    format!("{key}.report"),
                    format!("\"{other}\" is not a report: use \"report\" or \"recurring\""),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_every_grammar() {
        let e = parse_every("monday 08:00").unwrap();
        assert_eq!(e.on, EveryOn::Week(Weekday::Mon));
        assert_eq!((e.hour, e.minute), (8, 0));
        assert_eq!(parse_every("Day 17:30").unwrap().on, EveryOn::Day);
        assert_eq!(parse_every("1st 08:00").unwrap().on, EveryOn::Month(1));
        assert_eq!(parse_every("22nd 06:05").unwrap().on, EveryOn::Month(22));
        assert_eq!(
            parse_every("sun 23:59").unwrap().on,
            EveryOn::Week(Weekday::Sun)
        );
        for bad in [
            "monday",
            "monday 8",
            "monday 24:00",
            "monday 08:5",
            "31st 08:00",
            "someday 08:00",
            "day 08:00 extra",
            "0th 08:00",
        ] {
            assert!(parse_every(bad).is_err(), "{bad}");
        }
        assert!(parse_every("31st 08:00")
            .unwrap_err()
            .contains("1st to 28th"));
    }
}
