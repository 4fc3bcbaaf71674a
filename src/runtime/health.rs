//! Whether a pod's echo reports itself healthy: the way to make a pod fail
//! its probes without stopping it, as podinfo's `/readyz/disable` does for
//! demos. `POST /readyz/disable` to any of the pod's TCP ports makes every
//! HTTP answer of the pod a 503 and its gRPC health `NOT_SERVING`, so its
//! httpGet, gRPC and stand-in exec probes fail; `POST /readyz/enable`
//! undoes it. A tcpSocket probe only connects, so it still passes, as it
//! would against a real application.
//!
//! The state is the application's, kept per pod: a restart of the echo
//! (a failed liveness probe) brings it back healthy, as a restarted
//! process would be.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

pub const DISABLE_PATH: &str = "/readyz/disable";
pub const ENABLE_PATH: &str = "/readyz/enable";

fn failing() -> &'static Mutex<HashSet<String>> {
    static FAILING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    FAILING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Whether the echo of `pod_key` (`ns/name`) answers as healthy.
pub fn healthy(pod_key: &str) -> bool {
    !failing()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(pod_key)
}

pub fn set(pod_key: &str, healthy: bool) {
    let mut f = failing().lock().unwrap_or_else(|e| e.into_inner());
    if healthy {
        f.remove(pod_key);
    } else {
        f.insert(pod_key.to_string());
    }
}

/// The toggle a request asks for: `Some(healthy)` for a POST to one of the
/// two paths.
pub fn toggle(method: &str, path: &str) -> Option<bool> {
    if method != "POST" {
        return None;
    }
    match path {
        ENABLE_PATH => Some(true),
        DISABLE_PATH => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_toggles_and_nothing_else_does() {
        assert_eq!(toggle("POST", "/readyz/disable"), Some(false));
        assert_eq!(toggle("POST", "/readyz/enable"), Some(true));
        assert_eq!(toggle("GET", "/readyz/disable"), None);
        assert_eq!(toggle("POST", "/readyz"), None);
        let key = "health-test/pod";
        assert!(healthy(key));
        set(key, false);
        assert!(!healthy(key));
        assert!(healthy("health-test/other"));
        set(key, true);
        assert!(healthy(key));
    }
}
