//! `podlab fault list|inject|clear`: the break-fix catalogue, for
//! instructors (and for learners who want to break a lab on purpose).

use super::{exit, load_plan, paint, pick_lab, require_root, CliError, Result};
use crate::faults::{self, run, Context, FaultError, Section, CATALOGUE};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// The catalogue: every fault, what it breaks, its seed section.
    List {
        /// The faults injected in a running lab instead.
        #[arg(long)]
        injected: bool,
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Break a running lab.
    Inject {
        /// The fault, as `fault list` names it.
        name: String,
        /// What it acts on (a node, pod, service, policy or namespace, as the
        /// fault says); without it, the fault's default (or one picked by
        /// --seed).
        target: Option<String>,
        /// A parameter of the fault, NAME=VALUE (repeatable).
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Pick the target at random from this seed when none is given.
        #[arg(long)]
        seed: Option<u64>,
        /// Print what would be done, and how it would be undone; change
        /// nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Undo injected faults: all of them, those of one name, or one by its
    /// id. After the recorded undo, what the fault touched is compared with
    /// the plan and what still differs is repaired; exit 1 if something
    /// still differs.
    Clear {
        /// A fault's name or id (`fault list --injected`); none: all.
        which: Option<String>,
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> Result<u8> {
    match args.command {
        Sub::List {
            injected: false,
            json,
            ..
        } => {
            list(json);
            Ok(exit::OK)
        }
        Sub::List {
            injected: true,
            lab,
            json,
        } => {
            require_root("fault list --injected")?;
            let lab = pick_lab(lab.as_deref())?;
            let record = run::load(&lab).map_err(fault_error)?;
            if json {
                print_json(&record.faults);
            } else if record.faults.is_empty() {
                println!("no fault is injected in lab {lab}");
            } else {
                let rows: Vec<Vec<String>> = record
                    .faults
                    .iter()
                    .map(|f| {
                        vec![
                            f.id.to_string(),
                            f.plan.fault.clone(),
                            if f.plan.target.is_empty() {
                                "-".into()
                            } else {
                                f.plan.target.clone()
                            },
                            f.by.clone(),
                            f.plan.summary.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    super::table::render(&["ID", "FAULT", "TARGET", "BY", "WHAT"], &rows)
                );
            }
            Ok(exit::OK)
        }
        Sub::Inject {
            name,
            target,
            params,
            seed,
            dry_run,
            lab,
            json,
        } => {
            // The name and parameters are checked before root is asked
            // for: a typo is answered at once.
            let entry = faults::entry(&name).map_err(from_fault)?;
            let params = faults::parse_params(&params).map_err(|bad| {
                CliError::new(format!("--param {bad}: expected NAME=VALUE")).hint(
                    match entry.params.first() {
                        Some(p) => format!("e.g. --param {}={}", p.name, p.default),
                        None => format!("fault {name} takes no parameters"),
                    },
                )
            })?;
            require_root("fault inject")?;
            let lab = pick_lab(lab.as_deref())?;
            let _lock = super::lock_lab(&lab, "fault inject")?;
            let plan = load_plan(&lab)?;
            let file = run::lab_file_of(&plan).ok();
            let ctx = Context {
                plan: &plan,
                file: file.as_ref(),
            };
            let fp = faults::plan_fault(&ctx, &name, target.as_deref(), &params, seed)
                .map_err(from_fault)?;
            if dry_run {
                if json {
                    print_json(&fp);
                } else {
                    println!("{} ({})", fp.summary, fp.section);
                    println!("inject:");
                    for s in &fp.inject {
                        println!("  {}", s.command());
                    }
                    println!("undo (podlab fault clear):");
                    for s in &fp.undo {
                        println!("  {}", s.command());
                    }
                }
                return Ok(exit::OK);
            }
            let injected = run::inject(&lab, fp, "fault inject").map_err(fault_error)?;
            if json {
                print_json(&injected);
            } else {
                println!(
                    "injected {} (id {}) in lab {lab}: {}",
                    injected.plan.fault, injected.id, injected.plan.summary
                );
                println!("  section: {}", injected.plan.section);
                println!("  undo:    podlab fault clear {}", injected.id);
            }
            Ok(exit::OK)
        }
        Sub::Clear { which, lab, json } => {
            require_root("fault clear")?;
            let lab = pick_lab(lab.as_deref())?;
            let _lock = super::lock_lab(&lab, "fault clear")?;
            let record = run::load(&lab).map_err(fault_error)?;
            let ids = run::select(&record, which.as_deref());
            if ids.is_empty() {
                if let Some(w) = &which {
                    let names: Vec<&str> = record
                        .faults
                        .iter()
                        .map(|f| f.plan.fault.as_str())
                        .collect();
                    let e = CliError::new(format!("no fault `{w}` is injected in lab {lab}"));
                    return Err(match crate::lab::did_you_mean(w, &names) {
                        Some(m) => e.hint(format!("did you mean {m}?")),
                        None => e.hint("`podlab fault list --injected` lists them"),
                    });
                }
                if json {
                    print_json(&Vec::<run::Cleared>::new());
                } else {
                    println!("no fault is injected in lab {lab}");
                }
                return Ok(exit::OK);
            }
            let cleared = run::clear(&lab, &ids).map_err(fault_error)?;
            if json {
                print_json(&cleared);
            } else {
                for c in &cleared {
                    print_cleared(c);
                }
            }
            if cleared.iter().any(|c| !c.errors.is_empty()) {
                Err(CliError::new("some faults could not be undone").hint(format!(
                    "`podlab diagnose --lab {lab}` shows what differs; `podlab down {lab}` always cleans up"
                )))
            } else if cleared.iter().any(|c| !c.differs.is_empty()) {
                Err(CliError::new(format!(
                    "lab {lab} still differs from its plan where the fault acted"
                ))
                .hint(format!(
                    "`sudo podlab apply --lab {lab}` puts back what it can; `podlab diagnose --lab {lab}` shows the rest"
                ))
                .code(exit::CHECK_FAILED))
            } else {
                Ok(exit::OK)
            }
        }
    }
}

/// One fault's clear: undone or not, what the diff after the undo
/// repaired, what still differs.
fn print_cleared(c: &run::Cleared) {
    let what = if c.target.is_empty() {
        c.fault.clone()
    } else {
        format!("{} on {}", c.fault, c.target)
    };
    if c.errors.is_empty() {
        println!("cleared {what} (id {})", c.id);
    } else {
        println!("could not clear {what} (id {}):", c.id);
        for e in &c.errors {
            println!("  {e}");
        }
    }
    for r in &c.repaired {
        println!("  still differed after the undo, repaired: {r}");
    }
    for d in &c.differs {
        println!("  still differs from the plan: {d}");
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) fn from_fault(e: FaultError) -> CliError {
    let hint = e.hint();
    let mut c = CliError::new(e.to_string());
    if let Some(h) = hint {
        c = c.hint(h);
    }
    c
}

pub(crate) fn fault_error(e: run::Error) -> CliError {
    let text = super::error_chain(&e);
    // A hint carried in the message goes on its own line.
    match text.split_once("\n  hint: ") {
        Some((m, h)) => CliError::new(m).hint(h),
        None => CliError::new(text),
    }
}

fn list(json: bool) {
    if json {
        print_json(&CATALOGUE);
        return;
    }
    for section in Section::ALL {
        println!("{}", paint(section.title(), "1"));
        for e in CATALOGUE.iter().filter(|e| e.section == section) {
            println!(
                "  {:<24} {:<10} {:<7} {}",
                e.name,
                e.target.to_string(),
                e.level.to_string(),
                e.breaks
            );
            for p in e.params {
                println!(
                    "  {:<24} --param {}=... ({}; default: {})",
                    "", p.name, p.help, p.default
                );
            }
        }
        println!();
    }
    println!("podlab fault inject NAME [TARGET] [--param NAME=VALUE] breaks a running lab;");
    println!("podlab fault clear [NAME|ID] undoes it exactly; docs/exercises.md has the details.");
}
