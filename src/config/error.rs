//! What can be wrong with a config file, each problem with its key and line.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a config file could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}", format_invalid(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One semantic problem in an otherwise well-formed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `mailbox[0].tls`.
    pub key: String,
    /// 1-based line of the key in the file, when it could be located.
    pub line: Option<usize>,
    pub message: String,
}

fn format_invalid(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{}:{}: {}: {}", path.display(), line, p.key, p.message),
            None => format!("{}: {}: {}", path.display(), p.key, p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
