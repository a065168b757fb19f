//! Test-only fault injection, compiled into debug builds only: with
//! `DESKGATE_TEST_FAULTS=1` in the environment, a mail carrying the header
//! `X-Deskgate-Test-Fault: error|panic|abort|stall` makes processing fail
//! that way when it is parsed. The end-to-end tests use it to prove that one
//! poison mail (an error, a panic, a crash, a kill -9 while it is processed)
//! is quarantined after a few attempts instead of wedging its mailbox.
//! Release builds ignore the header and the variable.

use super::EngineError;

const HEADER: &[u8] = b"\nX-Deskgate-Test-Fault:";

/// Fails as the first faulty mail of the batch asks, if faults are enabled.
pub(super) fn check(raws: &[&[u8]]) -> Result<(), EngineError> {
    if std::env::var_os("DESKGATE_TEST_FAULTS").is_none_or(|v| v != "1") {
        return Ok(());
    }
    for raw in raws {
        let Some(kind) = fault_of(raw) else { continue };
        tracing::warn!(kind, "test fault: injecting");
        match kind {
            "panic" => panic!("test fault: panic"),
            "abort" => std::process::abort(),
            "stall" => {
                tracing::warn!("test fault: stalling");
                loop {
                    std::thread::park();
                }
            }
            _ => return Err(EngineError::TestFault),
        }
    }
    Ok(())
}

fn fault_of(raw: &[u8]) -> Option<&'static str> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = &raw[..head_end];
    let at = head.windows(HEADER.len()).position(|w| w == HEADER)?;
    let value = &head[at + HEADER.len()..];
    let value = &value[..value
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(value.len())];
    Some(match value.trim_ascii() {
        b"panic" => "panic",
        b"abort" => "abort",
        b"stall" => "stall",
        _ => "error",
    })
}
