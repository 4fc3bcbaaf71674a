//! `podlab scale deployment NAME --replicas N`: the small form of `apply`
//! for one Deployment, as `kubectl scale`.

use super::apply::{apply_file, edit, running_file};
use super::{pick_lab, require_root, CliError, Result};
use crate::state;

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
    let (mut file, mut edits) = running_file(&lab)?;
    let key = format!("{}/{}", args.namespace, args.name);
    if !file
        .deployments
        .iter()
        .any(|d| d.namespace == args.namespace && d.name == args.name)
    {
        let names: Vec<&str> = file
            .deployments
            .iter()
            .filter(|d| d.namespace == args.namespace)
            .map(|d| d.name.as_str())
            .collect();
        let e = CliError::new(format!(
            "deployment {} not found in namespace {}",
            args.name, args.namespace
        ));
        return Err(match crate::lab::did_you_mean(&args.name, &names) {
            Some(m) => e.hint(format!("did you mean {m}?")),
            None => e.hint("the lab's deployments are in its lab file"),
        });
    }
    edits.replicas.insert(key, args.replicas);
    edit(&mut file, &edits);
    let code = apply_file(&lab, &file, false, false)?;
    state::save_edits(&lab, &edits)
        .map_err(|e| CliError::new(format!("cannot save the edits of lab {lab}: {e}")))?;
    super::outln!("deployment.apps/{} scaled to {}", args.name, args.replicas);
    Ok(code)
}
