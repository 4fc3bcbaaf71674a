//! `podlab kubeconfig [LAB]`: the kubeconfig of a lab's Kubernetes API,
//! as `kind get kubeconfig` prints one.

use super::{exit, pick_lab, CliError, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab (default: `PODLAB_LAB`, else the only one up).
    lab: Option<String>,
    /// Print the kubeconfig's path instead of its content.
    #[arg(long)]
    path: bool,
}

/// The path of a running lab's kubeconfig, once its daemon wrote it.
pub fn path_of(lab: &crate::state::LabName) -> Result<std::path::PathBuf> {
    let dir = crate::state::dir(lab);
    let path = crate::api::kubeconfig_path(&dir);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(CliError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))
        .hint(
            "the lab's state is root's: `sudo podlab kubeconfig > ~/.kube/podlab` gives you a copy",
        )),
        Err(_) => Err(CliError::new(format!(
            "lab {lab} has no kubeconfig: its Kubernetes API did not start"
        ))
        .hint(format!(
            "the daemon's log says why: {}; `podlab down {lab}` and `podlab up` again starts one",
            dir.join("daemon.log").display()
        ))),
    }
}

pub fn run(args: Args) -> Result<u8> {
    let lab = pick_lab(args.lab.as_deref())?;
    let path = path_of(&lab)?;
    if args.path {
        println!("{}", path.display());
        return Ok(exit::OK);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    print!("{text}");
    Ok(exit::OK)
}
