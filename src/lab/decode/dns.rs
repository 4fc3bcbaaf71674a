//! The Lab's `spec.dns`: static answers for names outside the cluster
//! domain (`upstream`), which the lab's DNS serves instead of forwarding
//! (a lab has no internet).
//!
//! ```yaml
//! spec:
//!   dns:
//!     upstream:
//!     - {name: example.com, a: [93.184.216.34]}
//!     - {name: www.example.com, cname: example.com}
//! ```

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use super::super::types::*;
use super::super::validate::is_dns1123_subdomain;
use super::super::yaml::{Node, Value};
use super::{describe, join, Decoder};

const DNS: &[&str] = &["upstream"];
const ENTRY: &[&str] = &["name", "a", "cname"];

/// How long a CNAME chain the responder follows (`plan::dns`'s limit).
const MAX_CHAIN: usize = 8;

/// `spec.dns`; `domain` is the cluster domain, already decoded.
pub(crate) fn lab_dns(d: &mut Decoder, node: &Node, domain: &str) -> Vec<UpstreamEntry> {
    let Some(f) = d.fields(node, "spec.dns", DNS, &[]) else {
        return Vec::new();
    };
    let Some(n) = f.get("upstream") else {
        return Vec::new();
    };
    let path = "spec.dns.upstream";
    let mut out: Vec<UpstreamEntry> = Vec::new();
    let mut seen: HashMap<String, Pos> = HashMap::new();
    for (i, item) in d
        .list(
            n,
            path,
            "a list of entries like {name: example.com, a: [192.0.2.10]}",
        )
        .iter()
        .enumerate()
    {
        let ipath = format!("{path}[{i}]");
        let Some(e) = entry(d, item, &ipath, domain) else {
            continue;
        };
        if let Some(first) = seen.get(&e.name) {
            d.err(
                e.pos,
                join(&ipath, "name"),
                format!(
                    "`{}` is already in spec.dns.upstream (line {})",
                    e.name, first.line
                ),
                Some("give each name one entry, with all its addresses in `a`".into()),
            );
            continue;
        }
        seen.insert(e.name.clone(), e.pos);
        out.push(e);
    }
    loops(d, &out);
    out
}

fn entry(d: &mut Decoder, item: &Node, path: &str, domain: &str) -> Option<UpstreamEntry> {
    let f = d.fields(item, path, ENTRY, &[])?;
    let Some(name_node) = f.get("name") else {
        if !f.suggested.iter().any(|s| s == "name") {
            d.err(
                item.pos,
                join(path, "name"),
                "upstream entry has no name".into(),
                Some("add `name:`, e.g. `name: example.com`".into()),
            );
        }
        return None;
    };
    let name = dns_name(d, name_node, &join(path, "name"), domain)?;
    let answer = match (f.get("a"), f.get("cname")) {
        (Some(_), Some(c)) => {
            d.err(
                c.pos,
                join(path, "cname"),
                format!("`{name}` has both `a` and `cname`"),
                Some("a name with a CNAME has no other records (RFC 1034): keep one".into()),
            );
            return None;
        }
        (Some(a), None) => UpstreamAnswer::A(addresses(d, a, &join(path, "a"))?),
        (None, Some(c)) => {
            let cpath = join(path, "cname");
            let target = dns_name(d, c, &cpath, domain)?;
            if target == name {
                d.err(
                    c.pos,
                    cpath,
                    format!("`{name}` is a CNAME to itself"),
                    Some("give it addresses instead: `a: [192.0.2.10]`".into()),
                );
                return None;
            }
            UpstreamAnswer::Cname(target)
        }
        (None, None) => {
            if !f.suggested.iter().any(|s| s == "a" || s == "cname") {
                d.err(
                    item.pos,
                    path,
                    format!("upstream entry `{name}` has no answer"),
                    Some(
                        "add `a: [192.0.2.10]` (addresses) or `cname: other.example` (an alias)"
                            .into(),
                    ),
                );
            }
            return None;
        }
    };
    Some(UpstreamEntry {
        name,
        pos: name_node.pos,
        answer,
    })
}

/// A name outside the cluster domain, lowercase, without a trailing dot.
fn dns_name(d: &mut Decoder, node: &Node, path: &str, domain: &str) -> Option<String> {
    let written = d.string(node, path)?;
    let name = written
        .strip_suffix('.')
        .unwrap_or(&written)
        .to_ascii_lowercase();
    if !is_dns1123_subdomain(&name) {
        d.err(
            node.pos,
            path,
            format!("`{written}` is not a DNS name"),
            Some(
                "use labels of letters, digits and '-' separated by dots, e.g. example.com".into(),
            ),
        );
        return None;
    }
    let under = |zone: &str| {
        name == zone
            || name
                .strip_suffix(zone)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    if under(domain) {
        d.err(
            node.pos,
            path,
            format!("`{name}` is inside the cluster domain {domain}"),
            Some(format!(
                "the lab's DNS answers {domain} from its services and pods; spec.dns.upstream \
                 is for names outside it (a Service of type ExternalName points a cluster \
                 name outside)"
            )),
        );
        return None;
    }
    if under("in-addr.arpa") || under("ip6.arpa") {
        d.err(
            node.pos,
            path,
            format!("`{name}` is a reverse-lookup name"),
            Some("the lab's DNS answers PTR queries from the lab itself; only A and CNAME entries can be given".into()),
        );
        return None;
    }
    Some(name)
}

/// `a`: a list of IPv4 addresses, at least one; repeats dropped.
fn addresses(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<Ipv4Addr>> {
    let Value::Seq(items) = &node.value else {
        let hint = match &node.value {
            Value::Scalar { text, .. } if text.parse::<Ipv4Addr>().is_ok() => {
                Some(format!("write it as a list: `a: [{text}]`"))
            }
            _ => None,
        };
        d.err(
            node.pos,
            path,
            format!(
                "expected a list of IPv4 addresses, found {}",
                describe(node)
            ),
            hint,
        );
        return None;
    };
    if items.is_empty() {
        d.err(
            node.pos,
            path,
            "an upstream entry needs at least one address".into(),
            Some("e.g. `a: [192.0.2.10]`, or remove the entry".into()),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let Some(s) = d.string(item, &ipath) else {
            ok = false;
            continue;
        };
        match s.trim().parse::<Ipv4Addr>() {
            Ok(ip) => {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
            Err(_) => {
                ok = false;
                d.err(
                    item.pos,
                    ipath,
                    format!("expected an IPv4 address like 192.0.2.10, found `{s}`"),
                    s.contains(':')
                        .then(|| "podlab's lab network is IPv4 only: give A records".into()),
                );
            }
        }
    }
    ok.then_some(out)
}

/// CNAME chains that come back on themselves (reported once per loop, at
/// its entry written first), or are longer than the responder follows
/// (reported at the chain's start).
fn loops(d: &mut Decoder, entries: &[UpstreamEntry]) {
    let cname: HashMap<&str, &str> = entries
        .iter()
        .filter_map(|e| match &e.answer {
            UpstreamAnswer::Cname(t) => Some((e.name.as_str(), t.as_str())),
            UpstreamAnswer::A(_) => None,
        })
        .collect();
    let targets: HashSet<&str> = cname.values().copied().collect();
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    for (i, e) in entries.iter().enumerate() {
        let mut chain = vec![e.name.as_str()];
        let mut cycle = None;
        while let Some(&next) = chain.last().and_then(|cur| cname.get(cur)) {
            if let Some(at) = chain.iter().position(|n| *n == next) {
                cycle = Some(at);
                chain.push(next);
                break;
            }
            chain.push(next);
        }
        let path = format!("spec.dns.upstream[{i}].name");
        match cycle {
            Some(at) => {
                let members = &chain[at..chain.len() - 1];
                let first = members.iter().filter_map(|n| index.get(n)).min();
                if first == Some(&i) {
                    d.err(
                        e.pos,
                        path,
                        format!("CNAME loop: {}", chain[at..].join(" → ")),
                        Some("end the chain at an entry with addresses (`a`)".into()),
                    );
                }
            }
            None if chain.len() - 1 > MAX_CHAIN && !targets.contains(e.name.as_str()) => {
                d.err(
                    e.pos,
                    path,
                    format!(
                        "the CNAME chain from `{}` has {} links; the lab's DNS follows at most {MAX_CHAIN}",
                        e.name,
                        chain.len() - 1
                    ),
                    Some("point the first names straight at the last one".into()),
                );
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lab::{parse, UpstreamAnswer};

    /// A Lab document whose `spec:` continues with `spec` (indented 2).
    fn lab(spec: &str) -> String {
        format!("apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: up}}\nspec:\n{spec}")
    }

    /// Every diagnostic as (line, col, field, message, hint).
    fn errors(text: &str) -> Vec<(usize, usize, String, String, Option<String>)> {
        match parse("lab.yaml", text) {
            Ok(_) => panic!("expected errors in:\n{text}"),
            Err(e) => e
                .diagnostics
                .into_iter()
                .map(|d| {
                    // Messages start with the object: "lab `up`: ...".
                    let m = d.message.strip_prefix("lab `up`: ").unwrap_or(&d.message);
                    (d.pos.line, d.pos.col, d.field, m.to_string(), d.hint)
                })
                .collect(),
        }
    }

    fn one(text: &str) -> (usize, usize, String, String, Option<String>) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn entries_decode() {
        let f = parse(
            "lab.yaml",
            &lab("  dns:\n    upstream:\n    \
                  - {name: Example.COM., a: [93.184.216.34, 93.184.216.34, 192.0.2.1]}\n    \
                  - name: www.example.com\n      cname: example.com\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let u = &f.lab.dns_upstream;
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].name, "example.com");
        assert_eq!((u[0].pos.line, u[0].pos.col), (7, 14));
        assert_eq!(
            u[0].answer,
            UpstreamAnswer::A(vec![
                "93.184.216.34".parse().unwrap(),
                "192.0.2.1".parse().unwrap()
            ])
        );
        assert_eq!(u[1].answer, UpstreamAnswer::Cname("example.com".into()));
        // Empty and absent are no entries.
        for spec in ["  dns: {}\n", "  dns:\n    upstream: []\n", "  nodes: 1\n"] {
            let f = parse("lab.yaml", &lab(spec)).unwrap_or_else(|e| panic!("{e}"));
            assert!(f.lab.dns_upstream.is_empty());
        }
    }

    #[test]
    fn unknown_fields_get_a_suggestion() {
        let (line, col, field, msg, hint) = one(&lab("  dns:\n    upstreams: []\n"));
        assert_eq!((line, col), (6, 5));
        assert_eq!(field, "spec.dns.upstreams");
        assert_eq!(msg, "unknown field `upstreams`");
        assert_eq!(hint.as_deref(), Some("did you mean `upstream`?"));

        let (line, col, field, msg, hint) = one(&lab(
            "  dns:\n    upstream:\n    - {name: example.com, A: [192.0.2.1]}\n",
        ));
        assert_eq!((line, col), (7, 27));
        assert_eq!(field, "spec.dns.upstream[0].A");
        assert_eq!(msg, "unknown field `A`");
        assert_eq!(hint.as_deref(), Some("did you mean `a`?"));

        let (_, _, field, msg, hint) = one(&lab(
            "  dns:\n    upstream:\n    - {nmae: example.com, a: [192.0.2.1]}\n",
        ));
        assert_eq!(field, "spec.dns.upstream[0].nmae");
        assert_eq!(msg, "unknown field `nmae`");
        assert_eq!(hint.as_deref(), Some("did you mean `name`?"));

        // `dns` itself, misspelt under spec.
        let (_, _, field, _, hint) = one(&lab("  dsn: {}\n"));
        assert_eq!(field, "spec.dsn");
        assert_eq!(hint.as_deref(), Some("did you mean `dns`?"));
    }

    #[test]
    fn names_must_be_dns_names_outside_the_cluster_domain() {
        let (line, col, field, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: web.default.svc.cluster.local, a: [192.0.2.1]}\n",
        ));
        assert_eq!(
            (line, col, field.as_str()),
            (7, 14, "spec.dns.upstream[0].name")
        );
        assert_eq!(
            msg,
            "`web.default.svc.cluster.local` is inside the cluster domain cluster.local"
        );
        // Against the lab's own domain, whatever the order of the fields.
        let (_, _, _, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: db.lab.example, a: [192.0.2.1]}\n  network: {clusterDomain: lab.example}\n",
        ));
        assert_eq!(
            msg,
            "`db.lab.example` is inside the cluster domain lab.example"
        );
        let f = parse(
            "lab.yaml",
            &lab("  network: {clusterDomain: lab.example}\n  dns:\n    upstream:\n    - {name: db.cluster.local, a: [192.0.2.1]}\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.lab.dns_upstream[0].name, "db.cluster.local");

        let (_, _, field, msg, hint) = one(&lab(
            "  dns:\n    upstream:\n    - {name: my_host.example, a: [192.0.2.1]}\n",
        ));
        assert_eq!(field, "spec.dns.upstream[0].name");
        assert_eq!(msg, "`my_host.example` is not a DNS name");
        assert!(hint.unwrap().contains("example.com"));
        let (_, _, _, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: 7.2.0.192.in-addr.arpa, a: [192.0.2.1]}\n",
        ));
        assert_eq!(msg, "`7.2.0.192.in-addr.arpa` is a reverse-lookup name");
        let (line, col, field, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: a.example, cname: web.default.svc.cluster.local}\n",
        ));
        assert_eq!(
            (line, col, field.as_str()),
            (7, 32, "spec.dns.upstream[0].cname")
        );
        assert!(msg.contains("inside the cluster domain"), "{msg}");
        let (line, col, field, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: 42, a: [192.0.2.1]}\n",
        ));
        assert_eq!(
            (line, col, field.as_str()),
            (7, 14, "spec.dns.upstream[0].name")
        );
        assert_eq!(msg, "expected a string, found the number 42");
    }

    #[test]
    fn addresses_are_ipv4() {
        let (line, col, field, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - name: example.com\n      a: [192.0.2.1, 192.0.2.300]\n",
        ));
        assert_eq!((line, col), (8, 22));
        assert_eq!(field, "spec.dns.upstream[0].a[1]");
        assert_eq!(
            msg,
            "expected an IPv4 address like 192.0.2.10, found `192.0.2.300`"
        );
        let (_, _, _, _, hint) = one(&lab(
            "  dns:\n    upstream:\n    - {name: example.com, a: ['2001:db8::1']}\n",
        ));
        assert!(hint.unwrap().contains("IPv4 only"));
        let (line, col, field, msg, hint) = one(&lab(
            "  dns:\n    upstream:\n    - {name: example.com, a: 192.0.2.1}\n",
        ));
        assert_eq!(
            (line, col, field.as_str()),
            (7, 30, "spec.dns.upstream[0].a")
        );
        assert_eq!(msg, "expected a list of IPv4 addresses, found `192.0.2.1`");
        assert_eq!(
            hint.as_deref(),
            Some("write it as a list: `a: [192.0.2.1]`")
        );
        let (_, _, _, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: example.com, a: []}\n",
        ));
        assert_eq!(msg, "an upstream entry needs at least one address");
    }

    #[test]
    fn each_entry_has_one_answer_and_one_entry_per_name() {
        let (line, col, field, msg, _) =
            one(&lab("  dns:\n    upstream:\n    - {name: example.com}\n"));
        assert_eq!((line, col, field.as_str()), (7, 7, "spec.dns.upstream[0]"));
        assert_eq!(msg, "upstream entry `example.com` has no answer");
        let (_, _, field, msg, _) = one(&lab("  dns:\n    upstream:\n    - {a: [192.0.2.1]}\n"));
        assert_eq!(field, "spec.dns.upstream[0].name");
        assert_eq!(msg, "upstream entry has no name");
        let (_, _, field, msg, hint) = one(&lab(
            "  dns:\n    upstream:\n    - {name: www.example.com, a: [192.0.2.1], cname: example.com}\n",
        ));
        assert_eq!(field, "spec.dns.upstream[0].cname");
        assert_eq!(msg, "`www.example.com` has both `a` and `cname`");
        assert!(hint.unwrap().contains("RFC 1034"));
        let (line, _, field, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: example.com, a: [192.0.2.1]}\n    - {name: EXAMPLE.com., a: [192.0.2.2]}\n",
        ));
        assert_eq!((line, field.as_str()), (8, "spec.dns.upstream[1].name"));
        assert_eq!(
            msg,
            "`example.com` is already in spec.dns.upstream (line 7)"
        );
        let (_, _, _, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: example.com, cname: example.com.}\n",
        ));
        assert_eq!(msg, "`example.com` is a CNAME to itself");
        let (_, _, _, msg, _) = one(&lab("  dns:\n    upstream: {name: example.com}\n"));
        assert!(msg.starts_with("expected a list of entries"), "{msg}");
    }

    #[test]
    fn cname_loops_and_long_chains() {
        // Reported once, at the loop's first entry; the entry leading into
        // it is not a second error.
        let (line, _, field, msg, _) = one(&lab(
            "  dns:\n    upstream:\n    - {name: in.example, cname: a.example}\n    \
             - {name: b.example, cname: c.example}\n    \
             - {name: a.example, cname: b.example}\n    \
             - {name: c.example, cname: a.example}\n",
        ));
        assert_eq!((line, field.as_str()), (8, "spec.dns.upstream[1].name"));
        assert_eq!(
            msg,
            "CNAME loop: b.example → c.example → a.example → b.example"
        );

        let mut spec = String::from("  dns:\n    upstream:\n");
        for i in 0..10 {
            spec.push_str(&format!(
                "    - {{name: n{i}.example, cname: n{}.example}}\n",
                i + 1
            ));
        }
        spec.push_str("    - {name: n10.example, a: [192.0.2.1]}\n");
        let (line, _, _, msg, _) = one(&lab(&spec));
        assert_eq!(line, 7);
        assert_eq!(
            msg,
            "the CNAME chain from `n0.example` has 10 links; the lab's DNS follows at most 8"
        );
    }
}
