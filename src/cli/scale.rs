//! `podlab scale deployment NAME --replicas N`: the small form of `apply`
//! for one Deployment, as `kubectl scale`.

use super::{pick_lab, require_root, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    #[value(alias = "deployments", alias = "deploy")]
    Deployment,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to scale.
    kind: Kind,
    /// The Deployment's name.
    name: String,
    /// How many pods it should run (0 stops them all).
    #[arg(long)]
    replicas: u32,
    /// The Deployment's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
}

pub fn run(args: Args) -> Result<u8> {
    require_root("scale")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let _lock = super::lock_lab(&lab, "scale")?;
    let Kind::Deployment = args.kind;
    let report = crate::ops::scale(&lab, &args.namespace, &args.name, args.replicas)?;
    let code = super::apply::print_report(&lab, &report, false);
    super::outln!("deployment.apps/{} scaled to {}", args.name, args.replicas);
    Ok(code)
}
