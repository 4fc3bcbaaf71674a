//! Who refused a connection.
//!
//! A TCP reset (or an ICMP port unreachable) looks the same to the client
//! whoever sent it: the load balancer's own kernel with nothing listening,
//! kube-proxy's reject rule on a node, or the pod at the end. And NAT
//! rewrites the answer so that it seems to come from the address the
//! client called. So the probe's flow is followed the way `podlab trace`
//! follows it: conntrack of exactly that flow in every node and in `lb`
//! (watched from before the probe, since a reset removes the entry at
//! once) says where each DNAT sent it, routes and bridges say which
//! namespace it reached, and the walk ends where a kernel answered for
//! itself (a local address with nothing listening) or where kube-proxy's
//! no-endpoint maps sent it to the reject chain.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::kernel::conntrack::{self, Tuple, Watch};
use crate::lab::expect::Refuser;
use crate::lab::Protocol;
use crate::observe::trace::{self, Deltas, End, Live};
use crate::plan::Plan;

use super::Seen;

/// Who refused, as the walk found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// kube-proxy's reject rule on this node.
    KubeProxy {
        node: String,
    },
    /// A pod's own kernel; `owner` is its Deployment, if any.
    Pod {
        namespace: String,
        name: String,
        owner: Option<String>,
    },
    Node(String),
    /// `external` or `lb`.
    Client(String),
}

impl Who {
    pub fn is(&self, r: &Refuser) -> bool {
        match (self, r) {
            (Who::KubeProxy { .. }, Refuser::KubeProxy) => true,
            (
                Who::Pod {
                    namespace,
                    name,
                    owner,
                },
                Refuser::Pod {
                    namespace: ns,
                    name: n,
                },
            ) => namespace == ns && (name == n || owner.as_deref() == Some(n.as_str())),
            (Who::Node(a), Refuser::Node(b)) => a == b,
            (Who::Client(c), Refuser::External) => c == "external",
            (Who::Client(c), Refuser::Lb) => c == "lb",
            _ => false,
        }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::KubeProxy { node } => write!(f, "kube-proxy on node/{node}"),
            Who::Pod {
                namespace, name, ..
            } if namespace == "default" => f.write_str(name),
            Who::Pod {
                namespace, name, ..
            } => write!(f, "{namespace}/{name}"),
            Who::Node(n) => write!(f, "node/{n}"),
            Who::Client(c) => f.write_str(c),
        }
    }
}

/// The refuser and the walk's own words for it; or why it is not known.
pub type Refusal = Result<(Who, String), String>;

/// The namespaces whose NAT can send a flow elsewhere: every node
/// (kube-proxy) and the load balancer.
fn nat_namespaces(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = plan.nodes.iter().map(|n| n.netns.clone()).collect();
    v.extend(
        plan.clients
            .iter()
            .filter(|c| c.name == "lb")
            .map(|c| c.netns.clone()),
    );
    v
}

/// Run `f` on a thread of its own, outside the runtime: entering a
/// namespace must not happen on a runtime worker, and the kernel readers
/// run small runtimes of their own, which a runtime thread may not.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.ok()
}

/// Subscribe to new conntrack flows in the lab's NAT namespaces; started
/// before the probe so that a flow removed by a reset is still seen.
pub async fn watch(plan: &Plan) -> Option<Watch> {
    let names = nat_namespaces(plan);
    off_runtime(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        conntrack::watch(&refs)
    })
    .await
}

/// Follow the refused flow from `from` (sent from `local` to `to`) and say
/// where it was refused.
pub async fn refuser(
    plan: &Plan,
    from: &super::resolve::From,
    local: Option<SocketAddrV4>,
    to: SocketAddrV4,
    protocol: Protocol,
    watch: Option<Watch>,
    timeout: Duration,
) -> Refusal {
    let Some(local) = local else {
        return Err("the probe's source port is not known".into());
    };
    let plan = plan.clone();
    let netns = from.netns.clone();
    let one_ip: Option<Ipv4Addr> = (from.ips.len() == 1).then(|| from.ips[0]);
    off_runtime(move || {
        let events = watch.map(Watch::drain).unwrap_or_default();
        let mut kernel = Live::new(events);
        let src = if !local.ip().is_unspecified() {
            *local.ip()
        } else if let Some(ip) = one_ip {
            ip
        } else {
            // A node has several addresses: the one its route picks.
            use trace::Kernel;
            kernel
                .facts(&netns, *to.ip())
                .ok()
                .and_then(|f| f.route?.prefsrc)
                .ok_or_else(|| format!("no source address of {netns} for {}", to.ip()))?
        };
        let flow = Tuple {
            src,
            sport: local.port(),
            dst: *to.ip(),
            dport: to.port(),
        };
        let walked = trace::walk(&plan, &mut kernel, &netns, protocol, flow, &Deltas::new());
        let at = walked.hops.last().map(|h| h.netns.as_str()).unwrap_or("");
        let target = SocketAddrV4::new(walked.flow.dst, walked.flow.dport);
        match &walked.end {
            End::Rejected { chain, service } if chain != "drop-chain" => {
                let node = plan.nodes.iter().find(|n| n.netns == at);
                let what = service.clone().unwrap_or_else(|| target.to_string());
                match node {
                    Some(n) => Ok((
                        Who::KubeProxy {
                            node: n.name.clone(),
                        },
                        format!("{what} has no endpoints ({chain})"),
                    )),
                    None => Err(format!("rejected in {at}, which is no node")),
                }
            }
            End::Local => match who_is(&plan, at) {
                Some(w) => Ok((w, format!("nothing listens on {target}"))),
                None => Err(format!("refused in {at}, which is not of the lab")),
            },
            // Anything else: the walk's own words for where it stopped.
            _ => Err(trace::verdict(&walked, &Seen::Refused, timeout).detail),
        }
    })
    .await
    .unwrap_or_else(|| Err("the walk's thread failed".into()))
}

/// The lab's object whose namespace `netns` is.
fn who_is(plan: &Plan, netns: &str) -> Option<Who> {
    if let Some(p) = plan.pods.iter().find(|p| p.netns == netns) {
        return Some(Who::Pod {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            owner: p.owner.clone(),
        });
    }
    if let Some(n) = plan.nodes.iter().find(|n| n.netns == netns) {
        return Some(Who::Node(n.name.clone()));
    }
    plan.clients
        .iter()
        .find(|c| c.netns == netns)
        .map(|c| Who::Client(c.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, owner: Option<&str>) -> Who {
        Who::Pod {
            namespace: ns.into(),
            name: name.into(),
            owner: owner.map(Into::into),
        }
    }

    #[test]
    fn a_refuser_matches_only_itself() {
        let kp = Who::KubeProxy {
            node: "node-2".into(),
        };
        assert!(kp.is(&Refuser::KubeProxy));
        assert!(!kp.is(&Refuser::Node("node-2".into())));
        assert!(!Who::Client("lb".into()).is(&Refuser::KubeProxy));
        assert!(Who::Client("lb".into()).is(&Refuser::Lb));
        assert!(!Who::Client("lb".into()).is(&Refuser::External));
        let web = pod("default", "web-abc-1", Some("web"));
        let by = |ns: &str, n: &str| Refuser::Pod {
            namespace: ns.into(),
            name: n.into(),
        };
        assert!(web.is(&by("default", "web")), "a Deployment: any replica");
        assert!(web.is(&by("default", "web-abc-1")));
        assert!(!web.is(&by("x", "web")));
        assert!(!web.is(&by("default", "db")));
        assert_eq!(kp.to_string(), "kube-proxy on node/node-2");
        assert_eq!(pod("x", "p", None).to_string(), "x/p");
    }
}
