//! A [`Flow`] as inline SVG for the HTML site, sized by hand: the main path in one
//! column, failure handlers and stops in a column on its right, skipped branches routed
//! down the left margin. No layout engine and no script: the picture is plain SVG that
//! any browser draws from `file://`.

use super::flow::{EdgeKind, Flow, Shape};

const MAIN_X: f64 = 48.0;
const MAIN_W: f64 = 400.0;
const GAP_X: f64 = 210.0;
const SIDE_W: f64 = 280.0;
const TOP: f64 = 16.0;
const GAP_Y: f64 = 30.0;
const LINE: f64 = 15.0;
const PAD: f64 = 7.0;
/// Average advance of the 12 px sans-serif font, for wrapping.
const CHAR_W: f64 = 6.4;

fn side_x() -> f64 {
    MAIN_X + MAIN_W + GAP_X
}

/// Escapes text for SVG.
pub fn xml(text: &str) -> String {
    // One pass: pages hold thousands of labels.
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps `text` to lines of at most `width` characters (words longer than that stay
/// whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out
}

struct Placed {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    lines: Vec<String>,
}

impl Placed {
    fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

/// Draws `flow` as an `<svg>` element (with a title for screen readers).
pub fn to_svg(flow: &Flow) -> String {
    let main_chars = ((MAIN_W - 2.0 * PAD - 24.0) / CHAR_W) as usize;
    let side_chars = ((SIDE_W - 2.0 * PAD) / CHAR_W) as usize;
    let mut placed: Vec<Option<Placed>> = (0..flow.nodes.len()).map(|_| None).collect();
    let mut y = TOP;
    for (i, node) in flow.nodes.iter().enumerate() {
        if flow.is_side(i) {
            continue;
        }
        let lines = wrap(&node.label, main_chars);
        let h = lines.len() as f64 * LINE + 2.0 * PAD;
        placed[i] = Some(Placed {
            x: MAIN_X,
            y,
            w: MAIN_W,
            h,
            lines,
        });
        y += h + GAP_Y;
    }
    let mut side_y = TOP;
    for (i, node) in flow.nodes.iter().enumerate() {
        if !flow.is_side(i) {
            continue;
        }
        // Beside the first node that fails into it.
        let first = flow
            .edges
            .iter()
            .filter(|e| e.to == i)
            .filter_map(|e| placed[e.from].as_ref().map(|p| p.y))
            .fold(f64::INFINITY, f64::min);
        let lines = wrap(&node.label, side_chars);
        let h = lines.len() as f64 * LINE + 2.0 * PAD;
        let top = if first.is_finite() { first } else { TOP }.max(side_y);
        placed[i] = Some(Placed {
            x: side_x(),
            y: top,
            w: SIDE_W,
            h,
            lines,
        });
        side_y = top + h + GAP_Y;
    }
    let height = placed
        .iter()
        .flatten()
        .map(|p| p.y + p.h)
        .fold(0.0, f64::max)
        + TOP;
    let width = side_x() + SIDE_W + 16.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"flow\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-labelledby=\"flow-{id}-title\">\n<title id=\"flow-{id}-title\">Workflow {name}: steps, conditions, confirmations and failure paths</title>\n",
        id = xml(&flow.workflow),
        name = xml(&flow.workflow),
    );
    // Ids are per workflow: a page holds many drawings, and ids must be unique in it.
    let arrow = format!("flow-{}-arrow", xml(&flow.workflow));
    let arrow_fail = format!("flow-{}-fail", xml(&flow.workflow));
    out.push_str(&format!("<defs><marker id=\"{arrow}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#4a5568\"/></marker><marker id=\"{arrow_fail}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#b03a2e\"/></marker></defs>\n"));
    let side_order: Vec<usize> = (0..flow.nodes.len()).filter(|&i| flow.is_side(i)).collect();
    let mut skip_lane = 0;
    let mut from_count = vec![0usize; flow.nodes.len()];
    for edge in &flow.edges {
        let (Some(a), Some(b)) = (&placed[edge.from], &placed[edge.to]) else {
            continue;
        };
        let next_main = (edge.from + 1..flow.nodes.len()).find(|&j| !flow.is_side(j));
        let (path, label_at) = if flow.is_side(edge.to) {
            let k = side_order.iter().position(|&s| s == edge.to).unwrap_or(0) as f64;
            let n = from_count[edge.from] as f64;
            from_count[edge.from] += 1;
            let sy = (a.y + 10.0 + n * 12.0).min(a.y + a.h - 4.0);
            let lane = side_x() - 14.0 - k * 10.0;
            let ty = b.y + 12.0 + k.min(3.0) * 2.0;
            (
                format!("M{},{sy} H{lane} V{ty} H{}", a.x + a.w, b.x),
                Some((a.x + a.w + 4.0, sy - 3.0, "start")),
            )
        } else if Some(edge.to) == next_main {
            let x = a.x + a.w / 2.0;
            (
                format!("M{x},{} V{}", a.y + a.h, b.y),
                Some((x + 6.0, a.y + a.h + 14.0, "start")),
            )
        } else {
            // Around a skipped step, down the left margin.
            let lane = MAIN_X - 14.0 - (skip_lane % 3) as f64 * 10.0;
            skip_lane += 1;
            (
                format!("M{},{} H{lane} V{} H{}", a.x, a.cy(), b.cy(), b.x),
                None,
            )
        };
        let (class, marker) = match edge.kind {
            EdgeKind::Next => ("edge", &arrow),
            EdgeKind::Skip => ("edge skip", &arrow),
            EdgeKind::Failure => ("edge failure", &arrow_fail),
        };
        if edge.label.is_empty() {
            out.push_str(&format!(
                "<path class=\"{class}\" d=\"{path}\" marker-end=\"url(#{marker})\"/>\n"
            ));
        } else {
            out.push_str(&format!(
                "<path class=\"{class}\" d=\"{path}\" marker-end=\"url(#{marker})\"><title>{}</title></path>\n",
                xml(&edge.label)
            ));
        }
        if let (Some((x, y, anchor)), false) = (label_at, edge.label.is_empty()) {
            out.push_str(&format!(
                "<text class=\"edge-label\" x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\">{}</text>\n",
                xml(&edge.label)
            ));
        }
    }
    for (i, node) in flow.nodes.iter().enumerate() {
        let Some(p) = &placed[i] else { continue };
        let shape = match node.shape {
            Shape::Terminal => "terminal",
            Shape::Step => "step",
            Shape::Condition => "condition",
            Shape::Gate => "gate",
            Shape::Handler => "handler",
            Shape::Stop => "stop",
        };
        let skipped = if node.skipped { " skipped" } else { "" };
        out.push_str(&format!("<g class=\"node {shape}{skipped}\">"));
        let (x, y, w, h) = (p.x, p.y, p.w, p.h);
        match node.shape {
            Shape::Condition => out.push_str(&format!(
                "<polygon points=\"{},{y} {},{y} {},{} {},{} {},{} {x},{}\"/>",
                x + 12.0,
                x + w - 12.0,
                x + w,
                y + h / 2.0,
                x + w - 12.0,
                y + h,
                x + 12.0,
                y + h,
                y + h / 2.0
            )),
            Shape::Terminal | Shape::Stop => out.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"{}\"/>",
                h / 2.0
            )),
            Shape::Handler => out.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\"/><line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{}\"/><line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{}\"/>",
                x + 6.0, x + 6.0, y + h, x + w - 6.0, x + w - 6.0, y + h
            )),
            Shape::Step | Shape::Gate => out.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"4\"/>"
            )),
        }
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">",
            x + w / 2.0,
            y + PAD + 11.0
        ));
        for (n, line) in p.lines.iter().enumerate() {
            if n == 0 {
                out.push_str(&format!(
                    "<tspan x=\"{}\">{}</tspan>",
                    x + w / 2.0,
                    xml(line)
                ));
            } else {
                out.push_str(&format!(
                    "<tspan x=\"{}\" dy=\"{LINE}\">{}</tspan>",
                    x + w / 2.0,
                    xml(line)
                ));
            }
        }
        out.push_str("</text></g>\n");
    }
    out.push_str("</svg>");
    out
}
