//! Helpers shared by the unit tests.

use std::time::Duration;

/// Waits (polling) until `f` holds; fails the test after `secs` seconds.
pub async fn eventually(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
