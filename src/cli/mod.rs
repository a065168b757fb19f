//! The `deskgate` command line: argument parsing, talking to the running
//! daemon (or the store when none runs), and text or JSON output. `main.rs`
//! only calls [`main`]. The one place where `anyhow` is used: every error
//! here ends as a line for a person.
//!
//! May import every layer below; nothing imports `cli`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod board;
mod doctor;
mod dry_run;
mod event_text;
mod export;
mod list_args;
mod logging;
mod recurring;
mod reload;
mod render;
mod report;
mod status;
mod steer;
mod terminal;
mod tickets;
mod times;
mod trust;

use crate::config::Config;
use crate::daemon::control;
use crate::desk::policy::Policy;
use crate::desk::recurring_compare::RecurringComparison;
use crate::engine::clock::SystemClock;
use crate::engine::queries::{self, Answer, Query};
use crate::engine::Engine;
use crate::store::Store;
use tickets::TicketsCommand;

#[derive(Parser)]
#[command(
    name = "deskgate",
    version,
    about = "An email-gateway ticketing daemon"
)]
struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        env = "DESKGATE_CONFIG",
        default_value = "/etc/deskgate/deskgate.toml"
    )]
    config: PathBuf,
    /// Open the store even when it belongs to another user (daemon down):
    /// files the store writes then belong to you, which can lock the daemon's
    /// user out. Without it, only the store's owner may open it.
    #[arg(long, global = true)]
    any_user: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run,
    /// Load and validate the config and templates, then exit.
    CheckConfig,
    /// Show tickets.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Show mail waiting to be sent (pending or failed).
    Outbox {
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<OutboxCommand>,
    },
    /// Mail that could not be processed: list, show, process again.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Routing rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Automatic mail that belonged to no ticket (kept, never answered).
    Ignored {
        #[arg(long)]
        json: bool,
    },
    /// Counts: tickets, outbox, deliveries, quarantine.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// The keys of signed reply addresses.
    Trust {
        #[command(subcommand)]
        command: trust::TrustCommand,
    },
    /// Write a consistent copy of the whole store to FILE (while the daemon
    /// runs, it writes the file; commits wait meanwhile).
    Backup { file: PathBuf },
    /// Restore a backup into an empty state directory (the daemon stopped).
    Restore { file: PathBuf },
    /// Issues that keep coming back: tickets of the period grouped by what
    /// their subject and first mail say (for problem management).
    Recurring {
        /// The period, back from now (e.g. 7d, 30d).
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        last: std::time::Duration,
        /// Smallest group shown.
        #[arg(long, default_value_t = 3)]
        min: usize,
        #[arg(long)]
        json: bool,
    },
    /// Whether the running daemon is healthy: each mailbox, the outbox, the
    /// timers (exit 1 if a mailbox fails, 3 if no daemon runs).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check the config, templates, store, every mailbox and the SMTP server,
    /// one line per check; sends nothing, changes nothing.
    Doctor,
    /// Ask the running daemon to load its config again; fails (non-zero)
    /// with the reasons when the new config is refused.
    Reload,
    /// Write tickets, messages, events and attachments to FILE, one JSON
    /// object a line, for moving to another system (while the daemon runs,
    /// it writes the file; commits wait meanwhile).
    Export {
        /// The format (JSON lines, the only one).
        #[arg(long)]
        jsonl: bool,
        file: PathBuf,
    },
    /// Remove raw mail, delivery logs and dedupe keys older than the ages
    /// of `[retention]` (tickets and their history stay).
    Prune {
        /// Only count what would go.
        #[arg(long)]
        dry_run: bool,
    },
    /// Import a file written by `export --jsonl` into an empty state
    /// directory (the daemon stopped).
    Import {
        /// The format (JSON lines, the only one).
        #[arg(long)]
        jsonl: bool,
        file: PathBuf,
    },
    /// Figures for managers over a period: volume, backlog, response and
    /// resolution times, SLA, escalations, effort.
    Report(report::ReportArgs),
    /// The tickets in hand, in lanes: new, open, follow-up, waiting on the
    /// customer, requires further support, resolved recently.
    Board {
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Dry run: how a mail would be routed and what would be sent, as a new
    /// ticket, without touching the store or the network.
    Test {
        /// The mail, as an .eml file.
        mail: PathBuf,
        /// The mailbox it arrives at (default: the first configured).
        #[arg(long)]
        mailbox: Option<String>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Send a mail held as "delivery uncertain, possibly sent twice" anyway
    /// (after checking it did not reach its recipients).
    Release { id: u64 },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List quarantined mail and why it is there.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one quarantined mail: the reason and the raw mail (control and
    /// bidi characters shown escaped).
    Show {
        id: u64,
        #[arg(long, conflicts_with = "raw")]
        json: bool,
        /// Write the mail's exact bytes to stdout, nothing else (e.g. `> mail.eml`).
        #[arg(long)]
        raw: bool,
    },
    /// Process a quarantined mail again (after a fix); it stays if it still fails.
    Retry { id: u64 },
}

/// Runs the command line; errors are printed in plain words.
pub fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("deskgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    let tm = times::Times::of_config(&cli.config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Run => {
            logging::init();
            let config = Config::load(&cli.config)?;
            rt.block_on(crate::daemon::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trust { command } => {
            trust::run(&rt, &cli.config, cli.any_user, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let config = Config::load(&cli.config)?;
            Policy::from_config(&config)?;
            for w in &config.warnings {
                eprintln!("{}: warning: {w}", cli.config.display());
            }
            println!(
                "{}: ok ({} mailbox(es), templates in {})",
                cli.config.display(),
                config.mailboxes.len(),
                config.desk.templates.display()
            );
            for note in crate::config::trust_notes(&config) {
                println!("{note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tickets { command } => {
            tickets::run(&rt, &cli.config, cli.any_user, &tm, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox {
            command: Some(OutboxCommand::Release { id }),
            ..
        } => {
            match rt.block_on(ask(&cli.config, cli.any_user, Query::OutboxRelease { id }))? {
                Answer::Retried { outcome } => println!("{}", terminal::safe(&outcome)),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox {
            json,
            command: None,
        } => {
            match rt.block_on(ask(&cli.config, cli.any_user, Query::Outbox))? {
                Answer::Outbox { entries } if json => print_json(&entries)?,
                Answer::Outbox { entries } => print!("{}", render::render_outbox(&entries, &tm)),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { json } => {
            match rt.block_on(ask(&cli.config, cli.any_user, Query::Stats))? {
                Answer::Stats { stats } if json => print_json(&stats)?,
                Answer::Stats { stats } => println!(
                    "tickets {}\noutbox pending {}\noutbox failed {}\ndelivered {}\nquarantined {}",
                    stats.tickets,
                    stats.outbox_pending,
                    stats.outbox_failed,
                    stats.delivered,
                    stats.quarantined
                ),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine { command } => {
            match command {
                QuarantineCommand::List { json } => {
                    match rt.block_on(ask(&cli.config, cli.any_user, Query::Quarantine))? {
                        Answer::Quarantine { entries } if json => print_json(&entries)?,
                        Answer::Quarantine { entries } => {
                            print!("{}", render::render_quarantine(&entries, &tm))
                        }
                        other => bail!(unexpected(other)),
                    }
                }
                QuarantineCommand::Show { id, raw: true, .. } => {
                    match rt.block_on(ask(
                        &cli.config,
                        cli.any_user,
                        Query::QuarantineRaw { id },
                    ))? {
                        Answer::RawMail { hex: Some(h) } => {
                            let bytes =
                                hex::decode(h).context("cannot decode the daemon's answer")?;
                            use std::io::Write;
                            let mut out = std::io::stdout().lock();
                            out.write_all(&bytes)
                                .and_then(|()| out.flush())
                                .context("cannot write the mail")?;
                        }
                        Answer::RawMail { hex: None } => bail!("no quarantined mail {id}"),
                        other => bail!(unexpected(other)),
                    }
                }
                QuarantineCommand::Show { id, json, .. } => match rt.block_on(ask(
                    &cli.config,
                    cli.any_user,
                    Query::QuarantineShow { id },
                ))? {
                    Answer::QuarantineItem {
                        entry: Some(e),
                        raw,
                    } if json => print_json(&serde_json::json!({ "entry": e, "raw": raw }))?,
                    Answer::QuarantineItem {
                        entry: Some(e),
                        raw,
                    } => print!(
                        "{}",
                        render::render_quarantine_item(&e, raw.as_deref(), &tm)
                    ),
                    Answer::QuarantineItem { entry: None, .. } => bail!("no quarantined mail {id}"),
                    other => bail!(unexpected(other)),
                },
                QuarantineCommand::Retry { id } => {
                    match rt.block_on(ask(
                        &cli.config,
                        cli.any_user,
                        Query::QuarantineRetry { id },
                    ))? {
                        Answer::Retried { outcome } => println!("{}", terminal::safe(&outcome)),
                        other => bail!(unexpected(other)),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules {
            command: RulesCommand::Test { mail, mailbox },
        } => {
            let config = Config::load(&cli.config)?;
            let raw =
                std::fs::read(&mail).with_context(|| format!("cannot read {}", mail.display()))?;
            let names: Vec<String> = config.mailboxes.iter().map(|m| m.name.clone()).collect();
            let mailbox = match mailbox {
                Some(m) if names.contains(&m) => m,
                Some(m) => bail!("no mailbox named \"{m}\"; configured: {}", names.join(", ")),
                None => names.first().cloned().unwrap_or_else(|| "help".into()),
            };
            print!(
                "{}",
                terminal::safe(&dry_run::dry_run(&config, &raw, &mailbox)?)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { file } => {
            let path = std::path::absolute(&file)
                .with_context(|| format!("cannot resolve {}", file.display()))?;
            match rt.block_on(ask(
                &cli.config,
                cli.any_user,
                Query::Backup { path: path.clone() },
            ))? {
                Answer::BackedUp { summary } => println!(
                    "backed up {} keys ({} bytes) to {}",
                    summary.keys,
                    summary.bytes,
                    path.display()
                ),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload => reload::run(&rt, &cli.config),
        Command::Doctor => doctor::run(&rt, &cli.config),
        Command::Status { json } => status::run(&rt, &cli.config, json, &tm),
        Command::Recurring { last, min, json } => {
            let q = Query::Recurring {
                since_secs: last.as_secs(),
                min,
            };
            match rt.block_on(ask(&cli.config, cli.any_user, q))? {
                a @ Answer::Recurring { .. } if json => print_json(&a)?,
                Answer::Recurring {
                    clusters,
                    gone,
                    since,
                    until,
                    previous_since: _,
                    tickets_read,
                    truncated,
                } => {
                    let compared = RecurringComparison {
                        issues: clusters,
                        gone,
                    };
                    let read = recurring::Read {
                        since,
                        until,
                        tickets_read,
                        truncated,
                    };
                    print!("{}", recurring::render(&compared, &read, &tm))
                }
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { jsonl, file } => {
            export::export(&rt, &cli.config, cli.any_user, jsonl, &file)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Prune { dry_run } => {
            export::prune(&rt, &cli.config, cli.any_user, dry_run)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { jsonl, file } => {
            export::import(&rt, &cli.config, jsonl, &file)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { file } => {
            let at = crate::config::Locations::load(&cli.config)?;
            export::offline_into_empty(&rt, &at, "restoring")?;
            let summary = Store::restore(&at.storage, &file)?;
            println!(
                "restored {} keys from {} into {}",
                summary.keys,
                file.display(),
                at.storage.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let spec = args.spec(&tm, chrono::Utc::now())?;
            match rt.block_on(ask(&cli.config, cli.any_user, Query::Report { spec }))? {
                Answer::Report { report } => match args.output() {
                    report::Output::Json => print_json(&report)?,
                    report::Output::Csv => print!("{}", report::render_csv(&report)?),
                    report::Output::Text => print!("{}", report::render_text(&report, &tm)),
                },
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Board { team, agent, json } => {
            match rt.block_on(ask(&cli.config, cli.any_user, Query::Board { team, agent }))? {
                Answer::Board { board } if json => print_json(&board)?,
                Answer::Board { board } => print!("{}", board::render_board(&board, &tm)),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ignored { json } => {
            match rt.block_on(ask(&cli.config, cli.any_user, Query::Ignored))? {
                Answer::Ignored { entries } if json => print_json(&entries)?,
                Answer::Ignored { entries } => print!("{}", render::render_ignored(&entries, &tm)),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn unexpected(a: Answer) -> String {
    match a {
        Answer::Error { message } => terminal::safe(&message),
        other => format!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Writes to `-o FILE`, stdout for `-`, or the attachment's own (already
/// sanitised) name; an existing file is never overwritten silently.
fn write_attachment(name: &str, bytes: &[u8], output: Option<PathBuf>) -> Result<()> {
    use std::io::Write;
    match output {
        Some(p) if p.as_os_str() == "-" => std::io::stdout().write_all(bytes)?,
        Some(p) => {
            std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => {
            let p = PathBuf::from(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .with_context(|| format!("cannot create {} (use -o FILE)", p.display()))?;
            f.write_all(bytes)?;
            eprintln!("wrote {} ({} bytes)", p.display(), bytes.len());
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Asks the running daemon, or reads the store directly when none runs. Only
/// the direct path needs a valid config: a running daemon is reachable even
/// while the file on disk is mid-edit.
async fn ask(path: &std::path::Path, any_user: bool, q: Query) -> Result<Answer> {
    let at = crate::config::Locations::load(path)?;
    if let Some(a) = control::ask(&at.control_socket, &q).await? {
        return Ok(a);
    }
    let config = Config::load(path)?;
    if !config.desk.storage.exists() {
        bail!(
            "no store at {} yet: has the daemon ever run?",
            config.desk.storage.display()
        );
    }
    if !any_user {
        check_owner(&config.desk.storage)?;
    }
    let policy = Policy::from_config(&config)?;
    // The store is blocking; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let options = crate::daemon::store_options(&config);
        let store = Store::open_with(&config.desk.storage, options)?;
        let engine = Engine::new(store, Arc::new(SystemClock), policy);
        Ok(queries::answer(&engine, &q))
    })
    .await
    .context("cannot read the store")?
}

/// Opening the store writes to it (a format conversion, the reply key), and what it writes
/// belongs to whoever runs the command: root's files in the daemon's state
/// folder would lock the daemon out. So only the store's owner opens it.
fn check_owner(storage: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(storage)
        .with_context(|| format!("cannot read {}", storage.display()))?
        .uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if owner != me {
        bail!(
            "the daemon is not running, and the store {} is owned by uid {owner}, not you (uid {me}): \
             run this as its owner (e.g. sudo -u deskgate), start the daemon, or pass --any-user",
            storage.display()
        );
    }
    Ok(())
}
