//! Break-fix exercises on a running lab: an exercise file (`lab::exercise`)
//! made concrete for one lab and one seed (`instantiate`, pure), and the
//! commands that start, grade and reset it (`run`).
//!
//! Randomised variants: an exercise's `vars` may list values to pick from;
//! `--seed N` picks them (each variable a value the ones before it did not
//! take), so that learners sharing a room break different nodes. Without a
//! seed, each variable takes its first value: what `verify` proves.

pub mod hints;
pub mod journal;
pub mod report;
pub mod rules;
pub mod run;
pub mod sha256;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::faults::{self, Context, FaultError, FaultPlan, Level, Step};
use crate::lab::exercise::{references, Exercise, FaultSpec, SolutionStep};
use crate::lab::{LabFile, Pos};
use crate::plan::Plan;

/// The most combinations of variable values `validate` tries.
pub const MAX_COMBINATIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    // Each names the file, line and column of what it is about, as every
    // diagnostic of a file does.
    #[error("{source_file}:{}:{}: {field}: {message}", .pos.line, .pos.col)]
    Template {
        source_file: String,
        pos: Pos,
        field: String,
        message: String,
    },
    #[error("{source_file}:{}:{}: spec.vars.{var}: no value is left to pick (each variable takes a value the ones before it did not)", .pos.line, .pos.col)]
    NoValueLeft {
        source_file: String,
        pos: Pos,
        var: String,
    },
    #[error("{source_file}:{}:{}: spec.faults[{index}]: {error}", .pos.line, .pos.col)]
    Fault {
        source_file: String,
        pos: Pos,
        index: usize,
        // Boxed: every `Result` of this module would carry its size.
        error: Box<FaultError>,
    },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Fault { error, .. } => error.hint(),
            Error::NoValueLeft { .. } => Some("give the later variable more values".into()),
            Error::Template { .. } => None,
        }
    }
}

/// A solution step with its variables filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fix {
    Run {
        at: String,
        argv: Vec<String>,
    },
    /// A shell command line on the host.
    Host {
        command: String,
    },
    Write {
        at: String,
        path: String,
        content: String,
    },
    Apply,
}

impl Fix {
    /// How a learner types it.
    pub fn command(&self, lab_file: &str) -> String {
        match self {
            Fix::Run { at, argv } => format!("podlab exec {at} -- {}", faults::shell_words(argv)),
            Fix::Host { command } => command.clone(),
            Fix::Write { at, path, content } => format!(
                "podlab exec {at} -- sh -c 'cat > {path}' <<'EOF'\n{}{}EOF",
                content,
                if content.ends_with('\n') { "" } else { "\n" }
            ),
            Fix::Apply => format!("podlab apply {lab_file}"),
        }
    }
}

/// An exercise made concrete for a running lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub vars: BTreeMap<String, String>,
    pub story: String,
    pub hints: Vec<String>,
    pub faults: Vec<FaultPlan>,
    pub explanation: String,
    pub fixes: Vec<Fix>,
}

/// Each variable's value: the first, or picked by the seed among those
/// the variables before it did not take.
pub fn choose_vars(ex: &Exercise, seed: Option<u64>) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let mut taken: Vec<String> = Vec::new();
    for v in &ex.vars {
        let left: Vec<&String> = v.values.iter().filter(|x| !taken.contains(x)).collect();
        if left.is_empty() {
            return Err(Error::NoValueLeft {
                source_file: ex.source.clone(),
                pos: v.pos,
                var: v.name.clone(),
            });
        }
        let i = seed.map_or(0, |s| faults::pick(s, &v.name, left.len()));
        let value = left[i].clone();
        taken.push(value.clone());
        out.insert(v.name.clone(), value);
    }
    Ok(out)
}

/// Every assignment of values the variables can take (each distinct from
/// those before it), at most `limit`.
pub fn all_vars(ex: &Exercise, limit: usize) -> Vec<BTreeMap<String, String>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for v in &ex.vars {
        let mut next = Vec::new();
        'partials: for partial in &out {
            for value in &v.values {
                if partial.iter().any(|(_, x)| x == value) {
                    continue;
                }
                let mut p = partial.clone();
                p.push((v.name.clone(), value.clone()));
                next.push(p);
                if next.len() >= limit {
                    break 'partials;
                }
            }
        }
        out = next;
    }
    out.into_iter().map(|p| p.into_iter().collect()).collect()
}

/// `text` with every `${NAME}` and `${NAME.ATTR}` replaced: a variable's
/// value (`${lab}`: the lab's name), or for a node `ip`, `podCIDR` and
/// `gateway` (the node network's), for a pod `ip`, `gateway`, `node` and
/// `namespace`.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    plan: &Plan,
) -> Result<String, String> {
    let refs = references(text)?;
    if refs.is_empty() {
        return Ok(text.to_string());
    }
    let mut out = text.to_string();
    for r in refs {
        let builtin = (r.name == "lab").then(|| plan.lab.clone());
        let Some(value) = vars.get(&r.name).or(builtin.as_ref()) else {
            return Err(format!(
                "`${{{}}}` is not a variable of the exercise",
                r.name
            ));
        };
        let (pattern, replacement) = match &r.attr {
            None => (format!("${{{}}}", r.name), value.clone()),
            Some(a) => (format!("${{{}.{a}}}", r.name), attribute(plan, value, a)?),
        };
        out = out.replace(&pattern, &replacement);
    }
    Ok(out)
}

fn attribute(plan: &Plan, value: &str, attr: &str) -> Result<String, String> {
    // The grammar of `crate::target`, plus a bare node name (exercises
    // write nodes `NODE` or `node/NODE`): a pod of that name comes first.
    let (node, pod) = match crate::target::source(plan, value, "default") {
        Ok(crate::target::Found::Node(n)) => (Some(n), None),
        Ok(crate::target::Found::Pod(p)) => (None, Some(p)),
        _ => (plan.node(value), None),
    };
    match (attr, node, pod) {
        ("ip", Some(n), _) => Ok(n.ip.to_string()),
        ("podCIDR", Some(n), _) => Ok(n.pod_cidr.to_string()),
        ("gateway", Some(_), _) => Ok(plan.net.gateway.to_string()),
        ("ip", None, Some(p)) => Ok(p.ip.to_string()),
        ("gateway", None, Some(p)) => Ok(p.gateway.to_string()),
        ("node", None, Some(p)) => Ok(p.node.clone()),
        ("namespace", None, Some(p)) => Ok(p.namespace.clone()),
        (_, None, None) => Err(format!(
            "`{value}` is neither a node nor a pod of lab {}, so it has no `{attr}`",
            plan.lab
        )),
        (_, Some(_), _) => Err(format!(
            "node {value} has no `{attr}`: a node has ip, podCIDR and gateway"
        )),
        (_, None, Some(_)) => Err(format!(
            "pod {value} has no `{attr}`: a pod has ip, gateway, node and namespace"
        )),
    }
}

/// Make an exercise concrete: variables chosen, text filled in, every
/// fault planned on the lab (pure: nothing is changed yet).
pub fn instantiate(
    ex: &Exercise,
    plan: &Plan,
    file: Option<&LabFile>,
    vars: BTreeMap<String, String>,
) -> Result<Instance, Error> {
    let sub = |text: &str, field: &str| {
        substitute(text, &vars, plan).map_err(|message| Error::Template {
            source_file: ex.source.clone(),
            pos: ex.field_pos(field),
            field: field.to_string(),
            message,
        })
    };
    let ctx = Context { plan, file };
    let mut faults_planned = Vec::new();
    for (i, f) in ex.faults.iter().enumerate() {
        let field = format!("spec.faults[{i}]");
        let fp = match f {
            FaultSpec::Catalogue {
                fault,
                target,
                params,
                ..
            } => {
                let target = target.as_deref().map(|t| sub(t, &field)).transpose()?;
                let params = params
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), sub(v, &field)?)))
                    .collect::<Result<BTreeMap<_, _>, Error>>()?;
                faults::plan_fault(&ctx, fault, target.as_deref(), &params, None).map_err(
                    |error| Error::Fault {
                        source_file: ex.source.clone(),
                        pos: ex.field_pos(&field),
                        index: i,
                        error: Box::new(error),
                    },
                )?
            }
            FaultSpec::Custom {
                name,
                description,
                at,
                run,
                undo,
                ..
            } => {
                let at = sub(at, &field)?;
                let run = run
                    .iter()
                    .map(|a| sub(a, &field))
                    .collect::<Result<Vec<_>, _>>()?;
                let undo = undo
                    .iter()
                    .map(|a| sub(a, &field))
                    .collect::<Result<Vec<_>, _>>()?;
                faults::run::exec_setup(plan, &at).map_err(|message| Error::Template {
                    source_file: ex.source.clone(),
                    pos: ex.field_pos(&field),
                    field: format!("{field}.in"),
                    message,
                })?;
                let summary = match description {
                    Some(d) => sub(d, &field)?,
                    None => format!("`{}` in {at}", faults::shell_words(&run)),
                };
                FaultPlan {
                    fault: name.clone().unwrap_or_else(|| "custom".into()),
                    target: at.clone(),
                    params: BTreeMap::new(),
                    summary,
                    section: ex.section,
                    level: Level::Kernel,
                    inject: vec![Step::Exec {
                        at: at.clone(),
                        argv: run,
                    }],
                    undo: vec![Step::Exec { at, argv: undo }],
                }
            }
        };
        faults_planned.push(fp);
    }
    let mut fixes = Vec::new();
    for (i, s) in ex.solution.steps.iter().enumerate() {
        let field = format!("spec.solution.steps[{i}]");
        let resolved = |at: &str| -> Result<String, Error> {
            let at = sub(at, &field)?;
            faults::run::exec_setup(plan, &at).map_err(|message| Error::Template {
                source_file: ex.source.clone(),
                pos: ex.field_pos(&field),
                field: format!("{field}.in"),
                message,
            })?;
            Ok(at)
        };
        fixes.push(match s {
            SolutionStep::Run { at: None, argv, .. } => Fix::Host {
                command: sub(argv.last().map_or("", String::as_str), &field)?,
            },
            SolutionStep::Run {
                at: Some(at), argv, ..
            } => Fix::Run {
                at: resolved(at)?,
                argv: argv
                    .iter()
                    .map(|a| sub(a, &field))
                    .collect::<Result<Vec<_>, _>>()?,
            },
            SolutionStep::Write {
                at, path, content, ..
            } => Fix::Write {
                at: resolved(at)?,
                path: sub(path, &field)?,
                content: sub(content, &field)?,
            },
            SolutionStep::Apply { .. } => Fix::Apply,
        });
    }
    Ok(Instance {
        story: sub(&ex.story, "spec.story")?,
        hints: ex
            .hints
            .iter()
            .enumerate()
            .map(|(i, h)| sub(h, &format!("spec.hints[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        explanation: sub(&ex.solution.explanation, "spec.solution.explanation")?,
        vars,
        faults: faults_planned,
        fixes,
    })
}

/// ` (with node=node-1, ...)` after a message about one choice.
fn with_vars(vars: &BTreeMap<String, String>) -> String {
    if vars.is_empty() {
        return String::new();
    }
    format!(
        " (with {})",
        vars.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Everything that can be checked without root: the checks against the
/// lab, and every fault and step planned for every choice of variables.
pub fn validate(ex: &Exercise, file: &LabFile, plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = crate::lab::exercise::check(ex, file) {
        problems.extend(e.diagnostics.iter().map(|d| d.to_string()));
    }
    let combos = all_vars(ex, MAX_COMBINATIONS);
    if combos.is_empty() {
        if let Err(e) = choose_vars(ex, None) {
            problems.push(crate::lab::escape(&e.to_string()).into_owned());
        }
    }
    let mut hint_problems = std::collections::HashSet::new();
    for vars in combos {
        // Checks with variables: related to the lab for each choice.
        if ex.checks_template.is_some() {
            let checks = crate::lab::exercise::checks_with(ex, &mut |t| substitute(t, &vars, plan))
                .and_then(|checks| {
                    let mut one = ex.clone();
                    one.checks = checks;
                    crate::lab::exercise::check(&one, file)
                });
            if let Err(e) = checks {
                for d in &e.diagnostics {
                    let line = crate::lab::escape(&format!("{d}{}", with_vars(&vars))).into_owned();
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
        }
        let inst = instantiate(ex, plan, Some(file), vars.clone());
        if let Ok(inst) = &inst {
            for (i, message) in hints::check(ex, plan, &inst.hints) {
                // Said once, for the first choice of variables it holds for.
                if !hint_problems.insert((i, message.clone())) {
                    continue;
                }
                let pos = ex.field_pos(&format!("spec.hints[{i}]"));
                let line = crate::lab::escape(&format!(
                    "{}:{}:{}: spec.hints[{i}]: {message}{}",
                    ex.source,
                    pos.line,
                    pos.col,
                    with_vars(&vars)
                ))
                .into_owned();
                if !problems.contains(&line) {
                    problems.push(line);
                }
            }
        }
        if let Ok(inst) = &inst {
            for (i, fix) in inst.fixes.iter().enumerate() {
                let Some(message) = hints::refused_step(ex, fix) else {
                    continue;
                };
                let field = format!("spec.solution.steps[{i}]");
                let pos = ex.field_pos(&field);
                let line = crate::lab::escape(&format!(
                    "{}:{}:{}: {field}: {message}",
                    ex.source, pos.line, pos.col
                ))
                .into_owned();
                if !problems.contains(&line) {
                    problems.push(line);
                }
            }
        }
        if let Err(e) = inst {
            let with = if vars.is_empty() {
                String::new()
            } else {
                format!(
                    " (with {})",
                    vars.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            // The values may be the file's text (a variable, a story):
            // escaped as every diagnostic is, one line each.
            let mut line = crate::lab::escape(&format!("{e}{with}")).into_owned();
            if let Some(h) = e.hint() {
                line.push_str(&format!("\n  hint: {}", crate::lab::escape(&h)));
            }
            if !problems.contains(&line) {
                problems.push(line);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
