//! The picture as plain text for a terminal: the node network on top, each
//! node with its pods below it, then Services (with their endpoints),
//! NetworkPolicies, and what differs from the plan. ASCII only, so it
//! pastes anywhere.

use std::fmt::Write as _;

use super::{all_marks, Graph, Part, LEGEND};

fn bang(p: &Part) -> &'static str {
    if p.marks.is_empty() {
        ""
    } else {
        "  !"
    }
}

/// The text picture; `all` lists every pod instead of collapsing a crowded
/// node.
pub fn render(g: &Graph, all: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "lab {}", g.lab);
    let _ = writeln!(s, "({LEGEND})");
    let _ = writeln!(s);
    for c in &g.clients {
        let extra = if c.extra.is_empty() {
            String::new()
        } else {
            format!("  also {}", c.extra.join(" "))
        };
        let _ = writeln!(
            s,
            "  [{}] eth0 {}{extra}{}",
            c.part.name,
            c.part.address.show(),
            bang(&c.part)
        );
        let _ = writeln!(s, "     |");
    }
    let _ = writeln!(
        s,
        "==[ {} {} node network ]=={}",
        g.bridge.name,
        g.bridge.address.show(),
        bang(&g.bridge)
    );
    // One name column for every node, so the nodes' pods line up.
    let width = g
        .nodes
        .iter()
        .flat_map(|n| n.shown(all).0)
        .map(|p| p.part.name.len())
        .max()
        .unwrap_or(0);
    for n in &g.nodes {
        let _ = writeln!(s, "     |");
        let _ = writeln!(
            s,
            "  [node/{}] eth0 {}  cni0 {}  pods {}{}",
            n.part.name,
            n.part.address.show(),
            n.cni0.show(),
            n.pod_cidr,
            bang(&n.part)
        );
        let (shown, hidden) = n.shown(all);
        for (i, p) in shown.iter().enumerate() {
            let last = i + 1 == shown.len() && hidden == 0;
            let branch = if last { "`--" } else { "|--" };
            let status = p
                .status
                .as_deref()
                .map_or(String::new(), |s| format!(" {s}"));
            let _ = writeln!(
                s,
                "     {branch} {:<width$}  {:<18} {}{status}{}",
                p.part.name,
                p.part.address.show(),
                p.labels,
                bang(&p.part)
            );
        }
        if hidden > 0 {
            let _ = writeln!(s, "     `-- ... {hidden} more pods (--all lists them)");
        }
    }
    if !g.services.is_empty() {
        let _ = writeln!(s, "\nServices");
        for v in &g.services {
            let _ = writeln!(s, "  svc/{} {}  {}", v.key, v.kind, v.lines.join("  "));
            let eps: Vec<String> = v
                .endpoints
                .iter()
                .map(|(k, ready)| {
                    if *ready {
                        k.clone()
                    } else {
                        format!("{k} (not ready)")
                    }
                })
                .collect();
            let text = if eps.is_empty() {
                "no endpoints".to_string()
            } else {
                eps.join(", ")
            };
            let _ = writeln!(s, "     -> {text}");
        }
    }
    if !g.policies.is_empty() {
        let _ = writeln!(s, "\nNetworkPolicies");
        for p in &g.policies {
            let _ = writeln!(
                s,
                "  netpol/{} selects {}",
                p.key,
                if p.selects.is_empty() {
                    "no pod".to_string()
                } else {
                    p.selects.join(", ")
                }
            );
            for a in &p.allows {
                let _ = writeln!(s, "     allows {a}");
            }
        }
    }
    let marks = all_marks(g);
    let _ = writeln!(s);
    if marks.is_empty() {
        let _ = writeln!(s, "As the plan has it: nothing differs.");
    } else {
        let _ = writeln!(s, "Differs from the plan (!)");
        for m in marks {
            let _ = writeln!(s, "  ! {m}");
        }
    }
    s
}
