//! Everything async and networked: the IMAP session and one task per
//! mailbox, the outbox sender over SMTP, the timers task, live reload, the
//! control socket, and [`run`], which starts them all, supervises them and
//! stops them cleanly on SIGTERM or SIGINT.
//!
//! Reaches the store only through the engine or the store's blocking calls
//! off the async workers. May import `engine`, `desk`, `mail`, `store` and
//! `config`; must not import `cli`.

pub mod backlog;
pub mod control;
pub mod fault;
pub mod imap;
pub mod imap_login;
pub mod mailbox;
pub mod notify;
pub mod oauth2;
pub mod outbox;
pub mod reload;
pub mod status;
pub mod timers;
pub mod tls;

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::daemon::control::{ControlError, ControlServer};
use crate::daemon::mailbox::MailboxTask;
use crate::daemon::notify::{Gauges, Health, Notifier};
use crate::daemon::outbox::{OutboxError, OutboxSender};
use crate::daemon::reload::Reloader;
use crate::daemon::timers::TimerTask;
use crate::desk::policy::Policy;
use crate::desk::templates::TemplateError;
use crate::engine::clock::{Clock, SystemClock};
use crate::engine::Engine;
use crate::store::{Store, StoreError, StoreOptions};

/// How long tasks get to finish the mail in hand after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
    #[error("cannot keep running: the {task} task stopped: {reason}")]
    TaskFailed { task: String, reason: String },
}

/// The long-running tasks, each under a name for the log. Any of them
/// ending before a stop signal is a failure the daemon does not run on
/// with: it stops the rest, flushes and exits non-zero, and the service
/// manager starts it afresh.
#[derive(Default)]
struct Tasks {
    set: JoinSet<Result<(), String>>,
    names: HashMap<Id, String>,
}

/// How a task's end reads to the supervisor: a task that returns nothing
/// only ever ends on shutdown; one that returns a `Result` says why it gave
/// up (a store failure that does not heal, say) in plain words. Either way
/// the supervisor logs it at ERROR and the daemon exits non-zero.
trait TaskEnd: Send + 'static {
    fn into_outcome(self) -> Result<(), String>;
}

impl TaskEnd for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display + Send + 'static> TaskEnd for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

impl Tasks {
    fn spawn<T: TaskEnd>(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = T> + Send + 'static,
    ) {
        let handle = self.set.spawn(async move { task.await.into_outcome() });
        self.names.insert(handle.id(), name.into());
    }

    /// The next task to end, as (name, why) when it was a failure.
    async fn next_end(&mut self) -> Option<(String, Option<String>)> {
        let ended = self.set.join_next_with_id().await?;
        Some(self.describe(ended))
    }

    fn describe(
        &self,
        ended: Result<(Id, Result<(), String>), JoinError>,
    ) -> (String, Option<String>) {
        let (id, why) = match ended {
            Ok((id, Ok(()))) => (id, None),
            Ok((id, Err(e))) => (id, Some(e)),
            Err(e) => {
                let id = e.id();
                let why = if e.is_panic() {
                    format!("it panicked: {}", panic_text(e.into_panic()))
                } else {
                    "it was cancelled".to_string()
                };
                (id, Some(why))
            }
        };
        let name = self
            .names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        (name, why)
    }
}

/// The message a panic carried, when it is text.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "(no message)".into()),
    }
}

/// The store's options from the checked config.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        cache_bytes: config.store.cache_bytes,
    }
}

/// Opens the store, waiting out a CLI that has it open for a moment (the CLI
/// opens it directly when no daemon answers on the control socket). Opening
/// reads and may recover files, so it runs off the async workers.
async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let dir = config.desk.storage.clone();
        let options = store_options(config);
        let opened = tokio::task::spawn_blocking(move || Store::open_with(&dir, options))
            .await
            .map_err(|e| StoreError::Aborted(format!("the store opening task failed: {e}")))?;
        match opened {
            Err(StoreError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                warn!("store is locked by another process; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Builds the engine off the async workers: it reads (and on first start
/// writes) the reply-signing key in the store.
async fn new_engine(
    store: Store,
    clock: Arc<dyn Clock>,
    policy: Policy,
) -> Result<Engine, StoreError> {
    tokio::task::spawn_blocking(move || Engine::new(store, clock, policy))
        .await
        .map_err(|e| StoreError::Aborted(format!("the engine start task failed: {e}")))
}

pub async fn run(config: Config) -> Result<(), DaemonError> {
    for w in &config.warnings {
        warn!("{}: {w}", config.path.display());
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    std::fs::create_dir_all(&config.desk.storage).map_err(|source| DaemonError::StateDir {
        path: config.desk.storage.display().to_string(),
        source,
    })?;
    // A second daemon on this store is refused at once; only a CLI command
    // holding the store for a moment is waited out (open_store).
    let dir = config.desk.storage.clone();
    let _daemon_lock = tokio::task::spawn_blocking(move || Store::lock_for_daemon(&dir))
        .await
        .map_err(|e| StoreError::Aborted(format!("the store locking task failed: {e}")))??;
    let store = open_store(&config).await?;
    let engine =
        Arc::new(new_engine(store.clone(), clock.clone(), Policy::from_config(&config)?).await?);
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(&config.desk.storage).map_err(|source| DaemonError::StateDir {
            path: config.desk.storage.display().to_string(),
            source,
        })?,
    );
    let control = ControlServer::bind(&config.desk.control_socket, owner)?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;

    let shutdown = CancellationToken::new();
    let mut tasks = Tasks::default();
    let wake = Arc::new(Notify::new());
    let backlog = Arc::new(crate::daemon::backlog::Backlog::default());
    let gauges = Arc::new(Gauges::default());
    let names: Vec<String> = config.mailboxes.iter().map(|m| m.name.clone()).collect();
    let status = Arc::new(status::Status::new(&names, clock.now()));

    tasks.spawn(
        "outbox sender",
        OutboxSender {
            store: store.clone(),
            clock: clock.clone(),
            transport: outbox::transport(&config.smtp)?,
            cfg: config.outbox.clone(),
            wake: wake.clone(),
            backlog: backlog.clone(),
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    for m in &config.mailboxes {
        tasks.spawn(
            format!("mailbox {}", m.name),
            MailboxTask {
                cfg: m.clone(),
                engine: engine.clone(),
                outbox_wake: wake.clone(),
                backlog: backlog.clone(),
                gauges: gauges.clone(),
                status: status.clone(),
                shutdown: shutdown.clone(),
            }
            .run(),
        );
    }
    let (reload_asks, reload_requests) = reload::requests();
    tasks.spawn(
        "control socket",
        control.run(
            engine.clone(),
            wake.clone(),
            control::DaemonSide {
                reload: reload_asks,
                status: status.clone(),
                gauges: gauges.clone(),
            },
            shutdown.clone(),
        ),
    );
    tasks.spawn(
        "timers",
        TimerTask {
            engine: engine.clone(),
            wake: wake.clone(),
            status: status.clone(),
            retention: crate::engine::retention::rules_of(&config.retention),
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    tasks.spawn(
        "reload",
        Reloader {
            path: config.path.clone(),
            engine: engine.clone(),
            started_with: config.clone(),
            hangup,
            requests: reload_requests,
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    info!(
        mailboxes = config.mailboxes.len(),
        socket = %config.desk.control_socket.display(),
        "deskgate running"
    );

    let mut notifier = Notifier::from_env();
    let mut watch = HealthWatch::new(
        store.clone(),
        backlog.clone(),
        gauges.clone(),
        config.mailboxes.len(),
    );
    let mut tick = tokio::time::interval(notifier.tick_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failed = loop {
        tokio::select! {
            _ = sigterm.recv() => {
                info!("SIGTERM: finishing the mail in hand and stopping");
                break None;
            }
            _ = sigint.recv() => {
                info!("SIGINT: finishing the mail in hand and stopping");
                break None;
            }
            Some((task, why)) = tasks.next_end() => {
                let reason = why.unwrap_or_else(|| "it ended although nothing asked it to stop".into());
                error!(task = %task, reason = %reason, "a task stopped; stopping the daemon so the service manager restarts it");
                break Some((task, reason));
            }
            // Only while every task is alive: the watchdog ping stops with them.
            _ = tick.tick() => notifier.tick(&watch.health().await),
        }
    };
    notifier.stopping(match &failed {
        Some(_) => "stopping: a task failed",
        None => "stopping",
    });
    shutdown.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some((task, why)) = tasks.next_end().await {
            if let Some(why) = why {
                error!(task = %task, reason = %why, "a task failed while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("tasks did not stop within {SHUTDOWN_GRACE:?}; stopping anyway (nothing is lost: unmarked mail is refetched)");
    }
    if let Err(e) = store.flush().await {
        error!(error = %e, "final flush failed");
        return Err(e.into());
    }
    if let Some((task, reason)) = failed {
        return Err(DaemonError::TaskFailed { task, reason });
    }
    info!("stopped");
    Ok(())
}

/// How often the outbox is counted for the status line (sled counts by
/// walking a tree, so not on every tick).
const COUNT_EVERY: Duration = Duration::from_secs(5);

/// Gathers [`Health`] for the status line; the store is read off the async
/// workers.
struct HealthWatch {
    store: Store,
    backlog: Arc<crate::daemon::backlog::Backlog>,
    gauges: Arc<Gauges>,
    health: Health,
    counted: Option<tokio::time::Instant>,
}

impl HealthWatch {
    fn new(
        store: Store,
        backlog: Arc<crate::daemon::backlog::Backlog>,
        gauges: Arc<Gauges>,
        mailboxes: usize,
    ) -> Self {
        HealthWatch {
            store,
            backlog,
            gauges,
            health: Health {
                mailboxes,
                ..Health::default()
            },
            counted: None,
        }
    }

    async fn health(&mut self) -> Health {
        self.health.connected = self.backlog.connected();
        (self.health.waiting, self.health.skipped) = self.gauges.totals();
        if self.counted.is_none_or(|t| t.elapsed() >= COUNT_EVERY) {
            self.counted = Some(tokio::time::Instant::now());
            let store = self.store.clone();
            if let Ok((pending, failed)) =
                tokio::task::spawn_blocking(move || store.outbox_counts()).await
            {
                self.health.outbox_pending = pending;
                self.health.outbox_failed = failed;
            }
        }
        self.health.clone()
    }
}
