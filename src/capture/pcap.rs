//! The classic libpcap file format (what tcpdump -w writes, and Wireshark,
//! tcpdump -r and every pcap library read): a 24-byte file header, then a
//! 16-byte header before each packet. Written by hand: two fixed layouts
//! are less than a crate's worth.

use std::io::{self, Write};

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// DLT_EN10MB: every link podlab captures on (veth, bridge, lo) gives
/// Ethernet frames to a packet socket.
pub const LINKTYPE_ETHERNET: u32 = 1;

pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Start a file: its header, in this machine's byte order (readers
    /// tell the order from the magic number).
    pub fn new(mut out: W, snaplen: u32) -> io::Result<Writer<W>> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_MICROS.to_ne_bytes());
        h.extend_from_slice(&2u16.to_ne_bytes());
        h.extend_from_slice(&4u16.to_ne_bytes());
        h.extend_from_slice(&0i32.to_ne_bytes()); // thiszone: UTC
        h.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
        h.extend_from_slice(&snaplen.to_ne_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
        out.write_all(&h)?;
        Ok(Writer { out })
    }

    /// One packet: its time, the bytes kept and the length it had.
    pub fn packet(&mut self, secs: u64, micros: u32, data: &[u8], orig_len: u32) -> io::Result<()> {
        let mut h = [0u8; 16];
        // The format's seconds are 32 bits (until 2106).
        h[0..4].copy_from_slice(&(secs as u32).to_ne_bytes());
        h[4..8].copy_from_slice(&micros.to_ne_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        h[12..16].copy_from_slice(&orig_len.to_ne_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// caplen, origlen, bytes.
    type Record = (u32, u32, Vec<u8>);

    /// A reader of the same layout, written from the format's description,
    /// not from the writer: (linktype, snaplen, [(caplen, origlen, data)]).
    fn read(b: &[u8]) -> (u32, u32, Vec<Record>) {
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        assert_eq!(u32_at(0), 0xa1b2c3d4);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 2);
        let mut out = Vec::new();
        let mut i = 24;
        while i < b.len() {
            let (cap, orig) = (u32_at(i + 8), u32_at(i + 12));
            out.push((cap, orig, b[i + 16..i + 16 + cap as usize].to_vec()));
            i += 16 + cap as usize;
        }
        (u32_at(20), u32_at(16), out)
    }

    #[test]
    fn a_file_reads_back_packet_by_packet() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, 96).expect("header");
        w.packet(1_700_000_000, 5, b"abc", 3).expect("packet");
        w.packet(1_700_000_001, 6, b"cut", 1500).expect("packet");
        w.flush().expect("flush");
        assert_eq!(buf.len(), 24 + 16 + 3 + 16 + 3);
        let (link, snap, pkts) = read(&buf);
        assert_eq!((link, snap), (1, 96));
        assert_eq!(pkts, [(3, 3, b"abc".to_vec()), (3, 1500, b"cut".to_vec())]);
    }
}
