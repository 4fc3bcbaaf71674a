//! A YAML tree that remembers where every node came from.
//!
//! serde_yaml drops positions, and a learner needs the line to change, so
//! the lab file is read with yaml-rust2's event parser into this small tree
//! instead. Only the shape of the data is kept; what a scalar means (integer,
//! string, ...) is decided by the decoder that knows what it expects.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::types::Pos;

/// Deeper than any manifest needs; the limit keeps recursive code that walks
/// the tree (decoding, JSON conversion, drop) far from the stack's end.
const MAX_DEPTH: usize = 100;

/// Aliases copy subtrees, so a few lines can expand to billions of nodes
/// ("billion laughs"); a lab file never legitimately comes near this.
const MAX_NODES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An absent value (`key:`), `~` or `null`.
    Null,
    /// The text as written; `quoted` when it can only be a string (quoted,
    /// a block scalar, or tagged `!!str`), so `"80"` is not the integer 80.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys in file order; duplicates were rejected while reading.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// What a plain scalar means under the YAML 1.2 core schema, which is what
/// Kubernetes (sigs.k8s.io/yaml) and serde_yaml apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    /// Looks like an integer but does not fit in 64 bits.
    BigInt,
    Float(f64),
    Str,
}

pub fn resolve_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return i64::from_str_radix(hex, 16).map_or(Plain::BigInt, Plain::Int);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return i64::from_str_radix(oct, 8).map_or(Plain::BigInt, Plain::Int);
        }
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map_or(Plain::BigInt, Plain::Int);
    }
    if is_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Plain::Float(f);
        }
    }
    Plain::Str
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, sign already removed.
fn is_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let d = e.strip_prefix(['-', '+']).unwrap_or(e);
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
        }
    };
    mantissa_ok && exp_ok
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub pos: Pos,
    /// Dotted path where known (duplicate keys), else `yaml`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// yaml-rust2 marks lines from 1 and columns from 0.
fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line().max(1),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
        size: usize,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        size: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    /// Anchor id to the node and its size in nodes, for aliases.
    anchors: HashMap<usize, (Node, usize)>,
    docs: Vec<Node>,
    /// The finished root of the current document.
    root: Option<Node>,
    nodes: usize,
    errors: Vec<YamlError>,
}

impl Builder {
    /// Dotted path of the innermost mapping (the one taking a new key).
    fn path(&self) -> String {
        let mut out = String::new();
        let outer = self.stack.len().saturating_sub(1);
        for frame in &self.stack[..outer] {
            match frame {
                Frame::Seq { items, .. } => out.push_str(&format!("[{}]", items.len())),
                Frame::Map { key, .. } => {
                    let k = match key.as_ref().map(|k| &k.value) {
                        Some(Value::Scalar { text, .. }) => text.clone(),
                        _ => "?".into(),
                    };
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&k);
                }
            }
        }
        out
    }

    /// Attach a finished node to its parent, or make it the document's root.
    fn push(&mut self, node: Node, size: usize) {
        let dup = match self.stack.last() {
            Some(Frame::Map {
                key: None, entries, ..
            }) => {
                let first = entries.iter().find(|(k, _)| same_key(k, &node));
                first.map(|(k, _)| k.pos)
            }
            _ => None,
        };
        if let Some(first) = dup {
            let name = key_text(&node);
            let mut path = self.path();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&name);
            self.errors.push(YamlError {
                pos: node.pos,
                field: path,
                message: format!("duplicate key `{name}` (first at line {})", first.line),
                hint: Some("remove one of them; YAML would silently keep only the last".into()),
            });
        }
        match self.stack.last_mut() {
            Some(Frame::Seq { items, size: s, .. }) => {
                items.push(node);
                *s += size;
            }
            Some(Frame::Map {
                entries,
                key,
                size: s,
                pos: map_pos,
                ..
            }) => {
                *s += size;
                match key.take() {
                    None => {
                        // A block mapping's start mark lies after its first
                        // key; the first key is where the mapping begins.
                        if entries.is_empty() && before(node.pos, *map_pos) {
                            *map_pos = node.pos;
                        }
                        *key = Some(node);
                    }
                    Some(k) => entries.push((k, node)),
                }
            }
            None => self.root = Some(node),
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
    }

    fn count(&mut self, n: usize, at: Pos) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.errors.push(YamlError {
                pos: at,
                field: "yaml".into(),
                message: format!("the file expands to more than {MAX_NODES} values"),
                hint: Some("aliases (`*name`) copy what they refer to; use fewer of them".into()),
            });
            return false;
        }
        true
    }

    /// Returns false to stop reading.
    fn event(&mut self, ev: Event, mark: Marker) -> bool {
        let at = pos(&mark);
        match ev {
            Event::DocumentStart => {
                self.stack.clear();
                self.root = None;
            }
            Event::DocumentEnd => {
                if let Some(root) = self.root.take() {
                    // An empty document (`---` twice, or only comments) is
                    // not a mistake worth reporting.
                    if root.value != Value::Null {
                        self.docs.push(root);
                    }
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if !self.count(1, at) {
                    return false;
                }
                let tagged_str = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str");
                let quoted = tagged_str || !matches!(style, TScalarStyle::Plain);
                let value = if !quoted && resolve_plain(&text) == Plain::Null {
                    Value::Null
                } else {
                    Value::Scalar { text, quoted }
                };
                let node = Node { value, pos: at };
                self.remember(anchor, &node, 1);
                self.push(node, 1);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some((mut node, size)) => {
                    if !self.count(size, at) {
                        return false;
                    }
                    node.pos = at;
                    self.push(node, size);
                }
                None => {
                    self.errors.push(YamlError {
                        pos: at,
                        field: "yaml".into(),
                        message: "alias refers to an unknown anchor".into(),
                        hint: None,
                    });
                    return false;
                }
            },
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.errors.push(YamlError {
                        pos: at,
                        field: "yaml".into(),
                        message: format!("nested deeper than {MAX_DEPTH} levels"),
                        hint: None,
                    });
                    return false;
                }
                if !self.count(1, at) {
                    return false;
                }
                self.stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pos: at,
                        anchor,
                        items: Vec::new(),
                        size: 1,
                    }
                } else {
                    Frame::Map {
                        pos: at,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        size: 1,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, size) = match self.stack.pop() {
                    Some(Frame::Seq {
                        pos,
                        anchor,
                        items,
                        size,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                        size,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        size,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            pos,
                        },
                        anchor,
                        size,
                    ),
                    None => return true,
                };
                self.remember(anchor, &node, size);
                self.push(node, size);
            }
            Event::StreamEnd => return false,
            Event::Nothing | Event::StreamStart => {}
        }
        true
    }
}

fn before(a: Pos, b: Pos) -> bool {
    (a.line, a.col) < (b.line, b.col)
}

fn key_text(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => text.clone(),
        Value::Null => "null".into(),
        Value::Seq(_) => "[...]".into(),
        Value::Map(_) => "{...}".into(),
    }
}

fn same_key(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Scalar { text: x, .. }, Value::Scalar { text: y, .. }) => x == y,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// Read every document of a YAML stream. Empty documents are skipped.
///
/// On a syntax error the documents read so far are dropped: a half-read
/// file would only produce confusing follow-up errors.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, Vec<YamlError>> {
    // yaml-rust2 has `unreachable!`/`assert!` paths of its own; no input
    // must crash podlab, so a panic in it becomes an error like any other.
    let outcome = std::panic::catch_unwind(|| read(text));
    match outcome {
        Ok(result) => result,
        Err(_) => Err(vec![YamlError {
            pos: Pos { line: 1, col: 1 },
            field: "yaml".into(),
            message: "the YAML parser failed on this file".into(),
            hint: None,
        }]),
    }
}

fn read(text: &str) -> Result<Vec<Node>, Vec<YamlError>> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        root: None,
        nodes: 0,
        errors: Vec::new(),
    };
    // Driving the parser event by event (rather than `Parser::load`, which
    // recurses per nesting level) keeps deep input off the stack.
    loop {
        match parser.next_token() {
            Ok((ev, mark)) => {
                if !b.event(ev, mark) {
                    break;
                }
            }
            Err(e) => {
                b.errors.push(YamlError {
                    pos: pos(e.marker()),
                    field: "yaml".into(),
                    message: format!("invalid YAML: {}", e.info()),
                    hint: None,
                });
                break;
            }
        }
    }
    if b.errors.is_empty() {
        Ok(b.docs)
    } else {
        Err(b.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }

    #[test]
    fn positions_are_one_based() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - {c: 'd'}\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        assert_eq!(docs[0].pos, p(1, 1));
        assert_eq!(entries[0].0.pos, p(1, 1));
        assert_eq!(entries[0].1.pos, p(1, 4));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos, p(3, 5));
        assert_eq!(items[1].pos, p(4, 5));
        let Value::Map(inner) = &items[1].value else {
            panic!("not a map")
        };
        assert_eq!(
            inner[0].1.value,
            Value::Scalar {
                text: "d".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("---\n---\n# only a comment\n---\na: 1\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].pos, p(5, 1));
    }

    #[test]
    fn aliases_resolve() {
        let docs = parse_documents("a: &x {k: v}\nb: *x\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].1.pos, p(2, 4));
        assert!(matches!(&entries[1].1.value, Value::Map(m) if m.len() == 1));
    }

    #[test]
    fn syntax_error_has_position() {
        let errs = parse_documents("a: [\n").unwrap_err();
        assert_eq!(errs[0].pos, p(2, 1));
        assert_eq!(errs[0].field, "yaml");
        assert!(
            errs[0].message.starts_with("invalid YAML: "),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let errs = parse_documents("metadata:\n  name: a\n  name: b\n").unwrap_err();
        assert_eq!(errs[0].pos, p(3, 3));
        assert_eq!(errs[0].field, "metadata.name");
        assert_eq!(errs[0].message, "duplicate key `name` (first at line 2)");
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let list = [prev.as_str(); 10].join(", ");
            s.push_str(&format!("a{i}: &a{i} [{list}]\n"));
        }
        let errs = parse_documents(&s).unwrap_err();
        assert!(errs[0].message.contains("expands to more than"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = "- ".repeat(5000) + "x\n";
        let errs = parse_documents(&s).unwrap_err();
        assert!(
            errs[0].message.contains("nested deeper"),
            "{}",
            errs[0].message
        );
        let s = "[".repeat(5000);
        assert!(parse_documents(&s).is_err());
    }

    #[test]
    fn plain_scalars_resolve() {
        assert_eq!(resolve_plain("80"), Plain::Int(80));
        assert_eq!(resolve_plain("-3"), Plain::Int(-3));
        assert_eq!(resolve_plain("0x1F"), Plain::Int(31));
        assert_eq!(resolve_plain("99999999999999999999"), Plain::BigInt);
        assert_eq!(resolve_plain("1.5"), Plain::Float(1.5));
        assert_eq!(resolve_plain("1e3"), Plain::Float(1000.0));
        assert_eq!(resolve_plain("true"), Plain::Bool(true));
        assert_eq!(resolve_plain("~"), Plain::Null);
        assert_eq!(resolve_plain("nginx"), Plain::Str);
        assert_eq!(resolve_plain("1.2.3"), Plain::Str);
        assert_eq!(resolve_plain("."), Plain::Str);
        assert_eq!(resolve_plain("30000-32767"), Plain::Str);
        assert_eq!(resolve_plain("10.244.0.0/16"), Plain::Str);
    }
}
