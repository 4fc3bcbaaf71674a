//! What kube-proxy (nftables mode) would install on a node, as a value: the
//! `ip kube-proxy` table, plus the CNI's egress masquerade (`ip cni`), and
//! the cloud load balancer's table in the `lb` namespace.
//!
//! Modelled on kube-proxy's nftables proxier: verdict maps from service
//! IP/protocol/port to a chain per service port, a chain per endpoint doing
//! the DNAT, `numgen random` to pick an endpoint, a mark for traffic to
//! masquerade, and services without endpoints rejected up front. Every rule
//! carries a comment so that `nft list ruleset` reads as an explanation.
//!
//! Pure: building a ruleset does no I/O; `kernel::nft` loads it as one
//! transaction that replaces the tables whole.

use std::borrow::Cow;
use std::collections::HashSet;

use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, NgMode,
    Numgen, Payload, PayloadField, Prefix, SetItem, Verdict, CT,
};
use nftables::schema::{
    Chain, Map, NfListObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{
    self, JumpTarget, Mangle, Match, Operator, Reject, RejectType, Statement, VerdictMap, NAT,
};
use nftables::types::{NfChainType, NfFamily, NfHook};

use super::names::fnv1a;
use super::{NodePlan, Plan, ServicePlan, ServiceType, ETH0};
use crate::lab::Protocol;

pub const TABLE: &str = "kube-proxy";
pub const CNI_TABLE: &str = "cni";
pub const LB_TABLE: &str = "cloud-lb";
/// kube-proxy's masquerade mark bit.
const MASQ_MARK: u32 = 0x4000;

pub(super) type Expr = Expression<'static>;
pub(super) type Stmt = Statement<'static>;

pub(super) fn s(v: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(v.into()))
}
pub(super) fn field(proto: &'static str, name: &'static str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: proto.into(),
            field: name.into(),
        },
    )))
}
fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}
pub(super) fn cmp(left: Expr, op: Operator, right: Expr) -> Stmt {
    Statement::Match(Match { left, right, op })
}
fn eq(left: Expr, right: Expr) -> Stmt {
    cmp(left, Operator::EQ, right)
}
fn target(t: &str) -> JumpTarget<'static> {
    JumpTarget {
        target: Cow::Owned(t.to_string()),
    }
}
fn jump(t: &str) -> Stmt {
    Statement::Jump(target(t))
}
fn goto(t: &str) -> Stmt {
    Statement::Goto(target(t))
}
fn goto_verdict(t: &str) -> Expr {
    Expression::Verdict(Verdict::Goto(target(t)))
}
pub(super) fn prefix(net: ipnet::Ipv4Net) -> Expr {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}
fn concat(v: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Concat(v))
}
fn fib_type(flag: FibFlag) -> Expr {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([flag]),
    }))
}
pub(super) fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Accumulates one table's objects.
struct TableBuilder {
    family: NfFamily,
    table: &'static str,
    objects: Vec<NfListObject<'static>>,
    /// Affinity sets made so far (a service's internal and external
    /// chains share them): a lookup, not a scan of `objects`.
    affinity_sets: HashSet<String>,
}

impl TableBuilder {
    fn new(family: NfFamily, table: &'static str) -> Self {
        TableBuilder {
            family,
            table,
            objects: Vec::new(),
            affinity_sets: HashSet::new(),
        }
    }

    fn chain(&mut self, name: &str) {
        self.objects.push(NfListObject::Chain(Chain {
            family: self.family,
            table: self.table.into(),
            name: Cow::Owned(name.to_string()),
            ..Chain::default()
        }));
    }

    fn base_chain(&mut self, name: &str, kind: NfChainType, hook: NfHook, prio: i32) {
        self.objects.push(NfListObject::Chain(Chain {
            family: self.family,
            table: self.table.into(),
            name: Cow::Owned(name.to_string()),
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            ..Chain::default()
        }));
    }

    fn rule(&mut self, chain: &str, expr: Vec<Stmt>, comment: impl Into<String>) {
        let comment: String = comment.into();
        self.objects.push(NfListObject::Rule(Rule {
            family: self.family,
            table: self.table.into(),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            // nft limits comments to 128 bytes.
            comment: (!comment.is_empty()).then(|| Cow::Owned(truncate(&comment, 128))),
            ..Rule::default()
        }));
    }

    fn verdict_map(&mut self, name: &str, key: Vec<SetType>, elems: Vec<Expr>, comment: &str) {
        self.objects.push(NfListObject::Map(Box::new(Map {
            family: self.family,
            table: self.table.into(),
            name: Cow::Owned(name.to_string()),
            set_type: if key.len() == 1 {
                SetTypeValue::Single(key[0])
            } else {
                SetTypeValue::Concatenated(Cow::Owned(key))
            },
            // The crate has no `verdict` data type: a placeholder that
            // `to_json` rewrites (every map podlab makes is a verdict map).
            map: SetTypeValue::Single(SetType::Mark),
            elem: (!elems.is_empty()).then_some(Cow::Owned(elems)),
            comment: Some(Cow::Owned(comment.to_string())),
            ..Map::default()
        })));
    }

    fn affinity_set(&mut self, name: &str, timeout: u32) {
        if !self.affinity_sets.insert(name.to_string()) {
            return;
        }
        self.objects.push(NfListObject::Set(Box::new(Set {
            family: self.family,
            table: self.table.into(),
            name: Cow::Owned(name.to_string()),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            // nft marks a set updated from the packet path dynamic itself;
            // the JSON parser of nft 1.0.6 refuses the flag.
            flags: Some(HashSet::from([SetFlag::Timeout])),
            timeout: Some(timeout),
            comment: Some(Cow::Borrowed(
                "clients recently sent to this endpoint (sessionAffinity: ClientIP)",
            )),
            ..Set::default()
        })));
    }

    /// Add the table, delete it and add it again with its contents: one
    /// transaction that replaces it whole, whether it existed or not.
    fn replace_into(self, batch: &mut Batch<'static>) {
        let table = || {
            NfListObject::Table(Table {
                family: self.family,
                name: self.table.into(),
                handle: None,
            })
        };
        batch.add(table());
        batch.delete(table());
        batch.add(table());
        for o in self.objects {
            batch.add(o);
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A short stable hash for chain names, as kube-proxy's `ULMVA6XW`.
fn tag(parts: &[&str]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut v = fnv1a(parts);
    (0..8)
        .map(|_| {
            let c = ALPHABET[(v % 32) as usize] as char;
            v /= 32;
            c
        })
        .collect()
}

/// `ns/name/tcp/portname`, how kube-proxy names a service port.
fn port_id(svc: &ServicePlan, i: usize) -> String {
    let p = &svc.ports[i];
    format!(
        "{}/{}/{}/{}",
        svc.namespace,
        svc.name,
        proto_word(p.protocol),
        p.name.clone().unwrap_or_default()
    )
}

/// The node's tables (`kube-proxy` and `cni`) as one transaction.
pub fn node_ruleset(plan: &Plan, node: &NodePlan) -> Nftables<'static> {
    let mut batch = Batch::new();
    kube_proxy(plan, node).replace_into(&mut batch);
    cni(plan, node).replace_into(&mut batch);
    batch.to_nftables()
}

/// Every namespace's rules, as `nft` transactions that replace podlab's
/// tables whole: each node's (`node_rules`) and the cloud load balancer's,
/// when the lab has one.
pub fn namespace_rulesets(plan: &Plan) -> Vec<(String, Nftables<'static>)> {
    let mut v: Vec<(String, Nftables<'static>)> = plan
        .nodes
        .iter()
        .map(|n| (n.netns.clone(), node_rules(plan, n)))
        .collect();
    if let Some(lb) = plan.clients.iter().find(|c| c.name == "lb") {
        v.push((lb.netns.clone(), lb_ruleset(plan)));
    }
    v
}

/// A node's rules: kube-proxy's and the CNI's tables and NetworkPolicy's
/// `network-policy`, in one transaction (a node never runs with one and
/// not the other).
pub fn node_rules(plan: &Plan, node: &NodePlan) -> Nftables<'static> {
    let mut rules = node_ruleset(plan, node);
    rules.objects.to_mut().extend(
        super::netpol::node_ruleset(plan, node)
            .objects
            .iter()
            .cloned(),
    );
    rules
}

/// The pod CIDR of the whole cluster (every node's slice).
fn cluster_cidr(plan: &Plan) -> ipnet::Ipv4Net {
    let nets: Vec<ipnet::Ipv4Net> = plan.nodes.iter().map(|n| n.pod_cidr).collect();
    ipnet::Ipv4Net::aggregate(&nets)
        .into_iter()
        .next()
        .filter(|_| nets.len() == 1)
        .unwrap_or_else(|| supernet(&nets))
}

fn supernet(nets: &[ipnet::Ipv4Net]) -> ipnet::Ipv4Net {
    let Some(first) = nets.first() else {
        return ipnet::Ipv4Net::default();
    };
    let mut net = *first;
    while !nets.iter().all(|n| net.contains(n)) {
        match net.supernet() {
            Some(s) => net = s,
            None => break,
        }
    }
    net
}

fn cni(plan: &Plan, node: &NodePlan) -> TableBuilder {
    let mut t = TableBuilder::new(NfFamily::IP, CNI_TABLE);
    let pods = cluster_cidr(plan);
    t.base_chain("postrouting", NfChainType::NAT, NfHook::Postrouting, 100);
    t.rule(
        "postrouting",
        vec![
            eq(field("ip", "saddr"), prefix(pods)),
            cmp(field("ip", "daddr"), Operator::NEQ, prefix(pods)),
            eq(meta(MetaKey::Oifname), s(ETH0)),
            Statement::Masquerade(None),
        ],
        "pods reaching outside the pod network leave with the node's IP (ip-masq-agent)",
    );
    host_ports(plan, node, &mut t);
    t
}

/// The portmap plugin's part: a connection to one of the node's own
/// addresses on a pod's `hostPort` is DNATed to that pod, whether it came
/// in (prerouting) or from the node itself (output). Only pods on this
/// node, and only when some pod has a hostPort: a lab without any keeps
/// the table as it was.
fn host_ports(plan: &Plan, node: &NodePlan, t: &mut TableBuilder) {
    let mapped: Vec<(&super::PodPlan, &super::PortPlan, u16)> = plan
        .pods
        .iter()
        .filter(|p| p.node == node.name)
        .flat_map(|p| {
            p.ports
                .iter()
                .filter_map(move |port| port.host_port.map(|h| (p, port, h)))
        })
        .collect();
    if mapped.is_empty() {
        return;
    }
    // A chain before the rules that jump to it, or nft cannot find it.
    t.chain("hostports");
    t.base_chain(
        "hostport-prerouting",
        NfChainType::NAT,
        NfHook::Prerouting,
        -110,
    );
    t.rule("hostport-prerouting", vec![jump("hostports")], "");
    t.base_chain("hostport-output", NfChainType::NAT, NfHook::Output, -110);
    t.rule("hostport-output", vec![jump("hostports")], "");
    for (pod, port, host) in mapped {
        let proto = proto_word(port.protocol);
        let mut expr = vec![
            eq(fib_type(FibFlag::Daddr), s("local")),
            cmp(
                field("ip", "daddr"),
                Operator::NEQ,
                prefix("127.0.0.0/8".parse().unwrap_or_default()),
            ),
            eq(meta(MetaKey::L4proto), s(proto)),
            eq(field("th", "dport"), Expression::Number(u32::from(host))),
        ];
        expr.push(Statement::DNAT(Some(NAT {
            addr: Some(s(pod.ip.to_string())),
            family: Some(stmt::NATFamily::IP),
            port: Some(Expression::Number(u32::from(port.port))),
            flags: None,
        })));
        t.rule(
            "hostports",
            expr,
            format!(
                "hostPort {host}/{} -> {} {}:{}",
                port.protocol,
                pod.key(),
                pod.ip,
                port.port
            ),
        );
    }
}

fn kube_proxy(plan: &Plan, node: &NodePlan) -> TableBuilder {
    let mut t = TableBuilder::new(NfFamily::IP, TABLE);
    let pods = cluster_cidr(plan);

    // Hooks, as kube-proxy's nftables mode lays them out.
    t.base_chain("nat-prerouting", NfChainType::NAT, NfHook::Prerouting, -100);
    t.rule("nat-prerouting", vec![jump("services")], "");
    t.base_chain("nat-output", NfChainType::NAT, NfHook::Output, -100);
    t.rule("nat-output", vec![jump("services")], "");
    t.base_chain(
        "nat-postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
    );
    t.rule("nat-postrouting", vec![jump("masquerading")], "");
    let ct_new = || {
        cmp(
            Expression::Named(NamedExpression::CT(CT {
                key: "state".into(),
                family: None,
                dir: None,
            })),
            Operator::IN,
            s("new"),
        )
    };
    for (chain, hook, check) in [
        ("filter-forward", NfHook::Forward, "service-endpoints-check"),
        ("filter-output", NfHook::Output, "service-endpoints-check"),
        ("filter-input", NfHook::Input, "nodeport-endpoints-check"),
    ] {
        t.base_chain(chain, NfChainType::Filter, hook, -110);
        t.rule(chain, vec![ct_new(), jump(check)], "");
    }
    t.chain("service-endpoints-check");
    t.rule(
        "service-endpoints-check",
        vec![Statement::VerdictMap(VerdictMap {
            key: concat(vec![
                field("ip", "daddr"),
                meta(MetaKey::L4proto),
                field("th", "dport"),
            ]),
            data: s("@no-endpoint-services"),
        })],
        "services with no endpoints are rejected at once, never left to time out",
    );
    t.chain("nodeport-endpoints-check");
    t.rule(
        "nodeport-endpoints-check",
        vec![
            eq(fib_type(FibFlag::Daddr), s("local")),
            Statement::VerdictMap(VerdictMap {
                key: concat(vec![meta(MetaKey::L4proto), field("th", "dport")]),
                data: s("@no-endpoint-nodeports"),
            }),
        ],
        "node ports with no endpoints are rejected (or dropped, for Local with none here)",
    );
    t.chain("services");
    t.rule(
        "services",
        vec![Statement::VerdictMap(VerdictMap {
            key: concat(vec![
                field("ip", "daddr"),
                meta(MetaKey::L4proto),
                field("th", "dport"),
            ]),
            data: s("@service-ips"),
        })],
        "ClusterIP:port -> the service's chain",
    );
    t.rule(
        "services",
        vec![
            eq(fib_type(FibFlag::Daddr), s("local")),
            cmp(
                field("ip", "daddr"),
                Operator::NEQ,
                prefix("127.0.0.0/8".parse().unwrap_or_default()),
            ),
            Statement::VerdictMap(VerdictMap {
                key: concat(vec![meta(MetaKey::L4proto), field("th", "dport")]),
                data: s("@service-nodeports"),
            }),
        ],
        "a node IP:nodePort -> the service's external chain",
    );
    let mark = || meta(MetaKey::Mark);
    t.chain("mark-for-masquerade");
    t.rule(
        "mark-for-masquerade",
        vec![Statement::Mangle(Mangle {
            key: mark(),
            value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                mark(),
                Expression::Number(MASQ_MARK),
            ]))),
        })],
        "",
    );
    t.chain("masquerading");
    t.rule(
        "masquerading",
        vec![
            eq(
                Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                    mark(),
                    Expression::Number(MASQ_MARK),
                ))),
                Expression::Number(0),
            ),
            Statement::Return(None),
        ],
        "",
    );
    t.rule(
        "masquerading",
        vec![
            Statement::Mangle(Mangle {
                key: mark(),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
                    mark(),
                    Expression::Number(MASQ_MARK),
                ))),
            }),
            Statement::Masquerade(Some(NAT {
                addr: None,
                family: None,
                port: None,
                flags: Some(HashSet::from([stmt::NATFlag::FullyRandom])),
            })),
        ],
        "SNAT marked traffic to this node's address",
    );
    t.chain("reject-chain");
    t.rule(
        "reject-chain",
        vec![
            eq(meta(MetaKey::L4proto), s("tcp")),
            Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
        ],
        "TCP: a reset, so the client sees 'connection refused'",
    );
    t.rule(
        "reject-chain",
        vec![Statement::Reject(None)],
        "others: ICMP port unreachable",
    );
    // A verdict map's `drop` is not accepted by nft's JSON parser: a chain.
    t.chain("drop-chain");
    t.rule(
        "drop-chain",
        vec![Statement::Drop(None)],
        "traffic policy Local and no endpoint on this node: dropped, as kube-proxy does",
    );

    let mut service_ips = Vec::new();
    let mut node_ports = Vec::new();
    let mut no_ep_services = Vec::new();
    let mut no_ep_node_ports = Vec::new();

    // Traffic to a ClusterIP from outside the pod network (a node, the
    // external client) is masqueraded, so the endpoint's reply comes back
    // through this node: one rule for every service, as the service CIDR
    // holds them all.
    t.rule(
        "services",
        vec![
            eq(field("ip", "daddr"), prefix(plan.service_cidr)),
            cmp(field("ip", "saddr"), Operator::NEQ, prefix(pods)),
            jump("mark-for-masquerade"),
        ],
        "masquerade clients from outside the pod network to a ClusterIP",
    );
    // Sorted first below: a verdict map must exist before the rule using it.
    let mut hairpin = Vec::new();
    let mut hairpin_seen = HashSet::new();

    for svc in &plan.services {
        for (i, port) in svc.ports.iter().enumerate() {
            let id = port_id(svc, i);
            let h = tag(&[&id]);
            let proto = proto_word(port.protocol);
            // Endpoints that serve this service port, with their target port.
            let all: Vec<(&super::EndpointPlan, u16)> = svc
                .endpoints
                .iter()
                .filter_map(|e| e.ports.get(i).copied().flatten().map(|p| (e, p)))
                .collect();
            let local: Vec<(&super::EndpointPlan, u16)> = all
                .iter()
                .filter(|(e, _)| e.node == node.name)
                .copied()
                .collect();
            for (ep, _) in &all {
                // A set, not a search of the list: thousands of services
                // share a few pods.
                if hairpin_seen.insert(ep.ip) {
                    hairpin.push(concat(vec![s(ep.ip.to_string()), s(ep.ip.to_string())]));
                }
            }
            // With sessionAffinity, an endpoint needs its own chain, to
            // remember the client before the DNAT.
            if svc.affinity_timeout.is_some() {
                for (ep, tp) in &all {
                    let chain = endpoint_chain(&h, &id, ep, *tp);
                    t.chain(&chain);
                    t.rule(
                        &chain,
                        vec![Statement::Set(stmt::Set {
                            op: stmt::SetOp::Update,
                            elem: field("ip", "saddr"),
                            set: Cow::Owned(format!("@{}", affinity_set(&h, ep, *tp))),
                        })],
                        "remember this client for sessionAffinity",
                    );
                    t.rule(&chain, dnat(proto, ep, *tp), endpoint_comment(ep, *tp));
                }
            }

            let Some(cip) = svc.cluster_ip else { continue };
            // internalTrafficPolicy: Local keeps cluster traffic on the node.
            let internal = if svc.internal_local { &local } else { &all };
            let service_chain = format!("service-{h}-{id}");
            let key = concat(vec![
                s(cip.to_string()),
                s(proto),
                Expression::Number(u32::from(port.port)),
            ]);
            if internal.is_empty() {
                no_ep_services.push(Expression::List(vec![
                    key,
                    if svc.internal_local && !all.is_empty() {
                        goto_verdict("drop-chain")
                    } else {
                        goto_verdict("reject-chain")
                    },
                ]));
            } else {
                service_ips.push(Expression::List(vec![key, goto_verdict(&service_chain)]));
                t.chain(&service_chain);
                balance(&mut t, &service_chain, svc, &h, &id, proto, internal);
            }

            // NodePort (and the NodePort behind a LoadBalancer).
            let Some(node_port) = port.node_port else {
                continue;
            };
            let external_chain = format!("external-{h}-{id}");
            let np_key = concat(vec![s(proto), Expression::Number(u32::from(node_port))]);
            let reachable = if svc.external_local { &local } else { &all };
            if reachable.is_empty() {
                let verdict = if svc.external_local && !all.is_empty() {
                    goto_verdict("drop-chain")
                } else {
                    goto_verdict("reject-chain")
                };
                no_ep_node_ports.push(Expression::List(vec![np_key, verdict]));
                continue;
            }
            node_ports.push(Expression::List(vec![
                np_key,
                goto_verdict(&external_chain),
            ]));
            t.chain(&external_chain);
            if svc.external_local {
                t.rule(
                    &external_chain,
                    vec![
                        eq(fib_type(FibFlag::Saddr), s("local")),
                        jump("mark-for-masquerade"),
                    ],
                    "externalTrafficPolicy Local: only the node's own traffic is masqueraded",
                );
            } else {
                t.rule(
                    &external_chain,
                    vec![jump("mark-for-masquerade")],
                    "externalTrafficPolicy Cluster: masquerade, the pod sees a node IP",
                );
            }
            balance(&mut t, &external_chain, svc, &h, &id, proto, reachable);
        }
    }

    t.objects.push(NfListObject::Set(Box::new(Set {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: "hairpin".into(),
        set_type: SetTypeValue::Concatenated(Cow::Owned(vec![
            SetType::Ipv4Addr,
            SetType::Ipv4Addr,
        ])),
        elem: (!hairpin.is_empty()).then_some(Cow::Owned(hairpin)),
        comment: Some(Cow::Borrowed(
            "endpoint . itself: a pod reaching itself through a Service",
        )),
        ..Set::default()
    })));
    t.rule(
        "nat-postrouting",
        vec![
            eq(
                concat(vec![field("ip", "saddr"), field("ip", "daddr")]),
                s("@hairpin"),
            ),
            Statement::Masquerade(None),
        ],
        "hairpin: the pod sees the connection come from its node, and answers through it",
    );

    let ip_proto_port = vec![SetType::Ipv4Addr, SetType::InetProto, SetType::InetService];
    let proto_port = vec![SetType::InetProto, SetType::InetService];
    t.verdict_map(
        "service-ips",
        ip_proto_port.clone(),
        service_ips,
        "ClusterIP . protocol . port -> service chain",
    );
    t.verdict_map(
        "service-nodeports",
        proto_port.clone(),
        node_ports,
        "protocol . nodePort -> external chain",
    );
    t.verdict_map(
        "no-endpoint-services",
        ip_proto_port,
        no_ep_services,
        "services without endpoints: reject",
    );
    t.verdict_map(
        "no-endpoint-nodeports",
        proto_port,
        no_ep_node_ports,
        "node ports without endpoints",
    );
    // Chains, sets and maps must exist before the rules that use them.
    t.objects.sort_by_key(|o| match o {
        NfListObject::Chain(_) => 0,
        NfListObject::Set(_) | NfListObject::Map(_) => 1,
        _ => 2,
    });
    t
}

fn endpoint_chain(h: &str, id: &str, ep: &super::EndpointPlan, port: u16) -> String {
    let _ = h;
    format!(
        "endpoint-{}-{id}__{}/{port}",
        tag(&[id, &ep.ip.to_string(), &port.to_string()]),
        ep.ip
    )
}

fn affinity_set(h: &str, ep: &super::EndpointPlan, port: u16) -> String {
    format!(
        "affinity-{}",
        tag(&[h, &ep.ip.to_string(), &port.to_string()])
    )
}

fn dnat(proto: &'static str, ep: &super::EndpointPlan, port: u16) -> Vec<Stmt> {
    vec![
        eq(meta(MetaKey::L4proto), s(proto)),
        Statement::DNAT(Some(NAT {
            addr: Some(s(ep.ip.to_string())),
            family: Some(stmt::NATFamily::IP),
            port: Some(Expression::Number(u32::from(port))),
            flags: None,
        })),
    ]
}

fn endpoint_comment(ep: &super::EndpointPlan, port: u16) -> String {
    format!("endpoint {}/{} {}:{port}", ep.namespace, ep.pod, ep.ip)
}

/// Rules that pick one endpoint: a returning client first (affinity), else
/// one at random, the way kube-proxy's iptables mode does it: the first
/// endpoint with probability 1/n, the next 1/(n-1) of the rest, and so on.
/// No set per service: the kernel allocates anonymous sets' names with a
/// scan of the table's sets, which makes thousands of services quadratic.
fn balance(
    t: &mut TableBuilder,
    chain: &str,
    svc: &ServicePlan,
    h: &str,
    id: &str,
    proto: &'static str,
    endpoints: &[(&super::EndpointPlan, u16)],
) {
    let affinity = svc.affinity_timeout;
    if let Some(timeout) = affinity {
        for (ep, tp) in endpoints {
            let set = affinity_set(h, ep, *tp);
            t.affinity_set(&set, timeout);
            t.rule(
                chain,
                vec![
                    eq(field("ip", "saddr"), s(format!("@{set}"))),
                    goto(&endpoint_chain(h, id, ep, *tp)),
                ],
                format!("sessionAffinity: back to {}", ep.pod),
            );
        }
    }
    let n = endpoints.len();
    for (k, (ep, tp)) in endpoints.iter().enumerate() {
        let left = (n - k) as u32;
        let mut rule = Vec::new();
        if left > 1 {
            rule.push(eq(
                Expression::Named(NamedExpression::Numgen(Numgen {
                    mode: NgMode::Random,
                    ng_mod: left,
                    offset: None,
                })),
                Expression::Number(0),
            ));
        }
        let odds = if left > 1 {
            format!(" (1 in {left})")
        } else {
            String::new()
        };
        if affinity.is_some() {
            rule.push(goto(&endpoint_chain(h, id, ep, *tp)));
            t.rule(
                chain,
                rule,
                format!("{}/{}: to {}{odds}", svc.namespace, svc.name, ep.pod),
            );
        } else {
            rule.extend(dnat(proto, ep, *tp));
            t.rule(chain, rule, format!("{}{odds}", endpoint_comment(ep, *tp)));
        }
    }
}

/// The cloud load balancer in the `lb` namespace: a full proxy from each
/// LoadBalancer IP:port to the nodes' NodePort (only nodes with an endpoint,
/// for `externalTrafficPolicy: Local`, as a cloud's health check would).
pub fn lb_ruleset(plan: &Plan) -> Nftables<'static> {
    let mut t = TableBuilder::new(NfFamily::IP, LB_TABLE);
    t.base_chain("prerouting", NfChainType::NAT, NfHook::Prerouting, -100);
    t.base_chain("postrouting", NfChainType::NAT, NfHook::Postrouting, 100);
    t.base_chain("input", NfChainType::Filter, NfHook::Input, 0);
    t.rule(
        "postrouting",
        vec![
            // A flag test (`ct status dnat`), not equality.
            cmp(
                Expression::Named(NamedExpression::CT(CT {
                    key: "status".into(),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                s("dnat"),
            ),
            Statement::Masquerade(None),
        ],
        "a full proxy: nodes answer the load balancer, which answers the client",
    );
    for svc in plan
        .services
        .iter()
        .filter(|s| s.kind == ServiceType::LoadBalancer)
    {
        let Some(lb_ip) = svc.load_balancer_ip else {
            continue;
        };
        for (i, port) in svc.ports.iter().enumerate() {
            let Some(node_port) = port.node_port else {
                continue;
            };
            let proto = proto_word(port.protocol);
            let nodes: Vec<&NodePlan> = plan
                .nodes
                .iter()
                .filter(|n| {
                    !svc.external_local
                        || svc.endpoints.iter().any(|e| {
                            e.node == n.name && e.ports.get(i).copied().flatten().is_some()
                        })
                })
                .collect();
            let matches = vec![
                eq(field("ip", "daddr"), s(lb_ip.to_string())),
                eq(meta(MetaKey::L4proto), s(proto)),
                eq(
                    field(proto, "dport"),
                    Expression::Number(u32::from(port.port)),
                ),
            ];
            if nodes.is_empty() {
                let mut r = matches.clone();
                r.push(Statement::Reject(None));
                t.rule(
                    "input",
                    r,
                    format!("{}/{}: no node has an endpoint", svc.namespace, svc.name),
                );
                continue;
            }
            let items: Vec<SetItem<'static>> = nodes
                .iter()
                .enumerate()
                .map(|(k, n)| SetItem::Mapping(Expression::Number(k as u32), s(n.ip.to_string())))
                .collect();
            let mut r = matches;
            r.push(Statement::DNAT(Some(NAT {
                addr: Some(Expression::Named(NamedExpression::Map(Box::new(
                    nftables::expr::Map {
                        key: Expression::Named(NamedExpression::Numgen(Numgen {
                            mode: NgMode::Random,
                            ng_mod: nodes.len() as u32,
                            offset: None,
                        })),
                        data: Expression::Named(NamedExpression::Set(items)),
                    },
                )))),
                family: Some(stmt::NATFamily::IP),
                // Every node listens on the same node port.
                port: Some(Expression::Number(u32::from(node_port))),
                flags: None,
            })));
            let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            t.rule(
                "prerouting",
                r,
                format!(
                    "{}/{} {lb_ip}:{} -> nodePort {node_port} on {}",
                    svc.namespace,
                    svc.name,
                    port.port,
                    names.join(",")
                ),
            );
        }
    }
    let mut batch = Batch::new();
    t.replace_into(&mut batch);
    batch.to_nftables()
}

/// The ruleset as `nft -j` input. Every map podlab makes maps to verdicts,
/// a data type the nftables crate cannot name: maps are declared with a
/// `mark` placeholder, replaced here in the text (nothing else serialises
/// as `"map":"mark"`; a mark in a rule is `{"meta":{"key":"mark"}}`).
pub fn to_json(rules: &Nftables) -> String {
    serde_json::to_string(rules)
        .unwrap_or_default()
        .replace("\"map\":\"mark\"", "\"map\":\"verdict\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{EndpointPlan, ServicePortPlan, TargetPort};

    fn plan_with_services() -> Plan {
        let file = crate::lab::parse("t.yaml", crate::lab::DEMO).expect("demo parses");
        let mut plan = crate::plan::build(&file).expect("demo plans");
        let ep = |pod: &str, ip: [u8; 4], node: &str| EndpointPlan {
            pod: pod.into(),
            namespace: "default".into(),
            ip: ip.into(),
            node: node.into(),
            ports: vec![Some(80)],
        };
        let port = |node_port| ServicePortPlan {
            name: Some("http".into()),
            protocol: Protocol::Tcp,
            port: 80,
            target_port: TargetPort::Number(80),
            node_port,
        };
        let svc =
            |name: &str, kind, ip: [u8; 4], node_port, endpoints, local, affinity| ServicePlan {
                namespace: "default".into(),
                name: name.into(),
                kind,
                cluster_ip: Some(ip.into()),
                load_balancer_ip: (kind == ServiceType::LoadBalancer)
                    .then(|| [172, 18, 0, 200].into()),
                external_name: None,
                selector: Default::default(),
                ports: vec![port(node_port)],
                affinity_timeout: affinity,
                external_local: local,
                internal_local: false,
                publish_not_ready: false,
                endpoints,
            };
        plan.services = vec![
            svc(
                "web",
                ServiceType::ClusterIP,
                [10, 96, 0, 20],
                None,
                vec![
                    ep("a", [10, 244, 1, 2], "node-1"),
                    ep("b", [10, 244, 2, 2], "node-2"),
                ],
                false,
                Some(60),
            ),
            svc(
                "empty",
                ServiceType::ClusterIP,
                [10, 96, 0, 21],
                None,
                vec![],
                false,
                None,
            ),
            svc(
                "np",
                ServiceType::NodePort,
                [10, 96, 0, 22],
                Some(30080),
                vec![ep("a", [10, 244, 1, 2], "node-1")],
                true,
                None,
            ),
            svc(
                "lb",
                ServiceType::LoadBalancer,
                [10, 96, 0, 23],
                Some(30081),
                vec![ep("a", [10, 244, 1, 2], "node-1")],
                false,
                None,
            ),
        ];
        plan
    }

    #[test]
    fn rules_name_every_service_and_reject_empty_ones() {
        let plan = plan_with_services();
        let json = to_json(&node_ruleset(&plan, &plan.nodes[1]));
        assert!(json.contains("\"map\":\"verdict\""), "{json}");
        assert!(
            json.contains("default/web/tcp/http"),
            "chains named after the service port"
        );
        assert!(json.contains("reject-chain"));
        assert!(
            json.contains("10.96.0.21"),
            "empty service listed for rejection"
        );
        // node-2 has no local endpoint for the Local NodePort: dropped there.
        assert!(json.contains("\"drop\""), "{json}");
    }

    /// Loads every generated table with the real `nft`, in a throwaway
    /// namespace, so a rule the kernel refuses fails here and not in `up`.
    #[test]
    fn the_kernel_accepts_the_rules() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "needs root in CI"
            );
            eprintln!("skipping: needs root (a network namespace and nft)");
            return;
        }
        let plan = plan_with_services();
        for json in [
            to_json(&node_ruleset(&plan, &plan.nodes[0])),
            to_json(&node_ruleset(&plan, &plan.nodes[1])),
            to_json(&lb_ruleset(&plan)),
        ] {
            use std::io::Write;
            let mut child = std::process::Command::new("unshare")
                .args(["-n", "nft", "-j", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("unshare nft");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(json.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("nft");
            assert!(
                out.status.success(),
                "nft refused:\n{}\n{json}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
