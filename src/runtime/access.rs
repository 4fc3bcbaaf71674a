//! The echo servers' access log: one line per HTTP request, in nginx's
//! `combined` format, appended to the log of the container that declared
//! the port, so that `kubectl logs` and `podlab logs` show a `curl` as they
//! would show nginx's own log.
//!
//! The servers know their pod and port; which file that is, is registered
//! here when the pod's servers start (`register`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// `(namespace/name, port)` → the container's log file.
fn files() -> &'static Mutex<HashMap<(String, u16), PathBuf>> {
    static FILES: OnceLock<Mutex<HashMap<(String, u16), PathBuf>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The requests to `pod_key`'s `port` go to `log`.
pub fn register(pod_key: String, port: u16, log: PathBuf) {
    files()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((pod_key, port), log);
}

/// One request, as nginx logs it:
/// `10.244.1.2 - - [02/Dec/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 112 "-" "curl/7.88.1"`.
pub fn line(
    client: SocketAddr,
    at: SystemTime,
    request: &str,
    status: u16,
    bytes: u64,
    agent: &str,
) -> String {
    format!(
        "{} - - [{}] \"{}\" {status} {bytes} \"-\" \"{}\"\n",
        client.ip(),
        nginx_time(at),
        request.escape_default(),
        agent.escape_default(),
    )
}

/// `02/Dec/2026:15:04:05 +0000`, from the RFC 3339 form.
fn nginx_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = crate::cli::table::rfc3339(at);
    // `YYYY-MM-DDTHH:MM:SSZ`
    let month = t
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
    match (t.get(0..4), month, t.get(8..10), t.get(11..19)) {
        (Some(y), Some(m), Some(d), Some(hms)) => format!("{d}/{m}/{y}:{hms} +0000"),
        _ => t,
    }
}

/// Append a request to the log of the container behind `pod_key:port`,
/// if one is registered. A log that cannot be written costs the line,
/// never the answer.
pub fn record(pod_key: &str, port: u16, text: &str) {
    let path = files()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(pod_key.to_string(), port))
        .cloned();
    let Some(path) = path else { return };
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = r {
        tracing::debug!("access log {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_line_is_nginx_combined() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_223_845);
        let client: SocketAddr = "10.244.1.2:40000".parse().unwrap();
        assert_eq!(
            line(client, at, "GET / HTTP/1.1", 200, 112, "curl/7.88.1"),
            "10.244.1.2 - - [02/Dec/2026:15:04:05 +0000] \"GET / HTTP/1.1\" 200 112 \"-\" \"curl/7.88.1\"\n"
        );
        // A quote in the agent cannot end the field early.
        assert!(line(client, at, "GET /", 200, 0, "a\"b").contains("\"a\\\"b\""));
    }

    #[test]
    fn a_request_lands_in_the_registered_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("default_p_c.log");
        register("default/p".into(), 8080, log.clone());
        record("default/p", 8080, "one\n");
        record("default/p", 8081, "elsewhere\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\n");
    }
}
