//! `podlab test FILE [--junit F] [--json] [--filter S] [--keep] [--timeout MS]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{errln, exit, load_plan, outln, require_root, CliError, Result};
use crate::lab::{self, expect::Assertion};
use crate::lifecycle;
use crate::plan;
use crate::probe::{self, Report};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file whose `spec.expect` assertions to run. The lab is
    /// brought up if it is not up (and down afterwards); a lab that is
    /// already up is tested as it is and left up.
    file: PathBuf,
    /// Also write the results as a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print the results as a JSON array on stdout.
    #[arg(long)]
    json: bool,
    /// Run only the assertions whose name contains this.
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,
    /// Leave a lab this command brought up running afterwards.
    #[arg(long)]
    keep: bool,
    /// Milliseconds a probe waits for an answer before it counts as blocked.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout: u64,
}

/// Brings a lab this command brought up down again, on every path.
struct Down(Option<String>);

impl Drop for Down {
    fn drop(&mut self) {
        if let Some(lab) = self.0.take() {
            let report = lifecycle::down(&lab);
            for e in &report.errors {
                errln!("warning: lab {lab}: {e}");
            }
        }
    }
}

pub fn run(args: Args) -> Result<u8> {
    let started = Instant::now();
    let file = lab::load(&args.file)?;
    let plan = plan::build(&file)?;
    let chosen: Vec<&Assertion> = file
        .lab
        .expect
        .iter()
        .filter(|a| args.filter.as_deref().is_none_or(|f| a.title().contains(f)))
        .collect();
    if file.lab.expect.is_empty() {
        return Err(CliError::new(format!(
            "{}: the lab has no assertions to run",
            args.file.display()
        ))
        .hint("add `spec.expect` to the Lab document, e.g. `- {from: pod-1, to: pod-2, port: 80, expect: connected}`"));
    }
    if chosen.is_empty() {
        return Err(CliError::new(format!(
            "no assertion's name contains `{}`",
            args.filter.as_deref().unwrap_or_default()
        ))
        .hint("`podlab test FILE --json` lists every assertion with its name"));
    }
    require_root("test")?;

    let lab = plan.lab.clone();
    let mut guard = Down(None);
    let running = if lifecycle::is_up(&lab) {
        errln!("podlab: lab {lab} is already up: testing it as it is, and leaving it up");
        let running = load_plan(&lab)?;
        if let Some(how) = differs(&running, &file, &args.file) {
            errln!(
                "warning: lab {lab} is up from {how}: testing the running lab; `podlab apply {}` first to test the file",
                args.file.display()
            );
        }
        running
    } else {
        errln!(
            "podlab: bringing up lab {lab} ({} nodes, {} pods)",
            plan.nodes.len(),
            plan.pods.len()
        );
        lifecycle::up(&plan, &mut |_| {}, Duration::from_secs(60)).map_err(|e| {
            CliError::new(format!(
                "lab {lab} could not be built, and what was made has been removed: {}",
                super::error_chain(&e)
            ))
        })?;
        if !args.keep {
            guard.0 = Some(lab.clone());
        }
        plan
    };

    let opts = probe::Options {
        timeout: Duration::from_millis(args.timeout),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let reports = rt.block_on(async {
        tokio::select! {
            r = probe::run(&running, &chosen, opts) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    rt.shutdown_background();
    let Some(reports) = reports else {
        return Err(CliError::new("interrupted"));
    };

    let failed = reports.iter().filter(|r| !r.passed).count();
    let passed = reports.len() - failed;
    if args.json {
        let json = serde_json::to_string_pretty(&reports).expect("reports serialise");
        outln!("{json}");
    } else {
        print_human(&reports);
    }
    if let Some(path) = &args.junit {
        let xml = junit(&lab, &reports, started.elapsed());
        std::fs::write(path, xml)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    }
    drop(guard);
    let summary = format!(
        "{passed} passed, {failed} failed (lab {lab}, {:.2}s)",
        started.elapsed().as_secs_f64()
    );
    if args.json {
        errln!("{summary}");
    } else {
        outln!("{summary}");
    }
    Ok(if failed == 0 {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// How the running lab differs from the file `test` was given, if it
/// does: what `apply` of that file would change, so that whitespace and
/// comments do not count and `scale`/`delete` edits do.
fn differs(running: &plan::Plan, file: &lab::LabFile, path: &Path) -> Option<String> {
    let desired = plan::build_with(file, Some(running)).ok()?;
    if crate::reconcile::incompatible(running, &desired).is_none()
        && crate::reconcile::diff(running, &desired).is_empty()
    {
        return None;
    }
    let same_file = match (
        std::fs::canonicalize(&running.source),
        std::fs::canonicalize(path),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    Some(if same_file {
        format!(
            "an older version of {} (or was edited since with scale/delete)",
            path.display()
        )
    } else {
        format!("a different file ({})", running.source)
    })
}

/// What a matrix's symbols mean, printed with every matrix shown.
pub const MATRIX_LEGEND: &str =
    "legend: . connected   R refused (reachable, nothing listening)   X blocked (no answer)   ? could not probe";

fn print_human(reports: &[Report]) {
    let (ok, bad) = if super::colour(super::Stream::Stdout) {
        ("\x1b[32m✔\x1b[0m", "\x1b[31m✘\x1b[0m")
    } else {
        ("PASS", "FAIL")
    };
    for r in reports {
        if r.passed {
            if r.kind == "matrix" {
                outln!("{ok} {}", r.name);
            } else {
                outln!("{ok} {}: {}", r.name, r.observed);
            }
            continue;
        }
        outln!("{bad} {}  (line {})", r.name, r.line);
        for (what, text) in [("expected", &r.expected), ("observed", &r.observed)] {
            if text.contains('\n') {
                outln!("    {what}:");
                for line in text.lines() {
                    outln!("      {line}");
                }
            } else {
                outln!("    {what}: {text}");
            }
        }
        if r.kind == "matrix" {
            outln!("    {MATRIX_LEGEND}");
        }
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// One testcase per assertion, in the shape CI viewers read (Jenkins,
/// GitLab, GitHub actions that render JUnit).
pub fn junit(lab: &str, reports: &[Report], took: Duration) -> String {
    let failures = reports.iter().filter(|r| !r.passed).count();
    let lab = xml_escape(lab);
    let secs = took.as_secs_f64();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"podlab\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{secs:.3}\">\n",
        reports.len()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{lab}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{secs:.3}\">\n",
        reports.len()
    ));
    for r in reports {
        let t = r.time_ms as f64 / 1000.0;
        let name = xml_escape(&r.name);
        if r.passed {
            x.push_str(&format!(
                "    <testcase classname=\"{lab}\" name=\"{name}\" time=\"{t:.3}\"/>\n"
            ));
            continue;
        }
        let first = |s: &str| s.lines().next().unwrap_or_default().to_string();
        let message = if r.kind == "matrix" {
            "the observed truth table differs from the expected one".to_string()
        } else {
            format!(
                "expected {}, observed {}",
                first(&r.expected),
                first(&r.observed)
            )
        };
        // Text content keeps its newlines (tables), unlike attributes.
        let legend = if r.kind == "matrix" {
            format!("\n{MATRIX_LEGEND}")
        } else {
            String::new()
        };
        let body = format!(
            "expected:\n{}\nobserved:\n{}{legend}",
            r.expected, r.observed
        )
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
        x.push_str(&format!(
            "    <testcase classname=\"{lab}\" name=\"{name}\" time=\"{t:.3}\">\n      <failure message=\"{}\" type=\"AssertionFailed\">{body}</failure>\n    </testcase>\n",
            xml_escape(&message)
        ));
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
