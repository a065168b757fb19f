//! Times and durations as people read them: instants in the desk's time zone
//! (`[desk] timezone`), durations as `2h 10m`. `--json` keeps RFC 3339 UTC;
//! only text goes through here.

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// How the command line shows time.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub tz: Tz,
}

impl Times {
    /// The desk's time zone, read from the config file the way the control
    /// socket's place is (no secrets needed, so any user may run it). A file
    /// that cannot be read gives UTC: the command then says what is wrong
    /// with it when it needs the file.
    pub fn of_config(path: &std::path::Path) -> Result<Times> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(Times { tz: chrono_tz::UTC });
        };
        let Ok(value) = toml::from_str::<toml::Table>(&text) else {
            return Ok(Times { tz: chrono_tz::UTC });
        };
        let name = value
            .get("desk")
            .and_then(|d| d.get("timezone"))
            .and_then(|v| v.as_str());
        match name.map(str::parse::<Tz>) {
            None => Ok(Times { tz: chrono_tz::UTC }),
            Some(Ok(tz)) => Ok(Times { tz }),
            Some(Err(_)) => bail!(
                "{}: desk.timezone \"{}\" is not a time zone name (such as \"Europe/Berlin\")",
                path.display(),
                name.unwrap_or_default()
            ),
        }
    }

    /// An instant, to the minute, in the desk's zone with its abbreviation.
    pub fn at(&self, t: &DateTime<Utc>) -> String {
        t.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The age of something that began at `t`, at `now`.
    pub fn age(&self, t: DateTime<Utc>, now: DateTime<Utc>) -> String {
        duration_secs((now - t).num_seconds())
    }
}

pub use crate::desk::report_text::{duration_secs, minutes};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration_secs(2 * 3600 + 10 * 60 + 5), "2h 10m");
        assert_eq!(duration_secs(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(duration_secs(86_400), "1d");
        assert_eq!(duration_secs(3600), "1h");
        assert_eq!(duration_secs(45 * 60), "45m");
        assert_eq!(duration_secs(30), "30s");
        assert_eq!(duration_secs(-90 * 60), "-1h 30m");
        assert_eq!(minutes(130), "2h 10m");
    }

    #[test]
    fn instants_show_in_the_desk_zone() {
        let t = DateTime::parse_from_rfc3339("2026-11-02T08:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let berlin = Times {
            tz: "Europe/Berlin".parse().unwrap(),
        };
        assert_eq!(berlin.at(&t), "2026-11-02 09:30 CET");
        assert_eq!(Times { tz: chrono_tz::UTC }.at(&t), "2026-11-02 08:30 UTC");
    }
}
