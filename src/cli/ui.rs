//! `podlab ui [LAB] [--port P]`: a page on 127.0.0.1 with the live picture
//! of a lab, details on a click, traces, captures and the running
//! exercise (`ui`).

use super::{pick_lab, require_root, CliError, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab (default: --lab, PODLAB_LAB, else the only one up).
    #[arg(value_name = "LAB")]
    name: Option<String>,
    #[arg(long, conflicts_with = "name")]
    lab: Option<String>,
    /// The port on 127.0.0.1 (default: any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

pub fn run(args: Args) -> Result<u8> {
    require_root("ui")?;
    let lab = pick_lab(args.name.as_deref().or(args.lab.as_deref()))?;
    let shown = lab.to_string();
    crate::ui::serve(lab, args.port, |url| {
        // The URL on stdout alone, for a script to read; the rest on stderr.
        println!("{url}");
        eprintln!("podlab: lab {shown} on {url} (only this URL opens it); Ctrl-C stops");
    })
    .map_err(|e| {
        CliError::new(format!("podlab ui: {e}")).hint(if args.port == 0 {
            "is the loopback interface up?".to_string()
        } else {
            format!(
                "is port {} taken? leave --port out for any free one",
                args.port
            )
        })
    })?;
    Ok(super::exit::OK)
}
