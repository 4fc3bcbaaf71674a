//! `podlab capture`: packets of one namespace of a lab, from a packet
//! socket opened inside it (`kernel::packet`), as a pcap file (`pcap`) and/or one
//! line per packet, picked by a small filter language (`filter`: not BPF;
//! evaluated here, on the decoded packet, `packet`).
//!
//! A capture is bounded: a count, a duration, Ctrl-C, or its reader going
//! away end it, and every ending flushes what was written.

pub mod filter;
pub mod hops;
pub mod packet;
pub mod pcap;

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use crate::kernel::packet::{Frame, OpenError, PacketSocket};
pub use filter::Filter;

/// The most bytes kept of a packet (tcpdump's default and maximum).
pub const MAX_SNAPLEN: usize = 262_144;

pub struct Options {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub snaplen: usize,
    pub filter: Filter,
}

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Count,
    Duration,
    Interrupted,
    /// Whoever read the output (stdout) went away.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Frames received (the loopback's copies of what it sends excluded).
    pub seen: u64,
    /// Of those, the ones the filter took (written, printed).
    pub matched: u64,
    /// Frames the kernel dropped because the capture did not keep up.
    pub dropped: u64,
    pub end: End,
}

/// Where packets go: a pcap stream, lines, or both.
pub struct Sinks<'a> {
    pub pcap: Option<pcap::Writer<Box<dyn Write + 'a>>>,
    pub lines: Option<Box<dyn Write + 'a>>,
}

/// One line for a packet: time (UTC), interface, direction, addresses and
/// ports, protocol and TCP flags, length on the wire.
pub fn line(frame: &Frame, iface: &str, decoded: &packet::Decoded) -> String {
    format!(
        "{} {iface} {} {} length {}",
        packet::clock(frame.secs, frame.micros),
        if frame.outgoing { "out" } else { "in " },
        packet::summary(decoded),
        frame.len
    )
}

/// A write that failed because the reader left ends the capture; any
/// other failure is an error.
fn written(r: io::Result<()>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// Receive until `opts` or `stop` say it is over.
pub fn run(
    sock: &PacketSocket,
    opts: &Options,
    sinks: &mut Sinks,
    stop: &AtomicBool,
) -> io::Result<Summary> {
    let start = Instant::now();
    let mut buf = vec![0u8; opts.snaplen.clamp(64, MAX_SNAPLEN)];
    let mut s = Summary {
        seen: 0,
        matched: 0,
        dropped: 0,
        end: End::Interrupted,
    };
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break End::Interrupted;
        }
        if opts.count.is_some_and(|c| s.matched >= c) {
            break End::Count;
        }
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break End::Duration;
        }
        let Some(frame) = sock.recv(&mut buf)? else {
            continue;
        };
        let iface = sock.name_of(frame.ifindex);
        // The loopback hands each packet over twice, as sent and as
        // received: keep one, as tcpdump does.
        if frame.outgoing && iface == "lo" {
            continue;
        }
        s.seen += 1;
        let kept = &buf[..frame.len.min(buf.len())];
        let decoded = packet::decode(kept);
        if !opts.filter.matches(&decoded) {
            continue;
        }
        s.matched += 1;
        if let Some(w) = sinks.pcap.as_mut() {
            let r = w.packet(frame.secs, frame.micros, kept, frame.len as u32);
            // A pipe reader (wireshark -k -i -) sees each packet as it comes.
            if !written(r.and_then(|()| w.flush()))? {
                break End::Closed;
            }
        }
        if let Some(out) = sinks.lines.as_mut() {
            let text = line(&frame, &iface, &decoded);
            if !written(writeln!(out, "{text}").and_then(|()| out.flush()))? {
                break End::Closed;
            }
        }
    };
    s.end = end;
    s.dropped = u64::from(sock.drops());
    if let Some(w) = sinks.pcap.as_mut() {
        let _ = w.flush();
    }
    Ok(s)
}
