//! The chain: an intact journal reads back whole; each way of changing
//! one (an edit, a deletion, an insertion, a cut end) is named.

use super::*;

fn run_in(dir: &Path) -> RunId {
    RunId {
        run: "r1".into(),
        lab: "gr-x".into(),
        exercise: "ex".into(),
        journal: dir.join("r1.jsonl"),
    }
}

fn three(dir: &Path) -> (RunId, PathBuf) {
    let id = run_in(dir);
    let head = dir.join(HEAD_FILE);
    for (event, detail) in [
        ("start", serde_json::json!({"seed": 1})),
        ("check", serde_json::json!({"passed": 1, "failed": 2})),
        ("hint", serde_json::json!({"number": 1})),
    ] {
        append(&id, Some(&head), event, None, &[], detail).expect("append");
    }
    (id, head)
}

#[test]
fn an_intact_journal_reads_back_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = three(dir.path());
    let r = read(&id.journal).expect("read");
    assert_eq!(r.broken, None);
    let events: Vec<&str> = r.entries.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["start", "check", "hint"]);
    assert_eq!(r.entries[0].prev, GENESIS);
    assert!(r.entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
}

fn changed(text: &str, f: impl Fn(Vec<String>) -> Vec<String>) -> String {
    let lines: Vec<String> = text.lines().map(String::from).collect();
    f(lines).join("\n") + "\n"
}

#[test]
fn an_edited_deleted_or_inserted_line_breaks_the_chain_where_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = three(dir.path());
    let text = std::fs::read_to_string(&id.journal).expect("journal");
    let edited = changed(&text, |mut l| {
        l[1] = l[1].replace("\"failed\":2", "\"failed\":0");
        l
    });
    let b = verify(&edited).broken.expect("edit shows");
    assert!(b.starts_with("line 3:"), "{b}");
    let deleted = changed(&text, |mut l| {
        l.remove(1);
        l
    });
    assert!(verify(&deleted)
        .broken
        .expect("deletion shows")
        .starts_with("line 2:"));
    let inserted = changed(&text, |mut l| {
        let copy = l[0].clone();
        l.insert(1, copy);
        l
    });
    assert!(verify(&inserted).broken.is_some());
    let garbage = changed(&text, |mut l| {
        l.push("not json".into());
        l
    });
    assert!(verify(&garbage)
        .broken
        .expect("garbage")
        .contains("line 4 is not"));
}

#[test]
fn a_cut_end_is_journaled_at_the_next_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, head) = three(dir.path());
    let text = std::fs::read_to_string(&id.journal).expect("journal");
    // The last line removed: the chain of what is left holds...
    let cut = changed(&text, |mut l| {
        l.pop();
        l
    });
    std::fs::write(&id.journal, &cut).expect("write");
    assert_eq!(verify(&cut).broken, None);
    // ...but the head podlab kept names the removed line.
    append(
        &id,
        Some(&head),
        "check",
        None,
        &[],
        serde_json::Value::Null,
    )
    .expect("append");
    let r = read(&id.journal).expect("read");
    let events: Vec<&str> = r.entries.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["start", "check", "journal-edited", "check"]);
    assert!(r.broken.expect("cut shows").contains("cut off"));
}

#[test]
fn times_are_utc_and_file_names_sort_by_start() {
    assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso(1_796_197_500_123), "2026-12-02T07:45:00.123Z");
    assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(
        file_name(1_796_197_500_123, "gr-1", "ex"),
        "20261202T074500Z-gr-1-ex.jsonl"
    );
}
