//! A packet socket (AF_PACKET, every protocol) opened inside a lab's
//! namespace, for `capture` (here because every syscall door of podlab is
//! in kernel/): made on a thread that entered the namespace, it keeps
//! receiving there after the thread has left (a socket belongs to the
//! namespace it was made in), so the capture loop runs anywhere.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::netns;

/// `sll_pkttype` of a frame this namespace sent.
const PACKET_OUTGOING: u8 = 4;
/// The time the last frame read was received (linux/sockios.h).
const SIOCGSTAMP: libc::c_ulong = 0x8906;

pub struct PacketSocket {
    fd: OwnedFd,
    /// Interface names of the namespace, by index, as they were at open.
    names: HashMap<u32, String>,
}

/// One frame as received.
pub struct Frame {
    pub secs: u64,
    pub micros: u32,
    pub ifindex: u32,
    pub outgoing: bool,
    /// Its length on the wire (the bytes kept may be fewer).
    pub len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Netns(#[from] super::Error),
    #[error("no interface {name} in {netns} (it has: {have})")]
    NoInterface {
        name: String,
        netns: String,
        have: String,
    },
    #[error("cannot open a packet socket in {netns}: {source}")]
    Socket { netns: String, source: io::Error },
}

/// Interfaces of the calling thread's namespace, by index.
fn interfaces() -> HashMap<u32, String> {
    let mut out = HashMap::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, or
    // null; it is freed once, below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut i = list;
        while (*i).if_index != 0 && !(*i).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*i).if_name);
            out.insert((*i).if_index, name.to_string_lossy().into_owned());
            i = i.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

fn last_error(netns: &str) -> OpenError {
    OpenError::Socket {
        netns: netns.to_string(),
        source: io::Error::last_os_error(),
    }
}

impl PacketSocket {
    /// Open in `netns`, on one interface or (`None`) all of them.
    pub fn open(netns_name: &str, iface: Option<&str>) -> Result<PacketSocket, OpenError> {
        let name = netns_name.to_string();
        let iface = iface.map(str::to_string);
        // A thread of its own: entering a namespace changes only the
        // calling thread, and this one ends right after.
        std::thread::spawn(move || {
            netns::run_in(&name, || Self::open_here(&name, iface.as_deref()))?
        })
        .join()
        .unwrap_or_else(|_| {
            Err(OpenError::Socket {
                netns: netns_name.to_string(),
                source: io::Error::other("the opening thread panicked"),
            })
        })
    }

    fn open_here(netns: &str, iface: Option<&str>) -> Result<PacketSocket, OpenError> {
        let names = interfaces();
        let index = match iface {
            None => 0,
            Some(want) => match names.iter().find(|(_, n)| *n == want) {
                Some((i, _)) => *i as i32,
                None => {
                    let mut have: Vec<&str> = names.values().map(String::as_str).collect();
                    have.sort();
                    return Err(OpenError::NoInterface {
                        name: want.to_string(),
                        netns: netns.to_string(),
                        have: have.join(", "),
                    });
                }
            },
        };
        let all = (libc::ETH_P_ALL as u16).to_be();
        // Protocol 0 first, then bind with ETH_P_ALL: no frame of another
        // interface is queued before the bind picks one.
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last_error(netns));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = index;
        // SAFETY: a sockaddr_ll of its own size, on our socket.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(last_error(netns));
        }
        // A queue of 16 MiB rides out the bursts of a 1 Gbit/s stream (the
        // default 208 KiB drops packets while a line or a pcap record is
        // written); FORCE passes rmem_max, which root may. Best effort: a
        // smaller queue still captures, and counts its drops.
        let queue: libc::c_int = 16 << 20;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: an int of its own size, on our socket.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&queue as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            if rc == 0 {
                break;
            }
        }
        // Wake up every 100 ms to look at the clock, the count and Ctrl-C.
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: a timeval of its own size, on our socket.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(last_error(netns));
        }
        Ok(PacketSocket { fd, names })
    }

    pub fn name_of(&self, index: u32) -> String {
        self.names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}"))
    }

    /// The next frame into `buf` (cut at its length), or `None` when 100 ms
    /// passed without one (or a signal came).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Frame>> {
        // SAFETY: as above.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // MSG_TRUNC: the return value is the frame's whole length.
        // SAFETY: buf and from are valid for the lengths given.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        // The kernel's time of receipt (SIOCGSTAMP): captures in several
        // namespaces read on several threads are put in order by it
        // (`trace --capture`); the time of reading if it is not given.
        // SAFETY: a timeval for the ioctl to fill, on our socket.
        let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCGSTAMP, &mut tv) };
        let now = if rc == 0 && tv.tv_sec > 0 {
            Duration::new(
                tv.tv_sec as u64,
                (tv.tv_usec.clamp(0, 999_999) as u32) * 1000,
            )
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
        };
        Ok(Some(Frame {
            secs: now.as_secs(),
            micros: now.subsec_micros(),
            ifindex: from.sll_ifindex.max(0) as u32,
            outgoing: from.sll_pkttype == PACKET_OUTGOING,
            len: n as usize,
        }))
    }

    /// Frames the kernel received for this socket and dropped (its queue
    /// was full) since the last call.
    pub fn drops(&self) -> u32 {
        // SAFETY: tpacket_stats is plain data.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: a tpacket_stats of its own size, on our socket.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            0
        } else {
            st.tp_drops
        }
    }
}
