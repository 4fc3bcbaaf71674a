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
    /// StatefulSets, DaemonSets and bare ReplicaSets, in file order.
    pub workloads: Vec<Workload>,
    pub services: Vec<Service>,
    /// Endpoints and EndpointSlices written by hand, for Services without
    /// a selector, in file order.
    pub endpoints: Vec<HandEndpoints>,
    pub policies: Vec<NetworkPolicy>,
    /// Objects kept for the lab's API that shape nothing in the network
    /// (`lab::stored`), in file order.
    pub stored: Vec<super::stored::Stored>,
    /// The kinds the file's CustomResourceDefinitions define.
    pub custom_kinds: Vec<super::stored::CustomKind>,
    /// Fields Kubernetes has that a lab has no use for: accepted and listed
    /// by `validate`, so that nothing is silently ignored.
    pub ignored: Vec<Ignored>,
    /// What is allowed but probably not meant (a service that selects no
    /// pod), sorted by position: `validate` prints them, `up` goes on.
    #[serde(skip)]
    pub warnings: Vec<crate::lab::Diagnostic>,
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
    /// Assertions for `podlab test` (`lab::expect`).
    pub expect: Vec<super::expect::Assertion>,
    /// `spec.dns.upstream`: static answers for names outside the cluster
    /// domain (the lab has no internet to forward them to).
    pub dns_upstream: Vec<UpstreamEntry>,
}

/// One `spec.dns.upstream` entry: a name outside the cluster domain and
/// what the lab's DNS answers for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamEntry {
    /// Lowercase, without a trailing dot.
    pub name: String,
    pub pos: Pos,
    pub answer: UpstreamAnswer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum UpstreamAnswer {
    /// `a: [ip, ...]`: A records.
    A(Vec<Ipv4Addr>),
    /// `cname: target`: an alias, followed through the other entries.
    Cname(String),
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
    /// `hostPort`: the node's port that reaches this one (portmap's DNAT).
    pub host_port: Option<u16>,
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
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
}

/// Which probe of a container: a liveness or startup probe must have
/// `successThreshold: 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

impl ProbeKind {
    /// Each, with its field in a container.
    pub const ALL: [(ProbeKind, &'static str); 3] = [
        (ProbeKind::Readiness, "readinessProbe"),
        (ProbeKind::Liveness, "livenessProbe"),
        (ProbeKind::Startup, "startupProbe"),
    ];
}

/// A container's probe, with Kubernetes' defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub handler: ProbeHandler,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ProbeHandler {
    TcpSocket {
        port: ProbePort,
    },
    HttpGet {
        port: ProbePort,
        path: String,
        scheme: HttpScheme,
        headers: Vec<(String, String)>,
    },
    Grpc {
        port: u16,
        service: Option<String>,
    },
    Exec {
        command: Vec<String>,
    },
}

/// A probe's port: a number, or the name of one of the container's ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ProbePort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpScheme {
    Http,
    Https,
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
    pub dns_policy: DnsPolicy,
    pub dns_config: Option<DnsConfig>,
    /// `enableServiceLinks` (default true): inject services' variables.
    pub enable_service_links: bool,
}

/// `dnsPolicy`: where a pod's `/etc/resolv.conf` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
pub enum DnsPolicy {
    /// Cluster DNS first (kube-dns), as kubelet writes it.
    #[default]
    ClusterFirst,
    /// Without hostNetwork (which podlab refuses) the same as ClusterFirst.
    ClusterFirstWithHostNet,
    /// The node's resolver: the host's `/etc/resolv.conf`.
    Default,
    /// Only what `dnsConfig` says.
    None,
}

/// `dnsConfig`, merged by kubelet into what `dnsPolicy` gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `options: [{name, value}]`.
    pub options: Vec<(String, Option<String>)>,
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
    /// Replica index → how many times its pod was deleted and replaced
    /// (`state::Edits::generations`): each replacement has a new name, as
    /// a ReplicaSet's new pod has. Not in the file: the running lab's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub replaced: BTreeMap<u32, u32>,
}

/// The `apps/v1` kinds besides Deployment that make pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum WorkloadKind {
    StatefulSet,
    DaemonSet,
    ReplicaSet,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
        }
    }

    /// How messages name it: `statefulset`.
    pub fn word(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
        }
    }
}

/// A StatefulSet, DaemonSet or ReplicaSet: a Deployment's shape plus what
/// each kind adds.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub labels: BTreeMap<String, String>,
    /// `spec.replicas` (a DaemonSet has none: one pod per matching node).
    pub replicas: u32,
    pub selector: BTreeMap<String, String>,
    pub template_labels: BTreeMap<String, String>,
    pub template: PodSpec,
    /// A StatefulSet's `spec.serviceName`: its pods' subdomain.
    pub service_name: Option<String>,
    /// A DaemonSet template's `nodeSelector`: the nodes it runs on.
    pub node_selector: BTreeMap<String, String>,
    /// A StatefulSet's `spec.ordinals.start`: its first pod's ordinal.
    pub ordinals_start: u32,
}

impl Workload {
    /// Whether a DaemonSet runs a pod on `node`: its nodeSelector holds.
    /// The lab's nodes carry no taints, so every toleration is met.
    pub fn runs_on(&self, node: &NodeSpec) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
    }

    /// How many pods it makes in a lab of `nodes`.
    pub fn pod_count(&self, nodes: &[NodeSpec]) -> u32 {
        match self.kind {
            WorkloadKind::DaemonSet => nodes.iter().filter(|n| self.runs_on(n)).count() as u32,
            _ => self.replicas,
        }
    }
}

/// A `v1/Service`.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub raw: serde_json::Value,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum ServiceKind {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub enum ClusterIpSpec {
    /// Not given: allocated from serviceCIDR.
    #[default]
    Auto,
    /// `clusterIP: None`: a headless service.
    Headless,
    Fixed(Ipv4Addr, Pos),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TargetPortSpec {
    Number(u16),
    /// A container port's name, resolved per selected pod.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    /// `None`: the same as `port`.
    pub target_port: Option<TargetPortSpec>,
    pub target_port_pos: Pos,
    /// A requested nodePort and where it was asked for.
    pub node_port: Option<(u16, Pos)>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    pub cluster_ip: ClusterIpSpec,
    /// `None`: no selector, so no endpoints are managed.
    pub selector: Option<BTreeMap<String, String>>,
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP`: the timeout in seconds (default 10800).
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `publishNotReadyAddresses: true`: pods are endpoints (and in DNS)
    /// whether ready or not, as StatefulSets' peer discovery wants.
    pub publish_not_ready: bool,
    pub external_name: Option<String>,
    /// `spec.loadBalancerIP` (deprecated in Kubernetes, still honoured).
    pub load_balancer_ip: Option<(Ipv4Addr, Pos)>,
}

/// A `networking.k8s.io/v1` NetworkPolicy (`plan::netpol` compiles it).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pos: Pos,
    pub raw: serde_json::Value,
    pub spec: PolicySpec,
}

/// A label selector: every `matchLabels` pair and every expression must
/// hold; empty selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct LabelSelector {
    #[serde(
        rename = "matchLabels",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    #[serde(
        rename = "matchExpressions",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector, with Kubernetes' semantics:
    /// `NotIn` and `DoesNotExist` hold for a pod without the key.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOp::In => value.is_some_and(|v| r.values.contains(v)),
                    SelectorOp::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    SelectorOp::Exists => value.is_some(),
                    SelectorOp::DoesNotExist => value.is_none(),
                }
            })
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// As kubectl prints a selector: `app=web,tier in (a,b),!debug`;
/// `<none>` when it selects everything.
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("<none>");
        }
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.extend(self.match_expressions.iter().map(|r| match r.operator {
            SelectorOp::In => format!("{} in ({})", r.key, r.values.join(",")),
            SelectorOp::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            SelectorOp::Exists => r.key.clone(),
            SelectorOp::DoesNotExist => format!("!{}", r.key),
        }));
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOp,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum SelectorOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PolicyType {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PolicySpec {
    pub pod_selector: LabelSelector,
    /// `policyTypes` as written (`None`: defaulted by `plan::netpol`).
    pub policy_types: Option<Vec<PolicyType>>,
    /// `None`: not written; `Some([])`: written empty. Both deny.
    pub ingress: Option<Vec<PolicyRule>>,
    pub egress: Option<Vec<PolicyRule>>,
}

/// One ingress or egress rule: from/to any of `peers` (empty: everyone),
/// on any of `ports` (empty: every port).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PolicyRule {
    pub peers: Vec<PolicyPeer>,
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PolicyPeer {
    /// `podSelector` and/or `namespaceSelector`, in one peer: both must hold.
    /// A missing podSelector selects every pod; a missing namespaceSelector
    /// means the policy's own namespace.
    Pods {
        pod_selector: Option<LabelSelector>,
        namespace_selector: Option<LabelSelector>,
    },
    IpBlock {
        cidr: Ipv4Net,
        except: Vec<Ipv4Net>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PolicyPort {
    pub protocol: Protocol,
    /// `None`: every port of the protocol.
    pub port: Option<PolicyPortNumber>,
    pub end_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PolicyPortNumber {
    Number(u16),
    /// A container port's name, resolved on each destination pod.
    Name(String),
}

/// An Endpoints or EndpointSlice of the file: the endpoints of a Service
/// without a selector, which no controller manages (Kubernetes lets a
/// Service point at addresses no selector finds: a database outside the
/// cluster, a pod of another namespace).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandEndpoints {
    pub namespace: String,
    pub name: String,
    /// The Service they serve: an Endpoints' own name, an EndpointSlice's
    /// `kubernetes.io/service-name` label.
    pub service: String,
    pub kind: HandEndpointsKind,
    pub pos: Pos,
    pub subsets: Vec<HandSubset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HandEndpointsKind {
    Endpoints,
    EndpointSlice,
}

impl std::fmt::Display for HandEndpointsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandEndpointsKind::Endpoints => "Endpoints",
            HandEndpointsKind::EndpointSlice => "EndpointSlice",
        })
    }
}

/// Addresses and the ports they serve: an Endpoints' subset, or a whole
/// EndpointSlice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandSubset {
    pub ready: Vec<Ipv4Addr>,
    pub not_ready: Vec<Ipv4Addr>,
    pub ports: Vec<HandPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandPort {
    /// Matches the Service port of the same name (unnamed: its only port).
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}
