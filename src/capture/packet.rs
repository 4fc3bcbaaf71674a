//! What a captured Ethernet frame is, as far as a line and a filter need:
//! IPv4 addresses, TCP/UDP ports and TCP flags, ICMP type, ARP. Anything
//! shorter than its headers say is taken as far as it goes, never indexed
//! past its end.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

pub const ETHER_IPV4: u16 = 0x0800;
pub const ETHER_ARP: u16 = 0x0806;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits, in tcpdump's letters.
const FLAGS: [(u8, char); 6] = [
    (0x02, 'S'),
    (0x01, 'F'),
    (0x04, 'R'),
    (0x08, 'P'),
    (0x10, '.'),
    (0x20, 'U'),
];
pub const SYN: u8 = 0x02;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub ether_type: u16,
    pub ip: Option<Ip>,
    pub arp: Option<Arp>,
    pub l4: L4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender: Ipv4Addr,
    pub target: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    None,
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Icmp { kind: u8, code: u8 },
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn ip_at(b: &[u8], i: usize) -> Option<Ipv4Addr> {
    let s = b.get(i..i + 4)?;
    Some(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

/// Decode a frame as captured (possibly cut at the snaplen).
pub fn decode(frame: &[u8]) -> Decoded {
    let ether_type = u16_at(frame, 12).unwrap_or(0);
    let mut d = Decoded {
        ether_type,
        ip: None,
        arp: None,
        l4: L4::None,
    };
    let Some(payload) = frame.get(14..) else {
        return d;
    };
    match ether_type {
        ETHER_IPV4 => {
            let (Some(first), Some(proto), Some(src), Some(dst)) = (
                payload.first(),
                payload.get(9),
                ip_at(payload, 12),
                ip_at(payload, 16),
            ) else {
                return d;
            };
            d.ip = Some(Ip {
                src,
                dst,
                proto: *proto,
            });
            let ihl = usize::from(first & 0x0f) * 4;
            // Only the first fragment carries the ports.
            let offset = u16_at(payload, 6).unwrap_or(0) & 0x1fff;
            let Some(l4) = payload.get(ihl..).filter(|_| ihl >= 20 && offset == 0) else {
                return d;
            };
            d.l4 = match *proto {
                PROTO_TCP => match (u16_at(l4, 0), u16_at(l4, 2), l4.get(13)) {
                    (Some(sport), Some(dport), Some(flags)) => L4::Tcp {
                        sport,
                        dport,
                        flags: *flags,
                    },
                    _ => L4::None,
                },
                PROTO_UDP => match (u16_at(l4, 0), u16_at(l4, 2)) {
                    (Some(sport), Some(dport)) => L4::Udp { sport, dport },
                    _ => L4::None,
                },
                PROTO_ICMP => match (l4.first(), l4.get(1)) {
                    (Some(kind), Some(code)) => L4::Icmp {
                        kind: *kind,
                        code: *code,
                    },
                    _ => L4::None,
                },
                _ => L4::None,
            };
        }
        ETHER_ARP => {
            // Ethernet/IPv4 ARP only: hardware 6 bytes, protocol 4.
            if let (Some(op), Some(sender), Some(target)) =
                (u16_at(payload, 6), ip_at(payload, 14), ip_at(payload, 24))
            {
                d.arp = Some(Arp { op, sender, target });
            }
        }
        _ => {}
    }
    d
}

pub fn flags_text(flags: u8) -> String {
    let s: String = FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() {
        "none".to_string()
    } else {
        s
    }
}

fn icmp_text(kind: u8, code: u8) -> String {
    match (kind, code) {
        (0, _) => "echo reply".into(),
        (8, _) => "echo request".into(),
        (3, 3) => "port unreachable".into(),
        (3, 1) => "host unreachable".into(),
        (3, 13) => "administratively prohibited".into(),
        (3, c) => format!("unreachable code {c}"),
        (11, _) => "time exceeded".into(),
        (k, c) => format!("type {k} code {c}"),
    }
}

/// What a line says of a packet: addresses and ports, protocol and flags.
pub fn summary(d: &Decoded) -> String {
    let mut s = String::new();
    match (&d.ip, &d.arp) {
        (Some(ip), _) => {
            let _ = match d.l4 {
                L4::Tcp {
                    sport,
                    dport,
                    flags,
                } => write!(
                    s,
                    "{}:{sport} > {}:{dport} TCP [{}]",
                    ip.src,
                    ip.dst,
                    flags_text(flags)
                ),
                L4::Udp { sport, dport } => {
                    write!(s, "{}:{sport} > {}:{dport} UDP", ip.src, ip.dst)
                }
                L4::Icmp { kind, code } => {
                    write!(s, "{} > {} ICMP {}", ip.src, ip.dst, icmp_text(kind, code))
                }
                L4::None => write!(s, "{} > {} proto {}", ip.src, ip.dst, ip.proto),
            };
        }
        (None, Some(a)) => {
            let _ = match a.op {
                1 => write!(s, "ARP who-has {} tell {}", a.target, a.sender),
                2 => write!(s, "ARP {} is-at (reply to {})", a.sender, a.target),
                op => write!(s, "ARP op {op} {} > {}", a.sender, a.target),
            };
        }
        (None, None) => {
            let _ = write!(s, "ethertype 0x{:04x}", d.ether_type);
        }
    }
    s
}

/// `HH:MM:SS.micros` (UTC) of a time since the epoch.
pub fn clock(secs: u64, micros: u32) -> String {
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        day / 3600,
        (day / 60) % 60,
        day % 60
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP frame with these addresses, ports and flags.
    pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETHER_IPV4.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, PROTO_TCP, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = flags;
        f.extend_from_slice(&tcp);
        f
    }

    #[test]
    fn a_syn_is_read_with_its_addresses_ports_and_flags() {
        let f = tcp_frame([10, 244, 1, 2], [10, 244, 2, 2], 43210, 80, SYN);
        let d = decode(&f);
        assert_eq!(summary(&d), "10.244.1.2:43210 > 10.244.2.2:80 TCP [S]");
        let ack = decode(&tcp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, SYN | ACK));
        assert_eq!(summary(&ack), "1.1.1.1:1 > 2.2.2.2:2 TCP [S.]");
    }

    #[test]
    fn a_frame_cut_short_is_read_as_far_as_it_goes() {
        let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, SYN);
        for len in 0..f.len() {
            let d = decode(&f[..len]);
            let _ = summary(&d);
        }
        let d = decode(&f[..14 + 20 + 2]);
        assert!(d.ip.is_some());
        assert_eq!(d.l4, L4::None);
        // A header length beyond the frame.
        let mut bad = f.clone();
        bad[14] = 0x4f;
        assert_eq!(decode(&bad).l4, L4::None);
    }

    #[test]
    fn arp_and_others_have_their_own_words() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETHER_ARP.to_be_bytes());
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&[10, 0, 0, 1]);
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&[10, 0, 0, 2]);
        f.extend_from_slice(&arp);
        assert_eq!(summary(&decode(&f)), "ARP who-has 10.0.0.2 tell 10.0.0.1");
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(summary(&decode(&v6)), "ethertype 0x86dd");
    }

    #[test]
    fn the_clock_is_utc_hours_minutes_seconds_micros() {
        assert_eq!(clock(86_400 + 3661, 42), "01:01:01.000042");
    }
}
