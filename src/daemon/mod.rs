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
pub mod imap;
pub mod mailbox;
pub mod outbox;
pub mod reload;
pub mod timers;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::daemon::control::{ControlError, ControlServer};
use crate::daemon::mailbox::MailboxTask;
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
}

/// The store's options from the checked config.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        cache_bytes: config.store.cache_bytes,
    }
}

/// Opens the store, waiting out a CLI that has it open for a moment (the CLI
/// opens it directly when no daemon answers on the control socket).
async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match Store::open_with(&config.desk.storage, store_options(config)) {
            Err(StoreError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                warn!("store is locked by another process; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

pub async fn run(config: Config) -> Result<(), DaemonError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    std::fs::create_dir_all(&config.desk.storage).map_err(|source| DaemonError::StateDir {
        path: config.desk.storage.display().to_string(),
        source,
    })?;
    let store = open_store(&config).await?;
    let engine = Arc::new(Engine::new(
        store.clone(),
        clock.clone(),
        Policy::from_config(&config)?,
    ));
    let control = ControlServer::bind(&config.desk.control_socket)?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let wake = Arc::new(Notify::new());
    let backlog = Arc::new(crate::daemon::backlog::Backlog::default());

    tracker.spawn(
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
        tracker.spawn(
            MailboxTask {
                cfg: m.clone(),
                engine: engine.clone(),
                outbox_wake: wake.clone(),
                backlog: backlog.clone(),
                shutdown: shutdown.clone(),
            }
            .run(),
        );
    }
    tracker.spawn(control.run(engine.clone(), wake.clone(), shutdown.clone()));
    tracker.spawn(
        TimerTask {
            engine: engine.clone(),
            wake: wake.clone(),
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    tracker.spawn(
        Reloader {
            path: config.path.clone(),
            engine: engine.clone(),
            started_with: config.clone(),
            hangup,
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    tracker.close();
    info!(
        mailboxes = config.mailboxes.len(),
        socket = %config.desk.control_socket.display(),
        "deskgate running"
    );

    tokio::select! {
        _ = sigterm.recv() => info!("SIGTERM: finishing the mail in hand and stopping"),
        _ = sigint.recv() => info!("SIGINT: finishing the mail in hand and stopping"),
    }
    shutdown.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("tasks did not stop within {SHUTDOWN_GRACE:?}; stopping anyway (nothing is lost: unmarked mail is refetched)");
    }
    if let Err(e) = store.flush().await {
        error!(error = %e, "final flush failed");
        return Err(e.into());
    }
    info!("stopped");
    Ok(())
}
