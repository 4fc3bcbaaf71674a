//! podlab: a Kubernetes-shaped network on one Linux host, from a YAML lab.
//!
//! `lab` (the file) → `plan` (pure) → `kernel` (the only code that touches
//! the kernel); `runtime` is the per-lab daemon; `observe` reads the kernel
//! back; `cli` is one file per command.

pub mod api;
pub mod capture;
pub mod cli;
pub mod exercise;
pub mod faults;
pub mod graph;
pub mod kernel;
pub mod lab;
pub mod lifecycle;
pub mod lock;
pub mod observe;
pub mod ops;
pub mod plan;
pub mod probe;
pub mod reconcile;
pub mod runtime;
pub mod state;
pub mod target;
pub mod ui;

/// An error with its causes, as one line: `a: b: c` (a cause already in
/// the message is not repeated). What every command prints.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
