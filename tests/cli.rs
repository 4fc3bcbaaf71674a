//! The command line as a user meets it: a closed stdout, colour on the
//! right stream, kubectl habits, messages that say the truth, generated
//! completions and man pages. The first tests need no root; the last
//! bring up labs named `po-cli-*`.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output, Stdio};

use common::*;

/// A lab whose every object some test below reads: two nodes, a server,
/// a client, a Service, a deny-all and one allow.
fn lab_text(name: &str, matrix: &str) -> String {
    format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec:
  nodes: 2
  expect:
  - name: who reaches whom on 80
    matrix:
      from: [client, web]
      to: [client, pod/web]
      port: 80
      expect: |
{matrix}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: node-1
  containers:
  - {{name: web, image: nginx, ports: [{{containerPort: 80}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: client}}}}
spec:
  nodeName: node-2
  containers:
  - {{name: c, image: busybox, ports: [{{containerPort: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: default-deny}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-client}}
spec:
  podSelector:
    matchLabels: {{app: web}}
  ingress:
  - from:
    - podSelector:
        matchLabels: {{app: client}}
"#
    )
}

/// The truth of `lab_text`'s policies: web is reached only by client,
/// client by nobody (a pod reaching itself stays in its namespace).
const TRUE_MATRIX: &str = "        .  .\n        X  .";

/// Run podlab with stdout a pipe whose reading end is closed before the
/// process starts: its first write fails with EPIPE.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    drop(read);
    podlab()
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("run podlab")
}

/// Ended quietly: no panic message, not Rust's panic status 101; killed
/// by SIGPIPE (as coreutils are) or exited.
fn assert_quiet(args: &[&str], o: &Output) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "podlab {}: {stderr}",
        args.join(" ")
    );
    assert_ne!(
        o.status.code(),
        Some(101),
        "podlab {}: {stderr}",
        args.join(" ")
    );
    assert!(
        o.status.signal() == Some(libc::SIGPIPE) || o.status.code().is_some(),
        "podlab {}: {:?}",
        args.join(" "),
        o.status
    );
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let file = lab_file(&lab_text("po-cli-pipe", TRUE_MATRIX));
    let path = file.path.to_str().expect("utf-8");
    for args in [
        &["validate", path][..],
        &["--help"],
        &["get", "--help"],
        &["completion", "bash"],
        &["man"],
        &["fault", "list"],
        &["fault", "list", "--json"],
        &["ls"],
    ] {
        let o = with_closed_stdout(args);
        assert_quiet(args, &o);
    }
}

/// Run podlab with stdout and stderr each a pipe or a terminal, and
/// return what reached stdout.
fn stdout_of(args: &[&str], stdout_tty: bool, stderr_tty: bool, env: &[(&str, &str)]) -> String {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut c = Command::new(env!("CARGO_BIN_EXE_podlab"));
    c.args(args).env_remove("NO_COLOR").env("TERM", "xterm");
    for (k, v) in env {
        c.env(k, v);
    }
    let reader = if stdout_tty {
        c.stdout(Stdio::from(pty.slave.try_clone().expect("dup")));
        None
    } else {
        c.stdout(Stdio::piped());
        Some(())
    };
    if stderr_tty {
        c.stderr(Stdio::from(pty.slave.try_clone().expect("dup")));
    } else {
        c.stderr(Stdio::null());
    }
    let child = c.spawn().expect("spawn");
    // Every copy of the terminal's slave side must close for the reads
    // below to end: the command's own copies go with it.
    drop(c);
    drop(pty.slave);
    let out = child.wait_with_output().expect("wait");
    if reader.is_some() {
        return String::from_utf8_lossy(&out.stdout).into_owned();
    }
    // The terminal's side: read what was written until the slave closed.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(&pty.master, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn colour_follows_the_stream_it_is_printed_on() {
    let list = ["fault", "list"];
    // Positive control: a terminal on stdout gets the section titles bold.
    assert!(stdout_of(&list, true, false, &[]).contains('\x1b'));
    // A file on stdout gets none, even with a terminal on stderr.
    let to_file = stdout_of(&list, false, true, &[]);
    assert!(!to_file.contains('\x1b'), "{to_file:?}");
    assert!(to_file.contains("Pods can't communicate"), "{to_file}");
    // A dumb terminal, or NO_COLOR, gets none either.
    assert!(!stdout_of(&list, true, true, &[("TERM", "dumb")]).contains('\x1b'));
    assert!(!stdout_of(&list, true, true, &[("NO_COLOR", "1")]).contains('\x1b'));
}

#[test]
fn kubectl_habits_are_answered_with_what_podlab_offers() {
    for (args, says) in [
        (&["get", "pods", "-w"][..], "watch -n1 podlab get pods"),
        (&["get", "events"], "podlab kubectl get events"),
        (&["get", "deploy"], "podlab get pods -o wide"),
        (&["get", "pods", "-o", "jsonpath={.items}"], "-o json | jq"),
        (&["get", "pods", "-l", "app=web"], "select(.metadata.labels"),
        (&["describe", "pod", "web"], "-o yaml"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("similar value") && !err.contains("'-- "),
            "{err}"
        );
    }
    // Other mistakes keep clap's own message.
    let o = run(&["get", "podz"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid value"));
}

#[test]
fn completion_and_man_page_name_every_command() {
    let help = stdout(&run(&["--help"]));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 10, "{help}");
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completion", shell]);
        assert!(o.status.success(), "{}", text(&o));
        let script = stdout(&o);
        for c in &commands {
            assert!(script.contains(c), "{shell} completion lacks {c}");
        }
        assert!(!script.contains("__daemon"), "{shell} offers the daemon");
    }
    let o = run(&["man"]);
    assert!(o.status.success(), "{}", text(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH"), "{page}");
    for c in &commands {
        assert!(page.contains(c), "man page lacks {c}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(&["man", "--dir", dir.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    for c in &commands {
        assert!(
            dir.path().join(format!("podlab-{c}.1")).exists(),
            "no podlab-{c}.1"
        );
    }
    let o = run(&["ls", "-o", "wide"]);
    assert_eq!(o.status.code(), Some(2), "ls -o wide: {}", text(&o));
}

/// podlab as the `nobody` user, for what a non-root user sees.
fn as_nobody(args: &[&str]) -> Output {
    podlab()
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run podlab as nobody")
}

#[test]
fn a_running_lab_as_its_user_sees_it() {
    if !root_or_skip("a_running_lab_as_its_user_sees_it") {
        return;
    }
    let lab = "po-cli-a";
    let file = lab_file(&lab_text(lab, TRUE_MATRIX));
    let up = Up::new(lab, &file);

    // A closed pipe after a lab's data.
    for args in [
        &["get", "pods", "-o", "yaml", "--lab", lab][..],
        &["get", "netpol", "-A", "--lab", lab],
        &["ls"],
    ] {
        assert_quiet(args, &with_closed_stdout(args));
    }

    // As a user, the lab is not "Orphaned": its state is root's.
    let o = as_nobody(&["ls"]);
    let all = text(&o);
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with(lab))
        .map(String::from)
        .unwrap_or_else(|| panic!("{all}"));
    assert!(!line.contains("Orphaned"), "{all}");
    assert!(line.contains("root"), "{all}");
    assert!(all.contains("sudo podlab ls"), "{all}");

    // A bare node name runs on the node.
    let o = up.exec("node-1", &["cat", "/proc/sys/kernel/hostname"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("node-1"), "{}", text(&o));

    // Drops are the isolated pods', allows the policy's: client reaches
    // web (allowed), web's connection to client is dropped.
    let (web_ip, client_ip) = (up.pod_ip("web"), up.pod_ip("client"));
    let o = up.exec(
        "client",
        &["curl", "-s", "-m", "2", "-o", "/dev/null", &web_ip],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = up.exec(
        "web",
        &["curl", "-s", "-m", "1", "-o", "/dev/null", &client_ip],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let o = run(&["get", "netpol", "--lab", lab]);
    assert!(o.status.success(), "{}", text(&o));
    let table = stdout(&o);
    let header = table.lines().next().unwrap_or_default();
    assert!(!header.contains("DROPPED"), "{table}");
    let row = |first: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no {first}: {table}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    // NAME POD-SELECTOR PODS ALLOWED AGE
    assert_ne!(
        row("allow-client")[3],
        "0",
        "client's curl was allowed: {table}"
    );
    assert_eq!(
        row("default-deny")[3],
        "0",
        "a deny allows nothing: {table}"
    );
    // ISOLATED POD, DIRECTION, BY, DROPPED
    let client = row("client");
    assert_eq!(client[1..3], ["ingress", "default-deny"], "{table}");
    assert_ne!(client[3], "0", "web's curl to client was dropped: {table}");

    // `test` of another file while the lab runs: a warning, then the
    // running lab is tested; a failing matrix explains its symbols.
    // (Assertions are read from the file given; only the lab's objects
    // count as a difference: here, one more pod.)
    let other = lab_file(&format!(
        "{}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: extra}}\nspec:\n  containers:\n  - {{name: c, image: busybox}}\n",
        lab_text(lab, "        .  .\n        .  .")
    ));
    let o = run(&["test", other.path.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is up from a different file") && err.contains("podlab apply"),
        "{}",
        text(&o)
    );
    let out = stdout(&o);
    assert!(out.contains("legend: . connected"), "{out}");
    assert!(out.contains("X blocked"), "{out}");
    // The same file: no warning.
    let o = run(&["test", file.path.to_str().expect("utf-8")]);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{}",
        text(&o)
    );
    // `apply` into a closed pipe (stdout and stderr) still saves the
    // file it applied: a later `delete` edits from it, and keeps `extra`.
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let status = podlab()
        .args(["apply", other.path.to_str().expect("utf-8")])
        .stdout(Stdio::from(write.try_clone().expect("dup")))
        .stderr(Stdio::from(write))
        .status()
        .expect("run podlab");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
    let o = run(&["apply", other.path.to_str().expect("utf-8")]);
    assert!(stdout(&o).contains("unchanged"), "{}", text(&o));

    // Messages said once, naming commands that work.
    let o = run(&["delete", "svc", "nope", "--lab", lab]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("`podlab get svc -A`"),
        "{}",
        text(&o)
    );
    let o = run(&["delete", "svc", "web", "--lab", lab]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o).matches("deleted").count(),
        1,
        "said once: {}",
        text(&o)
    );
    let o = run(&["get", "pods", "extra", "--lab", lab]);
    assert!(
        o.status.success(),
        "the applied file was kept: {}",
        text(&o)
    );

    drop(up);
}

#[test]
fn test_into_a_closed_pipe_still_brings_its_lab_down() {
    if !root_or_skip("test_into_a_closed_pipe_still_brings_its_lab_down") {
        return;
    }
    let lab = "po-cli-t";
    let _ = run(&["down", lab]);
    let file = lab_file(&lab_text(lab, TRUE_MATRIX));
    let args = ["test", file.path.to_str().expect("utf-8")];
    let o = with_closed_stdout(&args);
    assert_quiet(&args, &o);
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{}", text(&o));
    assert_nothing_left(lab);

    // `2>&1 | head -1`: stderr goes to the closed pipe too (a panic would
    // show as status 101, its message lost).
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let status = podlab()
        .args(args)
        .stdout(Stdio::from(write.try_clone().expect("dup")))
        .stderr(Stdio::from(write))
        .status()
        .expect("run podlab");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
    assert_nothing_left(lab);
}

#[test]
fn up_warns_of_a_crashing_pod() {
    if !root_or_skip("up_warns_of_a_crashing_pod") {
        return;
    }
    let lab = "po-cli-crash";
    let file = lab_file(&format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {lab}}}
spec: {{nodes: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: crashy}}
spec:
  containers:
  - {{name: c, image: busybox, command: [sh, -c, "exit 3"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: fine}}
spec:
  containers:
  - {{name: c, image: busybox, command: [sleep, "3600"]}}
"#
    ));
    let _ = run(&["down", lab]);
    let guard = Up { lab: lab.into() };
    let o = run(&["up", file.path.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: pod default/crashy is"), "{err}");
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("default_crashy_c.log"), "{err}");
    assert!(!err.contains("pod default/fine"), "{err}");
    // A lab without policies, asked for all of them.
    let o = run(&["get", "netpol", "-A", "--lab", lab]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "No resources found",
        "{}",
        text(&o)
    );
    drop(guard);
}
