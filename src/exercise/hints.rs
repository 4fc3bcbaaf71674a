//! Hint commands, checked as checks are: each `podlab ...` a hint shows
//! between backticks is a command podlab takes, names the lab's own pods
//! and nodes, and is one the exercise's rules allow (a hint must not send
//! the learner to a refused tool). A command with a placeholder in it
//! (`node/NODE`, `<pod-ip>`, `...`) is only checked for its command.

use clap::CommandFactory;

use super::rules;
use crate::lab::exercise::Exercise;
use crate::plan::Plan;

/// The `podlab ...` commands between backticks in `text`.
pub fn commands(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        .filter(|s| s.starts_with("podlab "))
        .map(String::from)
        .collect()
}

fn words(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| w.trim_matches(['\'', '"']).to_string())
        .collect()
}

fn placeholder(word: &str) -> bool {
    let letters: String = word
        .split('/')
        .next_back()
        .unwrap_or(word)
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    word.contains("...")
        || word.starts_with('<')
        || (letters.len() > 1 && letters.chars().all(|c| c.is_ascii_uppercase()))
}

/// What is wrong with one hint command, if anything.
pub fn problem(ex: &Exercise, plan: &Plan, command: &str) -> Option<String> {
    let w = words(command);
    let vague = w.iter().any(|x| placeholder(x));
    let m = match crate::cli::Cli::command().try_get_matches_from(&w) {
        Ok(m) => m,
        // `podlab exec` named in passing, or a command with placeholders.
        Err(_) if w.len() == 2 || vague => {
            let known = crate::cli::Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == w[1]);
            return (!known).then(|| format!("`{command}`: podlab has no command `{}`", w[1]));
        }
        Err(e) => {
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            return Some(format!("`{command}` is not a podlab command line: {first}"));
        }
    };
    let (u, _, _) = rules::classify(&m, w.clone())?;
    if let Some(t) = u.tool.filter(|t| !rules::allowed(ex.allow.as_deref(), t)) {
        return Some(format!(
            "`{command}` uses {t}, which the exercise's rules refuse while it runs (add `{t}` to spec.allow, or hint at a tool it allows)"
        ));
    }
    if vague {
        return None;
    }
    let (cmd, sm) = m.subcommand()?;
    let arg = |id: &str| sm.try_get_one::<String>(id).ok().flatten().cloned();
    let ns = arg("namespace").unwrap_or_else(|| "default".into());
    match cmd {
        "exec" => {
            let target = arg("target")?;
            let at = if target.contains('/') || ns == "default" {
                target
            } else {
                format!("{ns}/{target}")
            };
            crate::faults::run::exec_setup(plan, &at)
                .err()
                .map(|e| format!("`{command}`: {e}"))
        }
        "diagnose" | "trace" | "dns" => {
            let from = arg("from")?;
            crate::observe::target::pod_source(plan, &from, &ns)
                .err()
                .map(|e| format!("`{command}`: {e}"))
        }
        _ => None,
    }
}

/// The governed tool a solution step uses that the exercise's rules
/// refuse, if any: the learner could not type the step while it runs.
/// A host command line is split at its pipes and lists (`|`, `&&`,
/// `||`, `;`, newlines) and each `podlab ...` in it classified.
pub fn refused_step(ex: &Exercise, fix: &super::Fix) -> Option<String> {
    let refused = |t: &str| {
        (!rules::allowed(ex.allow.as_deref(), t)).then(|| {
            format!(
                "the step uses {t}, which the exercise's rules refuse while it runs: the learner could not type it (add `{t}` to spec.allow)"
            )
        })
    };
    let command = match fix {
        super::Fix::Apply => return refused("apply"),
        super::Fix::Host { command } => command,
        _ => return None,
    };
    command
        .split(['|', '&', ';', '\n'])
        .filter_map(|part| {
            let w = words(part.trim());
            (w.first().map(String::as_str) == Some("podlab")).then_some(w)
        })
        .find_map(|w| {
            let m = crate::cli::Cli::command().try_get_matches_from(&w).ok()?;
            let (u, _, _) = rules::classify(&m, w)?;
            refused(u.tool?)
        })
}

/// Every hint command's problem, as `spec.hints[i]: ...`.
pub fn check(ex: &Exercise, plan: &Plan, hints: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, h) in hints.iter().enumerate() {
        for c in commands(h) {
            if let Some(p) = problem(ex, plan, &c) {
                out.push((i, p));
            }
        }
    }
    out
}
