//! A running lab's state on disk: `/run/podlab/<lab>/` (root only, 0700),
//! holding the plan as applied, the daemon's readiness and its logs.
//!
//! `/run` is a tmpfs: the state goes away with a reboot, as do the
//! namespaces it describes.
//!
//! A lab's name becomes a path only as a [`LabName`]: a word from the
//! command line or a file is checked once, at the edge, and everything that
//! builds a path from a name takes the checked type (or checks it itself
//! and refuses), so `down ..` can never name `/run`.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::plan::{Plan, PLAN_VERSION};

pub const STATE_ROOT: &str = "/run/podlab";

/// Lab names prefix every namespace name, and interface names are short.
pub const MAX_LAB_NAME: usize = 20;

/// The rule a lab name follows, as every refusal states it.
pub const LAB_NAME_RULE: &str = "a lab name is a DNS-1123 label of 1 to 20 characters: \
     lowercase letters a-z, digits 0-9 and '-', starting and ending with a letter or digit";

/// A lab name that has been checked: the only kind that becomes a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LabName(String);

/// A word that is not a lab name, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown} is not a lab name: {why}")]
pub struct BadLabName {
    /// The word as given, quoted and cut short (it may be anything).
    shown: String,
    why: String,
}

impl BadLabName {
    /// The rule, for a `hint:`.
    pub fn rule(&self) -> &'static str {
        LAB_NAME_RULE
    }
}

impl LabName {
    pub fn parse(word: &str) -> Result<LabName, BadLabName> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        // The most telling reason first: a path is refused for its '/',
        // not for its length.
        let why = if word.is_empty() {
            Some("it is empty".to_string())
        } else if let Some(c) = word
            .chars()
            .find(|&c| !allowed(c) && !c.is_ascii_uppercase())
        {
            Some(format!(
                "it has characters other than a-z, 0-9 and '-' (such as {c:?})"
            ))
        } else if word.chars().any(|c| c.is_ascii_uppercase()) {
            Some("it has uppercase letters".to_string())
        } else if word.starts_with('-') || word.ends_with('-') {
            Some("it starts or ends with '-'".to_string())
        } else if word.len() > MAX_LAB_NAME {
            Some(format!(
                "it is {} characters, longer than {MAX_LAB_NAME}",
                word.len()
            ))
        } else {
            None
        };
        match why {
            None => Ok(LabName(word.to_string())),
            Some(why) => Err(BadLabName {
                shown: shown(word),
                why,
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a namespace name carries this lab's prefix (`<lab>-`).
    pub fn prefixes(&self, netns: &str) -> bool {
        netns
            .strip_prefix(self.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('-'))
    }
}

/// A word quoted for an error message, printable and at most 40 characters.
fn shown(word: &str) -> String {
    let mut s: String = word.chars().take(40).collect();
    if s.len() < word.len() {
        s.push_str("...");
    }
    format!("{s:?}")
}

impl std::str::FromStr for LabName {
    type Err = BadLabName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabName::parse(s)
    }
}

impl std::ops::Deref for LabName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LabName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<LabName> for String {
    fn from(l: LabName) -> String {
        l.0
    }
}

impl PartialEq<str> for LabName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for LabName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for LabName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

pub fn dir(lab: &LabName) -> PathBuf {
    Path::new(STATE_ROOT).join(lab.as_str())
}

pub fn plan_path(lab: &LabName) -> PathBuf {
    dir(lab).join("plan.json")
}

/// Where nothing is ever made: the path an unchecked word gets.
const NOWHERE: &str = ".not-a-lab-name";

/// The state directory for a plain word passed down by code that holds a
/// name already checked (a loaded plan's, one from `pick_lab`): checked
/// again here. A word that is not a lab name gets a directory under the
/// root that no lab has and nothing creates (a lab name has no '.'), so it
/// never reaches outside the root or into another lab: reads find nothing,
/// writes fail.
pub fn dir_of(lab: &str) -> PathBuf {
    match LabName::parse(lab) {
        Ok(l) => dir(&l),
        Err(_) => Path::new(STATE_ROOT).join(NOWHERE),
    }
}

/// `plan_path` for a plain word, as `dir_of`.
pub fn plan_path_of(lab: &str) -> PathBuf {
    dir_of(lab).join("plan.json")
}

/// For the functions below that take a plain word (a plan's `lab`, a
/// caller's `&str`): checked here, refused as invalid input otherwise.
fn checked(lab: &str) -> io::Result<LabName> {
    LabName::parse(lab).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
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
    let lab = checked(&plan.lab)?;
    let dir = dir(&lab);
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    fs::create_dir_all(dir.join("logs"))?;
    let json = serde_json::to_vec_pretty(plan).map_err(io::Error::other)?;
    write_atomic(&plan_path(&lab), &json)?;
    Ok(dir)
}

/// Replace a file whole: readers see the old or the new content, never a
/// mix. The temporary name is this writer's own (pid and a counter), so
/// two writers of one file (a command and the daemon) never write into
/// each other's temporary file: the last rename wins, whole.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{seq}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    if let Err(e) = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// The saved plan of a lab, if its state exists and is readable.
pub fn load(lab: &str) -> io::Result<Plan> {
    let data = fs::read(plan_path(&checked(lab)?))?;
    let plan: Plan = serde_json::from_slice(&data).map_err(io::Error::other)?;
    if plan.version != PLAN_VERSION {
        return Err(io::Error::other(format!(
            "state of lab {lab} was written by another podlab version (plan format {})",
            plan.version
        )));
    }
    // The file is data too: a plan of another lab, or one whose namespace
    // names could escape /run/netns, is not this lab's.
    if plan.lab != lab {
        return Err(io::Error::other(format!(
            "state of lab {lab} holds the plan of lab {:?}",
            plan.lab
        )));
    }
    if let Some(bad) = plan.netns_names().into_iter().find(|n| {
        crate::kernel::netns::check_name(n).is_err() || !n.starts_with(&format!("{lab}-"))
    }) {
        return Err(io::Error::other(format!(
            "state of lab {lab} names a namespace {bad:?} that is not the lab's"
        )));
    }
    Ok(plan)
}

/// When the lab was brought up (the state directory's creation).
pub fn created(lab: &str) -> Option<SystemTime> {
    fs::metadata(plan_path(&checked(lab).ok()?))
        .and_then(|m| m.modified())
        .ok()
}

/// Labs that have a state directory. Entries that are not lab names
/// (lock files, namespace marks, anything someone else put there) are not
/// labs.
pub fn labs() -> Vec<LabName> {
    let Ok(rd) = fs::read_dir(STATE_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<LabName> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| LabName::parse(&n).ok())
        .collect();
    v.sort();
    v
}

pub fn remove(lab: &LabName) -> io::Result<()> {
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
    let d = dir(&checked(lab)?);
    write_atomic(&d.join("lab.yaml"), text.as_bytes())?;
    write_atomic(&d.join("lab.origin"), origin.as_bytes())?;
    // The file is the lab from now on, but pods replaced since keep their
    // names (generations are the running pods', not the file's).
    let generations = load_edits(lab).map(|e| e.generations).unwrap_or_default();
    if generations.is_empty() {
        return match fs::remove_file(d.join("edits.json")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    save_edits(
        lab,
        &Edits {
            generations,
            ..Edits::default()
        },
    )
}

/// The saved lab file: its origin (for messages) and text.
pub fn load_source(lab: &str) -> io::Result<(String, String)> {
    let d = dir(&checked(lab)?);
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
    /// Objects written through the lab's API (`kubectl apply`, `create`,
    /// `patch`, `delete`), by `Kind/namespace/name` (`Kind//name` when
    /// cluster-scoped): the manifest that replaces or adds to the file's,
    /// or `None` where the file's object was deleted (`lab::parse_with`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub objects: std::collections::BTreeMap<String, Option<serde_json::Value>>,
    /// `namespace/deployment/index` → how many times that replica's pod was
    /// deleted and replaced. Kept across `apply FILE`, as running pods are:
    /// forgetting it would rename every replaced pod back.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub generations: std::collections::BTreeMap<String, u32>,
}

pub fn load_edits(lab: &str) -> io::Result<Edits> {
    match fs::read(dir(&checked(lab)?).join("edits.json")) {
        Ok(data) => serde_json::from_slice(&data).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Edits::default()),
        Err(e) => Err(e),
    }
}

pub fn save_edits(lab: &str, edits: &Edits) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(edits).map_err(io::Error::other)?;
    write_atomic(&dir(&checked(lab)?).join("edits.json"), &json)
}

/// The running lab a namespace belongs to: the longest lab name that
/// prefixes it (`up` refuses a lab whose name extends or is extended by a
/// running lab's, so there is at most one).
pub fn lab_of_netns(netns: &str) -> Option<LabName> {
    labs()
        .into_iter()
        .filter(|l| l.prefixes(netns))
        .max_by_key(|l| l.len())
}

fn generation_path(lab: &LabName, netns: &str) -> Option<PathBuf> {
    crate::kernel::netns::check_name(netns).ok()?;
    Some(dir(lab).join("nft-generation").join(netns))
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
    let Some(path) = generation_path(&lab, netns) else {
        return;
    };
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
    let Some(path) = generation_path(&lab, netns) else {
        return Generation::Unknown;
    };
    match fs::read_to_string(path) {
        Err(_) => Generation::Unknown,
        Ok(text) => text
            .trim()
            .parse()
            .map_or(Generation::Dirty, Generation::Clean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_follow_the_rule() {
        for ok in ["a", "demo", "sa-relx-y", "a1", "1a", &"a".repeat(20)] {
            assert_eq!(LabName::parse(ok).unwrap().as_str(), ok);
        }
        let refused = [
            ("", "empty"),
            (".", "other than"),
            ("..", "other than"),
            ("/tmp/somedir", "other than"),
            ("../run", "other than"),
            ("a/b", "other than"),
            ("a.b", "other than"),
            ("a_b", "other than"),
            ("a b", "other than"),
            ("a\0b", "other than"),
            ("démo", "other than"),
            ("Demo", "uppercase"),
            ("-a", "starts or ends"),
            ("a-", "starts or ends"),
            ("-", "starts or ends"),
        ];
        for (word, why) in refused {
            let e = LabName::parse(word).unwrap_err();
            assert!(e.to_string().contains(why), "{word:?}: {e}");
            assert!(e.to_string().contains("is not a lab name"), "{e}");
        }
        let long = LabName::parse(&"a".repeat(21)).unwrap_err();
        assert!(
            long.to_string().contains("21 characters, longer than 20"),
            "{long}"
        );
        let path = LabName::parse("/tmp/a-directory-with-a-long-name").unwrap_err();
        assert!(path.to_string().contains("such as '/'"), "{path}");
        // The rule is stated whole where it is refused.
        assert!(long.rule().contains("1 to 20"));
    }

    #[test]
    fn a_refused_word_is_quoted_and_cut_short() {
        let e = LabName::parse(&format!("x/{}", "y".repeat(100))).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("\"x/yyy"), "{text}");
        assert!(text.len() < 150, "{text}");
        let e = LabName::parse("a\nb").unwrap_err();
        assert!(e.to_string().starts_with("\"a\\nb\""), "{e}");
    }

    #[test]
    fn paths_stay_under_the_state_root() {
        let lab = LabName::parse("sa-x").unwrap();
        assert_eq!(dir(&lab), Path::new("/run/podlab/sa-x"));
        assert_eq!(plan_path(&lab), Path::new("/run/podlab/sa-x/plan.json"));
        for word in ["", ".", "..", "../x", "/tmp/x", "a/../.."] {
            let d = dir_of(word);
            assert_eq!(d, Path::new(STATE_ROOT).join(NOWHERE), "{word:?}");
            assert!(LabName::parse(NOWHERE).is_err());
        }
        assert!(matches!(
            load("..").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        ));
        assert!(save_edits("/tmp/x", &Edits::default()).is_err());
        assert!(created("..").is_none());
    }

    #[test]
    fn prefixes_are_whole_labels() {
        let a = LabName::parse("relx").unwrap();
        assert!(a.prefixes("relx-net"));
        assert!(a.prefixes("relx-y-net"));
        assert!(!a.prefixes("relx"));
        assert!(!a.prefixes("relx-"));
        assert!(!a.prefixes("relxy-net"));
        assert!(!a.prefixes("rel-net"));
    }

    #[test]
    fn concurrent_writers_of_one_file_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        write_atomic(&path, &vec![b'a' + i; 4096]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let data = fs::read(&path).unwrap();
        assert_eq!(data.len(), 4096);
        assert!(data.iter().all(|&c| c == data[0]));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
