//! `podlab delete pod|svc|netpol NAME [-n NS]`.
//!
//! A pod goes as the kubelet removes one: its endpoints leave every service
//! at once, its processes stop, its namespace goes. A service or a policy
//! goes through `apply` (its rules, DNS records and counters follow), and
//! stays gone until the lab file is applied again, as with kubectl.

use std::collections::HashSet;
use std::time::Duration;

use super::{exit, load_plan, pick_lab, require_root, CliError, Result};
use crate::kernel::{services, teardown};
use crate::{runtime, state};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    #[value(alias = "pods", alias = "po")]
    Pod,
    #[value(alias = "svc", alias = "services")]
    Service,
    #[value(name = "networkpolicy", alias = "netpol", alias = "networkpolicies")]
    NetworkPolicy,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to delete.
    kind: Kind,
    /// Its name.
    name: String,
    /// Its namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
}

pub fn run(args: Args) -> Result<u8> {
    require_root("delete")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let _lock = super::lock_lab(&lab, "delete")?;
    match args.kind {
        Kind::Pod => {}
        Kind::Service | Kind::NetworkPolicy => return delete_object(&lab, &args),
    }
    let mut plan = load_plan(&lab)?;
    let Some(i) = plan
        .pods
        .iter()
        .position(|p| p.namespace == args.namespace && p.name == args.name)
    else {
        let names: Vec<&str> = plan
            .pods
            .iter()
            .filter(|p| p.namespace == args.namespace)
            .map(|p| p.name.as_str())
            .collect();
        let e = CliError::new(format!(
            "pod {} not found in namespace {}",
            args.name, args.namespace
        ));
        return Err(match crate::lab::did_you_mean(&args.name, &names) {
            Some(m) => e.hint(format!("did you mean {m}?")),
            None => e.hint("`podlab get pods -A` lists the pods"),
        });
    };
    let pod = plan.pods.remove(i);
    for svc in &mut plan.services {
        svc.endpoints
            .retain(|e| !(e.namespace == pod.namespace && e.pod == pod.name));
    }
    let json = serde_json::to_vec_pretty(&plan).map_err(|e| CliError::new(e.to_string()))?;
    state::write_atomic(&state::plan_path(&lab), &json)
        .map_err(|e| CliError::new(format!("cannot save the state of lab {lab}: {e}")))?;

    // The daemon stops serving the pod and resyncs every node's rules with
    // what it knows of readiness; without a daemon, every pod left counts
    // as ready.
    let dir = state::dir(&lab);
    if runtime::forget(&dir, &pod.namespace, &pod.name, Duration::from_secs(5)).is_err() {
        services::sync(&plan, &HashSet::new(), &[])?;
    }
    services::flush_udp(&plan, &[pod.ip]);
    let errors = teardown::remove_namespaces(std::slice::from_ref(&pod.netns));
    if let Some(e) = errors.first() {
        return Err(CliError::new(super::error_chain(e)));
    }
    super::outln!("pod \"{}\" deleted", pod.name);
    Ok(exit::OK)
}

/// Delete a service or a policy from the running lab: through `apply`, so
/// that rules, DNS and counters follow.
fn delete_object(lab: &str, args: &Args) -> Result<u8> {
    let (mut file, mut edits) = super::apply::running_file(lab)?;
    let key = format!("{}/{}", args.namespace, args.name);
    // The kind as messages name it, and as `podlab get` lists it.
    let (kind, listing, names, set): (
        &str,
        &str,
        Vec<&str>,
        &mut std::collections::BTreeSet<String>,
    ) = match args.kind {
        Kind::Service => (
            "service",
            "svc",
            file.services
                .iter()
                .filter(|s| s.namespace == args.namespace)
                .map(|s| s.name.as_str())
                .collect(),
            &mut edits.deleted_services,
        ),
        _ => (
            "networkpolicy",
            "netpol",
            file.policies
                .iter()
                .filter(|p| p.namespace == args.namespace)
                .map(|p| p.name.as_str())
                .collect(),
            &mut edits.deleted_policies,
        ),
    };
    // A fault's policy or Service is in the running plan, not in the lab's
    // file: deleting it is applying the file without it, as for any other.
    let running = load_plan(lab).ok();
    let in_plan = running.as_ref().is_some_and(|p| match args.kind {
        Kind::Service => p
            .services
            .iter()
            .any(|s| s.namespace == args.namespace && s.name == args.name),
        _ => p
            .policies
            .iter()
            .any(|x| x.namespace == args.namespace && x.name == args.name),
    });
    if !names.contains(&args.name.as_str()) && !in_plan {
        let e = CliError::new(format!(
            "{kind} {} not found in namespace {}",
            args.name, args.namespace
        ));
        return Err(match crate::lab::did_you_mean(&args.name, &names) {
            Some(m) => e.hint(format!("did you mean {m}?")),
            None => e.hint(format!("`podlab get {listing} -A` lists them")),
        });
    }
    set.insert(key);
    super::apply::edit(&mut file, &edits);
    let code = super::apply::apply_file(lab, &file, false, false)?;
    // `apply` has said what it deleted (and anything it repaired).
    state::save_edits(lab, &edits)
        .map_err(|e| CliError::new(format!("cannot save the edits of lab {lab}: {e}")))?;
    Ok(code)
}
