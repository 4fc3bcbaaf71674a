//! A running lab's state on disk: `/run/podlab/<lab>/` (root only, 0700),
//! holding the plan as applied, the daemon's readiness and its logs.
//!
//! `/run` is a tmpfs: the state goes away with a reboot, as do the
//! namespaces it describes.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::plan::{Plan, PLAN_VERSION};

pub const STATE_ROOT: &str = "/run/podlab";

pub fn dir(lab: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(lab)
}

pub fn plan_path(lab: &str) -> PathBuf {
    dir(lab).join("plan.json")
}

/// Create the state directory and save the plan in it, before any kernel
/// object is made, so that `down` knows the lab even if `up` dies.
pub fn create(plan: &Plan) -> io::Result<PathBuf> {
    let root = Path::new(STATE_ROOT);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
    let dir = dir(&plan.lab);
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    fs::create_dir_all(dir.join("logs"))?;
    let json = serde_json::to_vec_pretty(plan).map_err(io::Error::other)?;
    write_atomic(&plan_path(&plan.lab), &json)?;
    Ok(dir)
}

pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// The saved plan of a lab, if its state exists and is readable.
pub fn load(lab: &str) -> io::Result<Plan> {
    let data = fs::read(plan_path(lab))?;
    let plan: Plan = serde_json::from_slice(&data).map_err(io::Error::other)?;
    if plan.version != PLAN_VERSION {
        return Err(io::Error::other(format!(
            "state of lab {lab} was written by another podlab version (plan format {})",
            plan.version
        )));
    }
    Ok(plan)
}

/// When the lab was brought up (the state directory's creation).
pub fn created(lab: &str) -> Option<SystemTime> {
    fs::metadata(plan_path(lab)).and_then(|m| m.modified()).ok()
}

/// Labs that have a state directory.
pub fn labs() -> Vec<String> {
    let Ok(rd) = fs::read_dir(STATE_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

pub fn remove(lab: &str) -> io::Result<()> {
    match fs::remove_dir_all(dir(lab)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => r?,
    }
    // The last lab leaves no empty directory behind.
    let _ = fs::remove_dir(STATE_ROOT);
    Ok(())
}

/// The lab file a running lab was last brought up or applied from, as
/// text, with where it came from: `scale` and `delete svc|netpol` edit the
/// running lab from it.
pub fn save_source(lab: &str, origin: &str, text: &str) -> io::Result<()> {
    let d = dir(lab);
    write_atomic(&d.join("lab.yaml"), text.as_bytes())?;
    write_atomic(&d.join("lab.origin"), origin.as_bytes())?;
    match fs::remove_file(d.join("edits.json")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The saved lab file: its origin (for messages) and text.
pub fn load_source(lab: &str) -> io::Result<(String, String)> {
    let d = dir(lab);
    let text = fs::read_to_string(d.join("lab.yaml"))?;
    let origin = fs::read_to_string(d.join("lab.origin")).unwrap_or_else(|_| "lab.yaml".into());
    Ok((origin, text))
}

/// Changes made with `scale` and `delete svc|netpol` since the lab file
/// was last applied, as `kubectl scale` and `kubectl delete` change a
/// cluster without changing the manifest. `apply` starts again from the
/// file.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Edits {
    /// `namespace/name` of a Deployment → replicas.
    #[serde(default)]
    pub replicas: std::collections::BTreeMap<String, u32>,
    #[serde(default)]
    pub deleted_services: std::collections::BTreeSet<String>,
    #[serde(default)]
    pub deleted_policies: std::collections::BTreeSet<String>,
}

pub fn load_edits(lab: &str) -> io::Result<Edits> {
    match fs::read(dir(lab).join("edits.json")) {
        Ok(data) => serde_json::from_slice(&data).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Edits::default()),
        Err(e) => Err(e),
    }
}

pub fn save_edits(lab: &str, edits: &Edits) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(edits).map_err(io::Error::other)?;
    write_atomic(&dir(lab).join("edits.json"), &json)
}

/// The running lab a namespace belongs to: the longest lab name that
/// prefixes it (`a-b-node-1` is lab `a-b`'s when both `a` and `a-b` run).
pub fn lab_of_netns(netns: &str) -> Option<String> {
    labs()
        .into_iter()
        .filter(|l| netns.starts_with(&format!("{l}-")))
        .max_by_key(String::len)
}

fn generation_path(lab: &str, netns: &str) -> PathBuf {
    dir(lab).join("nft-generation").join(netns)
}

/// What is known of a namespace's nftables generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Nothing recorded: a namespace podlab has not loaded yet.
    Unknown,
    /// Changed by someone else since podlab last knew it: compare.
    Dirty,
    /// The rules podlab loaded (or found equal to the plan) are this one.
    Clean(u32),
}

/// Remember the nftables generation of `netns` (`None`: dirty). Best
/// effort: without it, `observe` lists the rules to compare them.
pub fn record_generation(netns: &str, generation: Option<u32>) {
    let Some(lab) = lab_of_netns(netns) else {
        return;
    };
    let path = generation_path(&lab, netns);
    if let Some(parent) = path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    let text = generation.map_or_else(|| "dirty".to_string(), |g| g.to_string());
    let _ = write_atomic(&path, text.as_bytes());
}

/// The generation recorded by `record_generation`.
pub fn recorded_generation(netns: &str) -> Generation {
    let Some(lab) = lab_of_netns(netns) else {
        return Generation::Unknown;
    };
    match fs::read_to_string(generation_path(&lab, netns)) {
        Err(_) => Generation::Unknown,
        Ok(text) => text
            .trim()
            .parse()
            .map_or(Generation::Dirty, Generation::Clean),
    }
}
