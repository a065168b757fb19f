//! Live reload: on SIGHUP, on `deskgate reload` (over the control socket,
//! which waits for the verdict), or when the config file or a template
//! changes on disk, load and validate everything again and swap the engine's
//! policy in one step. A broken edit keeps the last good config running and
//! says why, at ERROR, and to the `deskgate reload` that asked.
//!
//! The swap is atomic for mail: each batch takes the policy once, so a mail is
//! routed wholly by the old or wholly by the new rules. Mailbox and SMTP
//! settings are read at start-up only; a change to them is reported as needing
//! a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::desk::policy::Policy;
use crate::engine::Engine;

/// How often the files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The verdict on a reload asked for over the control socket.
pub type ReloadVerdict = Result<ReloadReport, String>;

/// A `deskgate reload` waiting for its verdict.
pub type ReloadRequest = oneshot::Sender<ReloadVerdict>;

/// What an applied reload has to tell the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub warnings: Vec<String>,
    /// Changed sections that take effect only after a restart.
    pub restart: Vec<String>,
}

/// Reload requests are rare; a few may wait while one is being handled.
pub fn requests() -> (mpsc::Sender<ReloadRequest>, mpsc::Receiver<ReloadRequest>) {
    mpsc::channel(4)
}

pub struct Reloader {
    pub path: PathBuf,
    pub engine: Arc<Engine>,
    /// The config the daemon started with (for "needs a restart" warnings).
    pub started_with: Config,
    pub hangup: Signal,
    /// `deskgate reload` over the control socket.
    pub requests: mpsc::Receiver<ReloadRequest>,
    pub shutdown: CancellationToken,
}

/// (file, modified, size) of the config file and every template (the
/// desk's folder and each queue's own): a change in any of them triggers a
/// reload.
fn fingerprint(config: &Path, templates: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut files = vec![config.to_path_buf()];
    for folder in templates {
        if let Ok(dir) = std::fs::read_dir(folder) {
            let mut t: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            t.sort();
            files.extend(t);
        }
    }
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let size = meta.map(|m| m.len()).unwrap_or(0);
            (f, modified, size)
        })
        .collect()
}

/// The folders whose templates the desk renders from.
fn template_folders(config: &Config) -> Vec<PathBuf> {
    std::iter::once(config.desk.templates.clone())
        .chain(config.queues.iter().filter_map(|q| q.templates.clone()))
        .collect()
}

impl Reloader {
    pub async fn run(mut self) {
        let mut templates = template_folders(&self.started_with);
        let mut seen = fingerprint(&self.path, &templates);
        loop {
            let mut asker = None;
            let why = tokio::select! {
                _ = self.hangup.recv() => "SIGHUP",
                Some(reply) = self.requests.recv() => {
                    asker = Some(reply);
                    "deskgate reload"
                }
                _ = tokio::time::sleep(WATCH_INTERVAL) => {
                    let now = fingerprint(&self.path, &templates);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "the config or a template changed on disk"
                }
                _ = self.shutdown.cancelled() => return,
            };
            let verdict = match self.reload(why).await {
                Ok((t, report)) => {
                    templates = t;
                    seen = fingerprint(&self.path, &templates);
                    Ok(report)
                }
                Err(e) => Err(e),
            };
            if let Some(reply) = asker {
                // The asker may have given up waiting; the log has the verdict.
                let _ = reply.send(verdict);
            }
        }
    }

    /// Returns the template folders of the new config when it was applied.
    /// Reading and compiling the files blocks, so it runs off the async workers.
    async fn reload(&self, why: &str) -> Result<(Vec<PathBuf>, ReloadReport), String> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            Config::load(&path)
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    let p = Policy::from_config(&c).map_err(|e| e.to_string())?;
                    Ok((c, p))
                })
        })
        .await
        .unwrap_or_else(|_| Err("the reload worker panicked".into()));
        match loaded {
            Ok((config, policy)) => {
                self.engine.set_policy(policy);
                info!(
                    trigger = why,
                    rules = config.rules.len(),
                    teams = config.teams.len(),
                    agents = config.agents.len(),
                    "config reloaded"
                );
                let restart = self.warn_restart_needed(&config);
                let warnings: Vec<String> = config
                    .warnings
                    .iter()
                    .map(|w| format!("{}: {w}", config.path.display()))
                    .collect();
                for w in &warnings {
                    warn!("{w}");
                }
                Ok((
                    template_folders(&config),
                    ReloadReport { warnings, restart },
                ))
            }
            Err(e) => {
                error!(
                    trigger = why,
                    "CONFIG RELOAD FAILED, still running with the last good config:\n{e}"
                );
                Err(e)
            }
        }
    }

    /// Names the changed sections that need a restart (and warns about them).
    fn warn_restart_needed(&self, new: &Config) -> Vec<String> {
        let old = &self.started_with;
        let mailboxes = |c: &Config| format!("{:?}", c.mailboxes);
        let mut changed = Vec::new();
        if mailboxes(old) != mailboxes(new) {
            changed.push("[[mailbox]]");
        }
        if format!("{:?}", old.smtp) != format!("{:?}", new.smtp) {
            changed.push("[smtp]");
        }
        if format!("{:?}", old.outbox) != format!("{:?}", new.outbox) {
            changed.push("[outbox]");
        }
        if old.desk.storage != new.desk.storage
            || old.desk.control_socket != new.desk.control_socket
        {
            changed.push("desk.storage/control_socket");
        }
        if !changed.is_empty() {
            warn!(
                sections = %changed.join(", "),
                "these settings changed but take effect only after a restart; routing, teams, agents, limits and templates are live"
            );
        }
        changed.into_iter().map(String::from).collect()
    }
}
