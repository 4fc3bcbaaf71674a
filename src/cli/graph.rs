//! `podlab graph [--lab LAB] [-o ascii|svg|dot|mermaid] [--all]`: a picture
//! of the running lab, as the kernel has it now (`graph`).

use std::time::Duration;

use clap::ValueEnum;

use super::{load_plan, pick_lab, require_root, write_bytes, Result};
use crate::{graph, runtime, state};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for a terminal.
    Ascii,
    /// A picture drawn by podlab (open it in a browser).
    Svg,
    /// Graphviz (`| dot -Tpng > lab.png`).
    Dot,
    /// A Mermaid flowchart, for Markdown.
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab (default: PODLAB_LAB, else the only one up).
    #[arg(long)]
    lab: Option<String>,
    /// What to draw.
    #[arg(short, long, value_enum, default_value = "ascii")]
    output: Format,
    /// Every pod, also on a crowded node (ascii and svg collapse a node of
    /// more than 12 pods to its first ones and a count; dot and mermaid
    /// always list every pod).
    #[arg(long)]
    all: bool,
}

pub fn run(args: Args) -> Result<u8> {
    require_root("graph")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let status = runtime::query_status(&state::dir(&lab), Duration::from_secs(2)).ok();
    if status.is_none() {
        eprintln!("warning: the daemon of lab {lab} does not answer: pod states are not shown");
    }
    let seen = graph::observe(&plan, status.as_ref());
    let g = graph::build(&plan, &seen);
    let text = match args.output {
        Format::Ascii => graph::ascii(&g, args.all),
        Format::Svg => graph::svg(&g, args.all),
        Format::Dot => graph::dot(&g),
        Format::Mermaid => graph::mermaid(&g),
    };
    write_bytes(text.as_bytes())?;
    Ok(super::exit::OK)
}
