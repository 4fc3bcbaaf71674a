//! `podlab capture`'s filter: a small language of its own, read like
//! tcpdump's most common expressions but evaluated in user space on the
//! decoded packet (it is not BPF, and not all of tcpdump's syntax):
//!
//! ```text
//! expr  := or
//! or    := and { ("or" | "||") and }
//! and   := unary { ["and" | "&&"] unary }   (side by side is `and`)
//! unary := ("not" | "!") unary | "(" expr ")" | prim
//! prim  := [src|dst] host ADDR | [src|dst] net CIDR | [src|dst] port N
//!        | [src|dst] ADDR | tcp | udp | icmp | arp | ip
//!        | syn | ack | fin | rst            (a TCP segment with that flag)
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::packet::{self, Decoded, L4};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Either,
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Host(Dir, Ipv4Addr),
    Net(Dir, Ipv4Net),
    Port(Dir, u16),
    Proto(u8),
    Arp,
    Ip,
    Flag(u8),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Parse the words after the target (`tcp port 80`, `host 10.0.0.1 and
/// not icmp`); none is a filter that takes everything.
pub fn parse(words: &[String]) -> Result<Filter, String> {
    let mut tokens = Vec::new();
    for w in words {
        // Parentheses need no spaces around them.
        let spaced = w.replace('(', " ( ").replace(')', " ) ");
        tokens.extend(spaced.split_whitespace().map(str::to_string));
    }
    if tokens.is_empty() {
        return Ok(Filter::All);
    }
    let mut p = Parser { tokens, at: 0 };
    let f = p.or()?;
    match p.peek() {
        None => Ok(f),
        Some(t) => Err(format!("unexpected `{t}`: a `)` without its `(`")),
    }
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        loop {
            match self.peek() {
                Some("and" | "&&") => self.at += 1,
                // Side by side is `and` too: `tcp port 80`, as tcpdump reads it.
                Some(t) if !matches!(t, "or" | "||" | ")") => {}
                _ => break,
            }
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        match self.next().as_deref() {
            Some("not" | "!") => Ok(Filter::Not(Box::new(self.unary()?))),
            Some("(") => {
                let f = self.or()?;
                match self.next().as_deref() {
                    Some(")") => Ok(f),
                    _ => Err("a `(` without its `)`".to_string()),
                }
            }
            Some(word) => self.primitive(word),
            None => Err("the filter ends where an expression was expected".to_string()),
        }
    }

    fn primitive(&mut self, word: &str) -> Result<Filter, String> {
        let (dir, word) = match word {
            "src" => (Dir::Src, self.next()),
            "dst" => (Dir::Dst, self.next()),
            w => (Dir::Either, Some(w.to_string())),
        };
        let word = word.ok_or("`src`/`dst` needs host, net, port or an address after it")?;
        let simple = match word.as_str() {
            "tcp" => Some(Filter::Proto(packet::PROTO_TCP)),
            "udp" => Some(Filter::Proto(packet::PROTO_UDP)),
            "icmp" => Some(Filter::Proto(packet::PROTO_ICMP)),
            "arp" => Some(Filter::Arp),
            "ip" => Some(Filter::Ip),
            "syn" => Some(Filter::Flag(packet::SYN)),
            "ack" => Some(Filter::Flag(packet::ACK)),
            "fin" => Some(Filter::Flag(packet::FIN)),
            "rst" => Some(Filter::Flag(packet::RST)),
            _ => None,
        };
        if let Some(f) = simple {
            if dir != Dir::Either {
                return Err(format!("`{word}` takes no src/dst"));
            }
            return Ok(f);
        }
        match word.as_str() {
            "host" => {
                let v = self.next().ok_or("`host` needs an IPv4 address")?;
                address(&v).map(|a| Filter::Host(dir, a))
            }
            "net" => {
                let v = self.next().ok_or("`net` needs a CIDR (10.244.1.0/24)")?;
                v.parse::<Ipv4Net>()
                    .map(|n| Filter::Net(dir, n.trunc()))
                    .map_err(|_| format!("`net {v}`: not a CIDR such as 10.244.1.0/24"))
            }
            "port" => {
                let v = self.next().ok_or("`port` needs a number")?;
                v.parse::<u16>()
                    .map(|p| Filter::Port(dir, p))
                    .map_err(|_| format!("`port {v}`: not a port number (0-65535)"))
            }
            w if w.parse::<Ipv4Addr>().is_ok() => address(w).map(|a| Filter::Host(dir, a)),
            w => Err(format!(
                "unknown word `{w}`: the filter knows host, net, port, src, dst, tcp, udp, icmp, arp, ip, syn, ack, fin, rst, and, or, not (it is not full BPF syntax)"
            )),
        }
    }
}

fn address(word: &str) -> Result<Ipv4Addr, String> {
    word.parse()
        .map_err(|_| format!("`{word}` is not an IPv4 address (names are not resolved)"))
}

impl Filter {
    pub fn matches(&self, d: &Decoded) -> bool {
        let addrs = || -> Option<(Ipv4Addr, Ipv4Addr)> {
            match (&d.ip, &d.arp) {
                (Some(ip), _) => Some((ip.src, ip.dst)),
                (None, Some(a)) => Some((a.sender, a.target)),
                _ => None,
            }
        };
        let by_dir = |dir: Dir, test: &dyn Fn(Ipv4Addr) -> bool| {
            addrs().is_some_and(|(s, t)| match dir {
                Dir::Either => test(s) || test(t),
                Dir::Src => test(s),
                Dir::Dst => test(t),
            })
        };
        match self {
            Filter::All => true,
            Filter::Host(dir, a) => by_dir(*dir, &|x| x == *a),
            Filter::Net(dir, n) => by_dir(*dir, &|x| n.contains(&x)),
            Filter::Port(dir, p) => {
                let ports = match d.l4 {
                    L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
                    _ => return false,
                };
                match dir {
                    Dir::Either => ports.0 == *p || ports.1 == *p,
                    Dir::Src => ports.0 == *p,
                    Dir::Dst => ports.1 == *p,
                }
            }
            Filter::Proto(p) => d.ip.is_some_and(|ip| ip.proto == *p),
            Filter::Arp => d.arp.is_some(),
            Filter::Ip => d.ip.is_some(),
            Filter::Flag(bit) => matches!(d.l4, L4::Tcp { flags, .. } if flags & bit != 0),
            Filter::Not(f) => !f.matches(d),
            Filter::And(a, b) => a.matches(d) && b.matches(d),
            Filter::Or(a, b) => a.matches(d) || b.matches(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::tests::tcp_frame;
    use super::super::packet::{decode, ACK, SYN};
    use super::*;

    fn f(text: &str) -> Filter {
        let words: Vec<String> = text.split(' ').map(str::to_string).collect();
        parse(&words).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn expressions_pick_packets_as_tcpdump_would() {
        let syn = decode(&tcp_frame([10, 244, 1, 2], [10, 244, 2, 2], 43210, 80, SYN));
        let reply = decode(&tcp_frame(
            [10, 244, 2, 2],
            [10, 244, 1, 2],
            80,
            43210,
            SYN | ACK,
        ));
        let cases = [
            ("tcp", true, true),
            ("udp or icmp", false, false),
            ("port 80", true, true),
            ("dst port 80", true, false),
            ("src host 10.244.1.2", true, false),
            ("host 10.244.2.2 and tcp", true, true),
            ("syn and not ack", true, false),
            ("dst net 10.244.2.0/24", true, false),
            ("10.244.1.2", true, true),
            ("not (port 80 or port 53)", false, false),
            ("tcp && !(src port 80)", true, false),
            ("tcp port 80", true, true),
            ("tcp dst port 80 syn", true, false),
            ("arp or (tcp and dst 10.244.1.2)", false, true),
        ];
        for (text, a, b) in cases {
            assert_eq!(
                (f(text).matches(&syn), f(text).matches(&reply)),
                (a, b),
                "{text}"
            );
        }
        assert!(parse(&[]).expect("empty").matches(&syn));
    }

    #[test]
    fn a_bad_filter_says_what_is_wrong() {
        let err = |t: &str| {
            let words: Vec<String> = t.split(' ').map(str::to_string).collect();
            parse(&words).expect_err(t)
        };
        assert!(err("port http").contains("not a port number"));
        assert!(err("host web").contains("not an IPv4 address"));
        assert!(err("tcp)").contains("without its `(`"));
        assert!(err("(tcp").contains("without its `)`"));
        assert!(err("tcp[13] & 2 != 0").contains("not full BPF"));
        assert!(err("tcp and").contains("ends"));
        assert!(err("src tcp").contains("takes no src/dst"));
    }
}
