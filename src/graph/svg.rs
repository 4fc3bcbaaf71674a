//! The picture as SVG, laid out by podlab itself (no graphviz needed): the
//! clients and the node network's bridge on top, one column per node with
//! its pods, the Services below with a line to each endpoint, then the
//! NetworkPolicies and what differs from the plan. A crowded node shows its
//! first pods and counts the rest, so 100 pods stay legible; a text cut to
//! fit its box keeps the whole in a tooltip.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{all_marks, Graph, Part, LEGEND};

const MARGIN: i64 = 20;
const COL: i64 = 300;
const GAP: i64 = 30;
const LINE: i64 = 14;
/// Characters of 11px monospace that fit a column.
const CHARS: usize = 44;
const POD_H: i64 = 32;
const RED: &str = "#c00000";
const PALETTE: [&str; 6] = [
    "#b8860b", "#1f77b4", "#9467bd", "#2ca02c", "#d62728", "#8c564b",
];

/// XML character data and attribute values: the five specials escaped,
/// control characters dropped (XML 1.0 cannot carry them).
pub(super) fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s
}

fn fit(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(chars.saturating_sub(1)).collect();
        format!("{cut}~")
    }
}

struct Svg {
    body: String,
}

impl Svg {
    fn text(&mut self, x: i64, y: i64, size: u32, style: &str, text: &str, chars: usize) {
        let shown = fit(text, chars);
        let title = if shown == text {
            String::new()
        } else {
            format!("<title>{}</title>", esc(text))
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{x}" y="{y}" font-size="{size}" {style}>{title}{}</text>"#,
            esc(&shown)
        );
    }

    /// Open a group for one part of the picture: `podlab ui` finds a part
    /// by its `data-part` (`node/NAME`, `pod/NS/NAME`, `svc/NS/NAME`,
    /// `netpol/NS/NAME`, `external`, `lb`, `net`) to show its details and
    /// draw a trace through it.
    fn open(&mut self, part: &str) {
        let _ = writeln!(self.body, r#"<g class="part" data-part="{}">"#, esc(part));
    }

    fn close(&mut self) {
        self.body.push_str("</g>\n");
    }

    fn rect(&mut self, (x, y, w, h): (i64, i64, i64, i64), fill: &str, marked: bool, rx: u32) {
        let stroke = if marked {
            format!(r#"stroke="{RED}" stroke-width="2.5""#)
        } else {
            r##"stroke="#555" stroke-width="1""##.to_string()
        };
        let _ = writeln!(
            self.body,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" fill="{fill}" {stroke}/>"#
        );
    }

    fn line(&mut self, from: (i64, i64), to: (i64, i64), colour: &str, dashed: bool) {
        let dash = if dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="1.5"{dash}/>"#,
            from.0, from.1, to.0, to.1
        );
    }

    fn curve(&mut self, from: (i64, i64), to: (i64, i64), colour: &str, dashed: bool) {
        let dash = if dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let mid = (from.1 + to.1) / 2;
        let _ = writeln!(
            self.body,
            r#"<path d="M{} {} C{} {mid} {} {mid} {} {}" fill="none" stroke="{colour}" stroke-opacity="0.7" stroke-width="1.3"{dash}/>"#,
            from.0, from.1, from.0, to.0, to.0, to.1
        );
    }

    /// A box's lines of text, marks (in red) after them.
    fn lines(&mut self, x: i64, y: i64, lines: &[String], part: Option<&Part>) {
        let mut cy = y;
        for (i, l) in lines.iter().enumerate() {
            let style = if i == 0 { r#"font-weight="bold""# } else { "" };
            self.text(x, cy, 11, style, l, CHARS);
            cy += LINE;
        }
        for m in part.map_or(&[][..], |p| &p.marks[..]) {
            self.text(
                x,
                cy,
                10,
                &format!(r#"fill="{RED}""#),
                &format!("! {m}"),
                CHARS + 4,
            );
            cy += LINE;
        }
    }
}

fn marks_h(p: &Part) -> i64 {
    p.marks.len() as i64 * LINE
}

/// The SVG document; `all` draws every pod instead of collapsing.
pub fn render(g: &Graph, all: bool) -> String {
    let mut svg = Svg {
        body: String::new(),
    };
    let cols = g.nodes.len().max(3) as i64;
    let width = MARGIN * 2 + cols * COL + (cols - 1) * GAP;
    svg.text(
        MARGIN,
        24,
        16,
        r#"font-weight="bold""#,
        &format!("lab {}", g.lab),
        200,
    );
    // The legend wrapped to the picture's width (6 px a character).
    let per_line = ((width - 2 * MARGIN) / 6).max(40) as usize;
    let mut y = 42;
    let mut line = String::new();
    for word in LEGEND.split(' ') {
        if !line.is_empty() && line.len() + word.len() + 1 > per_line {
            svg.text(MARGIN, y, 10, r##"fill="#555""##, &line, per_line);
            y += 13;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    svg.text(MARGIN, y, 10, r##"fill="#555""##, &line, per_line);
    // Clients, and the bridge they hang on.
    y += 18;
    let mut client_h = 0;
    for (i, c) in g.clients.iter().enumerate() {
        let x = MARGIN + i as i64 * (COL + GAP);
        let mut lines = vec![
            c.part.name.clone(),
            format!("eth0 {}", c.part.address.show()),
        ];
        lines.extend(c.extra.iter().map(|a| format!("also {a}")));
        let h = 10 + lines.len() as i64 * LINE + marks_h(&c.part);
        client_h = client_h.max(h);
        svg.open(&c.part.name);
        svg.rect((x, y, COL, h), "#f4f4f4", !c.part.marks.is_empty(), 4);
        svg.lines(x + 8, y + 16, &lines, Some(&c.part));
        svg.close();
    }
    let bridge_y = y + client_h + 40;
    for i in 0..g.clients.len() as i64 {
        let x = MARGIN + i * (COL + GAP) + COL / 2;
        svg.line((x, y + client_h), (x, bridge_y), "#555", false);
    }
    let b = &g.bridge;
    let bh = 24 + marks_h(b);
    svg.open("net");
    svg.rect(
        (MARGIN, bridge_y, width - 2 * MARGIN, bh),
        "#dde8f5",
        !b.marks.is_empty(),
        10,
    );
    svg.lines(
        MARGIN + 12,
        bridge_y + 16,
        &[format!("{} {}  (node network)", b.name, b.address.show())],
        Some(b),
    );
    svg.close();
    // Nodes and their pods; where each drawn pod is, for the lines.
    y = bridge_y + bh + 40;
    let mut at: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut bottom = y;
    for (i, n) in g.nodes.iter().enumerate() {
        let x = MARGIN + i as i64 * (COL + GAP);
        svg.line(
            (x + COL / 2, bridge_y + bh),
            (x + COL / 2, y),
            "#555",
            false,
        );
        let head = vec![
            format!("node/{}", n.part.name),
            format!("eth0 {}", n.part.address.show()),
            format!("cni0 {}", n.cni0.show()),
            format!("pods {}", n.pod_cidr),
        ];
        let head_h = 8 + head.len() as i64 * LINE + marks_h(&n.part);
        let (shown, hidden) = n.shown(all);
        let pods_h: i64 = shown
            .iter()
            .map(|p| POD_H + marks_h(&p.part) + 4)
            .sum::<i64>()
            + if hidden > 0 { POD_H } else { 0 };
        let h = head_h + pods_h + 8;
        svg.open(&format!("node/{}", n.part.name));
        svg.rect((x, y, COL, h), "#eeeeee", !n.part.marks.is_empty(), 6);
        svg.lines(x + 8, y + 16, &head, Some(&n.part));
        let mut py = y + head_h;
        for p in shown {
            let ph = POD_H + marks_h(&p.part);
            svg.open(&format!("pod/{}", p.part.name));
            svg.rect(
                (x + 10, py, COL - 20, ph),
                "#ffffff",
                !p.part.marks.is_empty(),
                8,
            );
            let status = p
                .status
                .as_deref()
                .map_or(String::new(), |s| format!(" {s}"));
            let first = format!("{}  {}", p.part.name, p.part.address.show());
            let second = format!("{}{status}", p.labels);
            svg.lines(x + 18, py + 13, &[first, second], Some(&p.part));
            svg.close();
            at.insert(p.part.name.as_str(), (x + COL - 10, py + ph / 2));
            py += ph + 4;
        }
        if hidden > 0 {
            svg.rect((x + 10, py, COL - 20, POD_H - 4), "#f8f8f8", false, 8);
            svg.text(
                x + 18,
                py + 18,
                11,
                r#"font-style="italic""#,
                &format!("... {hidden} more pods (--all draws them)"),
                CHARS,
            );
            for p in &n.pods {
                at.entry(p.part.name.as_str())
                    .or_insert((x + COL - 10, py + POD_H / 2));
            }
        }
        svg.close();
        bottom = bottom.max(y + h);
    }
    y = bottom + 50;
    y = services(&mut svg, g, y, cols, &at);
    y = policies(&mut svg, g, y, cols, &at);
    let marks = all_marks(g);
    if !marks.is_empty() {
        svg.text(
            MARGIN,
            y + 14,
            12,
            &format!(r#"font-weight="bold" fill="{RED}""#),
            "differs from the plan",
            200,
        );
        y += 14;
        for m in &marks {
            y += LINE;
            svg.text(
                MARGIN,
                y + 4,
                11,
                &format!(r#"fill="{RED}""#),
                &format!("! {m}"),
                200,
            );
        }
        y += 20;
    }
    let height = y + MARGIN;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans Mono, monospace\">\n\
         <title>{}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
        esc(&format!("lab {}", g.lab)),
        svg.body
    )
}

/// The Services in rows under the nodes, a line from each to each of its
/// endpoints (to the collapsed group for a pod not drawn). Returns the y
/// below them.
fn services(svg: &mut Svg, g: &Graph, y: i64, cols: i64, at: &HashMap<&str, (i64, i64)>) -> i64 {
    let mut row_h = 0;
    let mut top = y;
    let mut next = y;
    for (i, v) in g.services.iter().enumerate() {
        let col = i as i64 % cols;
        if col == 0 && i > 0 {
            top += row_h + 30;
            row_h = 0;
        }
        let x = MARGIN + col * (COL + GAP);
        let mut lines = vec![format!("svc/{} {}", v.key, v.kind)];
        lines.extend(v.lines.iter().cloned());
        let h = 10 + lines.len() as i64 * LINE;
        row_h = row_h.max(h);
        svg.open(&format!("svc/{}", v.key));
        svg.rect((x, top, COL, h), "#fff2cc", false, 12);
        svg.lines(x + 10, top + 16, &lines, None);
        svg.close();
        let colour = PALETTE[i % PALETTE.len()];
        let mut drawn = std::collections::HashSet::new();
        for (ep, ready) in &v.endpoints {
            if let Some(&to) = at.get(ep.as_str()) {
                // One line to a collapsed group, not one per hidden pod.
                if drawn.insert(to) {
                    svg.curve((x + COL / 2, top), to, colour, !ready);
                }
            }
        }
        next = top + row_h + 30;
    }
    next
}

fn policies(svg: &mut Svg, g: &Graph, y: i64, cols: i64, at: &HashMap<&str, (i64, i64)>) -> i64 {
    let mut row_h = 0;
    let mut top = y;
    let mut next = y;
    for (i, p) in g.policies.iter().enumerate() {
        let col = i as i64 % cols;
        if col == 0 && i > 0 {
            top += row_h + 30;
            row_h = 0;
        }
        let x = MARGIN + col * (COL + GAP);
        let mut lines = vec![format!("netpol/{}", p.key)];
        lines.push(format!("selects {} pods", p.selects.len()));
        lines.extend(p.allows.iter().map(|a| format!("allows {a}")));
        let h = 10 + lines.len() as i64 * LINE;
        row_h = row_h.max(h);
        svg.open(&format!("netpol/{}", p.key));
        svg.rect((x, top, COL, h), "#e2f0d9", false, 2);
        svg.lines(x + 10, top + 16, &lines, None);
        svg.close();
        let mut drawn = std::collections::HashSet::new();
        for pod in &p.selects {
            if let Some(&(px, py)) = at.get(pod.as_str()) {
                let to = (px - COL + 20, py);
                if drawn.insert(to) {
                    svg.curve((x + 20, top), to, "#548235", true);
                }
            }
        }
        next = top + row_h + 30;
    }
    next
}
