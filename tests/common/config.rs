//! The one builder for the deskgate config text tests write: start from the
//! smallest valid config and chain overrides.
//!
//! Shared by every `tests/*.rs` crate and the benchmark (through
//! `tests/common/mod.rs`) and by the library's unit tests (with `#[path]`), so
//! it depends on nothing but `std`.
//!
//! Values are TOML as written: `"\"seen\""`, `"500"`, `"true"`, `"[\"it\"]"`
//! ([`toml_str`] quotes a string). The placeholders `{imap}`, `{smtp}` and
//! `{templates}` stay in the text until [`fill`] replaces them.
//!
//! The layout is stable, because config tests assert line numbers: the text
//! starts with a blank line and every table is preceded by one; a key set
//! again keeps its line; a new key goes at the end of its table.

#![allow(dead_code)]

use std::path::Path;

/// A deskgate config under construction; [`TestConfig::render`] gives the text.
#[derive(Clone, Debug)]
pub struct TestConfig {
    tables: Vec<Table>,
}

#[derive(Clone, Debug)]
struct Table {
    /// `[desk]`, `[[mailbox]]`, …; empty for raw text added by [`TestConfig::table`].
    header: String,
    lines: Vec<String>,
}

impl Table {
    fn new(header: &str, lines: &[&str]) -> Table {
        Table {
            header: header.to_string(),
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key} = {value}");
        let at = self
            .lines
            .iter()
            .position(|l| l.split_once('=').map(|(k, _)| k.trim()) == Some(key));
        match at {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
    }
}

/// The tables every config has, in the order they are written.
const CORE: &[&str] = &["[desk]", "[[mailbox]]", "[smtp]", "[outbox]"];

fn mailbox_table(user: &str) -> Table {
    let mut t = Table::new(
        "[[mailbox]]",
        &["host = \"127.0.0.1\"", "port = {imap}", "tls = \"none\""],
    );
    t.set("user", &toml_str(user));
    t.set("password_file", "\"imap-password\"");
    t
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig::new()
    }
}

impl TestConfig {
    /// The smallest valid config: the desk `help@desk.test`, one plain-text
    /// mailbox on the test IMAP server (password in `imap-password`), and the
    /// test SMTP server.
    pub fn new() -> TestConfig {
        TestConfig {
            tables: vec![
                Table::new(
                    "[desk]",
                    &[
                        "address = \"help@desk.test\"",
                        "storage = \"state\"",
                        "templates = \"{templates}\"",
                    ],
                ),
                mailbox_table("help@desk.test"),
                Table::new(
                    "[smtp]",
                    &["host = \"127.0.0.1\"", "port = {smtp}", "tls = \"none\""],
                ),
            ],
        }
    }

    /// Sets `key` in `[desk]`.
    pub fn desk(self, key: &str, value: &str) -> TestConfig {
        self.set("[desk]", key, value)
    }

    /// Sets `key` in the last `[[mailbox]]`.
    pub fn mailbox(self, key: &str, value: &str) -> TestConfig {
        self.set("[[mailbox]]", key, value)
    }

    /// Adds a `[[mailbox]]` as [`TestConfig::new`] writes one, logging in as
    /// `user`; [`TestConfig::mailbox`] then sets keys on it.
    pub fn add_mailbox(mut self, user: &str) -> TestConfig {
        let at = self.after_last(&["[[mailbox]]"]);
        self.tables.insert(at, mailbox_table(user));
        self
    }

    /// Sets `key` in `[smtp]`.
    pub fn smtp(self, key: &str, value: &str) -> TestConfig {
        self.set("[smtp]", key, value)
    }

    /// Sets `key` in `[outbox]` (added after `[smtp]` when missing).
    pub fn outbox(self, key: &str, value: &str) -> TestConfig {
        self.set("[outbox]", key, value)
    }

    /// Adds an `[[agent]]`; no `name` line without a name, no `teams` line
    /// without teams.
    pub fn agent(mut self, address: &str, name: Option<&str>, teams: &[&str]) -> TestConfig {
        let mut t = Table::new("[[agent]]", &[]);
        t.set("address", &toml_str(address));
        if let Some(name) = name {
            t.set("name", &toml_str(name));
        }
        if !teams.is_empty() {
            let teams: Vec<String> = teams.iter().map(|t| toml_str(t)).collect();
            t.set("teams", &format!("[{}]", teams.join(", ")));
        }
        self.tables.push(t);
        self
    }

    /// Adds a `[[team]]` called `name`, followed by the `key = value` lines of
    /// `extra` (e.g. `tier = "L1"`).
    pub fn team(mut self, name: &str, extra: &str) -> TestConfig {
        let mut t = Table::new("[[team]]", &[]);
        t.set("name", &toml_str(name));
        t.lines.extend(
            extra
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
        self.tables.push(t);
        self
    }

    /// Two tiers for escalation tests: agent `alice@desk.test` in L1 team
    /// `it`, which escalates to L2 team `it-l2` (agent `bob@desk.test`, lead
    /// `lead@desk.test`).
    pub fn escalation_tiers(self) -> TestConfig {
        self.agent("alice@desk.test", None, &["it"])
            .agent("bob@desk.test", None, &["it-l2"])
            .team("it", "tier = \"L1\"\nescalates_to = \"it-l2\"")
            .team("it-l2", "tier = \"L2\"\nlead = \"lead@desk.test\"")
    }

    /// Appends raw TOML (one or more tables, such as `[timers]` or rules) as
    /// written, minus leading and trailing blank lines; blank text adds
    /// nothing.
    pub fn table(mut self, raw: &str) -> TestConfig {
        let raw = raw.trim_matches(|c| c == '\n' || c == '\r');
        if !raw.trim().is_empty() {
            self.tables.push(Table {
                header: String::new(),
                lines: raw.lines().map(str::to_string).collect(),
            });
        }
        self
    }

    /// The config text, placeholders left in.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push('\n');
            if !t.header.is_empty() {
                out.push_str(&t.header);
                out.push('\n');
            }
            for l in &t.lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The config text with the placeholders replaced (see [`fill`]).
    pub fn render_with(&self, imap: u16, smtp: u16, templates: &Path) -> String {
        fill(&self.render(), imap, smtp, templates)
    }

    fn set(mut self, header: &str, key: &str, value: &str) -> TestConfig {
        let at = match self.tables.iter().rposition(|t| t.header == header) {
            Some(i) => i,
            None => {
                let at = self.after_last(CORE);
                self.tables.insert(at, Table::new(header, &[]));
                at
            }
        };
        self.tables[at].set(key, value);
        self
    }

    /// The index just after the last table with one of `headers`.
    fn after_last(&self, headers: &[&str]) -> usize {
        self.tables
            .iter()
            .rposition(|t| headers.contains(&t.header.as_str()))
            .map_or(0, |i| i + 1)
    }
}

/// A TOML basic string holding `s`.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Replaces the placeholders in config text: `{imap}` and `{smtp}` by the
/// ports, `{templates}` by the folder (written as is).
pub fn fill(text: &str, imap: u16, smtp: u16, templates: &Path) -> String {
    text.replace("{imap}", &imap.to_string())
        .replace("{smtp}", &smtp.to_string())
        .replace("{templates}", &templates.display().to_string())
}
