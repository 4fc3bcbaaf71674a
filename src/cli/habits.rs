//! kubectl habits that podlab does not parse, answered with what podlab
//! offers instead of clap's generic tips (`use '-- -w'`, `similar value:
//! endpoints`). Looked up only after clap has rejected the command line,
//! so a valid command never reaches this table.

/// What a habit gets: an error line and a hint that is a command.
pub struct Answer {
    pub message: &'static str,
    pub hint: &'static str,
}

/// One habit: the subcommand it is typed with and the words that give it
/// away (`-o=jsonpath` and `-ojsonpath` are split into `-o jsonpath`
/// before matching; a trailing `*` matches a prefix, so `jsonpath*`
/// matches `jsonpath={.items}`).
struct Habit {
    command: &'static str,
    words: &'static [&'static str],
    answer: Answer,
}

const KINDS: &str = "podlab get shows nodes, pods, services (svc), endpoints (ep) and netpol";

const HABITS: &[Habit] = &[
    Habit {
        command: "get",
        words: &["-w"],
        answer: Answer {
            message: "podlab get has no watch (-w)",
            hint: "repeat it instead: `watch -n1 podlab get pods`, or let the real kubectl watch: `podlab kubectl get pods -w`",
        },
    },
    Habit {
        command: "get",
        words: &["--watch*"],
        answer: Answer {
            message: "podlab get has no watch (--watch)",
            hint: "repeat it instead: `watch -n1 podlab get pods`, or let the real kubectl watch: `podlab kubectl get pods -w`",
        },
    },
    Habit {
        command: "get",
        words: &["events"],
        answer: Answer {
            message: "podlab get keeps no events",
            hint: "the lab's API has them: `podlab kubectl get events`; restarts show in `podlab get pods`, a pod's output in `podlab logs POD`",
        },
    },
    Habit {
        command: "get",
        words: &["ev"],
        answer: Answer {
            message: "podlab get keeps no events",
            hint: "the lab's API has them: `podlab kubectl get events`; restarts show in `podlab get pods`, a pod's output in `podlab logs POD`",
        },
    },
    Habit {
        command: "get",
        words: &["deploy*"],
        answer: Answer {
            message: "podlab get does not show deployments",
            hint: "their pods are in `podlab get pods -o wide`; `podlab scale` sets replicas",
        },
    },
    Habit {
        command: "get",
        words: &["rs"],
        answer: Answer {
            message: "podlab get does not show replicasets",
            hint: "a deployment's pods are in `podlab get pods -o wide`",
        },
    },
    Habit {
        command: "get",
        words: &["replicaset*"],
        answer: Answer {
            message: "podlab get does not show replicasets",
            hint: "a deployment's pods are in `podlab get pods -o wide`",
        },
    },
    Habit {
        command: "get",
        words: &["ns"],
        answer: Answer {
            message: "podlab get does not list namespaces",
            hint: "every namespace's pods: `podlab get pods -A`",
        },
    },
    Habit {
        command: "get",
        words: &["namespace*"],
        answer: Answer {
            message: "podlab get does not list namespaces",
            hint: "every namespace's pods: `podlab get pods -A`",
        },
    },
    Habit {
        command: "get",
        words: &["all"],
        answer: Answer {
            message: KINDS,
            hint: "one kind at a time, e.g. `podlab get pods -A` and `podlab get svc -A`",
        },
    },
    Habit {
        command: "get",
        words: &["-o", "jsonpath*"],
        answer: Answer {
            message: "podlab get has no jsonpath output",
            hint: "-o json is Kubernetes-shaped: `podlab get pods -o json | jq -r '.items[].status.podIP'`",
        },
    },
    Habit {
        command: "get",
        words: &["-o", "custom-columns*"],
        answer: Answer {
            message: "podlab get has no custom-columns output",
            hint: "pick fields from -o json: `podlab get pods -o json | jq -r '.items[] | [.metadata.name, .status.podIP] | @tsv'`",
        },
    },
    Habit {
        command: "get",
        words: &["-o", "go-template*"],
        answer: Answer {
            message: "podlab get has no go-template output",
            hint: "pick fields from -o json: `podlab get pods -o json | jq '.items[].metadata.name'`",
        },
    },
    Habit {
        command: "get",
        words: &["-o", "name"],
        answer: Answer {
            message: "podlab get has no -o name",
            hint: "`podlab get pods -o json | jq -r '.items[].metadata.name'`",
        },
    },
    Habit {
        command: "get",
        words: &["-l"],
        answer: Answer {
            message: "podlab get has no label selector (-l)",
            hint: "filter -o json: `podlab get pods -o json | jq '.items[] | select(.metadata.labels.app == \"web\")'`",
        },
    },
    Habit {
        command: "get",
        words: &["--selector*"],
        answer: Answer {
            message: "podlab get has no label selector (--selector)",
            hint: "filter -o json: `podlab get pods -o json | jq '.items[] | select(.metadata.labels.app == \"web\")'`",
        },
    },
    Habit {
        command: "describe",
        words: &[],
        answer: Answer {
            message: "podlab has no describe",
            hint: "the lab's API describes: `podlab kubectl describe pod NAME`; an object whole: `podlab get pod NAME -o yaml`; what is wrong with a path: `podlab diagnose POD TARGET`",
        },
    },
];

/// `-o=x`, `-ox`, `--output x` and `--output=x` all become `-o x`; other
/// `--flag=value` words keep their shape (a `*` pattern matches them).
fn normalise(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for w in words {
        if w == "--" {
            // What follows belongs to a command `exec` runs.
            break;
        }
        let value = w
            .strip_prefix("--output=")
            .or_else(|| w.strip_prefix("-o="))
            .or_else(|| w.strip_prefix("-o").filter(|v| !v.is_empty()));
        match value {
            Some(v) => out.extend(["-o".to_string(), v.to_string()]),
            None if w == "--output" => out.push("-o".into()),
            None => out.push(w.clone()),
        }
    }
    out
}

fn matches(pattern: &str, word: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => word == pattern,
    }
}

/// The answer to a rejected command line (without the program name), if
/// it is a known habit.
pub fn answer(words: &[String]) -> Option<&'static Answer> {
    let words = normalise(words);
    // The subcommand is the first word that is not a flag (podlab's only
    // global flag, -v, takes no value).
    let at = words.iter().position(|w| !w.starts_with('-'))?;
    let (command, rest) = (&words[at], &words[at + 1..]);
    HABITS
        .iter()
        .filter(|h| h.command == command)
        .find(|h| {
            h.words.is_empty()
                || rest
                    .windows(h.words.len())
                    .any(|win| win.iter().zip(h.words).all(|(w, p)| matches(p, w)))
        })
        .map(|h| &h.answer)
}

#[cfg(test)]
mod tests {
    use super::answer;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn kubectl_habits_get_podlabs_answer() {
        for (line, says) in [
            ("get pods -w", "no watch"),
            ("-v get pods --watch", "no watch"),
            ("get events", "no events"),
            ("get ev -A", "no events"),
            ("get deploy", "deployments"),
            ("get deployments.apps", "deployments"),
            ("get rs", "replicasets"),
            ("get ns", "namespaces"),
            ("get all", "nodes, pods"),
            ("get pods -o jsonpath={.items}", "jsonpath"),
            ("get pods -ojsonpath={.items}", "jsonpath"),
            ("get pods --output=jsonpath={.items}", "jsonpath"),
            (
                "get pods -o custom-columns=N:.metadata.name",
                "custom-columns",
            ),
            ("get pods -o name", "-o name"),
            ("get pods -l app=web", "label selector"),
            ("get pods --selector=app=web", "label selector"),
            ("describe pod web", "no describe"),
        ] {
            let a = answer(&words(line)).unwrap_or_else(|| panic!("no answer for {line}"));
            assert!(a.message.contains(says), "{line}: {}", a.message);
        }
    }

    #[test]
    fn other_mistakes_are_left_to_clap() {
        for line in [
            "get pods -o wdie",
            "get podz",
            "exec pod-1 -- watch -w x",
            "up --bogus",
        ] {
            assert!(answer(&words(line)).is_none(), "{line}");
        }
    }
}
