//! The one part of `graph` that reads the kernel: every namespace of the
//! lab, read once by observe (a few threads, one netlink dump each) for
//! both the picture and the comparison with the plan, and the daemon's pod
//! states. The rest of the module is pure.

use super::{Observed, PodState};
use crate::plan::Plan;
use crate::runtime::DaemonStatus;

/// Read the running lab of `plan` now.
pub fn observe(plan: &Plan, status: Option<&DaemonStatus>) -> Observed {
    // One read of every namespace serves both the picture and the diff.
    let names = plan.netns_names();
    let read = crate::observe::read_views(&names);
    let findings = crate::observe::compare_views(plan, status, &names, &read);
    let views = read.views;
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
