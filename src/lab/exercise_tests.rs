//! Every diagnostic of the exercise decoder, at its line and column.

use super::*;

const GOOD: &str = r#"apiVersion: podlab/v1alpha1
kind: Exercise
metadata: {name: missing-route}
spec:
  title: Pods on one node cannot reach the other's
  difficulty: easy
  section: pods
  lab: labs/pods.yaml
  story: |
    Something is wrong.
  vars:
    node: [node-1, node-2]
    other: [node-1, node-2]
  faults:
  - fault: route-missing
    target: ${node}
    params: {to: "${other}"}
  - name: fw
    description: a firewall on ${node}
    in: node/${node}
    run: nft add table inet fw
    undo: [nft, delete, table, inet, fw]
  hints:
  - look at ${node}
  checks:
  - {from: pod-1, to: pod-2, port: 80, expect: connected}
  solution:
    explanation: ${node} lost its route to ${other.podCIDR}
    steps:
    - in: node/${node}
      run: [ip, route, add, "${other.podCIDR}", via, "${other.ip}"]
    - in: pod/pod-1
      write: /etc/resolv.conf
      content: "nameserver 10.96.0.10\n"
    - run: podlab exec --lab ${lab} node/node-1 -- nft list ruleset
    - apply: true
"#;

fn errs(text: &str) -> Vec<(usize, usize, String, String, Option<String>)> {
    match parse("ex.yaml", text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e
            .diagnostics
            .into_iter()
            .map(|d| (d.pos.line, d.pos.col, d.field, d.message, d.hint))
            .collect(),
    }
}

fn one(text: &str) -> (usize, usize, String, String, Option<String>) {
    let mut e = errs(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.remove(0)
}

fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn a_whole_exercise_decodes() {
    let ex = parse("ex.yaml", GOOD).expect("decodes");
    assert_eq!(ex.name, "missing-route");
    assert_eq!(ex.difficulty, Difficulty::Easy);
    assert_eq!(ex.section, Section::Pods);
    assert_eq!(ex.lab, "labs/pods.yaml");
    assert_eq!(ex.vars.len(), 2);
    assert_eq!(ex.vars[0].values, vec!["node-1", "node-2"]);
    assert_eq!(ex.faults.len(), 2);
    assert!(
        matches!(&ex.faults[0], FaultSpec::Catalogue { fault, params, .. }
        if fault == "route-missing" && params["to"] == "${other}")
    );
    match &ex.faults[1] {
        FaultSpec::Custom { run, undo, at, .. } => {
            assert_eq!(run, &vec!["sh", "-c", "nft add table inet fw"]);
            assert_eq!(undo.len(), 5);
            assert_eq!(at, "node/${node}");
        }
        f => panic!("{f:?}"),
    }
    assert_eq!(ex.checks.len(), 1);
    assert_eq!(ex.solution.steps.len(), 4);
    assert!(matches!(
        &ex.solution.steps[2],
        SolutionStep::Run { at: None, .. }
    ));
    assert!(matches!(&ex.solution.steps[3], SolutionStep::Apply { .. }));
}

#[test]
fn a_misspelt_field_gets_a_did_you_mean() {
    let e = one(&with("  hints:\n", "  hint:\n"));
    assert_eq!((e.0, e.1), (23, 3));
    assert_eq!(e.2, "spec.hint");
    assert_eq!(e.3, "unknown field `hint`");
    assert_eq!(e.4.as_deref(), Some("did you mean `hints`?"));
}

#[test]
fn a_lab_file_is_not_an_exercise() {
    let e = one(&with("kind: Exercise", "kind: Lab"));
    assert_eq!((e.0, e.2.as_str()), (2, "kind"));
    assert!(e.4.unwrap().contains("this is a lab file"));
    assert!(is_exercise(GOOD));
    assert!(!is_exercise("kind: Lab\n"));
}

#[test]
fn words_are_checked_with_suggestions() {
    let e = one(&with("difficulty: easy", "difficulty: eazy"));
    assert_eq!((e.0, e.1, e.2.as_str()), (6, 15, "spec.difficulty"));
    assert_eq!(e.4.as_deref(), Some("did you mean `easy`?"));
    let e = one(&with("section: pods", "section: network"));
    assert_eq!(e.2, "spec.section");
    assert_eq!(e.4.as_deref(), Some("one of: pods, services, dns"));
}

#[test]
fn required_fields_are_named() {
    let e = one(&with("  story: |\n    Something is wrong.\n", ""));
    assert_eq!(e.2, "spec.story");
    assert_eq!(e.3, "the exercise has no `story`");
    let e = errs(&with(
        "metadata: {name: missing-route}",
        "metadata: {name: Missing_Route}",
    ));
    assert!(e[0].3.contains("not a DNS-1123 label"), "{e:?}");
}

#[test]
fn catalogue_faults_are_checked_against_the_catalogue() {
    let e = one(&with("fault: route-missing", "fault: route-mising"));
    assert_eq!((e.0, e.1, e.2.as_str()), (15, 12, "spec.faults[0].fault"));
    assert_eq!(e.3, "no fault named `route-mising`");
    assert!(e.4.unwrap().contains("did you mean `route-missing`?"));
    let e = one(&with(
        "params: {to: \"${other}\"}",
        "params: {too: \"${other}\"}",
    ));
    assert_eq!(e.2, "spec.faults[0].params.too");
    assert_eq!(e.4.as_deref(), Some("did you mean `to`?"));
    let e = one(&with(
        "  - fault: route-missing\n    target: ${node}\n    params: {to: \"${other}\"}\n",
        "  - fault: dns-stopped\n    target: ${node}\n",
    ));
    assert!(e.3.contains("takes no target"), "{e:?}");
}

#[test]
fn custom_faults_need_an_undo() {
    let e = one(&with("    undo: [nft, delete, table, inet, fw]\n", ""));
    assert_eq!(e.2, "spec.faults[1].undo");
    assert_eq!(e.3, "a custom fault needs `undo`");
    assert!(e.4.unwrap().contains("exercise reset"));
}

#[test]
fn variables_must_be_declared_and_attributes_known() {
    let e = one(&with("  - look at ${node}", "  - look at ${nod}"));
    assert_eq!(e.2, "spec.hints[0]");
    assert_eq!(e.3, "`${nod}` is not a variable of the exercise");
    assert_eq!(e.4.as_deref(), Some("did you mean `${node}`?"));
    let e = one(&with("${other.podCIDR}\n", "${other.podCidr}\n"));
    assert_eq!(e.3, "`podCidr` is not an attribute podlab knows");
    assert_eq!(e.4.as_deref(), Some("did you mean `${other.podCIDR}`?"));
    let e = one(&with("  - look at ${node}", "  - look at ${node"));
    assert!(e.3.contains("without a closing"), "{e:?}");
    let e = one(&with(
        "    node: [node-1, node-2]\n",
        "    lab: [a]\n    node: [node-1, node-2]\n",
    ));
    assert!(e.3.contains("every exercise has"), "{e:?}");
}

#[test]
fn solution_steps_are_checked() {
    let e = one(&with("write: /etc/resolv.conf", "write: etc/resolv.conf"));
    assert_eq!(e.3, "`etc/resolv.conf` is not an absolute path");
    let e = one(&with("    - apply: true\n", "    - apply: yes please\n"));
    assert!(e.3.starts_with("expected `true`"), "{e:?}");
    let e = one(&with(
        "    - run: podlab exec --lab ${lab} node/node-1 -- nft list ruleset\n",
        "    - run: [podlab, ls]\n",
    ));
    assert!(e.3.contains("runs on the host"), "{e:?}");
    let e = one(&with(
        "    explanation: ${node} lost its route to ${other.podCIDR}\n",
        "",
    ));
    assert_eq!(e.2, "spec.solution.explanation");
}

#[test]
fn one_document_only() {
    let e = one(&format!("{GOOD}---\nkind: Lab\n"));
    assert!(e.3.contains("holds one document"), "{e:?}");
    let e = one("");
    assert!(e.3.contains("empty"), "{e:?}");
}

#[test]
fn checks_are_related_to_the_lab() {
    let ex = parse("ex.yaml", GOOD).expect("decodes");
    let lab = crate::lab::parse(
        "lab.yaml",
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: l}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: pod-1}\nspec: {containers: [{name: c}]}\n",
    )
    .expect("lab");
    let e = check(&ex, &lab).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!(d.source, "ex.yaml");
    assert_eq!(d.pos.line, 26);
    assert!(d.message.contains("pod-2"), "{}", d.message);
}

#[test]
fn references_are_read() {
    assert_eq!(
        references("a ${x} b ${y.ip} c").unwrap(),
        vec![
            Reference {
                name: "x".into(),
                attr: None
            },
            Reference {
                name: "y".into(),
                attr: Some("ip".into())
            }
        ]
    );
    assert!(references("$x and {y}").unwrap().is_empty());
    assert!(references("${}").is_err());
}

#[test]
fn allow_names_governed_tools_at_their_line_and_column() {
    let ex = parse(
        "ex.yaml",
        &with("  hints:\n", "  allow: [trace, apply, trace]\n  hints:\n"),
    )
    .expect("decodes");
    assert_eq!(
        ex.allow,
        Some(vec!["trace".to_string(), "apply".to_string()])
    );
    assert_eq!(parse("ex.yaml", GOOD).expect("decodes").allow, None);
    let e = one(&with(
        "  hints:\n",
        "  allow: [trace, diagnoze]\n  hints:\n",
    ));
    assert_eq!((e.0, e.1, e.2.as_str()), (23, 18, "spec.allow[1]"));
    assert_eq!(e.3, "`diagnoze` is not a tool an exercise governs");
    assert_eq!(e.4.as_deref(), Some("did you mean `diagnose`?"));
    let e = one(&with("  hints:\n", "  allow: [exec]\n  hints:\n"));
    assert!(e.4.unwrap().contains("always allowed"));
    let e = one(&with("  hints:\n", "  allow: trace\n  hints:\n"));
    assert_eq!((e.0, e.2.as_str()), (23, "spec.allow"));
}

#[test]
fn checks_may_use_variables() {
    let text = with(
        "{from: pod-1, to: pod-2, port: 80, expect: connected}",
        "{from: \"pod-${n}\", to: \"${other}\", port: 80, expect: connected}",
    )
    .replace(
        "    other: [node-1, node-2]\n",
        "    other: [node-1, node-2]\n    n: ['1', '2']\n",
    );
    let ex = parse("ex.yaml", &text).expect("decodes");
    assert!(ex.checks.is_empty() && ex.checks_template.is_some());
    let mut sub = |t: &str| Ok(t.replace("${n}", "1").replace("${other}", "node-2"));
    let checks = checks_with(&ex, &mut sub).expect("checks");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].title(), "pod-1 -> node-2:80/TCP connected");
    // An undeclared one is named where it is.
    let e = one(&with("to: pod-2, port: 80", "to: \"${nod}\", port: 80"));
    assert_eq!((e.0, e.2.as_str()), (26, "spec.checks"));
    assert_eq!(e.3, "`${nod}` is not a variable of the exercise");
    assert_eq!(e.4.as_deref(), Some("did you mean `${node}`?"));
    // The shape is still checked without the variables' values.
    let e =
        one(&with("expect: connected}", "expect: connectd}")
            .replace("to: pod-2", "to: \"${node}\""));
    assert!(e.3.contains("connectd"), "{e:?}");
}
