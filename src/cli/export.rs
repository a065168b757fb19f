//! `export`, `import` and `prune`: moving a desk to another system, and
//! removing what `[retention]` lets go.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{ask, unexpected};
use crate::config::Config;
use crate::daemon::control;
use crate::engine::queries::{Answer, Query};
use crate::store::Store;

pub(super) fn export(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    any_user: bool,
    jsonl: bool,
    file: &Path,
) -> Result<()> {
    if !jsonl {
        bail!("say the format: export --jsonl FILE (JSON lines, the only one)");
    }
    let path =
        std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    match rt.block_on(ask(config, any_user, Query::Export { path: path.clone() }))? {
        Answer::Exported { summary: s } => println!(
            "exported {} tickets, {} messages, {} events and {} attachments to {}",
            s.tickets,
            s.messages,
            s.events,
            s.attachments,
            path.display()
        ),
        other => bail!(unexpected(other)),
    }
    Ok(())
}

pub(super) fn import(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    jsonl: bool,
    file: &Path,
) -> Result<()> {
    if !jsonl {
        bail!("say the format: import --jsonl FILE (JSON lines, the only one)");
    }
    let at = crate::config::Locations::load(config)?;
    offline_into_empty(rt, &at, "importing")?;
    let s = Store::import(&at.storage, file)?;
    println!(
        "imported {} tickets, {} messages, {} events and {} attachments from {} into {}",
        s.tickets,
        s.messages,
        s.events,
        s.attachments,
        file.display(),
        at.storage.display()
    );
    Ok(())
}

pub(super) fn prune(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    any_user: bool,
    dry_run: bool,
) -> Result<()> {
    let loaded = Config::load(config)?;
    let rules = crate::engine::retention::rules_of(&loaded.retention);
    if rules.is_off() {
        println!("nothing to prune: [retention] sets no age (everything is kept)");
        return Ok(());
    }
    match rt.block_on(ask(config, any_user, Query::Prune { rules, dry_run }))? {
        Answer::Pruned { summary: s } => println!(
            "{} {} raw mail(s) ({}), {} delivery log(s), {} dedupe key(s)",
            if dry_run { "would remove" } else { "removed" },
            s.raw_mails,
            bytesize::ByteSize(s.raw_bytes),
            s.delivery_logs,
            s.dedupe_keys
        ),
        other => bail!(unexpected(other)),
    }
    Ok(())
}

/// A restore or an import writes a new store: the daemon must be stopped
/// and the state directory empty.
pub(super) fn offline_into_empty(
    rt: &tokio::runtime::Runtime,
    at: &crate::config::Locations,
    doing: &str,
) -> Result<()> {
    if rt
        .block_on(control::ask(&at.control_socket, &Query::Stats))?
        .is_some()
    {
        bail!("the daemon is running on this store: stop it before {doing}");
    }
    let holds_files = std::fs::read_dir(&at.storage)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name() != "control.sock")
        })
        .unwrap_or(false);
    if holds_files {
        bail!(
            "{} is not empty: {doing} goes only into an empty state directory (move the old one aside first)",
            at.storage.display()
        );
    }
    Ok(())
}
