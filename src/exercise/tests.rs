//! Exercises made concrete on a fixture lab: variables, seeds, text.

use std::collections::BTreeMap;

use super::*;
use crate::lab::{self, exercise};
use crate::plan;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: ex}
spec: {nodes: 3}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-1}
spec: {nodeName: node-1, containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-2}
spec: {nodeName: node-2, containers: [{name: c, ports: [{containerPort: 80}]}]}
"#;

const EX: &str = r#"apiVersion: podlab/v1alpha1
kind: Exercise
metadata: {name: t}
spec:
  title: t
  difficulty: hard
  section: pods
  lab: lab.yaml
  story: ${node} is broken in lab ${lab}
  vars:
    node: [node-1, node-2, node-3]
    other: [node-1, node-2, node-3]
    pod: pod-2
  faults:
  - {fault: route-missing, target: "${node}", params: {to: "${other}"}}
  - {in: "pod/${pod}", run: [ip, link, set, eth0, down], undo: [ip, link, set, eth0, up]}
  hints: ["${pod} on ${pod.node} has ${pod.ip} via ${pod.gateway}"]
  checks:
  - {from: pod-1, to: pod-2, port: 80, expect: connected}
  solution:
    explanation: add ${other.podCIDR} via ${other.ip}
    steps:
    - {in: "node/${node}", run: [ip, route, add, "${other.podCIDR}", via, "${other.ip}"]}
    - {in: "pod/${pod}", run: [ip, link, set, eth0, up]}
    - run: podlab exec --lab ${lab} node/${node} -- ip route
"#;

fn fixture() -> (exercise::Exercise, lab::LabFile, plan::Plan) {
    let ex = exercise::parse("ex.yaml", EX).expect("exercise");
    let file = lab::parse("lab.yaml", LAB).expect("lab");
    let plan = plan::build(&file).expect("plan");
    (ex, file, plan)
}

#[test]
fn variables_default_to_their_first_distinct_values() {
    let (ex, _, _) = fixture();
    let v = choose_vars(&ex, None).unwrap();
    assert_eq!(v["node"], "node-1");
    assert_eq!(v["other"], "node-2");
    assert_eq!(v["pod"], "pod-2");
}

#[test]
fn seeds_pick_distinct_values_and_spread() {
    let (ex, _, _) = fixture();
    let mut pairs = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let v = choose_vars(&ex, Some(seed)).unwrap();
        assert_ne!(v["node"], v["other"]);
        assert_eq!(v, choose_vars(&ex, Some(seed)).unwrap(), "stable");
        pairs.insert((v["node"].clone(), v["other"].clone()));
    }
    assert_eq!(pairs.len(), 6, "every ordered pair is reachable: {pairs:?}");
    assert_eq!(all_vars(&ex, 100).len(), 6);
    assert_eq!(all_vars(&ex, 4).len(), 4);
}

#[test]
fn too_few_values_is_an_error() {
    let (mut ex, _, _) = fixture();
    ex.vars[1].values = vec!["node-1".into()];
    assert!(matches!(
        choose_vars(&ex, None),
        Err(Error::NoValueLeft { .. })
    ));
}

#[test]
fn text_and_faults_are_filled_in() {
    let (ex, file, plan) = fixture();
    let vars = choose_vars(&ex, None).unwrap();
    let inst = instantiate(&ex, &plan, Some(&file), vars).unwrap();
    assert_eq!(inst.story, "node-1 is broken in lab ex");
    assert_eq!(
        inst.hints[0],
        "pod-2 on node-2 has 10.244.2.2 via 10.244.2.1"
    );
    assert_eq!(inst.explanation, "add 10.244.2.0/24 via 172.18.0.3");
    assert_eq!(inst.faults[0].fault, "route-missing");
    assert_eq!(inst.faults[0].target, "node-1");
    assert_eq!(inst.faults[1].fault, "custom");
    assert_eq!(
        inst.faults[1].summary,
        "`ip link set eth0 down` in pod/pod-2"
    );
    assert_eq!(
        inst.fixes[0].command("lab.yaml"),
        "podlab exec node/node-1 -- ip route add 10.244.2.0/24 via 172.18.0.3"
    );
    assert_eq!(
        inst.fixes[2],
        Fix::Host {
            command: "podlab exec --lab ex node/node-1 -- ip route".into()
        }
    );
}

#[test]
fn substitution_knows_nodes_and_pods() {
    let (_, _, plan) = fixture();
    let vars: BTreeMap<String, String> = [("n".to_string(), "node-3".to_string())].into();
    assert_eq!(
        substitute("${n.ip} ${n.podCIDR} ${n.gateway}", &vars, &plan).unwrap(),
        "172.18.0.4 10.244.3.0/24 172.18.0.1"
    );
    let e = substitute("${n.node}", &vars, &plan).unwrap_err();
    assert!(e.contains("a node has ip, podCIDR and gateway"), "{e}");
    let vars: BTreeMap<String, String> = [("n".to_string(), "nothing".to_string())].into();
    assert!(substitute("${n.ip}", &vars, &plan).is_err());
}

#[test]
fn validate_tries_every_choice_of_variables() {
    let (ex, file, plan) = fixture();
    assert_eq!(validate(&ex, &file, &plan), Vec::<String>::new());
    // A pod that does not exist in one choice only.
    let bad = EX.replace("pod: pod-2", "pod: [pod-2, pod-9]");
    let ex = exercise::parse("ex.yaml", &bad).unwrap();
    let problems = validate(&ex, &file, &plan);
    assert!(!problems.is_empty());
    assert!(
        problems.iter().all(|p| p.contains("pod=pod-9")),
        "{problems:?}"
    );
}

/// `exercise validate` prints these errors as they are: each must say the
/// file, line and column of what it is about, as a file's diagnostics do.
#[test]
fn instance_errors_carry_line_and_column() {
    let (mut ex, file, plan) = fixture();
    // A fault whose target is no node (a plan-level error, found only
    // when the fault is planned on the lab).
    let FaultSpec::Catalogue { target, .. } = &mut ex.faults[0] else {
        panic!("fault 0 is a catalogue fault")
    };
    *target = Some("node-9".into());
    let e = instantiate(&ex, &plan, Some(&file), choose_vars(&ex, None).unwrap()).unwrap_err();
    assert!(
        e.to_string().starts_with("ex.yaml:15:5: spec.faults[0]: "),
        "{e}"
    );
    // A custom fault's `in` that names no pod.
    let (mut ex, ..) = fixture();
    let FaultSpec::Custom { at, .. } = &mut ex.faults[1] else {
        panic!("fault 1 is a custom fault")
    };
    *at = "pod/nope".into();
    let e = instantiate(&ex, &plan, Some(&file), choose_vars(&ex, None).unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ex.yaml:16:5: spec.faults[1].in: "),
        "{e}"
    );
    // An attribute of something that is not a node or pod, in the story.
    let (mut ex, ..) = fixture();
    ex.story = "${pod.ip} of ${node.namespace}".into();
    let e = instantiate(&ex, &plan, Some(&file), choose_vars(&ex, None).unwrap()).unwrap_err();
    assert!(
        e.to_string().starts_with("ex.yaml:9:10: spec.story: "),
        "{e}"
    );
    // No value left for a variable.
    let (mut ex, ..) = fixture();
    ex.vars[1].values = vec!["node-1".into()];
    let e = choose_vars(&ex, None).unwrap_err();
    assert!(
        e.to_string().starts_with("ex.yaml:12:5: spec.vars.other: "),
        "{e}"
    );
}

#[test]
fn hint_commands_are_checked_like_checks() {
    let (ex, _, plan) = fixture();
    let bad = |c: &str| hints::problem(&ex, &plan, c);
    assert_eq!(bad("podlab exec pod-1 -- ip route"), None);
    assert_eq!(bad("podlab exec node/NODE -- ip -br link"), None);
    assert_eq!(bad("podlab exec"), None);
    assert_eq!(bad("podlab diagnose pod-1 pod-2"), None);
    let p = bad("podlab exec pod-9 -- ip route").expect("no pod-9");
    assert!(p.contains("pod pod-9 not found"), "{p}");
    let p = bad("podlab diagnose").expect("refused by default");
    assert!(
        p.contains("diagnose-lab") && p.contains("spec.allow"),
        "{p}"
    );
    let p = bad("podlab apply --lab ex").expect("refused by default");
    assert!(p.contains("uses apply"), "{p}");
    let p = bad("podlab exce pod-1 -- ls").expect("misspelt");
    assert!(p.contains("not a podlab command line"), "{p}");
    assert_eq!(
        hints::commands("try `podlab get pods` then `ip route`, or `podlab trace a b`"),
        ["podlab get pods", "podlab trace a b"]
    );
}

#[test]
fn checks_with_variables_are_filled_in_per_choice() {
    let text = EX.replace(
        "{from: pod-1, to: pod-2, port: 80, expect: connected}",
        "{from: pod-1, to: \"${pod.ip}\", port: 80, expect: connected}",
    );
    let ex = exercise::parse("ex.yaml", &text).expect("exercise");
    let file = lab::parse("lab.yaml", LAB).expect("lab");
    let plan = plan::build(&file).expect("plan");
    assert_eq!(validate(&ex, &file, &plan), Vec::<String>::new());
    let vars = choose_vars(&ex, None).unwrap();
    let checks = run::checks_for(&ex, &vars, &plan).expect("checks");
    let ip = plan.pod("default", "pod-2").expect("pod-2").ip;
    assert_eq!(checks[0].title(), format!("pod-1 -> {ip}:80/TCP connected"));
    // A check naming what the lab does not have, for some choice.
    let text = EX
        .replace("    pod: pod-2\n", "    pod: [pod-2, pod-3]\n")
        .replace("to: pod-2, port", "to: \"${pod}\", port");
    let ex = exercise::parse("ex.yaml", &text).expect("exercise");
    let problems = validate(&ex, &file, &plan);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("pod-3") && p.contains("(with ")),
        "{problems:#?}"
    );
}

#[test]
fn solution_steps_a_learner_would_be_refused_are_problems() {
    let (_, file, plan) = fixture();
    let with_step = |step: &str, allow: &str| {
        let text = EX
            .replace(
                "    - run: podlab exec --lab ${lab} node/${node} -- ip route\n",
                &format!("    - {step}\n"),
            )
            .replace("  faults:\n", &format!("{allow}  faults:\n"));
        let ex = exercise::parse("ex.yaml", &text).expect("exercise");
        validate(&ex, &file, &plan)
    };
    let p = with_step("{apply: true}", "");
    assert!(
        p.iter()
            .any(|p| p.contains("spec.solution.steps[2]") && p.contains("uses apply")),
        "{p:#?}"
    );
    assert_eq!(
        with_step("{apply: true}", "  allow: [apply]\n"),
        Vec::<String>::new()
    );
    let p = with_step(
        "run: podlab get pods --lab ex && podlab fault clear --lab ex",
        "",
    );
    assert!(p.iter().any(|p| p.contains("uses fault-clear")), "{p:#?}");
    assert_eq!(
        with_step("run: podlab delete --lab ex networkpolicy x | cat", ""),
        Vec::<String>::new()
    );
}
