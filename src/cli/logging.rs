//! Log output: tracing to stderr, plain text off a terminal, and under
//! systemd each line carries its syslog priority (`<3>` for errors …), so
//! `journalctl -p err -u deskgate` finds a refused reload or a failed login.
//! journald reads such prefixes on a service's stdout/stderr by default
//! (`SyslogLevelPrefix=yes`); a multi-line message gets the prefix on every
//! line, so its continuation lines are not filed as notices.

use std::io::{self, IsTerminal, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Crates whose logging shows what goes over the wire, passwords included
/// (async-imap traces every command, `LOGIN` among them): their `log`
/// records are dropped at any level, so no `DESKGATE_LOG` setting can write
/// a secret to the journal.
const WIRE_LOGGERS: &[&str] = &["async_imap"];

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DESKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    // Colour only on a terminal: journald and log files get plain text.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!journal && io::stderr().is_terminal())
        .with_writer(Stderr { journal })
        .finish();
    // Not `init()`: that installs a `log` bridge of its own, which would let
    // the wire loggers through.
    let _ = tracing::subscriber::set_global_default(subscriber);
    let _ = tracing_log::LogTracer::builder()
        .ignore_all(WIRE_LOGGERS.iter().copied())
        .init();
}

/// systemd sets `JOURNAL_STREAM=DEVICE:INODE` for a service whose output
/// goes to the journal; it counts only if stderr is still that stream (a
/// child whose stderr was redirected inherits the variable).
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2")
        .map(|m| m.dev() == dev && m.ino() == ino)
        .unwrap_or(false)
}

/// The syslog priority journald files a line under.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Prefixes every line of `text` with `<priority>`.
pub fn with_priority(priority: u8, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    for line in text.split_inclusive(|&b| b == b'\n') {
        let _ = write!(out, "<{priority}>");
        out.extend_from_slice(line);
    }
    out
}

struct Stderr {
    journal: bool,
}

/// One event's output, written in one go when the formatter is done with it.
pub struct EventWriter {
    priority: Option<u8>,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let bytes = match self.priority {
            Some(p) => with_priority(p, &self.buf),
            None => std::mem::take(&mut self.buf),
        };
        let _ = io::stderr().lock().write_all(&bytes);
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            priority: self.journal.then_some(6),
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        EventWriter {
            priority: self.journal.then(|| priority(meta.level())),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_a_message_carries_its_priority() {
        let out = with_priority(3, b"CONFIG RELOAD FAILED:\n  line 3: bad regex\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<3>CONFIG RELOAD FAILED:\n<3>  line 3: bad regex\n"
        );
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn journal_stream_counts_only_for_our_own_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:2")));
    }
}
