//! Fuzzes config loading: arbitrary UTF-8 as TOML through parsing and
//! validation. Errors are expected; a panic is a bug.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = deskgate::config::Config::from_str_at(text, Path::new("/tmp/fuzz/deskgate.toml"));
    }
});
