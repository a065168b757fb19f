//! Secrets (passwords) come from a file or an environment variable, never
//! from the config file itself.

use std::path::Path;

use super::check::Validator;

impl Validator {
    /// Loads a password from exactly one of a file or an environment variable.
    pub(super) fn secret(
        &mut self,
        key: &str,
        file: Option<&Path>,
        env: Option<&str>,
        base: &Path,
        required: bool,
    ) -> Option<String> {
        match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{key}.password_file"),
                    "set password_file or password_env, not both",
                );
                None
            }
            (Some(file), None) => {
                let p = base.join(file);
                match std::fs::read_to_string(&p) {
                    Ok(s) => {
                        self.warn_if_shared(key, &p);
                        let password = s.trim_end_matches(['\r', '\n']);
                        if password.is_empty() {
                            // A login with an empty password fails at the
                            // server, long after start-up: say it now.
                            self.problem(
                                format!("{key}.password_file"),
                                format!("{} is empty: put the password in it", p.display()),
                            );
                            return None;
                        }
                        Some(password.to_string())
                    }
                    Err(e) => {
                        self.problem(
                            format!("{key}.password_file"),
                            format!("cannot read {}: {e}", p.display()),
                        );
                        None
                    }
                }
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.problem(
                        format!("{key}.password_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            },
            (None, None) => {
                if required {
                    self.problem(
                        format!("{key}.password_file"),
                        "a password is needed: set password_file or password_env",
                    );
                }
                None
            }
        }
    }
}

impl Validator {
    /// A password file the desk's group or everyone may read is a leak
    /// waiting to happen, but refusing to start over it would take the help
    /// desk down for a permissions slip: it is a warning.
    fn warn_if_shared(&mut self, key: &str, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
                (true, true) => "its group and everyone else",
                (true, false) => "its group",
                _ => "everyone",
            };
            self.warnings.push(format!(
                "{key}.password_file: {} can be read or changed by {who} (mode {mode:o}); chmod 600 it",
                path.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_config::TestConfig;
    use super::super::Config;
    use std::os::unix::fs::PermissionsExt;

    fn load_with_mode(mode: u32) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
        let text = TestConfig::new()
            .desk("templates", "\"templates\"")
            .mailbox("port", "1143")
            .mailbox("password_file", "\"pw\"")
            .smtp("port", "2525")
            .render();
        Config::from_str_at(&text, &dir.path().join("deskgate.toml")).unwrap()
    }

    #[test]
    fn a_password_file_others_can_read_is_warned_about() {
        let c = load_with_mode(0o644);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(w.starts_with("mailbox[0].password_file:"), "{w}");
        assert!(w.contains("mode 644") && w.contains("chmod 600"), "{w}");
        assert!(!w.contains("secret"), "{w}");
    }

    #[test]
    fn a_private_password_file_is_not() {
        assert!(load_with_mode(0o600).warnings.is_empty());
        assert!(load_with_mode(0o400).warnings.is_empty());
    }

    #[test]
    fn an_empty_password_file_is_refused() {
        for content in ["", "\n", "\r\n"] {
            let dir = tempfile::tempdir().unwrap();
            let pw = dir.path().join("pw");
            std::fs::write(&pw, content).unwrap();
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
            let text = TestConfig::new()
                .mailbox("port", "1143")
                .mailbox("password_file", "\"pw\"")
                .smtp("port", "2525")
                .render();
            let err = Config::from_str_at(&text, &dir.path().join("deskgate.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("mailbox[0].password_file") && err.contains("is empty"),
                "{content:?}: {err}"
            );
        }
    }
}
