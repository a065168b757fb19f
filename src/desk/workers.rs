//! Who works a ticket: one answer for every mail that must reach the people
//! on it (notifications, SLA notices, comments, forgery warnings,
//! escalations), so they cannot drift apart.

use crate::desk::policy::Policy;
use crate::mail::address::{EmailAddress, Party};
use crate::store::records::Ticket;

/// An agent's address with the name the admin gave them.
pub fn party(policy: &Policy, address: &EmailAddress) -> Party {
    Party {
        name: policy.agent(address).and_then(|a| a.name.clone()),
        address: address.clone(),
    }
}

/// Whoever works the ticket: its assignee (when a configured agent), or else
/// every member of its team. The requester is left out: nobody needs a
/// notice about their own mail.
pub fn workers(policy: &Policy, ticket: &Ticket) -> Vec<Party> {
    let agents: Vec<&EmailAddress> = match (&ticket.assignee, &ticket.team) {
        (Some(a), _) => policy.agent_address(a).into_iter().collect(),
        (None, Some(team)) => policy
            .team(team)
            .map(|t| t.members.iter().collect())
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    agents
        .into_iter()
        .filter(|a| **a != ticket.requester.address)
        .map(|a| party(policy, a))
        .collect()
}

/// Every member of the ticket's team, assigned or not, less `except`: who
/// hears of what happens inside the team (comments, a forgery in a
/// colleague's name).
pub fn team_members(policy: &Policy, ticket: &Ticket, except: Option<&EmailAddress>) -> Vec<Party> {
    let team = ticket.team.as_deref().and_then(|t| policy.team(t));
    team.map(|t| t.members.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|a| Some(*a) != except)
        .map(|a| party(policy, a))
        .collect()
}
