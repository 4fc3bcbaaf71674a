//! Every podlab command that podlab suggests (in a hint, an error, the
//! `next:` lines of `up`, the answers to kubectl habits) must parse: a
//! suggestion that fails is worse than none.

use std::path::{Path, PathBuf};

use clap::Parser;

use super::Cli;

/// Sample words for the placeholders suggestions use.
const SAMPLES: &[(&str, &str)] = &[
    ("{lab_flag}", " --lab po-a"),
    ("{listing}", "svc"),
    ("${lab}", "po-a"),
    ("{lab}", "po-a"),
    ("{lab_name}", "po-a"),
    ("{}", "sample"),
];

const WORDS: &[(&str, &str)] = &[
    ("NAME", "web"),
    ("LAB", "po-a"),
    ("FILE", "lab.yaml"),
    ("LABFILE", "lab.yaml"),
    ("POD", "web"),
    ("TARGET", "web"),
    ("NODE", "node-1"),
    ("NS", "default"),
    ("N", "2"),
];

fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .flat_map(|c| {
            std::iter::once(c.get_name().to_string()).chain(c.get_all_aliases().map(String::from))
        })
        .collect()
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The podlab commands a line of source offers the user: inside string
/// literals (comments are documentation, not output), each backticked
/// span's `podlab ...`, and a literal that is itself a command line
/// (`up`'s `next:` list).
fn suggestions(line: &str) -> Vec<String> {
    let code = line.trim_start();
    if code.starts_with("//") || !code.contains('"') {
        return Vec::new();
    }
    let mut out = backticked(line);
    // A literal that is a command line: `up`'s indented `next:` list and
    // a fault's `shows`. Other literals that start with "podlab" are prose
    // ("podlab is single-stack IPv4"); their second word must be a
    // command, so that a misspelt one still fails.
    let listed = code.starts_with("shows:");
    let commands = subcommands();
    for literal in line.split('"').skip(1).step_by(2) {
        let t = literal.trim_start();
        let indented = literal.starts_with("  ");
        if let Some(rest) = t
            .strip_prefix("podlab ")
            .filter(|_| !literal.contains('`') && (listed || indented))
        {
            let first = rest.split_whitespace().next().unwrap_or_default();
            if commands.iter().any(|c| c == first) {
                out.push(format!("podlab {rest}"));
            }
        }
    }
    out
}

/// Each backticked span's `podlab ...`.
fn backticked(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| span.find("podlab ").map(|at| span[at..].to_string()))
        .collect()
}

/// The argv of one suggestion (`None`: not a command line, e.g. prose
/// after `podlab ` in a sentence).
fn argv(cmd: &str) -> Vec<Vec<String>> {
    let mut text = cmd.to_string();
    for (from, to) in SAMPLES {
        text = text.replace(from, to);
    }
    let mut out = Vec::new();
    for piece in text.split(['|', ';']).flat_map(|p| p.split("&&")) {
        // A shell redirection ends the command's own words.
        let piece = piece.split(['>', '<']).next().unwrap_or_default();
        let words: Vec<&str> = piece.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "podlab") else {
            continue;
        };
        let mut argv: Vec<String> = words[at..]
            .iter()
            .map(|w| {
                let bare = w.trim_end_matches([',', ':', '.', ')']);
                WORDS
                    .iter()
                    .find(|(p, _)| *p == bare)
                    .map_or(w.to_string(), |(_, s)| s.to_string())
            })
            .collect();
        // Replace any other `{expr}` with a word.
        for w in &mut argv {
            if w.contains('{') && w.contains('}') && !w.starts_with("-o") {
                *w = "sample".into();
            }
        }
        out.push(argv);
    }
    out
}

/// Whether `argv` parses; a bare command path (`podlab fault list`) or
/// one ending in `...` is checked up to there, with `--help`.
fn parses(argv: &[String]) -> Result<(), String> {
    let (words, partial) = match argv.iter().position(|w| w == "..." || w.ends_with("...")) {
        Some(i) => (&argv[..i], true),
        None => (argv, false),
    };
    match Cli::try_parse_from(words) {
        Ok(_) => Ok(()),
        Err(e) if partial || is_command_path(e.kind()) => {
            let mut with_help = words.to_vec();
            with_help.push("--help".into());
            match Cli::try_parse_from(&with_help) {
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => Ok(()),
                Err(e) => Err(e.to_string()),
                Ok(_) => Ok(()),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A reference to a command by name (`podlab exec`, `podlab exercise`):
/// what is missing is the arguments, not a wrong word.
fn is_command_path(kind: clap::error::ErrorKind) -> bool {
    use clap::error::ErrorKind::*;
    matches!(
        kind,
        MissingRequiredArgument | DisplayHelpOnMissingArgumentOrSubcommand | MissingSubcommand
    )
}

#[test]
fn every_suggested_command_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in &files {
        if f.ends_with("hints_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in text.lines().enumerate() {
            for cmd in suggestions(line) {
                for argv in argv(&cmd) {
                    // A bare command path with no argument must still
                    // name a real command: check it too.
                    checked += 1;
                    if let Err(e) = parses(&argv) {
                        let first = e.lines().next().unwrap_or_default().to_string();
                        failures.push(format!(
                            "{}:{}: `{}`: {first}",
                            f.strip_prefix(&root).unwrap_or(f).display(),
                            n + 1,
                            argv.join(" ")
                        ));
                    }
                }
            }
        }
    }
    // The exercises' hints and solutions are printed by `podlab exercise`.
    let exercises = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/exercises");
    let mut yamls: Vec<PathBuf> = std::fs::read_dir(&exercises)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    yamls.retain(|p| p.extension().is_some_and(|x| x == "yaml"));
    yamls.sort();
    for f in &yamls {
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in text.lines().enumerate() {
            // Comments document the file; only values are printed.
            if line.trim_start().starts_with('#') {
                continue;
            }
            for cmd in backticked(line) {
                for argv in argv(&cmd) {
                    checked += 1;
                    if let Err(e) = parses(&argv) {
                        let first = e.lines().next().unwrap_or_default().to_string();
                        failures.push(format!(
                            "labs/exercises/{}:{}: `{}`: {first}",
                            f.file_name().unwrap_or_default().to_string_lossy(),
                            n + 1,
                            argv.join(" ")
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} suggestions found");
    assert!(
        failures.is_empty(),
        "{} of {checked} suggested commands do not parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_checker_rejects_what_does_not_parse() {
    let bad = suggestions(r#"e.hint("`podlab get networkpolicys -A` lists them")"#);
    assert_eq!(bad.len(), 1);
    assert!(parses(&argv(&bad[0])[0]).is_err());
    let good = suggestions(r#"hint("`sudo podlab down {lab}` removes it; `podlab fault list`")"#);
    assert_eq!(good.len(), 2);
    for g in &good {
        assert!(parses(&argv(g)[0]).is_ok(), "{g}");
    }
    assert!(suggestions("/// `podlab get bogus` in a doc comment").is_empty());
}

#[test]
fn errors_show_control_characters_as_escapes() {
    use super::visible;
    assert_eq!(
        visible("lab `a\u{1b}[2Jb` not found"),
        "lab `a\\u{1b}[2Jb` not found"
    );
    assert_eq!(visible("two\nlines\tand a tab"), "two\nlines\tand a tab");
    assert_eq!(visible("bell\u{7}"), "bell\\u{7}");
    assert!(matches!(visible("plain"), std::borrow::Cow::Borrowed(_)));
}
