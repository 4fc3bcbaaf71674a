//! The picture as Graphviz DOT, for documents: every pod listed (graphviz
//! lays out what it is given), each node a cluster, Services linked to
//! their endpoints, policies to the pods they select. Marked parts are red.

use std::fmt::Write as _;

use super::{all_marks, Graph, Part, LEGEND};

/// A DOT double-quoted string: only `"` and `\` need escaping, and a line
/// break is `\n` (centred) in a label.
pub(super) fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn label(lines: &[String], part: Option<&Part>) -> String {
    let mut all: Vec<String> = lines.to_vec();
    if let Some(p) = part {
        all.extend(p.marks.iter().map(|m| format!("! {m}")));
    }
    quote(&all.join("\n"))
}

fn colour(part: &Part) -> &'static str {
    if part.marks.is_empty() {
        ""
    } else {
        ", color=red, fontcolor=red, penwidth=2"
    }
}

pub fn render(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph {} {{", quote(&format!("lab {}", g.lab)));
    let _ = writeln!(s, "  label={};", quote(&format!("lab {}\n{LEGEND}", g.lab)));
    s.push_str("  labelloc=t;\n  compound=true;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n  edge [arrowsize=0.6];\n");
    let b = &g.bridge;
    let _ = writeln!(
        s,
        "  {} [shape=box, style=\"rounded,filled\", fillcolor=\"#dde8f5\", label={}{}];",
        quote(&format!("net/{}", b.name)),
        label(
            &[format!("{} (node network)", b.name), b.address.show()],
            Some(b)
        ),
        colour(b)
    );
    for c in &g.clients {
        let mut lines = vec![
            c.part.name.clone(),
            format!("eth0 {}", c.part.address.show()),
        ];
        lines.extend(c.extra.iter().map(|a| format!("also {a}")));
        let _ = writeln!(
            s,
            "  {} [label={}{}];",
            quote(&c.part.name),
            label(&lines, Some(&c.part)),
            colour(&c.part)
        );
        let _ = writeln!(
            s,
            "  {} -> {} [dir=none];",
            quote(&c.part.name),
            quote(&format!("net/{}", b.name))
        );
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let id = format!("node/{}", n.part.name);
        let _ = writeln!(s, "  subgraph cluster_{i} {{");
        let _ = writeln!(s, "    label={};", quote(&id));
        if !n.part.marks.is_empty() {
            s.push_str("    color=red;\n");
        }
        let _ = writeln!(
            s,
            "    {} [style=filled, fillcolor=\"#eeeeee\", label={}{}];",
            quote(&id),
            label(
                &[
                    id.clone(),
                    format!("eth0 {}", n.part.address.show()),
                    format!("cni0 {}", n.cni0.show()),
                    format!("pods {}", n.pod_cidr),
                ],
                Some(&n.part)
            ),
            colour(&n.part)
        );
        for p in &n.pods {
            let mut lines = vec![p.part.name.clone(), p.part.address.show()];
            if !p.labels.is_empty() {
                lines.push(p.labels.clone());
            }
            if let Some(st) = &p.status {
                lines.push(st.clone());
            }
            let _ = writeln!(
                s,
                "    {} [style=rounded, label={}{}];",
                quote(&format!("pod/{}", p.part.name)),
                label(&lines, Some(&p.part)),
                colour(&p.part)
            );
            let _ = writeln!(
                s,
                "    {} -> {} [dir=none, label=\"cni0\", fontsize=8];",
                quote(&id),
                quote(&format!("pod/{}", p.part.name))
            );
        }
        s.push_str("  }\n");
        let _ = writeln!(
            s,
            "  {} -> {} [dir=none, label=\"eth0\", fontsize=8];",
            quote(&format!("net/{}", b.name)),
            quote(&id)
        );
    }
    for v in &g.services {
        let mut lines = vec![format!("svc/{} ({})", v.key, v.kind)];
        lines.extend(v.lines.iter().cloned());
        let id = format!("svc/{}", v.key);
        let _ = writeln!(
            s,
            "  {} [shape=ellipse, style=filled, fillcolor=\"#fff2cc\", label={}];",
            quote(&id),
            label(&lines, None)
        );
        for (ep, ready) in &v.endpoints {
            let style = if *ready {
                "color=\"#b8860b\""
            } else {
                "color=gray, style=dashed, label=\"not ready\""
            };
            let _ = writeln!(
                s,
                "  {} -> {} [{style}];",
                quote(&id),
                quote(&format!("pod/{ep}"))
            );
        }
    }
    for p in &g.policies {
        let id = format!("netpol/{}", p.key);
        let mut lines = vec![id.clone()];
        lines.extend(p.allows.iter().map(|a| format!("allows {a}")));
        let _ = writeln!(
            s,
            "  {} [shape=note, style=filled, fillcolor=\"#e2f0d9\", label={}];",
            quote(&id),
            label(&lines, None)
        );
        for pod in &p.selects {
            let _ = writeln!(
                s,
                "  {} -> {} [style=dotted, color=\"#548235\", label=\"selects\", fontsize=8];",
                quote(&id),
                quote(&format!("pod/{pod}"))
            );
        }
    }
    let marks = all_marks(g);
    if !marks.is_empty() {
        let lines: Vec<String> = std::iter::once("differs from the plan".to_string())
            .chain(marks.iter().map(|m| format!("! {m}")))
            .collect();
        let _ = writeln!(
            s,
            "  \"differences\" [shape=box, color=red, fontcolor=red, label={}];",
            quote(&lines.join("\n"))
        );
    }
    s.push_str("}\n");
    s
}
