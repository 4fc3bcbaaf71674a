//! Which podlab tools a learner may use on a lab while an exercise runs
//! (the exercise's `spec.allow`), and the gate every command passes
//! through: an allowed use is journaled, a refused one is journaled and
//! stopped with a message saying what to use instead.
//!
//! Only tools that can do the learner's work for them, or name the
//! answer, are governed: `exec`, `get` and the exercise's own commands
//! are always allowed (and journaled).

use std::path::PathBuf;

use super::journal::{self, RunId};

/// A governed tool: its name in `spec.allow`, whether it is allowed when
/// the exercise says nothing, why it is governed, and what to do instead.
pub struct Tool {
    pub name: &'static str,
    pub default: bool,
    pub why: &'static str,
    pub instead: &'static str,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "apply",
        default: false,
        why: "it puts the whole lab back as its file says, which fixes the exercise for you",
        instead:
            "fix what is broken by hand: `podlab exec node/NODE -- ip ...` or `... -- nft ...`",
    },
    Tool {
        name: "fault-clear",
        default: false,
        why: "it undoes the exercise's faults for you",
        instead: "find and fix the fault with `podlab exec`, `ip`, `nft` and `dig`",
    },
    Tool {
        name: "diagnose-lab",
        default: false,
        why: "whole-lab diagnose lists what differs from the plan, which names the fault",
        instead: "`podlab diagnose FROM TO` walks one path's checklist",
    },
    Tool {
        name: "diagnose",
        default: true,
        why: "the path checklist points at the broken step",
        instead: "`podlab trace FROM TO` and `podlab exec` show each hop",
    },
    Tool {
        name: "trace",
        default: true,
        why: "it shows the kernel's path hop by hop",
        instead: "`podlab exec POD -- ping`, `ip route get`",
    },
    Tool {
        name: "dns",
        default: true,
        why: "it resolves a name as a pod would, step by step",
        instead: "`podlab exec POD -- dig NAME`",
    },
    Tool {
        name: "fault-inject",
        default: true,
        why: "it changes the lab being graded",
        instead: "leave the lab's faults to the exercise",
    },
    Tool {
        name: "scale",
        default: true,
        why: "it changes the lab being graded",
        instead: "fix the network, not the workload",
    },
    Tool {
        name: "delete",
        default: true,
        why: "it changes the lab being graded",
        instead: "fix the network, not the workload",
    },
];

pub fn names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

pub fn tool(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Whether `tool` may be used under `allow` (`None`: the exercise has no
/// `spec.allow`, so each tool's default holds).
pub fn allowed(allow: Option<&[String]>, name: &str) -> bool {
    match (allow, tool(name)) {
        (_, None) => true,
        (Some(list), Some(_)) => list.iter().any(|a| a == name),
        (None, Some(t)) => t.default,
    }
}

/// The tools allowed, in table order, for messages and `status`.
pub fn allowed_list(allow: Option<&[String]>) -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|t| allowed(allow, t.name))
        .map(|t| t.name)
        .collect()
}

/// A podlab command about a lab, as the gate sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    /// The journal's event: `apply`, `fault clear`, `diagnose`, `exec`...
    pub event: String,
    /// The governed tool it is, if any.
    pub tool: Option<&'static str>,
    /// The command line after `podlab`.
    pub args: Vec<String>,
}

/// What the running exercise of a lab says about a use.
pub struct Running {
    pub id: RunId,
    pub head: PathBuf,
    pub allow: Option<Vec<String>>,
}

/// A refused use: the message and hint for the learner.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub message: String,
    pub hint: String,
}

/// Journal `u` in the exercise running on `lab`, and refuse it if the
/// exercise's rules do. A journal that cannot be written refuses a
/// governed tool (its use would go unrecorded) but not the rest.
pub fn gate(lab: &str, exercise: &str, run: &Running, u: &Use) -> Result<(), Refused> {
    let ok = u.tool.is_none_or(|t| allowed(run.allow.as_deref(), t));
    let verdict = if ok { "allowed" } else { "refused" };
    let detail = serde_json::json!({"tool": u.tool});
    let written = journal::append(
        &run.id,
        Some(&run.head),
        &u.event,
        Some(verdict),
        &u.args,
        detail,
    );
    if let (Err(e), Some(_)) = (&written, u.tool) {
        return Err(Refused {
            message: format!(
                "podlab {} cannot be recorded in the journal of exercise {exercise} on lab {lab}: {e}",
                u.event
            ),
            hint: "an exercise's tools are used only when their use is recorded; fix the results directory, or `podlab exercise reset` to end the exercise".into(),
        });
    }
    if ok {
        return Ok(());
    }
    let t = u.tool.and_then(tool);
    Err(Refused {
        message: format!(
            "podlab {} is not allowed on lab {lab} while exercise {exercise} runs: {} (the attempt is recorded in the exercise's journal)",
            u.event,
            t.map_or("the exercise's rules refuse it", |t| t.why)
        ),
        hint: format!(
            "{}; allowed here: {}; `podlab exercise reset` ends the exercise",
            t.map_or("use podlab exec", |t| t.instead),
            {
                let a = allowed_list(run.allow.as_deref());
                if a.is_empty() {
                    "exec and get only".to_string()
                } else {
                    a.join(", ")
                }
            }
        ),
    })
}

/// What a parsed command line is, for the gate: the use, the lab it
/// names (if it does), and whether it is about every lab (`down --all`).
pub fn classify(m: &clap::ArgMatches, args: Vec<String>) -> Option<(Use, Option<String>, bool)> {
    let (cmd, sm) = m.subcommand()?;
    let lab = |sm: &clap::ArgMatches| sm.try_get_one::<String>("lab").ok().flatten().cloned();
    let (event, tool, named, all): (String, Option<&'static str>, Option<String>, bool) = match cmd
    {
        // Journaled by the exercise's own commands, with their results.
        "exercise" | "completion" | "man" | "validate" | "up" | "ls" => return None,
        "apply" => {
            let from_file = sm
                .try_get_one::<PathBuf>("file")
                .ok()
                .flatten()
                .and_then(|f| crate::lab::load(f).ok())
                .map(|f| f.lab.name);
            ("apply".into(), Some("apply"), lab(sm).or(from_file), false)
        }
        // kubectl's writes through the lab's API change the lab as apply does.
        "api-write" => ("kubectl write".into(), Some("apply"), lab(sm), false),
        "fault" => {
            let (sub, ssm) = sm.subcommand()?;
            let tool = match sub {
                "clear" => Some("fault-clear"),
                "inject" => Some("fault-inject"),
                _ => None,
            };
            (format!("fault {sub}"), tool, lab(ssm), false)
        }
        "diagnose" => {
            let whole = sm.try_get_one::<String>("from").ok().flatten().is_none();
            let (event, tool) = if whole {
                ("diagnose (whole lab)", "diagnose-lab")
            } else {
                ("diagnose", "diagnose")
            };
            (event.into(), Some(tool), lab(sm), false)
        }
        "down" => (
            "down".into(),
            None,
            lab(sm),
            sm.try_get_one::<bool>("all").ok().flatten() == Some(&true),
        ),
        "trace" | "dns" | "scale" | "delete" => {
            let tool = tool(cmd).map(|t| t.name);
            (cmd.into(), tool, lab(sm), false)
        }
        other => (other.into(), None, lab(sm), false),
    };
    Some((Use { event, tool, args }, named, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_refuse_what_does_the_work_or_names_the_fault() {
        for (t, ok) in [
            ("apply", false),
            ("fault-clear", false),
            ("diagnose-lab", false),
            ("diagnose", true),
            ("trace", true),
            ("dns", true),
            ("exec-is-not-governed", true),
        ] {
            assert_eq!(allowed(None, t), ok, "{t}");
        }
    }

    #[test]
    fn an_allow_list_is_the_whole_of_what_is_allowed() {
        let allow = vec!["trace".to_string(), "apply".to_string()];
        assert!(allowed(Some(&allow), "apply"));
        assert!(allowed(Some(&allow), "trace"));
        assert!(!allowed(Some(&allow), "diagnose"));
        assert!(!allowed(Some(&[]), "trace"));
        assert_eq!(allowed_list(Some(&allow)), ["apply", "trace"]);
    }

    #[test]
    fn a_refusal_is_journaled_and_says_what_to_do_instead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Running {
            id: RunId {
                run: "r".into(),
                lab: "gr-t".into(),
                exercise: "ex".into(),
                journal: dir.path().join("j.jsonl"),
            },
            head: dir.path().join(journal::HEAD_FILE),
            allow: None,
        };
        let apply = Use {
            event: "apply".into(),
            tool: Some("apply"),
            args: vec!["apply".into(), "--lab".into(), "gr-t".into()],
        };
        let r = gate("gr-t", "ex", &run, &apply).expect_err("apply is refused");
        assert!(
            r.message.contains("not allowed on lab gr-t"),
            "{}",
            r.message
        );
        assert!(r.hint.contains("podlab exec"), "{}", r.hint);
        let exec = Use {
            event: "exec".into(),
            tool: None,
            args: vec!["exec".into()],
        };
        gate("gr-t", "ex", &run, &exec).expect("exec is allowed");
        let read = journal::read(&run.id.journal).expect("journal");
        assert_eq!(read.broken, None);
        let v: Vec<(&str, Option<&str>)> = read
            .entries
            .iter()
            .map(|e| (e.event.as_str(), e.verdict.as_deref()))
            .collect();
        assert_eq!(v, [("apply", Some("refused")), ("exec", Some("allowed"))]);
    }
}
