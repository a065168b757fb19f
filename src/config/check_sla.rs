//! Checking calendars and SLA policies.

use super::check::Validator;
use super::raw::{RawCalendar, RawSla, RawTargets};

impl Validator {
    pub(super) fn check_slas(
        &mut self,
        raw_calendars: Vec<RawCalendar>,
        raw_slas: Vec<RawSla>,
    ) -> Vec<super::sla::SlaPolicy> {
        use super::calendar::{parse_windows, BusinessHours, Calendar};
        let mut calendars: Vec<(String, Calendar)> = Vec::new();
        for (i, c) in raw_calendars.into_iter().enumerate() {
            let key = format!("calendar[{i}]");
            let tz = match c.timezone.parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    self.problem(
                        format!("{key}.timezone"),
                        format!(
                            "unknown time zone \"{}\" (e.g. \"Europe/Berlin\")",
                            c.timezone
                        ),
                    );
                    continue;
                }
            };
            let mut week: [Vec<(chrono::NaiveTime, chrono::NaiveTime)>; 7] = Default::default();
            let days = [
                &c.monday,
                &c.tuesday,
                &c.wednesday,
                &c.thursday,
                &c.friday,
                &c.saturday,
                &c.sunday,
            ];
            let names = [
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ];
            for (d, (spec, name)) in days.iter().zip(names).enumerate() {
                let spec = spec
                    .as_deref()
                    .or(if d < 5 { c.weekdays.as_deref() } else { None });
                if let Some(spec) = spec {
                    match parse_windows(spec) {
                        Ok(w) => week[d] = w,
                        Err(e) => self.problem(format!("{key}.{name}"), e),
                    }
                }
            }
            if week.iter().all(|w| w.is_empty()) {
                self.problem(
                    format!("{key}.weekdays"),
                    "the calendar has no working hours at all",
                );
            }
            let mut holidays = std::collections::BTreeSet::new();
            for h in &c.holidays {
                match h.parse::<chrono::NaiveDate>() {
                    Ok(d) => {
                        holidays.insert(d);
                    }
                    Err(_) => self.problem(
                        format!("{key}.holidays"),
                        format!("\"{h}\" is not a date (YYYY-MM-DD)"),
                    ),
                }
            }
            calendars.push((
                c.name,
                Calendar::Business(Box::new(BusinessHours::new(tz, week, holidays))),
            ));
        }
        let mut slas = Vec::new();
        for (i, r) in raw_slas.into_iter().enumerate() {
            let key = format!("sla[{i}]");
            let calendar = match r.calendar.as_deref() {
                None | Some("24x7") => Calendar::Always,
                Some(name) => match calendars.iter().find(|(n, _)| n == name) {
                    Some((_, c)) => c.clone(),
                    None => {
                        self.problem(
                            format!("{key}.calendar"),
                            format!("unknown calendar \"{name}\""),
                        );
                        Calendar::Always
                    }
                },
            };
            if r.warn_at_percent == 0 || r.warn_at_percent >= 100 {
                self.problem(format!("{key}.warn_at_percent"), "must be between 1 and 99");
            }
            let table = |t: &RawTargets| -> std::collections::BTreeMap<
                crate::store::records::Priority,
                chrono::Duration,
            > {
                use crate::store::records::Priority::*;
                [
                    (Low, t.low),
                    (Normal, t.normal),
                    (High, t.high),
                    (Urgent, t.urgent),
                ]
                .into_iter()
                .filter_map(|(p, d)| Some((p, chrono::Duration::from_std(d?).ok()?)))
                .collect()
            };
            slas.push(super::sla::SlaPolicy {
                name: r.name,
                calendar,
                first_response: table(&r.first_response),
                resolution: table(&r.resolution),
                warn_at_percent: r.warn_at_percent,
            });
        }
        slas
    }
}
