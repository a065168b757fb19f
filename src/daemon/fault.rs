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

/// The same hook for a store that fails: when the file says `store:task`,
/// that task's store calls fail (returns true) instead of its panicking, so
/// the tests can watch a store failure that does not heal end the daemon.
pub fn injected_store_fault(task: &str) -> bool {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("DESKGATE_TEST_FAULT") {
        return std::fs::read_to_string(path)
            .is_ok_and(|s| s.trim().strip_prefix("store:") == Some(task));
    }
    #[cfg(not(debug_assertions))]
    let _ = task;
    false
}
