//! podlab: a Kubernetes-shaped network on one Linux host, from a YAML lab.
//!
//! `lab` (the file) → `plan` (pure) → `kernel` (the only code that touches
//! the kernel); `runtime` is the per-lab daemon; `observe` reads the kernel
//! back; `cli` is one file per command.

pub mod cli;
pub mod exercise;
pub mod faults;
pub mod kernel;
pub mod lab;
pub mod lifecycle;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod reconcile;
pub mod runtime;
pub mod state;
