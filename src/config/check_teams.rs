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
        // Each agent's teams under its index in the file: an agent skipped
        // below (bad or repeated address) still has its teams checked, and
        // the ones after it keep their own index and line.
        let agent_teams: Vec<(usize, Vec<String>)> = raw_agents
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.teams.clone()))
            .collect();
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
            let login = self.check_login(i, a.login, &agents);
            agents.push(Agent {
                address,
                name: a.name,
                teams: a.teams,
                commands_need_signed_reply: a.commands_need_signed_reply,
                login,
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
        for (i, agent_teams) in &agent_teams {
            for t in agent_teams {
                if !names.contains(t) {
                    self.problem(format!("agent[{i}].teams"), format!("unknown team \"{t}\""));
                }
            }
        }
        (teams, agents)
    }

    /// An agent's `login`: a Unix user name (as `deskgate tickets` reads it
    /// from the environment), given to one agent only, or the command line
    /// could not tell whom its user acts as.
    fn check_login(
        &mut self,
        i: usize,
        login: Option<String>,
        earlier: &[Agent],
    ) -> Option<String> {
        let login = login?;
        let key = format!("agent[{i}].login");
        if login.is_empty()
            || login.len() > MAX_LOGIN
            || !login.chars().all(|c| c.is_ascii_graphic())
        {
            self.problem(
                key,
                format!("\"{login}\" is not a Unix user name (one word, at most {MAX_LOGIN} characters)"),
            );
            return None;
        }
        if let Some(other) = earlier.iter().find(|x| x.login.as_deref() == Some(&login)) {
            self.problem(
                key,
                format!(
                    "login \"{login}\" is already {}'s: a Unix user can act as one agent only",
                    other.address
                ),
            );
            return None;
        }
        Some(login)
    }
}

/// The longest user name `deskgate tickets` reads from the environment.
const MAX_LOGIN: usize = 64;

#[cfg(test)]
mod tests {
    use crate::config::test_config::TestConfig;
    use crate::config::Config;

    /// The smallest good config, then `[[agent]]`s with these addresses and
    /// logins.
    fn with_agents(agents: &[(&str, &str)]) -> String {
        let mut c = TestConfig::new()
            .desk("templates", "\"templates\"")
            .mailbox("port", "1143")
            .mailbox("password_file", "\"pw\"")
            .smtp("port", "2525");
        for (address, login) in agents {
            c = c.table(&format!(
                "[[agent]]\naddress = \"{address}\"\nlogin = \"{login}\""
            ));
        }
        c.render()
    }

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
        Config::from_str_at(text, &dir.path().join("d.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn an_agent_s_login_is_kept() {
        let c = load(&with_agents(&[("alice@desk.test", "alice")])).unwrap();
        assert_eq!(c.agents[0].login.as_deref(), Some("alice"));
    }

    #[test]
    fn a_login_given_to_two_agents_is_refused_with_its_line() {
        let text = with_agents(&[("alice@desk.test", "alice"), ("bob@desk.test", "alice")]);
        let err = load(&text).unwrap_err();
        // The line of the second agent's login.
        let n = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("login"))
            .map(|(n, _)| n + 1)
            .nth(1)
            .unwrap();
        assert!(
            err.contains(&format!(
                "d.toml:{n}: agent[1].login: login \"alice\" is already alice@desk.test's"
            )),
            "line {n}: {err}"
        );
    }

    #[test]
    fn an_unknown_team_names_the_agent_after_a_skipped_one() {
        // The first agent is skipped (not an address), the second listed
        // twice: the third's error must still name the third, at its line.
        let mut c = TestConfig::new()
            .desk("templates", "\"templates\"")
            .mailbox("port", "1143")
            .mailbox("password_file", "\"pw\"")
            .smtp("port", "2525");
        for (address, team) in [
            ("not an address", "ghost1"),
            ("alice@desk.test", "ghost2"),
            ("alice@desk.test", "ghost3"),
            ("bob@desk.test", "ghost4"),
        ] {
            c = c.table(&format!(
                "[[agent]]\naddress = \"{address}\"\nteams = [\"{team}\"]"
            ));
        }
        let text = c.render();
        let err = load(&text).unwrap_err();
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("teams"))
            .map(|(n, _)| n + 1)
            .collect();
        for (i, n) in lines.iter().enumerate() {
            let want = format!(
                "d.toml:{n}: agent[{i}].teams: unknown team \"ghost{}\"",
                i + 1
            );
            assert!(err.contains(&want), "{want}\n{err}");
        }
    }

    #[test]
    fn a_login_is_one_word() {
        let err = load(&with_agents(&[("alice@desk.test", "alice smith")])).unwrap_err();
        assert!(
            err.contains("agent[0].login: \"alice smith\" is not a Unix user name"),
            "{err}"
        );
    }
}
