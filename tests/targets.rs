//! One grammar for targets, as a user meets it: the same misspelt word
//! gets the same error, word for word, from `exec`, `trace`, `diagnose`
//! and `dns`. No root and no lab: the word is read before anything else.

mod common;

use common::*;

/// A lab name nobody uses: the error must come before any lab is looked for.
const LAB: &str = "tg-no-such-lab";

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let o = run(args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_bad_source_is_the_same_error_from_every_command() {
    for word in [
        "Pod-1",
        "pod-1:80",
        "svc/web",
        "a/b/c",
        "node/a/b",
        "pod/",
        "10.0.0.1",
        "web.default",
        "team_a/web",
        "pod 1",
    ] {
        let errors = [
            stderr_of(&["exec", word, "--lab", LAB, "--", "true"]),
            stderr_of(&["trace", word, "pod-2", "--lab", LAB]),
            stderr_of(&["diagnose", word, "pod-2", "--lab", LAB]),
            stderr_of(&["dns", "web", "--from", word, "--lab", LAB]),
        ];
        let (code, first) = &errors[0];
        assert_eq!(*code, Some(2), "{word}: {first}");
        assert!(
            first.contains(&format!("`{word}` is not a source: ")),
            "{word}: {first}"
        );
        assert!(
            first.contains("a source is POD, NS/POD, pod/NAME"),
            "{word}: {first}"
        );
        for (i, e) in errors.iter().enumerate() {
            assert_eq!(e, &errors[0], "{word}: command {i} differs");
        }
    }
}

#[test]
fn a_bad_destination_is_the_same_error_from_trace_and_diagnose() {
    for word in [
        "web:",
        "web:http",
        "web:0",
        "::1",
        "Web",
        "svc//web",
        "a/b/c",
        "10.0.0.256",
        "web..default",
    ] {
        let trace = stderr_of(&["trace", "pod-1", word, "--lab", LAB]);
        let diagnose = stderr_of(&["diagnose", "pod-1", word, "--lab", LAB]);
        assert_eq!(trace.0, Some(2), "{word}: {}", trace.1);
        assert!(
            trace
                .1
                .contains(&format!("`{word}` is not a destination: ")),
            "{word}: {}",
            trace.1
        );
        assert!(trace.1.contains("a destination is POD"), "{}", trace.1);
        assert_eq!(trace, diagnose, "{word}");
    }
}

#[test]
fn a_good_word_gets_past_the_grammar() {
    // The lab is looked for only once the words are read: a good word's
    // error is about the lab, not the word.
    for args in [
        vec!["exec", "pod/pod", "--lab", LAB, "--", "true"],
        vec![
            "trace",
            "node/node-1",
            "svc/kube-system/kube-dns:53",
            "--lab",
            LAB,
        ],
        vec!["diagnose", "team-a/client", "web.team-a:80", "--lab", LAB],
        vec!["dns", "web", "--from", "team-a/client", "--lab", LAB],
    ] {
        let (_, e) = stderr_of(&args);
        assert!(!e.contains("is not a source"), "{args:?}: {e}");
        assert!(!e.contains("is not a destination"), "{args:?}: {e}");
        assert!(e.contains(LAB), "{args:?}: {e}");
    }
}
