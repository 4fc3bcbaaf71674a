//! The plan: a pure function from a validated lab to every kernel object and
//! server the lab needs.
//!
//! Nothing here does I/O. The plan is saved as the lab's state, read by the
//! daemon, and compared with what `observe` reads back.

mod build;
pub mod desired;
pub mod dns;
pub mod env;
pub mod kubeproxy;
pub mod names;
pub mod netpol;
pub mod nftdiff;
pub mod probes;
pub mod services;
pub mod workloads;

pub use build::{build, build_with};
pub use names::{deployment_pod_name, host_veth_name, uplink_name};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::lab::{DnsConfig, DnsPolicy, Protocol, RestartPolicy};

/// Format version of the saved plan: a daemon never reads a plan it does not
/// understand.
pub const PLAN_VERSION: u32 = 1;

/// Name of the bridge of the node network, inside the lab's `net` namespace.
pub const NODE_BRIDGE: &str = "br0";
/// Name of each node's pod bridge, as the bridge CNI plugin names it.
pub const POD_BRIDGE: &str = "cni0";
/// Every pod's and node's interface on its network.
pub const ETH0: &str = "eth0";
/// Interface index requested for `eth0` in pod and client namespaces: `lo`
/// is always 1, so 2 is free, and knowing it saves a lookup per pod.
pub const ETH0_INDEX: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub lab: String,
    /// Where the lab came from (a path, or `built-in`).
    pub source: String,
    pub net: NetPlan,
    pub nodes: Vec<NodePlan>,
    pub pods: Vec<PodPlan>,
    /// Namespaces on the node network that are not nodes: `external`, `lb`.
    pub clients: Vec<ClientPlan>,
    pub services: Vec<ServicePlan>,
    /// NetworkPolicies, resolved against the pods (`netpol`).
    #[serde(default)]
    pub policies: Vec<netpol::PolicyPlan>,
    /// StatefulSets, DaemonSets and bare ReplicaSets, for the lab's API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<workloads::WorkloadPlan>,
    pub cluster_domain: String,
    pub service_cidr: Ipv4Net,
    pub dns_ip: Ipv4Addr,
    pub mtu: u32,
    /// The Lab's `spec.dns.upstream`: static answers for names outside the
    /// cluster domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_upstream: Vec<dns::Upstream>,
    /// The Deployments whose pods are in `pods` (their `owner`), as the
    /// lab's API serves them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentPlan>,
    /// Labels of the namespaces the lab file (or kubectl) labelled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// A Deployment as the API shows it; its pods are planned with the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentPlan {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub replicas: u32,
    pub selector: BTreeMap<String, String>,
    pub template_labels: BTreeMap<String, String>,
    /// `(name, image)` of each container of the template.
    pub containers: Vec<(String, Option<String>)>,
}

/// The node network: a bridge in the lab's own `net` namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetPlan {
    pub netns: String,
    pub bridge: String,
    /// The bridge's own address: the nodes' default gateway.
    pub gateway: Ipv4Addr,
    pub cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The node's end of its uplink, in the `net` namespace, on `br0`.
    pub uplink: String,
    pub pod_cidr: Ipv4Net,
    /// Address of `cni0`: the pods' default gateway.
    pub pod_gateway: Ipv4Addr,
    /// Routes to the other nodes' pod CIDRs through their node IPs: what a
    /// routed CNI (flannel host-gw, Calico without overlay) installs.
    pub routes: Vec<RoutePlan>,
    pub labels: BTreeMap<String, String>,
    /// The last pod address handed out on this node: the next pod takes
    /// the one after it (`build::Ipam`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pod_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodPlan {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The pod's veth end on the node, attached to `cni0`.
    pub host_veth: String,
    pub hostname: String,
    pub subdomain: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The workload that made this pod, if any: a Deployment's name for
    /// its pods (their ReplicaSet is named from the pod), else the
    /// StatefulSet's, DaemonSet's or ReplicaSet's.
    pub owner: Option<String>,
    /// `ReplicaSet` (a Deployment's pods too), `StatefulSet` or `DaemonSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_kind: Option<String>,
    pub restart_policy: RestartPolicy,
    /// Every container's name, in the spec's order: one with neither ports
    /// nor a command is still a container (Running, Ready), as a pause-like
    /// sidecar is. Empty in plans saved before it: then the containers are
    /// those the ports and processes name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    pub ports: Vec<PortPlan>,
    pub processes: Vec<ProcessPlan>,
    /// The containers' probes, ports resolved (`probes::of`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbePlan>,
    /// `dnsPolicy` and `dnsConfig`: the pod's resolv.conf (`dns::resolv_conf`).
    #[serde(default)]
    pub dns: PodDns,
    /// `enableServiceLinks`: services' variables in the pod's processes.
    #[serde(default = "yes")]
    pub service_links: bool,
    /// What the daemon serves on the pod's ports.
    #[serde(default)]
    pub role: PodRole,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PodDns {
    pub policy: DnsPolicy,
    pub config: Option<DnsConfig>,
}

/// What the daemon serves on a pod's declared ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PodRole {
    /// The HTTP/UDP echo: a stand-in for the container's image.
    #[default]
    Echo,
    /// The cluster DNS responder (`kube-system/coredns-...`).
    Dns,
}

impl PodPlan {
    /// The controller that owns the pod, as its ownerReference names it:
    /// (kind, name). A Deployment's pods are named
    /// `<deployment>-<hash>-<suffix>` and a bare ReplicaSet's
    /// `<replicaset>-<suffix>`: either way the ReplicaSet is the name
    /// without the suffix. Plans saved before `owner_kind` have only
    /// Deployments' pods.
    pub fn owner_ref(&self) -> Option<(&str, &str)> {
        let owner = self.owner.as_deref()?;
        match self.owner_kind.as_deref() {
            Some(kind @ ("StatefulSet" | "DaemonSet")) => Some((kind, owner)),
            _ => Some((
                "ReplicaSet",
                self.name.rsplit_once('-').map_or(owner, |(rs, _)| rs),
            )),
        }
    }

    /// `namespace/name`, how messages and the daemon name a pod.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `/etc/hosts` as kubelet writes it for a pod.
    pub fn hosts_file(&self, cluster_domain: &str) -> String {
        let mut s = String::from(
            "# Kubernetes-managed hosts file (written by podlab).\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        match &self.subdomain {
            Some(sub) => s.push_str(&format!(
                "{}\t{}.{sub}.{}.svc.{cluster_domain}\t{}\n",
                self.ip, self.hostname, self.namespace, self.hostname
            )),
            None => s.push_str(&format!("{}\t{}\n", self.ip, self.hostname)),
        }
        s
    }
}

/// A port the daemon serves in the pod: HTTP echo for TCP, echo for UDP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPlan {
    pub container: String,
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
    /// The node's port DNATed here (`hostPort`, as the portmap plugin does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

/// One probe of a container, as the daemon runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbePlan {
    pub container: String,
    pub kind: ProbeKind,
    pub action: ProbeAction,
    pub initial_delay_s: u32,
    pub period_s: u32,
    pub timeout_s: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

pub use crate::lab::ProbeKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeAction {
    Tcp {
        port: u16,
    },
    Http {
        port: u16,
        path: String,
        https: bool,
        headers: Vec<(String, String)>,
    },
    Grpc {
        port: u16,
        service: Option<String>,
    },
    /// Run in the pod, as the container's processes run.
    Exec {
        argv: Vec<String>,
    },
    /// An exec probe of a program of the image, which podlab does not run:
    /// answered by the echo on the container's TCP ports, each of which
    /// must connect and the first answer an HTTP GET (none: nothing can
    /// fail, so it passes).
    EchoStandIn {
        /// The command as written, for `validate` to name.
        #[serde(default)]
        command: Vec<String>,
        ports: Vec<u16>,
    },
}

/// A container's `command`/`args`, run as a real process in the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPlan {
    pub container: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// A Service, with its addresses allocated and its endpoints computed from
/// the pods its selector picks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceType,
    /// `None` for a headless service (`clusterIP: None`) and ExternalName.
    pub cluster_ip: Option<Ipv4Addr>,
    /// The LoadBalancer's address from `loadBalancerPool`.
    pub load_balancer_ip: Option<Ipv4Addr>,
    pub external_name: Option<String>,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePortPlan>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `publishNotReadyAddresses: true`: readiness does not take a pod out
    /// of the endpoints (`kernel::services::ready_view`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_not_ready: bool,
    pub endpoints: Vec<EndpointPlan>,
}

impl ServicePlan {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePortPlan {
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    /// The port on the pods, resolved per endpoint (a named targetPort may
    /// differ between pods): see `EndpointPlan::ports`.
    pub target_port: TargetPort,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// One ready pod behind a service, with the target port of each service
/// port resolved on that pod (`None`: the pod does not declare the named
/// port, so it is not an endpoint for that service port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPlan {
    pub pod: String,
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub node: String,
    pub ports: Vec<Option<u16>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientPlan {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub uplink: String,
}

impl Plan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodPlan> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// Every namespace the lab owns, in the order they are made.
    pub fn netns_names(&self) -> Vec<&str> {
        let mut v = vec![self.net.netns.as_str()];
        v.extend(self.nodes.iter().map(|n| n.netns.as_str()));
        v.extend(self.clients.iter().map(|c| c.netns.as_str()));
        v.extend(self.pods.iter().map(|p| p.netns.as_str()));
        v
    }
}
