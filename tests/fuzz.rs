//! A bounded fuzz of the lab and exercise readers: deterministic mutations
//! of every file of the curriculum (labs/, labs/exercises/ and the labs the
//! exercises start from): lines deleted, duplicated and swapped, numbers
//! and indentation changed, unicode and control characters inserted,
//! truncation, anchors and aliases (and alias bombs). No root needed.
//!
//! Every mutation is read in-process (`lab::parse`, `plan::build`,
//! `exercise::parse`, `exercise::validate`): no panic, under 1 s, every
//! error with a line and column inside the file, every printed line of the
//! form below. Fewer of them are run through the built binary
//! (`podlab validate`, `podlab exercise validate`): exit 0 or 2, no panic,
//! under 1 s, no raw control character, and every line on stderr is one of
//!
//! ```text
//! [error: |warning: ]FILE:LINE:COLUMN: ...
//!   hint: ...
//! ```
//!
//! where FILE is the file given or a lab file it names. The seed is fixed,
//! so a failure names the case that reproduces it; `PODLAB_FUZZ_SEED=N`
//! explores other cases, `PODLAB_FUZZ_CASES=N` runs more per file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podlab::lab;

/// Under this, each read (in-process or by the binary), as the issue asks.
const LIMIT: Duration = Duration::from_secs(1);

/// xorshift64*: deterministic, and no crate for it.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "7",
    "31",
    "32",
    "33",
    "255",
    "256",
    "65535",
    "65536",
    "99999999999999999999",
    "1e9",
    "0x7fffffff",
    "4294967296",
    "10000",
    "10001",
];

const UNICODE: &[&str] = &[
    "é",
    "ß",
    "\u{200b}",
    "\u{202e}",
    "\u{feff}",
    "😀",
    "\u{7}",
    "\u{1b}[31m",
    "\t",
    "\r",
    "\u{0}",
    "\u{85}",
    "\u{2028}",
    "e\u{301}",
    "Ω",
    "\u{fffd}",
];

/// One mutation, described for the failure message.
fn mutate(rng: &mut Rng, text: &str) -> (String, String) {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len().max(1);
    let i = rng.below(n).min(lines.len().saturating_sub(1));
    let what;
    match rng.below(10) {
        0 => {
            lines.remove(i);
            what = format!("delete line {}", i + 1);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
            what = format!("duplicate line {}", i + 1);
        }
        2 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
            what = format!("swap lines {} and {}", i + 1, j + 1);
        }
        3 => {
            // Every number on a line, or the first one found after it.
            let at = (i..lines.len())
                .find(|&k| lines[k].bytes().any(|b| b.is_ascii_digit()))
                .unwrap_or(i);
            let to = *rng.pick(NUMBERS);
            lines[at] = replace_numbers(&lines[at], to);
            what = format!("numbers of line {} to {to}", at + 1);
        }
        4 => {
            let l = &lines[i];
            lines[i] = match rng.below(3) {
                0 => format!(" {l}"),
                1 => format!("  {l}"),
                _ => l.strip_prefix(' ').unwrap_or(l).to_string(),
            };
            what = format!("indentation of line {}", i + 1);
        }
        5 => {
            let u = *rng.pick(UNICODE);
            let l = &lines[i];
            let at = char_boundary(l, rng.below(l.len() + 1));
            lines[i] = format!("{}{u}{}", &l[..at], &l[at..]);
            what = format!("insert {u:?} in line {}", i + 1);
        }
        6 => {
            let at = char_boundary(text, rng.below(text.len() + 1));
            return (text[..at].to_string(), format!("truncate at byte {at}"));
        }
        7 => {
            // An anchor on one value, an alias of it in another.
            let j = rng.below(lines.len());
            let (Some(a), Some(b)) = (value_at(&lines[i]), value_at(&lines[j])) else {
                return (text.to_string(), "no values: unchanged".into());
            };
            lines[i].insert_str(a, "&fz ");
            let b = if i == j { b + 4 } else { b };
            lines[j].truncate(b);
            lines[j].push_str("*fz");
            what = format!("anchor in line {}, alias in line {}", i + 1, j + 1);
        }
        8 => {
            // A billion laughs appended to a document.
            let mut bomb = String::from("\nfz0: &fz0 [a, a, a, a, a, a, a, a, a, a]");
            for k in 1..9 {
                bomb.push_str(&format!(
                    "\nfz{k}: &fz{k} [{}]",
                    vec![format!("*fz{}", k - 1); 10].join(", ")
                ));
            }
            let at = rng.below(lines.len() + 1);
            lines.insert(at, bomb);
            what = format!("alias bomb at line {}", at + 1);
        }
        _ => {
            let l = lines[i].clone();
            let j = rng.below(lines.len());
            lines[j] = l;
            what = format!("line {} over line {}", i + 1, j + 1);
        }
    }
    (lines.join("\n"), what)
}

fn replace_numbers(line: &str, to: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str(to);
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

fn char_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Where the value of a `key: value` line starts.
fn value_at(line: &str) -> Option<usize> {
    let i = line.find(": ")?;
    (i + 2 < line.len()).then_some(i + 2)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// (file, is an exercise) for every file the fuzz mutates.
fn corpus() -> Vec<(PathBuf, bool)> {
    let r = root();
    let mut v: Vec<(PathBuf, bool)> = Vec::new();
    v.extend(yaml_files(&r.join("labs")).into_iter().map(|p| (p, false)));
    v.extend(
        yaml_files(&r.join("labs/exercises"))
            .into_iter()
            .map(|p| (p, true)),
    );
    v.extend(
        yaml_files(&r.join("labs/exercises/labs"))
            .into_iter()
            .map(|p| (p, false)),
    );
    assert!(v.len() >= 20, "the curriculum is missing: {v:?}");
    v
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    env_number("PODLAB_FUZZ_SEED", 0x5eed)
}

/// Whether `line` is `FILE:LINE:COLUMN: ...` for one of `files`.
fn positioned(line: &str, files: &[String]) -> bool {
    files.iter().any(|f| {
        let Some(rest) = line
            .strip_prefix(f.as_str())
            .and_then(|r| r.strip_prefix(':'))
        else {
            return false;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(l), Some(c), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s != "0";
        number(l) && number(c) && tail.starts_with(' ')
    })
}

/// Every line of what a command printed on stderr, or of an error's text,
/// is positioned or a hint; returns the first that is not.
fn stray_line<'a>(text: &'a str, files: &[String]) -> Option<&'a str> {
    text.lines().find(|line| {
        let l = line
            .strip_prefix("error: ")
            .or_else(|| line.strip_prefix("warning: "))
            .unwrap_or(line);
        !(line.is_empty() || line.starts_with("  hint: ") || positioned(l, files))
    })
}

fn check_diagnostics(e: &lab::LabError, text: &str, source: &str, case: &str) {
    assert!(
        !e.diagnostics.is_empty(),
        "{case}: an error without a diagnostic"
    );
    // YAML breaks lines at CR too, so a lone CR starts a line.
    let lines = text.split('\n').count() + text.replace("\r\n", "\n").matches('\r').count();
    for d in &e.diagnostics {
        assert!(
            d.pos.line >= 1 && d.pos.col >= 1 && d.pos.line <= lines + 1,
            "{case}: position {}:{} outside the file of {lines} lines: {d}",
            d.pos.line,
            d.pos.col
        );
    }
    if let Some(l) = stray_line(&e.to_string(), &[source.to_string()]) {
        panic!("{case}: a line without file:line:column: {l:?}\n{e}");
    }
}

fn timed<T>(case: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < LIMIT, "{case}: took {took:?}");
    out
}

fn cases_per_file(release: u64, debug: u64) -> u64 {
    let default = if cfg!(debug_assertions) {
        debug
    } else {
        release
    };
    env_number("PODLAB_FUZZ_CASES", default)
}

/// The readers themselves, on many mutations: fast, so most cases run here.
#[test]
fn mutated_files_read_in_process() {
    let cases = cases_per_file(400, 60);
    let exercise_labs = root().join("labs/exercises/labs");
    for (k, (path, is_exercise)) in corpus().into_iter().enumerate() {
        let original = std::fs::read_to_string(&path).expect("read");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut rng = Rng::new(seed() ^ (k as u64) << 32);
        for c in 0..cases {
            // One to three mutations on top of each other.
            let mut text = original.clone();
            let mut steps = Vec::new();
            for _ in 0..=rng.below(3) {
                let (t, what) = mutate(&mut rng, &text);
                text = t;
                steps.push(what);
            }
            let case = format!("{name} case {c} ({})", steps.join("; "));
            let source = format!("fz/{name}");
            let outcome = std::panic::catch_unwind(|| {
                timed(&case, || {
                    if is_exercise {
                        read_exercise(&source, &text, &exercise_labs, &case)
                    } else {
                        read_lab(&source, &text, &case)
                    }
                })
            });
            if let Err(p) = outcome {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{msg}\n--- the mutated file ---\n{text}");
            }
        }
    }
}

fn read_lab(source: &str, text: &str, case: &str) {
    match lab::parse(source, text) {
        Ok(file) => {
            if let Err(e) = podlab::plan::build(&file) {
                check_diagnostics(&e, text, source, case);
            }
        }
        Err(e) => check_diagnostics(&e, text, source, case),
    }
}

fn read_exercise(source: &str, text: &str, labs: &Path, case: &str) {
    let ex = match lab::exercise::parse(source, text) {
        Ok(ex) => ex,
        Err(e) => return check_diagnostics(&e, text, source, case),
    };
    // The lab as `exercise validate` reads it: relative to the exercise
    // file, which is in labs/exercises/.
    let Some(lab_path) = Some(labs.parent().unwrap().join(&ex.lab)).filter(|p| p.is_file()) else {
        return;
    };
    let lab_text = std::fs::read_to_string(&lab_path).expect("read lab");
    let lab_source = lab_path.display().to_string();
    let file = lab::parse(&lab_source, &lab_text).expect("the exercise's lab is valid");
    let plan = podlab::plan::build(&file).expect("the exercise's lab plans");
    let mut problems = Vec::new();
    if let Err(e) = lab::exercise::check(&ex, &file) {
        check_diagnostics(&e, text, source, case);
    }
    problems.extend(podlab::exercise::validate(&ex, &file, &plan));
    let files = [source.to_string(), lab_source];
    for p in &problems {
        if let Some(l) = stray_line(p, &files) {
            panic!("{case}: a line without file:line:column: {l:?}\n{p}");
        }
    }
}

/// What a user sees: the binary on mutated files, fewer cases.
#[test]
fn mutated_files_through_the_binary() {
    let cases = cases_per_file(20, 6);
    let bin = env!("CARGO_BIN_EXE_podlab");
    let dir = tempfile::tempdir().expect("tempdir");
    // The exercises name their labs relative to themselves (labs/...).
    let labs = dir.path().join("labs");
    std::fs::create_dir(&labs).unwrap();
    let mut lab_files = Vec::new();
    for p in yaml_files(&root().join("labs/exercises/labs")) {
        let to = labs.join(p.file_name().unwrap());
        std::fs::copy(&p, &to).unwrap();
        lab_files.push(to.display().to_string());
        // `exercise validate` names the lab by its absolute path.
        lab_files.push(std::fs::canonicalize(&to).unwrap().display().to_string());
    }
    for (k, (path, is_exercise)) in corpus().into_iter().enumerate() {
        let original = std::fs::read_to_string(&path).expect("read");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut rng = Rng::new(seed() ^ 0xb1 ^ (k as u64) << 32);
        for c in 0..cases {
            let (text, what) = mutate(&mut rng, &original);
            let case = format!("{name} case {c} ({what})");
            let file = dir.path().join(format!("m-{name}"));
            std::fs::write(&file, &text).unwrap();
            let shown = file.display().to_string();
            let mut files = lab_files.clone();
            files.push(shown.clone());
            let args: Vec<&str> = if is_exercise {
                vec!["exercise", "validate", &shown]
            } else {
                vec!["validate", &shown]
            };
            let run = || {
                let start = Instant::now();
                let out = Command::new(bin)
                    .args(&args)
                    .env("NO_COLOR", "1")
                    .output()
                    .expect("run podlab");
                (out, start.elapsed())
            };
            let (mut out, mut took) = run();
            if took >= LIMIT {
                // Five people share two cores: one slow run is the machine,
                // two in a row are podlab.
                (out, took) = run();
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let report = || {
                format!(
                    "{case}: podlab {}\n{stderr}\n--- the mutated file ---\n{text}",
                    args.join(" ")
                )
            };
            let code = out.status.code();
            assert!(
                matches!(code, Some(0) | Some(2)),
                "exit {code:?}: {}",
                report()
            );
            assert!(!stderr.contains("panicked"), "a panic: {}", report());
            // The file's own text is quoted in errors; a control character
            // from it must not reach the terminal raw.
            assert!(
                !stderr.chars().any(|c| c.is_control() && c != '\n'),
                "a raw control character: {}",
                report()
            );
            assert!(took < LIMIT, "took {took:?}: {}", report());
            if let Some(l) = stray_line(&stderr, &files) {
                panic!("a line without file:line:column: {l:?}\n{}", report());
            }
        }
    }
}

/// The checks above must be able to fail: a message without a position is
/// caught, one with a position passes.
#[test]
fn the_line_check_catches_unpositioned_errors() {
    let files = ["a.yaml".to_string()];
    assert_eq!(
        stray_line("error: a.yaml:3:7: kind: x\n  hint: y", &files),
        None
    );
    assert_eq!(stray_line("warning: a.yaml:1:1: f: w", &files), None);
    assert_eq!(
        stray_line("error: a.yaml: spec: x", &files),
        Some("error: a.yaml: spec: x")
    );
    assert_eq!(
        stray_line("a.yaml:0:1: f: x", &files),
        Some("a.yaml:0:1: f: x")
    );
    assert_eq!(
        stray_line("b.yaml:1:1: f: x", &files),
        Some("b.yaml:1:1: f: x")
    );
    assert_eq!(
        stray_line("a.yaml:1:1: f\u{7}\nstray", &files),
        Some("stray")
    );
    let mut rng = Rng::new(1);
    let (a, _) = mutate(&mut rng, "a: 1\nb: 2\n");
    let mut again = Rng::new(1);
    assert_eq!(a, mutate(&mut again, "a: 1\nb: 2\n").0, "deterministic");
}
