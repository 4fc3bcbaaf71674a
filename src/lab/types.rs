//! The lab file as podlab understands it, after decoding and defaulting.
//!
//! These are plain values: everything `plan/` needs and nothing about YAML.
//! Positions are kept (`Pos`) so that later checks can point at the line a
//! learner has to change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

/// A 1-based line and column in the lab file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A whole lab file: the `Lab` document and the Kubernetes manifests.
#[derive(Debug, Clone, Serialize)]
pub struct LabFile {
    /// The file it came from, as given (for messages).
    pub source: String,
    pub lab: Lab,
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub policies: Vec<NetworkPolicy>,
    /// Fields Kubernetes has that a lab has no use for: accepted and listed
    /// by `validate`, so that nothing is silently ignored.
    pub ignored: Vec<Ignored>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub pos: Pos,
    /// Dotted path, e.g. `spec.containers[0].resources`.
    pub field: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    pub name: String,
    pub pos: Pos,
    pub nodes: Vec<NodeSpec>,
    pub network: Network,
    /// Assertions for `podlab test`, kept undecoded until that lands.
    pub expect: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    pub name: String,
    pub pos: Pos,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub node_cidr: Ipv4Net,
    pub pod_cidr: Ipv4Net,
    /// Prefix length of each node's slice of `pod_cidr` (24: 10.244.1.0/24).
    pub node_pod_prefix: u8,
    pub service_cidr: Ipv4Net,
    pub cluster_domain: String,
    pub dns_ip: Ipv4Addr,
    pub node_port_range: (u16, u16),
    pub load_balancer_pool: (Ipv4Addr, Ipv4Addr),
    /// MTU of every veth and bridge the lab makes.
    pub mtu: u32,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            node_cidr: Ipv4Net::new(Ipv4Addr::new(172, 18, 0, 0), 24).expect("valid prefix"),
            pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid prefix"),
            node_pod_prefix: 24,
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).expect("valid prefix"),
            cluster_domain: "cluster.local".into(),
            dns_ip: Ipv4Addr::new(10, 96, 0, 10),
            node_port_range: (30000, 32767),
            load_balancer_pool: (
                Ipv4Addr::new(172, 18, 0, 200),
                Ipv4Addr::new(172, 18, 0, 250),
            ),
            mtu: 1500,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Namespace {
    pub name: String,
    pub pos: Pos,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, Default,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub protocol: Protocol,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    pub name: String,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub ports: Vec<ContainerPort>,
    pub env: Vec<EnvVar>,
}

/// A pod's spec, shared by `Pod` and a Deployment's template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodSpec {
    pub node_name: Option<String>,
    /// Position of `nodeName`, for "no such node" errors.
    pub node_name_pos: Pos,
    pub containers: Vec<Container>,
    pub restart_policy: RestartPolicy,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub labels: BTreeMap<String, String>,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub labels: BTreeMap<String, String>,
    pub replicas: u32,
    pub selector: BTreeMap<String, String>,
    pub template_labels: BTreeMap<String, String>,
    pub template: PodSpec,
}

/// Recognised and kept; realised by the Services issue.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub raw: serde_json::Value,
}

/// Recognised and kept; realised by the NetworkPolicy issue.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub raw: serde_json::Value,
}
