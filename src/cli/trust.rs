//! `deskgate trust …`: the reply-address keys. Works with the daemon running
//! (through its control socket, effective for the next mail) and stopped
//! (the store opened directly).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::engine::queries::{Answer, KeyEpoch, Query};

#[derive(Subcommand)]
pub(super) enum TrustCommand {
    /// Make a new key for signed reply addresses. Addresses signed by the
    /// previous key keep working for the grace period, then prove nothing.
    RotateKey {
        /// How long the previous key keeps verifying (default: [trust]
        /// key_rotation_grace, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    any_user: bool,
    command: TrustCommand,
) -> Result<()> {
    match command {
        TrustCommand::RotateKey { grace, json } => {
            let q = Query::RotateReplyKey {
                grace_secs: grace.map(|g| g.as_secs()),
            };
            match rt.block_on(super::ask(config, any_user, q))? {
                Answer::KeyRotated { keys } if json => super::print_json(&keys)?,
                Answer::KeyRotated { keys } => print!("{}", render(&keys)),
                other => bail!(super::unexpected(other)),
            }
        }
    }
    Ok(())
}

fn render(keys: &[KeyEpoch]) -> String {
    let mut out = String::new();
    for k in keys {
        match k.valid_until {
            None => out.push_str(&format!(
                "key {}: current, signs new reply addresses\n",
                k.epoch
            )),
            Some(until) => out.push_str(&format!(
                "key {}: retired, its reply addresses prove the agent until {}\n",
                k.epoch,
                until.format("%Y-%m-%d %H:%M UTC")
            )),
        }
    }
    out
}
