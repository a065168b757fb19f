//! `deskgate reload`: asks the running daemon to load its config again and
//! reports its verdict, so `systemctl reload` (the unit's `ExecReload`) fails
//! visibly on a broken edit instead of leaving it to the log.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::config::Locations;
use crate::daemon::control;
use crate::engine::queries::{Answer, Query};

pub fn run(rt: &tokio::runtime::Runtime, config: &Path) -> Result<ExitCode> {
    let at = Locations::load(config)?;
    match rt.block_on(control::ask(&at.control_socket, &Query::Reload))? {
        None => bail!(
            "no daemon answers on {}: nothing to reload (start it with `deskgate run`)",
            at.control_socket.display()
        ),
        Some(Answer::Reloaded { warnings, restart }) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if !restart.is_empty() {
                eprintln!(
                    "note: {} changed and take effect only after a restart",
                    restart.join(", ")
                );
            }
            println!("config reloaded");
            Ok(ExitCode::SUCCESS)
        }
        Some(Answer::Error { message }) => {
            eprintln!("deskgate: {message}");
            Ok(ExitCode::FAILURE)
        }
        Some(_) => bail!("the daemon gave an unexpected answer to reload"),
    }
}
