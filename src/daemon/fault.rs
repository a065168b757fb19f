//! Test-only fault injection for the supervision tests.

/// A debug-build fault hook for the supervision tests: when the file named
/// by `DESKGATE_TEST_FAULT` says `task`, that task panics. Release builds
/// have no such hook.
pub fn injected_fault(task: &str) {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("DESKGATE_TEST_FAULT") {
        if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == task) {
            panic!("fault injected into the {task} task (DESKGATE_TEST_FAULT)");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = task;
}
