//! `podlab delete pod|svc|netpol NAME [-n NS]`.
//!
//! A pod goes as the kubelet removes one: its endpoints leave every service
//! at once, its processes stop, its namespace goes. A service or a policy
//! goes through `apply` (its rules, DNS records and counters follow), and
//! stays gone until the lab file is applied again, as with kubectl.

use super::{exit, load_plan, pick_lab, require_root, CliError, Result};
use crate::state;

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
    // A Deployment's pod is replaced by a new one (new name, new address),
    // as its ReplicaSet would; any other pod goes for good.
    if let Some(r) = crate::ops::replace_pod(&lab, &args.namespace, &args.name)? {
        super::outln!("pod \"{}\" deleted", args.name);
        if let Some((name, ip)) = &r.by {
            super::errln!("its controller replaced it with pod {name} ({ip})");
        }
        return Ok(super::apply::print_report(&lab, &r.report, false));
    }
    crate::ops::delete_lone_pod(&lab, &args.namespace, &args.name)?;
    super::outln!("pod \"{}\" deleted", args.name);
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
    crate::ops::edit(&mut file, &edits);
    let code = super::apply::apply_file(lab, &file, false, false)?;
    // `apply` has said what it deleted (and anything it repaired).
    state::save_edits(lab, &edits)
        .map_err(|e| CliError::new(format!("cannot save the edits of lab {lab}: {e}")))?;
    Ok(code)
}
