//! What the page asks for, as JSON: each answer is a library call of its
//! own (`graph`, `trace`, `capture`, `exercise`) on the lab as it is now.
//! An answer that could not be made is `{"error": ...}` with the fix.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{json, Value};

use crate::capture::{self, Options, PacketSocket, Sinks};
use crate::exercise::run as exercise;
use crate::kernel::inspect::{self, NetnsView};
use crate::lab::Protocol;
use crate::observe::{target, trace as tr};
use crate::plan::{kubeproxy, netpol, Plan};
use crate::state::{self, LabName};
use crate::{graph, runtime};

/// The longest capture a page may ask for: a request is answered when it
/// ends.
pub const CAPTURE_MAX_SECONDS: f64 = 10.0;
/// The most packets a capture answer holds.
pub const CAPTURE_MAX_PACKETS: u64 = 500;

/// Run `f` on a thread of its own and wait for it without holding the
/// runtime's threads (see the module above).
pub async fn blocking<T>(f: impl FnOnce() -> T + Send + 'static) -> T
where
    T: From<ErrorValue> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .unwrap_or_else(|_| T::from(ErrorValue("the reading thread panicked".into())))
}

/// An error as an answer of either kind the page gets (JSON, or the
/// state's text).
pub struct ErrorValue(String);

impl From<ErrorValue> for Value {
    fn from(e: ErrorValue) -> Value {
        json!({ "error": e.0 })
    }
}

impl From<ErrorValue> for String {
    fn from(e: ErrorValue) -> String {
        json!({ "error": e.0 }).to_string()
    }
}

fn error(message: impl Into<String>, hint: &str) -> Value {
    json!({"error": message.into(), "hint": hint})
}

fn plan_of(lab: &LabName) -> Result<Plan, Value> {
    state::load(lab).map_err(|e| {
        error(
            format!("cannot read lab {lab}: {e}"),
            "is it up? `podlab ls` lists the running labs",
        )
    })
}

/// The part of the picture each namespace is (`pod/NS/NAME`,
/// `node/NODE`, `external`, `lb`, `net`): where a trace's hops are drawn.
pub fn parts(plan: &Plan) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(plan.net.netns.clone(), "net".to_string());
    for c in &plan.clients {
        m.insert(c.netns.clone(), c.name.clone());
    }
    for n in &plan.nodes {
        m.insert(n.netns.clone(), format!("node/{}", n.name));
    }
    for p in &plan.pods {
        m.insert(p.netns.clone(), format!("pod/{}", p.key()));
    }
    m
}

/// The page's live state: the picture, its parts, what differs from the
/// plan, and the running exercise. Sent again whenever it changes.
pub fn state(lab: &LabName) -> String {
    let plan = match plan_of(lab) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    let status = runtime::query_status(&state::dir(lab), Duration::from_secs(2)).ok();
    let seen = graph::observe(&plan, status.as_ref());
    let g = graph::build(&plan, &seen);
    let svg = graph::svg(&g, false);
    // Inline in HTML: the XML declaration has no place there.
    let svg = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
    json!({
        "lab": plan.lab,
        "svg": svg,
        "parts": parts(&plan),
        "nodes": plan.nodes.iter().map(|n| format!("node/{}", n.name)).collect::<Vec<_>>(),
        "pods": plan.pods.iter().map(|p| format!("pod/{}", p.key())).collect::<Vec<_>>(),
        "services": plan.services.iter().map(|s| format!("svc/{}", s.key())).collect::<Vec<_>>(),
        "marks": graph::all_marks(&g),
        "daemon": status.is_some(),
        "exercise": exercise_of(lab),
    })
    .to_string()
}

/// A namespace's links, addresses and routes as `ip` prints them.
fn view_json(view: &NetnsView) -> Value {
    let name = |i: u32| {
        view.links
            .iter()
            .find(|l| l.index == i)
            .map_or(format!("if{i}"), |l| l.name.clone())
    };
    let links: Vec<String> = view
        .links
        .iter()
        .map(|l| {
            let addrs: Vec<String> = view
                .addresses_of(&l.name)
                .iter()
                .map(|a| format!("{}/{}", a.ip, a.prefix))
                .collect();
            let master = l
                .master
                .map_or(String::new(), |m| format!(" master {}", name(m)));
            format!(
                "{} {}{} mtu {}{} {}",
                l.name,
                l.kind.as_deref().unwrap_or("-"),
                master,
                l.mtu,
                if l.up { " UP" } else { " DOWN" },
                addrs.join(" ")
            )
        })
        .collect();
    let routes: Vec<String> = view
        .routes
        .iter()
        .map(|r| {
            let dst = if r.prefix == 0 && r.dst == Ipv4Addr::UNSPECIFIED {
                "default".to_string()
            } else {
                format!("{}/{}", r.dst, r.prefix)
            };
            let via = r.gateway.map_or(String::new(), |g| format!(" via {g}"));
            let dev = r.oif.map_or(String::new(), |o| format!(" dev {}", name(o)));
            format!("{dst}{via}{dev}")
        })
        .collect();
    json!({"links": links, "routes": routes})
}

fn netns_json(netns: &str) -> Value {
    match inspect::view(netns) {
        Ok(v) => view_json(&v),
        Err(e) => json!({"readError": crate::error_chain(&e)}),
    }
}

/// The details of one part of the picture, read now.
pub fn details(lab: &LabName, part: &str) -> Value {
    let plan = match plan_of(lab) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (kind, name) = part.split_once('/').unwrap_or((part, ""));
    match kind {
        "node" => node_details(&plan, name),
        "pod" => pod_details(lab, &plan, name),
        "svc" => service_details(&plan, name),
        "netpol" => policy_details(&plan, name),
        _ => match parts(&plan).into_iter().find(|(_, p)| p == part) {
            Some((netns, _)) => json!({"part": part, "netns": netns, "kernel": netns_json(&netns)}),
            None => error(
                format!("no part {part} in lab {}", plan.lab),
                "click a box of the picture",
            ),
        },
    }
}

fn node_details(plan: &Plan, name: &str) -> Value {
    let Some(n) = plan.node(name) else {
        return error(format!("no node {name}"), "click a node of the picture");
    };
    let rules = |table: &str| {
        crate::kernel::nft::list_table(&n.netns, table)
            .unwrap_or_else(|e| format!("(not read: {})", crate::error_chain(&e)))
    };
    json!({
        "part": format!("node/{name}"),
        "netns": n.netns,
        "podCidr": n.pod_cidr.to_string(),
        "kernel": netns_json(&n.netns),
        "kubeProxyRules": rules(kubeproxy::TABLE),
        "policyRules": rules(netpol::TABLE),
        "counters": node_counters(plan, &n.netns),
    })
}

/// The NetworkPolicy counters of one node: packets allowed by each
/// policy, dropped for each pod.
fn node_counters(plan: &Plan, netns: &str) -> Value {
    match crate::kernel::counters::read_each(plan, netpol::TABLE) {
        Ok(each) => each
            .into_iter()
            .find(|(n, _)| n == netns)
            .map(|(_, c)| {
                c.into_iter()
                    .map(|(k, v)| (k, json!({"packets": v.packets, "bytes": v.bytes})))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .unwrap_or(Value::Null),
        Err(e) => json!({"readError": crate::error_chain(&e)}),
    }
}

fn pod_details(lab: &LabName, plan: &Plan, key: &str) -> Value {
    let Some(p) = plan.pods.iter().find(|p| p.key() == key) else {
        return error(format!("no pod {key}"), "click a pod of the picture");
    };
    let status = runtime::query_status(&state::dir(lab), Duration::from_secs(2))
        .ok()
        .and_then(|st| {
            st.pods
                .iter()
                .find(|s| s.namespace == p.namespace && s.name == p.name)
                .map(|s| s.status.clone())
        });
    let services: Vec<String> = plan
        .services
        .iter()
        .filter(|s| {
            s.endpoints
                .iter()
                .any(|e| e.namespace == p.namespace && e.pod == p.name)
        })
        .map(|s| format!("svc/{}", s.key()))
        .collect();
    let policies: Vec<String> = plan
        .policies
        .iter()
        .filter(|pol| pol.selected.contains(&p.key()))
        .map(|pol| format!("netpol/{}", pol.key()))
        .collect();
    let counters = crate::kernel::counters::read(plan, netpol::TABLE)
        .map(|c| {
            c.into_iter()
                .filter(|(k, _)| k.ends_with(&format!("-{}-{}", p.namespace, p.name)))
                .map(|(k, v)| (k, json!(v.packets)))
                .collect::<serde_json::Map<_, _>>()
        })
        .unwrap_or_default();
    json!({
        "part": format!("pod/{key}"),
        "netns": p.netns,
        "node": format!("node/{}", p.node),
        "ip": format!("{}/{}", p.ip, p.prefix),
        "labels": p.labels,
        "status": status,
        "endpointOf": services,
        "selectedBy": policies,
        "dropCounters": counters,
        "kernel": netns_json(&p.netns),
    })
}

fn service_details(plan: &Plan, key: &str) -> Value {
    let Some(s) = plan.services.iter().find(|s| s.key() == key) else {
        return error(
            format!("no service {key}"),
            "click a Service of the picture",
        );
    };
    // kube-proxy's rules for it, from the first node's table (every node
    // has the same; `diagnose` compares them).
    let rules = plan
        .nodes
        .first()
        .and_then(|n| crate::kernel::nft::list_table(&n.netns, kubeproxy::TABLE).ok())
        .map(|text| {
            let ip = s.cluster_ip.map(|i| i.to_string());
            service_rules(&text, &s.key(), ip.as_deref())
        });
    json!({
        "part": format!("svc/{key}"),
        "type": format!("{:?}", s.kind),
        "clusterIP": s.cluster_ip,
        "loadBalancerIP": s.load_balancer_ip,
        "selector": s.selector,
        "ports": s.ports.iter().map(|p| json!({
            "port": p.port,
            "nodePort": p.node_port,
            "protocol": format!("{:?}", p.protocol),
        })).collect::<Vec<_>>(),
        "endpoints": s.endpoints.iter().map(|e| json!({
            "pod": format!("pod/{}/{}", e.namespace, e.pod),
            "ip": e.ip,
        })).collect::<Vec<_>>(),
        "kubeProxyRules": rules,
    })
}

/// One chain of `nft list table`: its name and its lines as printed.
struct Chain<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

fn chains(text: &str) -> Vec<Chain<'_>> {
    let mut out: Vec<Chain> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("chain ").and_then(|r| r.strip_suffix(" {")) {
            out.push(Chain {
                name: name.trim_matches('"'),
                lines: vec![t],
            });
            open = true;
        } else if open {
            if let Some(c) = out.last_mut() {
                c.lines.push(t);
            }
            open = t != "}";
        }
    }
    out
}

/// What kube-proxy's table holds for one Service: the lines elsewhere that
/// name it or its ClusterIP (the dispatch maps), then the whole of its own
/// chains (named `...-NS/NAME/...`) and of every chain they jump or go to,
/// so the endpoints' DNAT rules are shown, not only the map that leads there.
fn service_rules(text: &str, key: &str, cluster_ip: Option<&str>) -> Vec<String> {
    let all = chains(text);
    let own = format!("-{key}/");
    let mut wanted: Vec<&str> = all
        .iter()
        .filter(|c| c.name.contains(&own))
        .map(|c| c.name)
        .collect();
    // Follow jumps and gotos; a chain is added once, so a loop ends.
    let mut i = 0;
    while i < wanted.len() {
        let body = all.iter().find(|c| c.name == wanted[i]).map(|c| &c.lines);
        for line in body.into_iter().flatten() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(2) {
                let target = pair[1].trim_end_matches(',').trim_matches('"');
                if matches!(pair[0], "jump" | "goto") && !wanted.contains(&target) {
                    wanted.push(target);
                }
            }
        }
        i += 1;
    }
    let mut body_lines = std::collections::BTreeSet::new();
    for c in all.iter().filter(|c| wanted.contains(&c.name)) {
        body_lines.extend(c.lines.iter().copied());
    }
    let names_it = |l: &str| l.contains(key) || cluster_ip.is_some_and(|ip| l.contains(ip));
    let mut out: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| names_it(l) && !body_lines.contains(l))
        .map(str::to_string)
        .collect();
    for name in &wanted {
        if let Some(c) = all.iter().find(|c| c.name == *name) {
            out.push(String::new());
            out.extend(c.lines.iter().map(|l| l.to_string()));
        }
    }
    out
}

fn policy_details(plan: &Plan, key: &str) -> Value {
    let Some(p) = plan.policies.iter().find(|p| p.key() == key) else {
        return error(
            format!("no NetworkPolicy {key}"),
            "click a policy of the picture",
        );
    };
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let allowed = crate::kernel::counters::read(plan, netpol::TABLE)
        .ok()
        .and_then(|c| c.get(&netpol::allow_counter(ns, name)).map(|c| c.packets));
    let g = graph::build(plan, &graph::Observed::default());
    let drawn = g.policies.into_iter().find(|d| d.key == key);
    json!({
        "part": format!("netpol/{key}"),
        "selects": p.selected.iter().map(|s| format!("pod/{s}")).collect::<Vec<_>>(),
        "allows": drawn.map(|d| d.allows).unwrap_or_default(),
        "allowedPackets": allowed,
    })
}

/// `podlab trace FROM TO` as JSON, with the part of the picture each hop
/// is in (`path`).
pub fn trace(lab: &LabName, from: &str, to: &str) -> Value {
    let plan = match plan_of(lab) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let hint = "FROM: a pod, node/NODE, external, lb; TO: a pod, svc/NAME, an IP, with :PORT";
    let src = match target::source_of(&plan, from, "default") {
        Ok(s) => s,
        Err(e) => return error(e.message, hint),
    };
    let timeout = Duration::from_millis(1000);
    let t = tr::destination(&plan, &src, to, "default", None::<Protocol>, timeout)
        .and_then(|dest| tr::trace(&plan, &src, &dest, timeout));
    match t {
        Ok(t) => {
            let parts = parts(&plan);
            let path: Vec<Option<&String>> = t.hops.iter().map(|h| parts.get(&h.netns)).collect();
            let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
            v["path"] = json!(path);
            v["delivered"] = json!(t.delivered());
            v
        }
        Err(e) => error(crate::error_chain(&e), hint),
    }
}

pub struct CaptureAsk {
    pub target: String,
    pub interface: Option<String>,
    pub seconds: f64,
    pub count: u64,
    pub filter: String,
}

/// A short capture in a part's namespace: the packets of the next
/// seconds, one line each, and the kernel's drops.
pub fn capture(lab: &LabName, ask: &CaptureAsk) -> Value {
    let plan = match plan_of(lab) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let name = ask.target.strip_prefix("pod/").unwrap_or(&ask.target);
    let netns = match target::source(&plan, name, "default") {
        Ok(f) => f.netns().to_string(),
        Err(_) if name == "net" => plan.net.netns.clone(),
        Err(e) => return error(e, "a pod, node/NODE, external, lb or net"),
    };
    let words: Vec<String> = ask.filter.split_whitespace().map(str::to_string).collect();
    let filter = match capture::filter::parse(&words) {
        Ok(f) => f,
        Err(e) => return error(format!("filter: {e}"), "e.g. `tcp port 80`, `not arp`"),
    };
    let sock = match PacketSocket::open(&netns, ask.interface.as_deref()) {
        Ok(s) => s,
        Err(e) => return error(crate::error_chain(&e), "`podlab diagnose` checks the lab"),
    };
    let opts = Options {
        count: Some(ask.count.clamp(1, CAPTURE_MAX_PACKETS)),
        duration: Some(Duration::from_secs_f64(
            if ask.seconds.is_finite() {
                ask.seconds
            } else {
                2.0
            }
            .clamp(0.1, CAPTURE_MAX_SECONDS),
        )),
        snaplen: 256,
        filter,
    };
    let mut out: Vec<u8> = Vec::new();
    let stop = AtomicBool::new(false);
    let summary = {
        let mut sinks = Sinks {
            pcap: None,
            lines: Some(Box::new(&mut out)),
        };
        capture::run(&sock, &opts, &mut sinks, &stop)
    };
    match summary {
        Ok(s) => json!({
            "target": ask.target,
            "netns": netns,
            "lines": String::from_utf8_lossy(&out).lines().collect::<Vec<_>>(),
            "seen": s.seen,
            "matched": s.matched,
            "dropped": s.dropped,
        }),
        Err(e) => error(format!("capture: {e}"), "try again"),
    }
}

/// The running exercise as the learner may see it: its story, the hints
/// already asked for, the checks run so far (never the solution).
fn exercise_of(lab: &LabName) -> Value {
    match exercise::load_progress(lab) {
        Ok(None) => json!({"running": false}),
        Ok(Some(p)) => {
            let shown = p.hints_shown.min(p.instance.hints.len());
            json!({
                "running": true,
                "exercise": p.exercise,
                "title": p.title,
                "difficulty": p.difficulty,
                "story": p.instance.story,
                "hints": p.instance.hints[..shown],
                "hintsLeft": p.instance.hints.len() - shown,
                "checks": p.checks,
                "solved": p.solved_at.is_some(),
            })
        }
        Err(e) => json!({"running": false, "error": crate::error_chain(&e)}),
    }
}

/// `podlab exercise hint`: the next hint, counted as the command counts it.
pub fn next_hint(lab: &LabName) -> Value {
    match exercise::hint(lab) {
        Ok((_, Some((n, text)))) => json!({"number": n, "hint": text}),
        Ok((_, None)) => json!({"hint": null, "note": "every hint has been shown"}),
        Err(e) => error(crate::error_chain(&e), &e.hint().unwrap_or_default()),
    }
}

/// `podlab exercise check`: every check, run now.
pub fn check(lab: &LabName) -> Value {
    match exercise::check(lab, Duration::from_secs(2)) {
        Ok(g) => serde_json::to_value(&g).unwrap_or(Value::Null),
        Err(e) => error(crate::error_chain(&e), &e.hint().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::service_rules;

    const TABLE: &str = "table ip kube-proxy {
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.10 . tcp . 53 : goto service-25ENCBVQ-kube-system/kube-dns/tcp/dns-tcp,
\t\t\t     10.96.0.20 . tcp . 80 : goto service-AAAAAAAA-default/web/tcp/http }
\t}

\tchain mark-for-masquerade {
\t\tmeta mark set meta mark | 0x00004000
\t}

\tchain service-25ENCBVQ-kube-system/kube-dns/tcp/dns-tcp {
\t\tip saddr 10.244.1.3 jump mark-for-masquerade
\t\tmeta l4proto tcp dnat to 10.244.1.3:53 comment \"endpoint kube-system/coredns-x 10.244.1.3:53\"
\t}

\tchain service-AAAAAAAA-default/web/tcp/http {
\t\tmeta l4proto tcp dnat to 10.244.2.2:80
\t}
}
";

    #[test]
    fn a_service_gets_the_map_line_naming_it_and_its_chains_whole() {
        let got = service_rules(TABLE, "kube-system/kube-dns", Some("10.96.0.10"));
        assert_eq!(
            got,
            vec![
                "elements = { 10.96.0.10 . tcp . 53 : goto service-25ENCBVQ-kube-system/kube-dns/tcp/dns-tcp,",
                "",
                "chain service-25ENCBVQ-kube-system/kube-dns/tcp/dns-tcp {",
                "ip saddr 10.244.1.3 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.244.1.3:53 comment \"endpoint kube-system/coredns-x 10.244.1.3:53\"",
                "}",
                "",
                "chain mark-for-masquerade {",
                "meta mark set meta mark | 0x00004000",
                "}",
            ]
        );
        // Another Service's chain is not shown.
        assert!(!got.iter().any(|l| l.contains("default/web")));
    }

    #[test]
    fn a_service_without_rules_gets_nothing() {
        assert!(service_rules(TABLE, "default/gone", None).is_empty());
    }
}
