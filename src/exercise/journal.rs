//! The journal of one exercise run: JSON lines, one per podlab command run
//! against the lab while the exercise runs, appended and never rewritten.
//! Each line carries the SHA-256 of the line before it (`prev`), so that
//! editing or deleting a line breaks the chain where it happened; the
//! newest line's hash is also kept in the lab's state (`journal.head`), so
//! that cutting lines off the end shows while the run is going.
//!
//! The file lives in a results directory outside the lab's state (it
//! survives `reset` and `down`): what `exercise report` reads.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::sha256;

/// Where journals go when `exercise start` is given no `--results`.
pub const DEFAULT_RESULTS: &str = "/var/lib/podlab/results";
/// The `prev` of a journal's first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Kept in the lab's state directory: `SEQ HASH` of the newest line.
pub const HEAD_FILE: &str = "journal.head";

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// 0 for the first line, one more each line.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The same instant, UTC, for a reader.
    pub time: String,
    pub run: String,
    pub lab: String,
    pub exercise: String,
    /// What happened: `start`, `check`, `hint`, `solution`, `status`,
    /// `reset`, or the podlab command run against the lab (`apply`,
    /// `fault clear`, `diagnose`, `trace`, `dns`, `exec`, `down`...).
    pub event: String,
    /// For a tool: `allowed` or `refused` by the exercise's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The command line, as typed after `podlab`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// What the event carries (a check's result, the hint's number...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// SHA-256 of the previous line as written (without its newline).
    pub prev: String,
}

/// Who a run is, for every line of its journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunId {
    pub run: String,
    pub lab: String,
    pub exercise: String,
    pub journal: PathBuf,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `2026-12-02T07:45:00.123Z`.
pub fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (H. Hinnant's algorithm), for 1970 onwards.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// A journal's file name: sortable by start, and saying whose it is.
pub fn file_name(started_ms: u64, lab: &str, exercise: &str) -> String {
    let t: String = iso(started_ms)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect();
    format!("{t}Z-{lab}-{exercise}.jsonl")
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

/// The last line of `text` (without its newline), if any.
fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().find(|l| !l.trim().is_empty())
}

/// Append one event to the run's journal, chained to the line before it.
/// `head` is the lab's `journal.head` (absent once the lab is down): a
/// newest line that is not the one it names is itself journaled, as
/// `journal-edited`, before the event.
pub fn append(
    id: &RunId,
    head: Option<&Path>,
    event: &str,
    verdict: Option<&str>,
    args: &[String],
    detail: serde_json::Value,
) -> Result<Entry, String> {
    let path = &id.journal;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| io_err("open", path, e))?;
    // Two commands of one learner at once: one appends after the other.
    let _locked = Flock::exclusive(&f).map_err(|e| io_err("lock", path, e))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| io_err("read", path, e))?;
    let mut seq = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let mut prev =
        last_line(&text).map_or_else(|| GENESIS.to_string(), |l| sha256::hex(l.as_bytes()));
    let mut lines = Vec::new();
    if let Some(h) = head.and_then(|h| std::fs::read_to_string(h).ok()) {
        let expected = h.split_whitespace().nth(1).unwrap_or_default().to_string();
        if !expected.is_empty() && expected != prev {
            let e = entry(
                id,
                seq,
                "journal-edited",
                None,
                &[],
                serde_json::json!({
                    "expectedHead": expected,
                    "foundHead": prev,
                    "linesFound": seq,
                }),
                &prev,
            );
            let line = serde_json::to_string(&e).map_err(|e| e.to_string())?;
            prev = sha256::hex(line.as_bytes());
            seq += 1;
            lines.push(line);
        }
    }
    let e = entry(id, seq, event, verdict, args, detail, &prev);
    let line = serde_json::to_string(&e).map_err(|e| e.to_string())?;
    let new_head = format!("{seq} {}\n", sha256::hex(line.as_bytes()));
    lines.push(line);
    let mut out = lines.join("\n");
    out.push('\n');
    f.write_all(out.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| io_err("append to", path, e))?;
    if let Some(h) = head {
        if h.parent().is_some_and(Path::exists) {
            crate::state::write_atomic(h, new_head.as_bytes())
                .map_err(|e| io_err("write", h, e))?;
        }
    }
    Ok(e)
}

fn entry(
    id: &RunId,
    seq: u64,
    event: &str,
    verdict: Option<&str>,
    args: &[String],
    detail: serde_json::Value,
    prev: &str,
) -> Entry {
    let at_ms = now_ms();
    Entry {
        seq,
        at_ms,
        time: iso(at_ms),
        run: id.run.clone(),
        lab: id.lab.clone(),
        exercise: id.exercise.clone(),
        event: event.into(),
        verdict: verdict.map(String::from),
        args: args.to_vec(),
        detail,
        prev: prev.into(),
    }
}

/// A journal read back: its entries and whether the chain holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub entries: Vec<Entry>,
    /// The first break, with its line number (from 1): an edited,
    /// removed or inserted line, or one that is not an entry.
    pub broken: Option<String>,
}

/// Check a journal's text: every line an entry, numbered in order, each
/// `prev` the hash of the line before.
pub fn verify(text: &str) -> Chain {
    let mut entries = Vec::new();
    let mut broken = None;
    let mut prev = GENESIS.to_string();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let n = i + 1;
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => {
                if broken.is_none() {
                    if e.prev != prev {
                        broken = Some(format!(
                            "line {n}: its `prev` is not the hash of line {} (a line was edited, removed or inserted)",
                            n - 1
                        ));
                    } else if e.seq != i as u64 {
                        broken = Some(format!("line {n}: seq {} where {i} was due", e.seq));
                    }
                }
                entries.push(e);
            }
            Err(err) => {
                if broken.is_none() {
                    broken = Some(format!("line {n} is not a journal entry: {err}"));
                }
            }
        }
        prev = sha256::hex(line.as_bytes());
    }
    if broken.is_none() {
        if let Some(e) = entries.iter().find(|e| e.event == "journal-edited") {
            broken = Some(format!(
                "line {}: the journal's end was not the line podlab last wrote (lines were cut off or replaced)",
                e.seq + 1
            ));
        }
    }
    Chain { entries, broken }
}

/// Read and check a journal file.
pub fn read(path: &Path) -> Result<Chain, String> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
    Ok(verify(&text))
}

/// An exclusive `flock` held until dropped (or the file is closed).
struct Flock(std::os::fd::RawFd);

impl Flock {
    fn exclusive(f: &File) -> std::io::Result<Flock> {
        // SAFETY: flock on a descriptor this process owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            Ok(Flock(f.as_raw_fd()))
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

impl Drop for Flock {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking what `exclusive` locked (the file
        // outlives the lock: it is declared first).
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
