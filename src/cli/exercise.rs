//! `podlab exercise start|status|hint|check|solution|reset|verify|validate`:
//! break-fix exercises. A learner starts one and fixes the lab with
//! `podlab exec`, `ip`, `nft` and `dig`; `check` grades the network as it
//! is. An instructor proves an exercise with `verify` before handing it
//! out, and scripts read `--json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{exit, paint, require_root, CliError, Result};
use crate::exercise::run::{self, Error};
use crate::probe::Report;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Bring the exercise's lab up, break it, and tell the story.
    Start {
        /// The exercise file (labs/exercises/*.yaml).
        file: PathBuf,
        /// Pick the exercise's variables (which node or pod breaks) from
        /// this seed: give each learner a different one.
        #[arg(long)]
        seed: Option<u64>,
        /// Seconds to wait for the lab to come up.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Run it on a lab of this name instead of the lab file's: a second
        /// learner's instance of the same exercise on one host.
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
        /// Where the run's journal is written (default
        /// /var/lib/podlab/results); it survives reset and down.
        #[arg(long, value_name = "DIR")]
        results: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The running exercise: hints shown, solution asked, faults in place.
    Status {
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The next hint.
    Hint {
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Grade the fix: run the exercise's checks against the lab as it is
    /// (exit 0 only when every check passes).
    Check {
        #[arg(long)]
        lab: Option<String>,
        /// Milliseconds a probe waits for an answer before it counts as
        /// blocked.
        #[arg(long, value_name = "MS", default_value_t = 1000,
              value_parser = clap::value_parser!(u64).range(1..=600_000))]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// What was broken, and the steps that fix it (noted in the status).
    Solution {
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Undo the exercise's faults exactly and end it; the lab stays up,
    /// healthy.
    Reset {
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Prove an exercise before handing it out: start, the checks fail,
    /// the solution fixes it, reset leaves the lab as planned, down leaves
    /// nothing.
    Verify {
        file: PathBuf,
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// Prove seeds 0 to N-1 (each choice of variables once).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
        seeds: Option<u64>,
        /// Run it on a lab of this name instead of the lab file's.
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
        #[arg(long, value_name = "MS", default_value_t = 1000,
              value_parser = clap::value_parser!(u64).range(1..=600_000))]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Check an exercise file and its lab without building anything (no
    /// root needed).
    Validate { file: PathBuf },
    /// What a seed makes of an exercise: its variables, story, hints,
    /// faults and checks (no root, nothing is built).
    Preview {
        file: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// The exercises of a directory (default labs/exercises), one a line.
    List { dir: Option<PathBuf> },
    /// Every run journaled in a results directory (default
    /// /var/lib/podlab/results, searched at any depth): solved or not,
    /// when, time taken, hints, solution, tools used, journal intact.
    Report {
        dir: Option<PathBuf>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
}

fn cli(e: Error) -> CliError {
    let hint = e.hint();
    let mut c = CliError::new(super::error_chain(&e));
    if let Some(h) = hint {
        c = c.hint(h);
    }
    c
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn lab_of(named: Option<&str>) -> Result<String> {
    let from_env = std::env::var(super::LAB_ENV).ok().filter(|v| !v.is_empty());
    run::find_lab(named.or(from_env.as_deref())).map_err(cli)
}

pub fn run(args: Args) -> Result<u8> {
    match args.command {
        Sub::Validate { file } => validate(&file),
        Sub::Preview { file, seed } => preview(&file, seed),
        Sub::List { dir } => list(dir.as_deref()),
        Sub::Report { dir, json, csv } => report(dir.as_deref(), json, csv),
        Sub::Start {
            file,
            seed,
            timeout,
            as_name,
            results,
            json,
        } => {
            // Every problem of the file before root is asked for.
            let loaded = run::load_as(&file, as_name.as_deref()).map_err(cli)?;
            require_root("exercise start")?;
            let _lock = super::lock_lab(&loaded.plan.lab, "exercise start")?;
            let opts = run::StartOptions {
                seed,
                timeout: Duration::from_secs(timeout),
                as_name,
                results,
            };
            let started = run::start(&file, &opts).map_err(cli)?;
            if json {
                // The learner's view: no faults, variables nor solution.
                print_json(&serde_json::json!({
                    "progress": started.progress.summary(),
                    "story": started.progress.instance.story,
                    "hints": started.hints,
                }));
                return Ok(exit::OK);
            }
            let p = &started.progress;
            println!(
                "{}",
                paint(&format!("exercise {}: {}", p.exercise, p.title), "1")
            );
            println!(
                "{} · {} · lab {}{}",
                p.difficulty,
                p.section,
                p.lab,
                p.seed.map(|s| format!(" · seed {s}")).unwrap_or_default()
            );
            println!();
            println!("{}", p.instance.story.trim_end());
            println!();
            println!(
                "  explore:          podlab get pods -o wide, podlab exec ..., podlab diagnose FROM TO"
            );
            println!("  fixed it?         sudo podlab exercise check");
            println!(
                "  stuck?            sudo podlab exercise hint   ({} hints)",
                started.hints
            );
            println!("  give up?          sudo podlab exercise solution");
            println!("  start over clean: sudo podlab exercise reset");
            println!(
                "  journal:          {} (every podlab command on lab {} is recorded)",
                p.run.journal.display(),
                p.lab
            );
            Ok(exit::OK)
        }
        Sub::Status { lab, json } => {
            require_root("exercise status")?;
            let lab = lab_of(lab.as_deref())?;
            let (p, active) = run::status(&lab).map_err(cli)?;
            if json {
                // Which faults are still in would name them: a count only.
                print_json(&serde_json::json!({
                    "progress": p.summary(),
                    "faultsStillInjected": active.len(),
                }));
                return Ok(exit::OK);
            }
            println!("exercise {}: {}", p.exercise, p.title);
            println!("  lab:       {} ({})", p.lab, p.lab_file.display());
            println!("  file:      {}", p.file.display());
            println!(
                "  level:     {} · {}{}",
                p.difficulty,
                p.section,
                p.seed.map(|s| format!(" · seed {s}")).unwrap_or_default()
            );
            println!(
                "  started:   {} ago",
                super::table::age(Some(std::time::UNIX_EPOCH + Duration::from_secs(p.started)))
            );
            println!(
                "  hints:     {} of {} shown",
                p.hints_shown,
                p.instance.hints.len()
            );
            println!(
                "  solution:  {}",
                if p.solution_shown {
                    "shown"
                } else {
                    "not asked"
                }
            );
            println!(
                "  checks:    run {} time(s){}",
                p.checks_run,
                if p.solved_at.is_some() {
                    ", solved"
                } else {
                    ", not solved yet"
                }
            );
            println!(
                "  faults:    {} of {} still injected (they stay recorded even once fixed by hand)",
                active.len(),
                p.fault_ids.len()
            );
            Ok(exit::OK)
        }
        Sub::Hint { lab, json } => {
            require_root("exercise hint")?;
            let lab = lab_of(lab.as_deref())?;
            let _lock = super::lock_lab(&lab, "exercise hint")?;
            let (p, next) = run::hint(&lab).map_err(cli)?;
            let total = p.instance.hints.len();
            if json {
                print_json(&serde_json::json!({
                    "hint": next.as_ref().map(|(_, t)| t),
                    "number": next.as_ref().map(|(n, _)| n),
                    "total": total,
                }));
                return Ok(exit::OK);
            }
            match next {
                Some((n, text)) => {
                    println!("hint {n} of {total}:");
                    for line in text.trim_end().lines() {
                        println!("  {line}");
                    }
                }
                None if total == 0 => println!("this exercise has no hints"),
                None => {
                    println!("no more hints: all {total} were shown");
                    for (i, h) in p.instance.hints.iter().enumerate() {
                        println!("  {}. {}", i + 1, h.trim_end().replace('\n', "\n     "));
                    }
                    println!("`podlab exercise solution` shows the answer");
                }
            }
            Ok(exit::OK)
        }
        Sub::Check { lab, timeout, json } => {
            require_root("exercise check")?;
            let lab = lab_of(lab.as_deref())?;
            let g = run::check(&lab, Duration::from_millis(timeout)).map_err(cli)?;
            if json {
                print_json(&g);
            } else {
                print_checks(&g.checks);
                if g.solved {
                    println!(
                        "{} passed, 0 failed: fixed! (`podlab exercise reset` ends the exercise)",
                        g.passed
                    );
                } else {
                    println!("{} passed, {} failed: not fixed yet", g.passed, g.failed);
                }
            }
            Ok(if g.solved {
                exit::OK
            } else {
                exit::CHECK_FAILED
            })
        }
        Sub::Solution { lab, json } => {
            require_root("exercise solution")?;
            let lab = lab_of(lab.as_deref())?;
            let _lock = super::lock_lab(&lab, "exercise solution")?;
            let p = run::solution(&lab).map_err(cli)?;
            let lab_file = p.lab_file.display().to_string();
            if json {
                print_json(&serde_json::json!({
                    "broken": p.instance.faults.iter().map(|f| serde_json::json!({
                        "fault": f.fault,
                        "target": f.target,
                        "summary": f.summary,
                        "section": f.section,
                    })).collect::<Vec<_>>(),
                    "explanation": p.instance.explanation,
                    "steps": p.instance.fixes,
                    "commands": p.instance.fixes.iter().map(|f| f.command(&lab_file)).collect::<Vec<_>>(),
                }));
                return Ok(exit::OK);
            }
            println!("what was broken:");
            for f in &p.instance.faults {
                println!("  - {} ({})", f.summary, f.fault);
            }
            println!();
            println!("{}", p.instance.explanation.trim_end());
            println!();
            println!("the fix:");
            for f in &p.instance.fixes {
                for (i, line) in f.command(&lab_file).lines().enumerate() {
                    println!("  {}{line}", if i == 0 { "$ " } else { "  " });
                }
            }
            println!();
            println!("then: sudo podlab exercise check");
            Ok(exit::OK)
        }
        Sub::Reset { lab, json } => {
            require_root("exercise reset")?;
            let lab = lab_of(lab.as_deref())?;
            let _lock = super::lock_lab(&lab, "exercise reset")?;
            let r = run::reset(&lab).map_err(cli)?;
            if json {
                print_json(&serde_json::json!({
                    "exercise": r.exercise,
                    "lab": r.lab,
                    "cleared": r.cleared,
                    "findings": r.findings,
                    "healthy": r.healthy(),
                }));
            } else {
                for c in &r.cleared {
                    if c.errors.is_empty() {
                        println!(
                            "undid {} on {}",
                            c.fault,
                            if c.target.is_empty() {
                                "the lab"
                            } else {
                                &c.target
                            }
                        );
                    } else {
                        println!("could not undo {}: {}", c.fault, c.errors.join("; "));
                    }
                }
                for f in &r.findings {
                    println!("  {} {f}", paint("✘", "31"));
                }
                if r.healthy() {
                    println!(
                        "exercise {} ended; lab {} is as its file made it",
                        r.exercise, r.lab
                    );
                }
            }
            if r.healthy() {
                Ok(exit::OK)
            } else {
                Err(CliError::new(format!(
                    "lab {} still differs from its plan (changes made by hand?)",
                    r.lab
                ))
                .hint(format!(
                    "`sudo podlab down {}` and start again removes everything",
                    r.lab
                ))
                .code(exit::CHECK_FAILED))
            }
        }
        Sub::Verify {
            file,
            seed,
            seeds,
            as_name,
            timeout,
            json,
        } => {
            let loaded = run::load_as(&file, as_name.as_deref()).map_err(cli)?;
            require_root("exercise verify")?;
            let seeds: Vec<Option<u64>> = match seeds {
                Some(n) => (0..n).map(Some).collect(),
                None => vec![seed],
            };
            let mut runs = Vec::new();
            let mut proven: Vec<std::collections::BTreeMap<String, String>> = Vec::new();
            for seed in seeds {
                let vars = crate::exercise::choose_vars(&loaded.exercise, seed)
                    .map_err(|e| cli(e.into()))?;
                if proven.contains(&vars) {
                    // The same variables as a seed already proven.
                    continue;
                }
                proven.push(vars.clone());
                let phases = run::verify(
                    &file,
                    seed,
                    as_name.as_deref(),
                    Duration::from_millis(timeout),
                )
                .map_err(cli)?;
                let ok = phases.iter().all(|p| p.ok) && phases.len() == run::VERIFY_PHASES.len();
                runs.push((seed, vars, ok, phases));
                if !ok {
                    break;
                }
            }
            let ok = runs.iter().all(|r| r.2);
            if json {
                print_json(&serde_json::json!({
                    "file": file,
                    "ok": ok,
                    "seed": runs.first().and_then(|r| r.0),
                    "seeds": runs.iter().map(|r| r.0).collect::<Vec<_>>(),
                    "phases": runs.first().map(|r| &r.3),
                    "runs": runs.iter().map(|(seed, vars, ok, phases)| serde_json::json!({
                        "seed": seed, "vars": vars, "ok": ok, "phases": phases,
                    })).collect::<Vec<_>>(),
                }));
                return Ok(if ok { exit::OK } else { exit::CHECK_FAILED });
            }
            for (seed, vars, _, phases) in &runs {
                if runs.len() > 1 || seed.is_some() {
                    println!(
                        "seed {}: {}",
                        seed.map_or("none".into(), |s| s.to_string()),
                        vars.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                for p in phases {
                    let mark = if p.ok {
                        paint("✔", "32")
                    } else {
                        paint("✘", "31")
                    };
                    let mut lines = p.detail.lines();
                    println!("{mark} {:<9} {}", p.phase, lines.next().unwrap_or_default());
                    for l in lines {
                        println!("{:<12}{l}", "");
                    }
                }
            }
            println!(
                "{}: {}{}",
                file.display(),
                if ok { "verified" } else { "NOT verified" },
                if runs.len() > 1 {
                    format!(" ({} choices of variables)", runs.len())
                } else {
                    String::new()
                }
            );
            Ok(if ok { exit::OK } else { exit::CHECK_FAILED })
        }
    }
}

fn preview(file: &Path, seed: Option<u64>) -> Result<u8> {
    let loaded = run::load(file).map_err(cli)?;
    let ex = &loaded.exercise;
    let vars = crate::exercise::choose_vars(ex, seed).map_err(|e| cli(e.into()))?;
    let inst = crate::exercise::instantiate(ex, &loaded.plan, Some(&loaded.lab), vars.clone())
        .map_err(|e| cli(e.into()))?;
    let checks = run::checks_for(ex, &vars, &loaded.plan).map_err(cli)?;
    println!("exercise {}: {}", ex.name, ex.title);
    println!(
        "{} · {} · lab {}{}",
        ex.difficulty.word(),
        ex.section.key(),
        loaded.plan.lab,
        seed.map(|s| format!(" · seed {s}")).unwrap_or_default()
    );
    if !vars.is_empty() {
        println!(
            "variables: {}",
            vars.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!();
    println!("{}", inst.story.trim_end());
    println!();
    println!("faults:");
    for f in &inst.faults {
        println!("  - {} ({})", f.summary, f.fault);
    }
    println!("hints:");
    for (i, h) in inst.hints.iter().enumerate() {
        println!("  {}. {}", i + 1, h.trim_end().replace('\n', "\n     "));
    }
    println!("checks:");
    for c in &checks {
        println!("  - {}", c.title());
    }
    println!(
        "tools allowed: {}",
        crate::exercise::rules::allowed_list(ex.allow.as_deref()).join(", ")
    );
    println!("(the solution: `podlab exercise verify` proves it; `exercise solution` shows it to a learner)");
    Ok(exit::OK)
}

fn list(dir: Option<&Path>) -> Result<u8> {
    let dir = dir.unwrap_or(Path::new("labs/exercises"));
    let rd = std::fs::read_dir(dir).map_err(|e| {
        CliError::new(format!("cannot read {}: {e}", dir.display()))
            .hint("give the directory of the exercise files: podlab exercise list DIR")
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| crate::lab::exercise::is_exercise(&t)))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CliError::new(format!(
            "{} holds no exercise file",
            dir.display()
        )));
    }
    let mut bad = 0;
    println!(
        "{:<24} {:<7} {:<9} {:<10} {:<5} TITLE",
        "NAME", "LEVEL", "SECTION", "LAB", "VARS"
    );
    for f in &files {
        match run::load(f) {
            Ok(l) => {
                let ex = &l.exercise;
                println!(
                    "{:<24} {:<7} {:<9} {:<10} {:<5} {}",
                    ex.name,
                    ex.difficulty.word(),
                    ex.section.key(),
                    l.plan.lab,
                    crate::exercise::all_vars(ex, crate::exercise::MAX_COMBINATIONS).len(),
                    ex.title
                );
            }
            Err(e) => {
                bad += 1;
                println!("{:<24} {}", f.display(), paint("invalid", "31"));
                super::errln!("{}", super::error_chain(&e));
            }
        }
    }
    Ok(if bad == 0 { exit::OK } else { exit::BAD_INPUT })
}

fn report(dir: Option<&Path>, json: bool, csv: bool) -> Result<u8> {
    use crate::exercise::report;
    let dir = dir.unwrap_or(Path::new(crate::exercise::journal::DEFAULT_RESULTS));
    let rows = report::collect(dir).map_err(|e| {
        CliError::new(e).hint("give the results directory: podlab exercise report DIR")
    })?;
    if json {
        print_json(&rows);
    } else if csv {
        print!("{}", report::csv(&rows));
    } else if rows.is_empty() {
        println!("no exercise run is journaled under {}", dir.display());
    } else {
        print!("{}", report::text(&rows));
    }
    // A broken journal is the instructor's to look at: exit 1.
    Ok(if rows.iter().all(|r| r.intact) {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// The dispatch's hook: a podlab command about a lab where an exercise
/// runs is journaled, and refused when the exercise's rules say so.
pub fn gate(raw: &[std::ffi::OsString]) -> Result<()> {
    use clap::CommandFactory;
    let Ok(m) = super::Cli::command().try_get_matches_from(raw) else {
        return Ok(());
    };
    let words: Vec<String> = raw
        .iter()
        .skip(1)
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let Some((u, named, all)) = crate::exercise::rules::classify(&m, words) else {
        return Ok(());
    };
    let labs: Vec<String> = if all {
        crate::state::labs().iter().map(|l| l.to_string()).collect()
    } else {
        match super::pick_lab(named.as_deref()) {
            Ok(l) => vec![l.to_string()],
            // The command itself says what is wrong with the lab.
            Err(_) => return Ok(()),
        }
    };
    for lab in labs {
        let Ok(Some(p)) = run::load_progress(&lab) else {
            continue;
        };
        let allow = run::parse_snapshot(&p).ok().and_then(|e| e.allow);
        let running = crate::exercise::rules::Running {
            id: p.run.clone(),
            head: run::head_path(&lab),
            allow,
        };
        crate::exercise::rules::gate(&lab, &p.exercise, &running, &u)
            .map_err(|r| CliError::new(r.message).hint(r.hint))?;
    }
    Ok(())
}

fn validate(file: &std::path::Path) -> Result<u8> {
    let loaded = run::load(file).map_err(cli)?;
    let problems = crate::exercise::validate(&loaded.exercise, &loaded.lab, &loaded.plan);
    if problems.is_empty() {
        let ex = &loaded.exercise;
        println!(
            "{}: exercise {} is valid ({}, {}; lab {}; {} fault(s), {} hint(s), {} check(s))",
            file.display(),
            ex.name,
            ex.difficulty.word(),
            ex.section.key(),
            loaded.plan.lab,
            ex.faults.len(),
            ex.hints.len(),
            crate::lab::exercise::check_count(ex)
        );
        Ok(exit::OK)
    } else {
        Err(CliError::new(problems.join("\n")))
    }
}

fn print_checks(reports: &[Report]) {
    let tty = super::colour(super::Stream::Stdout);
    let (ok, bad) = if tty {
        ("\x1b[32m✔\x1b[0m", "\x1b[31m✘\x1b[0m")
    } else {
        ("PASS", "FAIL")
    };
    for r in reports {
        if r.passed {
            println!("{ok} {}", r.name);
            continue;
        }
        println!("{bad} {}", r.name);
        for (what, text) in [("expected", &r.expected), ("observed", &r.observed)] {
            if text.contains('\n') {
                println!("    {what}:");
                for line in text.lines() {
                    println!("      {line}");
                }
            } else {
                println!("    {what}: {text}");
            }
        }
        if r.kind == "matrix" {
            println!("    {}", super::test::MATRIX_LEGEND);
        }
    }
}
