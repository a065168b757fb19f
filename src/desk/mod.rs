//! The help desk's rules, each applied inside a store transaction that the
//! engine opened: how a mail finds its ticket, routing, the requester's and
//! the agent's paths (commands, trust), delivery reports, automatic mail and
//! its loop guards, queues (help addresses of their own), templates, SLAs,
//! calendars, escalation and the timed lifecycle; reports by mail (`digest`:
//! schedules and `[[digest]]` mails; `report_mail`: `help+report@`;
//! `report_period` and `report_text`: the period's words and the report's
//! tables and CSV, shared with the command line; `recurring_compare`: the
//! recurring issues against the period before, for both).
//!
//! Never opens a transaction, never touches the network or a clock (the time
//! comes in as a value). May import `mail`, `store` and `config`; must not
//! import `engine`, `daemon` or `cli`.

pub mod agent;
pub mod agent_tell;
pub mod audit;
pub mod automail;
pub mod board;
pub mod bounces;
pub mod calendar;
pub mod commands;
pub mod digest;
pub mod dispatch;
pub mod escalation;
pub mod forgery;
pub mod help;
pub mod lifecycle;
pub mod next;
pub mod next_mail;
pub mod notify_files;
pub mod outcome;
pub mod policy;
pub mod prepare;
pub mod proof;
pub mod quarantine;
pub mod queue;
pub mod queue_def;
pub mod recurring;
pub mod recurring_compare;
pub mod report;
pub mod report_mail;
pub mod report_period;
pub mod report_text;
pub mod requester;
pub mod routing;
pub mod sla;
pub mod steer;
pub mod templates;
pub mod threading;
pub mod ticket_commands;
pub mod trust;
pub mod workers;
