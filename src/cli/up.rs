//! `podlab up [FILE]`

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{exit, require_root, table, CliError, Result};
use crate::kernel::apply::Progress;
use crate::lab;
use crate::lifecycle;
use crate::plan::{self, Plan};
use crate::runtime::{ContainerState, ContainerStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file; without it, the built-in `demo` lab (the seed's example:
    /// two nodes, pod-1 serving port 80, pod-2 running `sleep 3600`).
    file: Option<PathBuf>,
    /// Seconds to wait for every pod to be Running and serving.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Parse and plan a lab file (or the built-in lab): everything `up` checks
/// before it touches the kernel.
pub fn plan_of(file: Option<&std::path::Path>) -> Result<Plan> {
    let parsed = match file {
        Some(path) => lab::load(path)?,
        None => lab::parse(super::DEMO_SOURCE, lab::DEMO)?,
    };
    for w in &parsed.warnings {
        eprintln!("warning: {w}");
    }
    Ok(plan::build(&parsed)?)
}

pub fn run(args: Args) -> Result<u8> {
    let plan = plan_of(args.file.as_deref())?;
    require_root("up")?;
    let started = Instant::now();
    // Rewriting one progress line needs a terminal that understands it.
    let live = !args.quiet && super::terminal(super::Stream::Stderr);
    let mut progress = |p: Progress| {
        if args.quiet {
            return;
        }
        let line = match p {
            Progress::Step(s) => format!("  building {s}..."),
            Progress::Pods { done, total } => format!("  pods {done}/{total}"),
        };
        if live {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if !matches!(p, Progress::Pods { done, total } if done != total && done != 0) {
            eprintln!("{line}");
        }
    };
    if !args.quiet {
        eprintln!(
            "podlab: bringing up lab {} ({} nodes, {} pods)",
            plan.lab,
            plan.nodes.len(),
            plan.pods.len()
        );
    }
    let result = lifecycle::up(&plan, &mut progress, Duration::from_secs(args.timeout));
    if live {
        eprint!("\r\x1b[2K");
    }
    result.map_err(|e| match e {
        lifecycle::Error::AlreadyUp(lab) => CliError::new(format!("lab {lab} is already up")).hint(
            format!("`podlab down {lab}` first, or name this lab differently in metadata.name"),
        ),
        // 130: the shell's code for a command stopped by Ctrl-C.
        lifecycle::Error::Interrupted => CliError::new(format!(
            "interrupted: lab {} was not built, and what was made has been removed",
            plan.lab
        ))
        .code(130),
        // Refused before anything was made: say so, and how to get past it.
        e @ (lifecycle::Error::BadName(_)
        | lifecycle::Error::Lock(_)
        | lifecycle::Error::PrefixConflict { .. }
        | lifecycle::Error::Exists { .. }) => {
            let hint = e.hint();
            let err = CliError::new(format!("{}; nothing was changed", super::error_chain(&e)));
            match hint {
                Some(h) => err.hint(h),
                None => err,
            }
        }
        e => CliError::new(format!(
            "lab {} could not be built, and what was made has been removed: {}",
            plan.lab,
            super::error_chain(&e)
        )),
    })?;
    if !args.quiet {
        print_summary(&plan, started.elapsed());
    }
    warn_unhealthy(&plan);
    Ok(exit::OK)
}

/// How long `up` watches pods that run a command after they started: a
/// bad command line or a missing binary exits within a few milliseconds,
/// so a short look keeps `up` fast (the seed's lab runs a command). Labs
/// without commands (the benchmarks' Deployments) do not wait.
const SETTLE: Duration = Duration::from_millis(200);

fn failing(c: &ContainerStatus) -> bool {
    c.restarts > 0
        || matches!(
            c.state,
            ContainerState::CrashLoopBackOff | ContainerState::Error
        )
}

/// `up` waits for pods to serve, not for their processes to stay up: a
/// container that exits and restarts is only seen by asking the daemon,
/// for a moment after the start.
fn warn_unhealthy(plan: &Plan) {
    if plan.pods.iter().all(|p| p.processes.is_empty()) {
        // Only a command can exit: ports alone are served by the daemon.
        return;
    }
    let dir = crate::state::dir_of(&plan.lab);
    let until = Instant::now() + SETTLE;
    let status = loop {
        let Ok(status) = crate::runtime::query_status(&dir, Duration::from_secs(2)) else {
            eprintln!(
                "warning: lab {}: cannot ask its daemon how the pods are; `podlab get pods --lab {}` shows them",
                plan.lab, plan.lab
            );
            return;
        };
        let any = status.pods.iter().any(|p| p.containers.iter().any(failing));
        if any || Instant::now() >= until {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let logs = dir.join(crate::runtime::LOG_DIR);
    for p in &status.pods {
        let failing: Vec<&ContainerStatus> = p.containers.iter().filter(|c| failing(c)).collect();
        if failing.is_empty() {
            continue;
        }
        eprintln!("warning: pod {}/{} is {}", p.namespace, p.name, p.status);
        for c in failing {
            let exited = c.exit_code.map_or("exited".to_string(), |code| {
                format!("exited with code {code}")
            });
            let log = match plan.pod(&p.namespace, &p.name) {
                Some(pod) => crate::runtime::process::log_path(&logs, pod, &c.name)
                    .display()
                    .to_string(),
                None => logs.display().to_string(),
            };
            eprintln!(
                "  container {} {exited}, restarted {} time{}; its output: {log}",
                c.name,
                c.restarts,
                if c.restarts == 1 { "" } else { "s" }
            );
        }
        eprintln!(
            "  hint: `podlab get pods -n {} --lab {}` follows its restarts",
            p.namespace, plan.lab
        );
    }
}

fn print_summary(plan: &Plan, took: Duration) {
    eprintln!("lab {} is up in {:.2}s\n", plan.lab, took.as_secs_f64());
    let mut rows: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .map(|n| {
            vec![
                format!("node/{}", n.name),
                n.ip.to_string(),
                format!("pods {}", n.pod_cidr),
            ]
        })
        .collect();
    rows.extend(plan.pods.iter().map(|p| {
        vec![
            if p.namespace == "default" {
                p.name.clone()
            } else {
                format!("{}/{}", p.namespace, p.name)
            },
            p.ip.to_string(),
            format!("on {}", p.node),
        ]
    }));
    rows.extend(
        plan.clients
            .iter()
            .map(|c| vec![c.name.clone(), c.ip.to_string(), "node network".into()]),
    );
    print!("{}", table::render(&["NAME", "IP", "WHERE"], &rows));
    let lab_flag = if crate::state::labs().len() > 1 {
        format!(" --lab {}", plan.lab)
    } else {
        String::new()
    };
    // A pod that serves TCP, and a client on another node if there is one:
    // the seed's check, made for this lab.
    let user_pods: Vec<&crate::plan::PodPlan> = plan
        .pods
        .iter()
        .filter(|p| p.namespace != "kube-system")
        .collect();
    let server = user_pods.iter().find(|p| {
        p.ports
            .iter()
            .any(|x| x.protocol == crate::lab::Protocol::Tcp)
    });
    println!("\nnext:");
    println!("  podlab get pods -o wide{lab_flag}");
    if let Some(server) = server {
        let client = user_pods
            .iter()
            .filter(|p| p.name != server.name)
            .max_by_key(|p| p.node != server.node);
        let port = server
            .ports
            .iter()
            .find(|x| x.protocol == crate::lab::Protocol::Tcp)
            .map_or(80, |x| x.port);
        let target = if port == 80 {
            server.ip.to_string()
        } else {
            format!("{}:{port}", server.ip)
        };
        if let Some(client) = client {
            println!(
                "  podlab exec{lab_flag} {} -- curl -s {target}",
                pod_ref(client)
            );
        }
        println!("  podlab exec{lab_flag} {} -- ip route", pod_ref(server));
        println!("  podlab exec{lab_flag} node/{} -- ip route", server.node);
    }
    if !plan.services.iter().all(|s| s.namespace == "kube-system") {
        println!("  podlab get svc -A{lab_flag}");
    }
    println!("  podlab down {}", plan.lab);
    let kubeconfig = crate::api::kubeconfig_path(&crate::state::dir_of(&plan.lab));
    if kubeconfig.exists() {
        println!("\nwith kubectl (the lab's own API):");
        println!("  export KUBECONFIG={}", kubeconfig.display());
        println!("  kubectl get pods -o wide");
    }
}

/// How `exec` names a pod: bare in `default`, `-n NS` otherwise.
fn pod_ref(p: &crate::plan::PodPlan) -> String {
    if p.namespace == "default" {
        p.name.clone()
    } else {
        format!("-n {} {}", p.namespace, p.name)
    }
}
