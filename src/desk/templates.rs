//! The admin's mail templates, loaded and checked once and rendered with
//! minijinja.
//!
//! A template file starts with a `Subject:` line, then a blank line, then the
//! body. Everything a template can see is listed in the README.

use std::path::Path;

use serde::Serialize;
use thiserror::Error;

use crate::mail::text::{clean_header_text, crlf_to_lf};

/// Template files deskgate needs; all are checked at load.
/// Templates that are a body only, added to other mails (no Subject line).
pub const BODY_ONLY: &[&str] = &["cheat_sheet.txt"];

pub const TEMPLATE_NAMES: &[&str] = &[
    "acknowledgement.txt",
    "oversized.txt",
    "notification.txt",
    "rejection.txt",
    "command_error.txt",
    "comment.txt",
    "forgery.txt",
    "sla_warning.txt",
    "escalation.txt",
    "reminder.txt",
    "closed.txt",
    "cheat_sheet.txt",
    "commands.txt",
    "next.txt",
    "assigned.txt",
    "digest.txt",
    "report_error.txt",
];

/// Templates added after the first release: a templates folder from before
/// them still loads, with the built-in text.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "cheat_sheet.txt",
        include_str!("../../templates/cheat_sheet.txt"),
    ),
    ("commands.txt", include_str!("../../templates/commands.txt")),
    ("next.txt", include_str!("../../templates/next.txt")),
    ("assigned.txt", include_str!("../../templates/assigned.txt")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    (
        "report_error.txt",
        include_str!("../../templates/report_error.txt"),
    ),
];

/// Mail to agents, which ends with the command cheat sheet
/// (`cheat_sheet.txt`, a body without a Subject line; empty it to send none).
const TO_AGENTS: &[&str] = &[
    "notification.txt",
    "command_error.txt",
    "comment.txt",
    "forgery.txt",
    "sla_warning.txt",
    "escalation.txt",
    "assigned.txt",
];

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("cannot load template {name} from {dir}: {source}")]
    Load {
        name: String,
        dir: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot render template {name}: {source}")]
    Render {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("template {name} must start with a \"Subject:\" line followed by a blank line")]
    NoSubject { name: String },
}

/// The loaded, checked templates. Cheap to share; replaced whole on reload.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// A rendered template: subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl Templates {
    /// Loads every template now, so a syntax error shows at start-up (and in
    /// `check-config`), not on the first mail.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        Templates::load_layered(&[dir])
    }

    /// Like `load`, each file taken from the first folder that has it (a
    /// queue's own folder over the desk's).
    pub fn load_layered(dirs: &[&Path]) -> Result<Templates, TemplateError> {
        let dir = dirs.first().copied().unwrap_or(Path::new("."));
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        // Mail is plain text: no HTML escaping.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        for name in TEMPLATE_NAMES {
            let path = dirs
                .iter()
                .map(|d| d.join(name))
                .find(|p| p.exists())
                .unwrap_or_else(|| dir.join(name));
            let built_in = BUILT_IN.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
            let source = match (std::fs::read_to_string(&path), built_in) {
                (Ok(s), _) => s,
                (Err(e), Some(text)) if e.kind() == std::io::ErrorKind::NotFound => {
                    text.to_string()
                }
                (Err(e), _) => {
                    return Err(TemplateError::Load {
                        name: name.to_string(),
                        dir: dir.display().to_string(),
                        source: minijinja::Error::new(
                            minijinja::ErrorKind::TemplateNotFound,
                            e.to_string(),
                        ),
                    })
                }
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|source| TemplateError::Load {
                    name: name.to_string(),
                    dir: dir.display().to_string(),
                    source,
                })?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<Rendered, TemplateError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|source| TemplateError::Render {
                name: name.to_string(),
                source,
            })?;
        let text = tmpl.render(ctx).map_err(|source| TemplateError::Render {
            name: name.to_string(),
            source,
        })?;
        let mut rendered = split_subject(name, &text)?;
        if TO_AGENTS.contains(&name) {
            let sheet = self.render_body("cheat_sheet.txt", ctx)?;
            if !sheet.trim().is_empty() {
                if !rendered.body.ends_with('\n') {
                    rendered.body.push('\n');
                }
                rendered.body.push_str(&sheet);
            }
        }
        Ok(rendered)
    }

    /// Loads more templates from `dir` by name (a `[[digest]]`'s own
    /// template), checked the same way; a name already loaded is kept.
    pub fn load_more(&mut self, dir: &Path, names: &[&str]) -> Result<(), TemplateError> {
        for name in names {
            if self.env.get_template(name).is_ok() {
                continue;
            }
            let err = |source| TemplateError::Load {
                name: name.to_string(),
                dir: dir.display().to_string(),
                source,
            };
            let source = std::fs::read_to_string(dir.join(name)).map_err(|e| {
                err(minijinja::Error::new(
                    minijinja::ErrorKind::TemplateNotFound,
                    e.to_string(),
                ))
            })?;
            self.env
                .add_template_owned(name.to_string(), source)
                .map_err(err)?;
        }
        Ok(())
    }

    /// A template that is only a body (no Subject line), e.g. the cheat sheet.
    pub fn render_body(&self, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        let err = |source| TemplateError::Render {
            name: name.to_string(),
            source,
        };
        self.env
            .get_template(name)
            .map_err(err)?
            .render(ctx)
            .map_err(err)
    }
}

fn split_subject(name: &str, text: &str) -> Result<Rendered, TemplateError> {
    let text = crlf_to_lf(text);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let subject = first
        .strip_prefix("Subject:")
        .ok_or_else(|| TemplateError::NoSubject { name: name.into() })?;
    let body = rest.strip_prefix('\n').unwrap_or(rest);
    Ok(Rendered {
        subject: clean_header_text(subject, 250),
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_line_is_required() {
        assert!(split_subject("t", "Hello\n\nbody").is_err());
        let r = split_subject("t", "Subject: Hi {x}\n\nbody\n").unwrap();
        assert_eq!(r.subject, "Hi {x}");
        assert_eq!(r.body, "body\n");
    }
}
