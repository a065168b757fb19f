//! OAuth2 logins (mailbox and SMTP): a token command or a token file instead
//! of a password, never both.

use std::path::Path;
use std::time::Duration;

use super::check::Validator;
use super::checked::{OAuth2, TokenSource};
use super::raw::RawOAuth2;

/// Tokens that do not say when they expire are used this long: Microsoft and
/// Google hand out hour-long tokens, so this refreshes before either expires.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(50 * 60);

impl Validator {
    /// Checks the OAuth2 keys of `key`; `has_password` says whether
    /// password_file or password_env is set too.
    pub(super) fn oauth2(
        &mut self,
        key: &str,
        raw: &RawOAuth2,
        has_password: bool,
        base: &Path,
    ) -> Option<OAuth2> {
        if !raw.is_set() {
            if raw.lifetime.is_some() {
                self.problem(
                    format!("{key}.oauth2_token_lifetime"),
                    "only makes sense with oauth2_token_command or oauth2_token_file",
                );
            }
            return None;
        }
        let first = if raw.command.is_some() {
            "oauth2_token_command"
        } else {
            "oauth2_token_file"
        };
        let mut ok = true;
        if has_password {
            self.problem(
                format!("{key}.{first}"),
                "set a password (password_file or password_env) or an OAuth2 token \
                 (oauth2_token_command or oauth2_token_file), not both",
            );
            ok = false;
        }
        let lifetime = raw.lifetime.unwrap_or(DEFAULT_LIFETIME);
        if lifetime.is_zero() {
            self.problem(
                format!("{key}.oauth2_token_lifetime"),
                "must be more than zero",
            );
            ok = false;
        }
        let source = match (raw.command, raw.file) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{key}.oauth2_token_command"),
                    "set oauth2_token_command or oauth2_token_file, not both",
                );
                return None;
            }
            (Some(argv), None) => match argv.split_first() {
                Some((program, args)) if !program.trim().is_empty() => {
                    // A relative path with a slash is relative to the config
                    // file, like every other path; a bare name is looked up
                    // in PATH.
                    let program = if program.contains('/') {
                        base.join(program).display().to_string()
                    } else {
                        program.clone()
                    };
                    let mut argv = vec![program];
                    argv.extend(args.iter().cloned());
                    TokenSource::Command(argv)
                }
                _ => {
                    self.problem(
                        format!("{key}.oauth2_token_command"),
                        "needs the program to run: [\"/path/to/program\", \"argument\", …]",
                    );
                    return None;
                }
            },
            (None, Some(file)) => {
                let p = base.join(file);
                if let Err(e) = std::fs::File::open(&p) {
                    self.problem(
                        format!("{key}.oauth2_token_file"),
                        format!("cannot read {}: {e}", p.display()),
                    );
                    return None;
                }
                TokenSource::File(p)
            }
            (None, None) => return None,
        };
        ok.then_some(OAuth2 { source, lifetime })
    }

    /// `[smtp]`'s OAuth2 login: a token needs the user it logs in as.
    pub(super) fn smtp_oauth2(
        &mut self,
        user: Option<&String>,
        oauth2: Option<OAuth2>,
    ) -> Option<(String, OAuth2)> {
        match (user, oauth2) {
            (Some(user), Some(o)) => Some((user.clone(), o)),
            (None, Some(_)) => {
                self.problem("smtp.user", "an OAuth2 token is set but no user");
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_config::TestConfig;
    use super::super::{Config, ConfigError};
    use super::*;

    fn load(c: TestConfig, dir: &Path) -> Result<Config, ConfigError> {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(dir.join("other-password"), "secret\n").unwrap();
        let text = c
            .desk("templates", "\"templates\"")
            .mailbox("port", "1143")
            .smtp("port", "2525")
            .render()
            .replace("password_file = \"imap-password\"\n", "");
        Config::from_str_at(&text, &dir.join("deskgate.toml"))
    }

    fn problems(c: TestConfig) -> String {
        let dir = tempfile::tempdir().unwrap();
        match load(c, dir.path()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_token_command_replaces_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let c = TestConfig::new()
            .mailbox("oauth2_token_command", "[\"bin/get-token\", \"imap\"]")
            .smtp("user", "\"help@desk.test\"")
            .smtp("oauth2_token_command", "[\"get-token\"]")
            .smtp("oauth2_token_lifetime", "\"10m\"");
        let cfg = load(c, dir.path()).unwrap();
        let m = cfg.mailboxes[0].oauth2.clone().unwrap();
        let program = dir.path().join("bin/get-token").display().to_string();
        assert_eq!(m.source, TokenSource::Command(vec![program, "imap".into()]));
        assert_eq!(m.lifetime, Duration::from_secs(50 * 60));
        let (user, s) = cfg.smtp.oauth2.clone().unwrap();
        assert_eq!(user, "help@desk.test");
        assert_eq!(s.source, TokenSource::Command(vec!["get-token".into()]));
        assert_eq!(s.lifetime, Duration::from_secs(600));
        assert!(cfg.smtp.credentials.is_none());
        // Arguments may hold a client secret: Debug shows the program only.
        let shown = format!("{:?}", cfg.mailboxes[0]);
        assert!(
            shown.contains("get-token") && !shown.contains("imap\""),
            "{shown}"
        );
    }

    #[test]
    fn a_token_file_must_be_readable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abc").unwrap();
        let c = TestConfig::new().mailbox("oauth2_token_file", "\"token\"");
        let cfg = load(c, dir.path()).unwrap();
        assert_eq!(
            cfg.mailboxes[0].oauth2.as_ref().unwrap().source,
            TokenSource::File(dir.path().join("token"))
        );
        let e = problems(TestConfig::new().mailbox("oauth2_token_file", "\"missing\""));
        assert!(
            e.contains("mailbox[0].oauth2_token_file") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn bad_combinations_are_refused_in_words() {
        let e = problems(
            TestConfig::new()
                .mailbox("password_file", "\"other-password\"")
                .mailbox("oauth2_token_command", "[\"get-token\"]"),
        );
        assert!(e.contains("or an OAuth2 token"), "{e}");
        assert!(e.contains("not both"), "{e}");
        let e = problems(TestConfig::new().mailbox("oauth2_token_command", "[]"));
        assert!(e.contains("needs the program to run"), "{e}");
        let e = problems(TestConfig::new().mailbox("oauth2_token_command", "[\" \"]"));
        assert!(e.contains("needs the program to run"), "{e}");
        let e = problems(
            TestConfig::new()
                .mailbox("oauth2_token_command", "[\"get-token\"]")
                .mailbox("oauth2_token_file", "\"token\""),
        );
        assert!(
            e.contains("oauth2_token_command or oauth2_token_file, not both"),
            "{e}"
        );
        let e = problems(
            TestConfig::new()
                .mailbox("oauth2_token_command", "[\"get-token\"]")
                .smtp("oauth2_token_command", "[\"get-token\"]"),
        );
        assert!(e.contains("smtp.user") && e.contains("no user"), "{e}");
        let e = problems(
            TestConfig::new()
                .mailbox("oauth2_token_command", "[\"get-token\"]")
                .mailbox("oauth2_token_lifetime", "\"0s\""),
        );
        assert!(
            e.contains("oauth2_token_lifetime") && e.contains("more than zero"),
            "{e}"
        );
        let e = problems(
            TestConfig::new()
                .mailbox("password_file", "\"other-password\"")
                .mailbox("oauth2_token_lifetime", "\"5m\""),
        );
        assert!(e.contains("only makes sense with"), "{e}");
    }
}
