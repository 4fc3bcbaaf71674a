//! `podlab trace --capture`: a capture in every namespace of the lab while
//! the trace's probe goes, so the packet is seen at each hop with the
//! addresses it had there (kube-proxy's DNAT, the masquerade).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Filter, Options, PacketSocket, Sinks};

/// Captures running in several namespaces, until `finish`.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<Vec<u8>>)>,
}

/// Open a socket in each `(netns, label)` now (before the probe leaves),
/// and capture there for at most `limit`. A namespace that cannot be
/// opened is left out: the trace says what it could read.
pub fn start(namespaces: &[(String, String)], limit: Duration) -> Recorder {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (netns, label) in namespaces {
        let Ok(sock) = PacketSocket::open(netns, None) else {
            continue;
        };
        let stop = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            let opts = Options {
                count: None,
                duration: Some(limit),
                snaplen: 128,
                filter: Filter::All,
            };
            let mut sinks = Sinks {
                pcap: None,
                lines: Some(Box::new(&mut out)),
            };
            let _ = super::run(&sock, &opts, &mut sinks, &stop);
            drop(sinks);
            out
        });
        threads.push((label.clone(), handle));
    }
    Recorder { stop, threads }
}

impl Recorder {
    /// Stop, and the lines that `keep` takes, each led by its namespace's
    /// label, in time order.
    pub fn finish(self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut lines: Vec<(String, String)> = Vec::new();
        for (label, h) in self.threads {
            let text = h.join().unwrap_or_default();
            for l in String::from_utf8_lossy(&text).lines().filter(|l| keep(l)) {
                // A line starts with its time of day: sorted as text.
                let (time, rest) = l.split_once(' ').unwrap_or((l, ""));
                lines.push((time.to_string(), format!("{time} {label:<28} {rest}")));
            }
        }
        lines.sort();
        lines.into_iter().map(|(_, l)| l).collect()
    }
}

/// Whether a capture line is of the flow with client port `sport`: the
/// port stays as NAT rewrites addresses (the masquerade keeps it unless
/// it is taken).
pub fn of_flow(line: &str, sport: u16) -> bool {
    let p = format!(":{sport} ");
    line.contains(&p) && (line.contains(" TCP ") || line.contains(" UDP "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_is_of_the_flow_by_its_client_port() {
        let syn = "15:47:30.893895 eth0 out 10.244.1.2:36860 > 10.244.2.3:8080 TCP [S] length 74";
        let back = "15:47:30.893995 eth0 in  10.244.2.3:8080 > 10.244.1.2:36860 TCP [S.] length 74";
        assert!(super::of_flow(syn, 36860));
        assert!(super::of_flow(back, 36860));
        assert!(!super::of_flow(syn, 3686));
        assert!(!super::of_flow(syn, 8080 + 1));
    }
}
