//! How steps are written in `faults.json`: the shape the record has always
//! had (one `op` per kind of step, the `podlab exec` target beside the
//! namespace), so that a lab with faults injected by an older podlab still
//! clears. A change that shape has no word for is written whole, as
//! `{"op": "change", "at": ..., "change": {...}}`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::kernel::change::{Change, Route, RouteKind, RouteOp};
use crate::kernel::objects::MAIN_TABLE;
use crate::plan::{EndpointPlan, Plan};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Step {
    Link {
        netns: String,
        at: String,
        link: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        up: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
    },
    Route {
        netns: String,
        at: String,
        add: bool,
        dst: Ipv4Net,
        via: Ipv4Addr,
    },
    Sysctl {
        netns: String,
        at: String,
        key: String,
        value: String,
    },
    File {
        at: String,
        path: String,
        shown: String,
        content: Option<String>,
    },
    Nft {
        netns: String,
        at: String,
        script: String,
    },
    DropTable {
        netns: String,
        at: String,
        family: String,
        table: String,
    },
    ReloadRules {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
    },
    StaleEndpoint {
        service: String,
        endpoint: EndpointPlan,
    },
    Qdisc {
        netns: String,
        at: String,
        link: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<Vec<String>>,
    },
    Exec {
        at: String,
        argv: Vec<String>,
    },
    StopPod {
        namespace: String,
        name: String,
    },
    StartPods,
    ApplyPlan {
        change: String,
        plan: Box<Plan>,
    },
    Change {
        at: String,
        change: Change,
    },
}

impl From<Step> for super::Step {
    fn from(w: Step) -> Self {
        use super::Step as S;
        let at_change = |at: String, change: Change| S::Change { at, change };
        match w {
            Step::Link {
                netns,
                at,
                link,
                up,
                mtu,
            } => at_change(
                at,
                Change::Link {
                    netns,
                    link,
                    up,
                    mtu,
                },
            ),
            Step::Route {
                netns,
                at,
                add,
                dst,
                via,
            } => at_change(
                at,
                Change::Route {
                    netns,
                    op: if add { RouteOp::Add } else { RouteOp::Del },
                    route: Route::via(dst, via),
                },
            ),
            Step::Sysctl {
                netns,
                at,
                key,
                value,
            } => at_change(at, Change::Sysctl { netns, key, value }),
            Step::File {
                at,
                path,
                shown,
                content,
            } => at_change(
                at,
                Change::File {
                    path,
                    shown,
                    content,
                },
            ),
            Step::Nft { netns, at, script } => at_change(at, Change::Nft { netns, script }),
            Step::DropTable {
                netns,
                at,
                family,
                table,
            } => at_change(
                at,
                Change::DropTable {
                    netns,
                    family,
                    table,
                },
            ),
            Step::Qdisc {
                netns,
                at,
                link,
                spec,
            } => at_change(at, Change::Qdisc { netns, link, spec }),
            Step::Change { at, change } => at_change(at, change),
            Step::ReloadRules { netns } => S::ReloadRules { netns },
            Step::StaleEndpoint { service, endpoint } => S::StaleEndpoint { service, endpoint },
            Step::Exec { at, argv } => S::Exec { at, argv },
            Step::StopPod { namespace, name } => S::StopPod { namespace, name },
            Step::StartPods => S::StartPods,
            Step::ApplyPlan { change, plan } => S::ApplyPlan { change, plan },
        }
    }
}

impl From<super::Step> for Step {
    fn from(s: super::Step) -> Self {
        use super::Step as S;
        match s {
            S::Change { at, change } => of_change(at, change),
            S::ReloadRules { netns } => Step::ReloadRules { netns },
            S::StaleEndpoint { service, endpoint } => Step::StaleEndpoint { service, endpoint },
            S::Exec { at, argv } => Step::Exec { at, argv },
            S::StopPod { namespace, name } => Step::StopPod { namespace, name },
            S::StartPods => Step::StartPods,
            S::ApplyPlan { change, plan } => Step::ApplyPlan { change, plan },
        }
    }
}

/// The record's own word for a change where it has one.
fn of_change(at: String, change: Change) -> Step {
    match change {
        Change::Link {
            netns,
            link,
            up,
            mtu,
        } => Step::Link {
            netns,
            at,
            link,
            up,
            mtu,
        },
        Change::Route {
            netns,
            op: op @ (RouteOp::Add | RouteOp::Del),
            route:
                Route {
                    dst,
                    via: Some(via),
                    dev: None,
                    kind: RouteKind::Unicast,
                    table: MAIN_TABLE,
                },
        } => Step::Route {
            netns,
            at,
            add: op == RouteOp::Add,
            dst,
            via,
        },
        Change::Sysctl { netns, key, value } => Step::Sysctl {
            netns,
            at,
            key,
            value,
        },
        Change::File {
            path,
            shown,
            content,
        } => Step::File {
            at,
            path,
            shown,
            content,
        },
        Change::Nft { netns, script } => Step::Nft { netns, at, script },
        Change::DropTable {
            netns,
            family,
            table,
        } => Step::DropTable {
            netns,
            at,
            family,
            table,
        },
        Change::Qdisc { netns, link, spec } => Step::Qdisc {
            netns,
            at,
            link,
            spec,
        },
        change => Step::Change { at, change },
    }
}
