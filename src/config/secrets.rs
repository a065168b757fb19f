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
                    Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
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
