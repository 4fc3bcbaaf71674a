//! The one part of `graph` that reads the kernel: every namespace of the
//! lab (a few threads, one netlink dump each), observe's comparison with
//! the plan, and the daemon's pod states. The rest of the module is pure.

use std::collections::HashMap;

use super::{Observed, PodState};
use crate::kernel::inspect;
use crate::kernel::netns::Netns;
use crate::plan::Plan;
use crate::runtime::DaemonStatus;

/// Read the running lab of `plan` now.
pub fn observe(plan: &Plan, status: Option<&DaemonStatus>) -> Observed {
    let names = plan.netns_names();
    let threads = 4.min(names.len().max(1));
    let chunk = names.len().div_ceil(threads).max(1);
    let views: HashMap<String, inspect::NetnsView> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter(|n| Netns::exists(n))
                        // Unreadable: observe's finding says why.
                        .filter_map(|n| inspect::view(n).ok().map(|v| (n.to_string(), v)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let findings = crate::observe::compare_with(plan, status);
    let pods = status
        .map(|st| {
            st.pods
                .iter()
                .map(|p| {
                    (
                        format!("{}/{}", p.namespace, p.name),
                        PodState {
                            status: p.status.clone(),
                            ready: p.is_ready(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Observed {
        views,
        findings,
        pods,
    }
}
