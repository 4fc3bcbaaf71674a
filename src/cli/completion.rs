//! `podlab completion SHELL` and `podlab man [--dir DIR]`: generated from
//! the clap definitions, so that they list exactly the commands and flags
//! that parse.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{exit, CliError, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell, e.g. `podlab completion bash > /etc/bash_completion.d/podlab`.
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write podlab.1 and one podlab-COMMAND.1 per command into this
    /// directory instead of printing podlab.1 on stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The command tree users see: the daemon's entry point is internal.
fn command() -> clap::Command {
    super::Cli::command()
}

pub fn run(args: Args) -> Result<u8> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "podlab", &mut out);
    super::write_bytes(&out)?;
    Ok(exit::OK)
}

pub fn man(args: ManArgs) -> Result<u8> {
    let cmd = command();
    let Some(dir) = args.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| CliError::new(format!("cannot render the man page: {e}")))?;
        super::write_bytes(&out)?;
        return Ok(exit::OK);
    };
    if !dir.is_dir() {
        return Err(
            CliError::new(format!("{} is not a directory", dir.display()))
                .hint("make it first, e.g. `mkdir -p man`"),
        );
    }
    clap_mangen::generate_to(cmd, &dir)
        .map_err(|e| CliError::new(format!("cannot write into {}: {e}", dir.display())))?;
    eprintln!("man pages written to {}", dir.display());
    Ok(exit::OK)
}

/// The subcommands a user can type, for the tests.
#[cfg(test)]
pub fn visible_subcommands() -> Vec<String> {
    command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_script_names_every_subcommand() {
        let names = visible_subcommands();
        assert!(names.len() > 10, "{names:?}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "podlab", &mut out);
            let text = String::from_utf8(out).expect("utf-8");
            for n in &names {
                assert!(text.contains(n.as_str()), "{shell}: no {n}");
            }
            assert!(!text.contains("__daemon"), "{shell} offers the daemon");
        }
    }

    #[test]
    fn man_page_names_every_subcommand() {
        let mut out = Vec::new();
        clap_mangen::Man::new(command())
            .render(&mut out)
            .expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{text}");
        for n in visible_subcommands() {
            assert!(text.contains(&n), "man page lacks {n}");
        }
        assert!(!text.contains("__daemon"));
    }

    #[test]
    fn man_dir_gets_one_page_per_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        clap_mangen::generate_to(command(), dir.path()).expect("writes");
        assert!(dir.path().join("podlab.1").exists());
        assert!(dir.path().join("podlab-get.1").exists());
        assert!(!dir.path().join("podlab-__daemon.1").exists());
    }
}
