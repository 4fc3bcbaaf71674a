//! nftables: each ruleset is loaded as one transaction by the `nft` tool,
//! run from a thread inside the namespace it is for (a child process starts
//! in the namespace of the thread that forks it).

use std::path::Path;

use super::netns::Netns;
use super::Error;

/// `nft` must exist before anything is built: a lab without its rules
/// would look up and behave wrongly.
pub fn require() -> Result<(), Error> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("nft").is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin/nft").is_file();
    if found {
        Ok(())
    } else {
        Err(Error::MissingTool {
            tool: "nft",
            package: "nftables",
        })
    }
}

/// Load `json` (`nft -j` input) in the namespace `netns`. Untracked: for
/// rules that are not the plan's (faults); `observe` compares the
/// namespace again.
pub fn load(netns: &str, json: &str) -> Result<(), Error> {
    load_inner(netns, json, false)
}

/// Load the plan's rules in `netns` and remember the generation they
/// made (`rules::tracked`), so that `observe` need not list them again.
pub fn load_planned(netns: &str, json: &str) -> Result<(), Error> {
    load_inner(netns, json, true)
}

fn load_inner(netns: &str, json: &str, track: bool) -> Result<(), Error> {
    let ns = Netns::open(netns)?;
    let json = json.to_string();
    let name = netns.to_string();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _inside = ns.enter()?;
            let apply = || {
                nftables::helper::apply_ruleset_raw(&json, None::<&str>, std::iter::empty::<&str>())
                    .map(drop)
            };
            let r = if track {
                super::rules::tracked(&name, apply)
            } else {
                apply()
            };
            r.map_err(|e| Error::Nft {
                netns: name.clone(),
                message: e.to_string(),
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Nft {
                netns: netns.to_string(),
                message: "nft loader thread panicked".into(),
            })
        })
    })
}

/// Delete whole tables (`(family, name)`) that are not the lab's, in one
/// transaction: a table someone added to a node with a drop in it.
pub fn delete_tables(netns: &str, tables: &[(String, String)]) -> Result<(), Error> {
    let commands: Vec<serde_json::Value> = tables
        .iter()
        .map(|(family, name)| {
            serde_json::json!({"delete": {"table": {"family": family, "name": name}}})
        })
        .collect();
    load(
        netns,
        &serde_json::json!({ "nftables": commands }).to_string(),
    )
}

/// Load several rulesets, one per namespace, in parallel (untracked).
pub fn load_all(rulesets: &[(String, String)]) -> Result<(), Error> {
    load_many(rulesets, load)
}

/// Load the plan's rulesets, one per namespace, in parallel, tracked.
pub fn load_all_planned(rulesets: &[(String, String)]) -> Result<(), Error> {
    load_many(rulesets, load_planned)
}

fn load_many(
    rulesets: &[(String, String)],
    one: fn(&str, &str) -> Result<(), Error>,
) -> Result<(), Error> {
    std::thread::scope(|s| {
        let handles: Vec<_> = rulesets
            .iter()
            .map(|(ns, json)| s.spawn(move || one(ns, json)))
            .collect();
        let mut first = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::Nft {
                    netns: "?".into(),
                    message: "nft loader thread panicked".into(),
                })
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

/// `nft list table ip TABLE` inside `netns`, as text (what a learner sees).
pub fn list_table(netns: &str, table: &str) -> Result<String, Error> {
    let ns = Netns::open(netns)?;
    let fail = |message: String| Error::Nft {
        netns: netns.to_string(),
        message,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let _inside = ns.enter()?;
            let out = std::process::Command::new("nft")
                .args(["list", "table", "ip", table])
                .output()
                .map_err(|e| fail(e.to_string()))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(fail(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ))
            }
        })
        .join()
        .unwrap_or_else(|_| Err(fail("nft thread panicked".into())))
    })
}

/// `nft -j list ...` inside `netns` (`what`: `["table", "ip", "kube-proxy"]`,
/// `["counters", "table", "ip", T]`); `None` when the table does not exist.
pub fn list_json(netns: &str, what: &[&str]) -> Result<Option<String>, Error> {
    let ns = Netns::open(netns)?;
    let fail = |message: String| Error::Nft {
        netns: netns.to_string(),
        message,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let _inside = ns.enter()?;
            let args = std::iter::once("list").chain(what.iter().copied());
            match nftables::helper::get_current_ruleset_raw(None::<&str>, args) {
                Ok(json) => Ok(Some(json)),
                Err(nftables::helper::NftablesError::NftFailed { stderr, .. })
                    if stderr.contains("No such file or directory") =>
                {
                    Ok(None)
                }
                Err(e) => Err(fail(e.to_string())),
            }
        })
        .join()
        .unwrap_or_else(|_| Err(fail("nft thread panicked".into())))
    })
}

/// `nft -j list ruleset` inside `netns`, parsed: what `observe` compares
/// with the plan's rules.
pub fn list_ruleset(netns: &str) -> Result<serde_json::Value, Error> {
    let json = list_json(netns, &["ruleset"])?.unwrap_or_else(|| r#"{"nftables":[]}"#.into());
    serde_json::from_str(&json).map_err(|e| Error::Nft {
        netns: netns.to_string(),
        message: format!("unreadable listing: {e}"),
    })
}
