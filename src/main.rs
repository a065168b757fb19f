//! The `deskgate` binary: everything is in the library's `cli`.

use std::process::ExitCode;

/// mimalloc: ingest is allocation-heavy (parsing, JSON, sled nodes); it
/// measured 25–40% faster than the system allocator (README, Performance).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    deskgate::cli::main()
}
