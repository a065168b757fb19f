//! Checking teams, agents and the tiers they escalate through.

use super::check::Validator;
use super::checked::{Agent, Team};
use super::raw::{RawAgent, RawTeam};
use crate::mail::address::EmailAddress;

impl Validator {
    pub(super) fn check_teams(
        &mut self,
        raw_teams: Vec<RawTeam>,
        raw_agents: Vec<RawAgent>,
    ) -> (Vec<Team>, Vec<Agent>) {
        let mut agents: Vec<Agent> = Vec::new();
        for (i, a) in raw_agents.into_iter().enumerate() {
            let Some(address) = EmailAddress::parse(&a.address) else {
                self.problem(
                    format!("agent[{i}].address"),
                    format!("\"{}\" is not an email address", a.address),
                );
                continue;
            };
            if agents.iter().any(|x| x.address == address) {
                self.problem(
                    format!("agent[{i}].address"),
                    format!("{address} is listed twice"),
                );
                continue;
            }
            agents.push(Agent {
                address,
                name: a.name,
                teams: a.teams,
                commands_need_signed_reply: a.commands_need_signed_reply,
            });
        }
        let names: Vec<String> = raw_teams.iter().map(|t| t.name.clone()).collect();
        let mut teams: Vec<Team> = Vec::new();
        for (i, t) in raw_teams.iter().enumerate() {
            let key = format!("team[{i}]");
            if t.name.trim().is_empty()
                || t.name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                self.problem(format!("{key}.name"), "must be one word");
            }
            if names.iter().filter(|n| **n == t.name).count() > 1
                && names.iter().position(|n| *n == t.name) != Some(i)
            {
                self.problem(
                    format!("{key}.name"),
                    format!("team \"{}\" is defined twice", t.name),
                );
            }
            let mut members = Vec::new();
            for (j, m) in t.members.iter().enumerate() {
                match EmailAddress::parse(m).filter(|a| agents.iter().any(|x| x.address == *a)) {
                    Some(a) => members.push(a),
                    None => self.problem(
                        format!("{key}.members"),
                        format!(
                            "member {j} (\"{m}\") is not a known agent: list it under [[agent]]"
                        ),
                    ),
                }
            }
            for a in &agents {
                if a.teams.contains(&t.name) && !members.contains(&a.address) {
                    members.push(a.address.clone());
                }
            }
            if let Some(e) = &t.escalates_to {
                match raw_teams.iter().find(|x| x.name == *e) {
                    None => self.problem(format!("{key}.escalates_to"), format!("unknown team \"{e}\"")),
                    Some(target) if target.tier <= t.tier => self.problem(
                        format!("{key}.escalates_to"),
                        format!(
                            "team \"{}\" ({:?}) escalates to \"{e}\" ({:?}): escalation must go to a higher tier",
                            t.name, t.tier, target.tier
                        ),
                    ),
                    Some(_) => {}
                }
            }
            let lead = match &t.lead {
                Some(l) => {
                    let parsed = EmailAddress::parse(l);
                    if parsed.is_none() {
                        self.problem(
                            format!("{key}.lead"),
                            format!("\"{l}\" is not an email address"),
                        );
                    }
                    parsed
                }
                None => None,
            };
            teams.push(Team {
                name: t.name.clone(),
                tier: t.tier,
                members,
                escalates_to: t.escalates_to.clone(),
                lead,
            });
        }
        for (i, a) in agents.iter().enumerate() {
            for t in &a.teams {
                if !names.contains(t) {
                    self.problem(format!("agent[{i}].teams"), format!("unknown team \"{t}\""));
                }
            }
        }
        (teams, agents)
    }
}
