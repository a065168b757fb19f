//! `deskgate recurring`: the issues that keep coming back, as text.

use chrono::{DateTime, Utc};

use crate::cli::terminal::safe;
use crate::desk::recurring::Cluster;

pub fn render(
    clusters: &[Cluster],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
) -> String {
    safe(&crate::desk::report_text::recurring(
        clusters,
        since,
        until,
        tickets_read,
        truncated,
    ))
}
