//! The picture as a Mermaid flowchart, for Markdown documents: the same
//! parts and lines as DOT, with ids of Mermaid's own (letters and digits
//! only) and labels escaped as Mermaid's entity codes.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{all_marks, Graph, Part, LEGEND};

/// A label inside `["..."]`: quotes and angle brackets as entity codes, a
/// line break as `<br/>`.
fn text(lines: &[String]) -> String {
    let esc: Vec<String> = lines
        .iter()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control())
                .map(|c| match c {
                    '"' => "#quot;".to_string(),
                    '<' => "#lt;".to_string(),
                    '>' => "#gt;".to_string(),
                    '#' => "#35;".to_string(),
                    c => c.to_string(),
                })
                .collect()
        })
        .collect();
    format!("[\"{}\"]", esc.join("<br/>"))
}

fn with_marks(mut lines: Vec<String>, part: &Part) -> Vec<String> {
    lines.extend(part.marks.iter().map(|m| format!("! {m}")));
    lines
}

pub fn render(g: &Graph) -> String {
    let mut s = String::from("flowchart TB\n");
    let _ = writeln!(s, "  %% lab {}: {LEGEND}", g.lab);
    let mut marked = Vec::new();
    let b = &g.bridge;
    let _ = writeln!(
        s,
        "  net{}",
        text(&with_marks(
            vec![format!("{} (node network)", b.name), b.address.show()],
            b
        ))
    );
    if !b.marks.is_empty() {
        marked.push("net".to_string());
    }
    for (i, c) in g.clients.iter().enumerate() {
        let mut lines = vec![
            c.part.name.clone(),
            format!("eth0 {}", c.part.address.show()),
        ];
        lines.extend(c.extra.iter().map(|a| format!("also {a}")));
        let _ = writeln!(s, "  c{i}{}", text(&with_marks(lines, &c.part)));
        let _ = writeln!(s, "  c{i} --- net");
        if !c.part.marks.is_empty() {
            marked.push(format!("c{i}"));
        }
    }
    let mut pod_ids: HashMap<&str, String> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let _ = writeln!(
            s,
            "  subgraph g{i}{}",
            text(&[format!("node/{}", n.part.name)])
        );
        let lines = vec![
            format!("node/{}", n.part.name),
            format!("eth0 {}", n.part.address.show()),
            format!("cni0 {}", n.cni0.show()),
            format!("pods {}", n.pod_cidr),
        ];
        let _ = writeln!(s, "    n{i}{}", text(&with_marks(lines, &n.part)));
        if !n.part.marks.is_empty() {
            marked.push(format!("n{i}"));
        }
        for (j, p) in n.pods.iter().enumerate() {
            let id = format!("p{i}x{j}");
            let mut lines = vec![p.part.name.clone(), p.part.address.show()];
            if !p.labels.is_empty() {
                lines.push(p.labels.clone());
            }
            if let Some(st) = &p.status {
                lines.push(st.clone());
            }
            let _ = writeln!(s, "    {id}{}", text(&with_marks(lines, &p.part)));
            let _ = writeln!(s, "    n{i} --- {id}");
            if !p.part.marks.is_empty() {
                marked.push(id.clone());
            }
            pod_ids.insert(p.part.name.as_str(), id);
        }
        s.push_str("  end\n");
        let _ = writeln!(s, "  net --- n{i}");
    }
    for (i, v) in g.services.iter().enumerate() {
        let mut lines = vec![format!("svc/{} ({})", v.key, v.kind)];
        lines.extend(v.lines.iter().cloned());
        // `((...))`: a circle, Mermaid's shape for a service.
        let label = text(&lines);
        let inner = label.trim_start_matches('[').trim_end_matches(']');
        let _ = writeln!(s, "  s{i}(({inner}))");
        for (ep, ready) in &v.endpoints {
            if let Some(id) = pod_ids.get(ep.as_str()) {
                let arrow = if *ready { "-->" } else { "-.->|not ready|" };
                let _ = writeln!(s, "  s{i} {arrow} {id}");
            }
        }
    }
    for (i, p) in g.policies.iter().enumerate() {
        let mut lines = vec![format!("netpol/{}", p.key)];
        lines.extend(p.allows.iter().map(|a| format!("allows {a}")));
        let _ = writeln!(s, "  k{i}{}", text(&lines));
        for pod in &p.selects {
            if let Some(id) = pod_ids.get(pod.as_str()) {
                let _ = writeln!(s, "  k{i} -.->|selects| {id}");
            }
        }
    }
    let marks = all_marks(g);
    if !marks.is_empty() {
        let lines: Vec<String> = std::iter::once("differs from the plan".to_string())
            .chain(marks.iter().map(|m| format!("! {m}")))
            .collect();
        let _ = writeln!(s, "  diff{}", text(&lines));
        marked.push("diff".to_string());
    }
    if !marked.is_empty() {
        s.push_str("  classDef differs stroke:#c00,stroke-width:2px,color:#c00\n");
        let _ = writeln!(s, "  class {} differs", marked.join(","));
    }
    s
}
