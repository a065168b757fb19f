//! The `deskgate` command: the daemon and the admin CLI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use deskgate::clock::SystemClock;
use deskgate::config::Config;
use deskgate::control;
use deskgate::engine::{Engine, Policy};
use deskgate::model::Status;
use deskgate::queries::{self, Answer, Query};
use deskgate::store::Store;

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
    },
    /// Mail that could not be processed: list, show, process again.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
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
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List quarantined mail and why it is there.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one quarantined mail: the reason and the raw mail.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Process a quarantined mail again (after a fix); it stays if it still fails.
    Retry { id: u64 },
}

#[derive(Subcommand)]
enum TicketsCommand {
    /// List tickets.
    List {
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with its whole history.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DESKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Run => {
            init_logging();
            let config = Config::load(&cli.config)?;
            rt.block_on(deskgate::daemon::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let config = Config::load(&cli.config)?;
            Policy::from_config(&config)?;
            println!(
                "{}: ok ({} mailbox(es), templates in {})",
                cli.config.display(),
                config.mailboxes.len(),
                config.desk.templates.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Tickets { command } => {
            let config = Config::load(&cli.config)?;
            match command {
                TicketsCommand::List { status, json } => {
                    match rt.block_on(ask(&config, Query::ListTickets { status }))? {
                        Answer::Tickets { tickets } if json => print_json(&tickets)?,
                        Answer::Tickets { tickets } => {
                            print!("{}", queries::render_ticket_list(&tickets))
                        }
                        other => bail!(unexpected(other)),
                    }
                }
                TicketsCommand::Show { id, json } => match rt
                    .block_on(ask(&config, Query::ShowTicket { id }))?
                {
                    Answer::Ticket { view: Some(v) } if json => print_json(&v)?,
                    Answer::Ticket { view: Some(v) } => print!("{}", queries::render_ticket(&v)),
                    Answer::Ticket { view: None } => bail!("no ticket {id}"),
                    other => bail!(unexpected(other)),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox { json } => {
            let config = Config::load(&cli.config)?;
            match rt.block_on(ask(&config, Query::Outbox))? {
                Answer::Outbox { entries } if json => print_json(&entries)?,
                Answer::Outbox { entries } => print!("{}", queries::render_outbox(&entries)),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { json } => {
            let config = Config::load(&cli.config)?;
            match rt.block_on(ask(&config, Query::Stats))? {
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
            let config = Config::load(&cli.config)?;
            match command {
                QuarantineCommand::List { json } => {
                    match rt.block_on(ask(&config, Query::Quarantine))? {
                        Answer::Quarantine { entries } if json => print_json(&entries)?,
                        Answer::Quarantine { entries } => {
                            print!("{}", queries::render_quarantine(&entries))
                        }
                        other => bail!(unexpected(other)),
                    }
                }
                QuarantineCommand::Show { id, json } => match rt
                    .block_on(ask(&config, Query::QuarantineShow { id }))?
                {
                    Answer::QuarantineItem {
                        entry: Some(e),
                        raw,
                    } if json => print_json(&serde_json::json!({ "entry": e, "raw": raw }))?,
                    Answer::QuarantineItem {
                        entry: Some(e),
                        raw,
                    } => {
                        println!("Quarantined mail {}: {}", e.id, e.reason);
                        println!("  mailbox {}, {} bytes, at {}\n", e.mailbox, e.size, e.at);
                        println!("{}", raw.unwrap_or_else(|| "(raw bytes missing)".into()));
                    }
                    Answer::QuarantineItem { entry: None, .. } => bail!("no quarantined mail {id}"),
                    other => bail!(unexpected(other)),
                },
                QuarantineCommand::Retry { id } => {
                    match rt.block_on(ask(&config, Query::QuarantineRetry { id }))? {
                        Answer::Retried { outcome } => println!("{outcome}"),
                        other => bail!(unexpected(other)),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ignored { json } => {
            let config = Config::load(&cli.config)?;
            match rt.block_on(ask(&config, Query::Ignored))? {
                Answer::Ignored { entries } if json => print_json(&entries)?,
                Answer::Ignored { entries } => print!("{}", queries::render_ignored(&entries)),
                other => bail!(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn unexpected(a: Answer) -> String {
    match a {
        Answer::Error { message } => message,
        other => format!("unexpected answer from the daemon: {other:?}"),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Asks the running daemon, or reads the store directly when none runs.
async fn ask(config: &Config, q: Query) -> Result<Answer> {
    if let Some(a) = control::ask(&config.desk.control_socket, &q).await? {
        return Ok(a);
    }
    if !config.desk.storage.exists() {
        bail!(
            "no store at {} yet: has the daemon ever run?",
            config.desk.storage.display()
        );
    }
    let store = Store::open(&config.desk.storage)?;
    let engine = Engine::new(store, Arc::new(SystemClock), Policy::from_config(config)?);
    Ok(queries::answer(&engine, &q))
}
