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

/// What one value of the tree counts for in the budget below, beyond the
/// bytes of its text: roughly what a `Node` and its slot in a sequence or
/// mapping take in memory.
pub const VALUE_COST: usize = 64;

/// The tree's budget is this many times the text it is read from...
pub const BUDGET_PER_BYTE: usize = 64;
/// ...but at least this (so that a small file may use aliases freely)...
pub const MIN_BUDGET: usize = 1 << 20;
/// ...and at most this, whatever the file.
pub const MAX_BUDGET: usize = 32 << 20;

/// Aliases copy subtrees, so a few lines can expand to billions of values
/// ("billion laughs"), and one alias of a long string copies the string. So
/// what the tree holds is counted in bytes as it is built (every value,
/// every alias's copy, every anchor's saved copy) against a budget
/// proportional to the input; a lab file never legitimately comes near it.
pub fn budget(input_len: usize) -> usize {
    input_len
        .saturating_mul(BUDGET_PER_BYTE)
        .clamp(MIN_BUDGET, MAX_BUDGET)
}

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
        /// Keys seen so far, to their position: duplicates are found in
        /// constant time per key, so a mapping of many keys stays linear.
        seen: HashMap<KeyId, Pos>,
        size: usize,
    },
}

/// What makes two keys the same: the same scalar text, or both null.
/// Collection keys are never compared (no lab field has one).
#[derive(Debug, PartialEq, Eq, Hash)]
enum KeyId {
    Null,
    Text(String),
}

fn key_id(node: &Node) -> Option<KeyId> {
    match &node.value {
        Value::Scalar { text, .. } => Some(KeyId::Text(text.clone())),
        Value::Null => Some(KeyId::Null),
        _ => None,
    }
}

struct Builder {
    stack: Vec<Frame>,
    /// Anchor id to the node and its cost in bytes, for aliases.
    anchors: HashMap<usize, (Node, usize)>,
    docs: Vec<Node>,
    /// The finished root of the current document.
    root: Option<Node>,
    /// Bytes the tree holds so far, and what it may hold.
    used: usize,
    budget: usize,
    input_len: usize,
    /// Whether an alias was expanded (or an anchor kept), for the message.
    aliased: bool,
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
        let dup = match self.stack.last_mut() {
            Some(Frame::Map {
                key: None, seen, ..
            }) => key_id(&node).and_then(|id| match seen.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(node.pos);
                    None
                }
            }),
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

    /// Keep a copy of an anchored node for its aliases. The copy is memory
    /// like any other, so it counts too (nested anchors copy nested trees).
    fn remember(&mut self, anchor: usize, node: &Node, size: usize, at: Pos) -> bool {
        if anchor > 0 {
            self.aliased = true;
            if !self.count(size, at) {
                return false;
            }
            self.anchors.insert(anchor, (node.clone(), size));
        }
        true
    }

    fn count(&mut self, bytes: usize, at: Pos) -> bool {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.budget {
            let limit = format!(
                "a file's values may take {BUDGET_PER_BYTE} times its size, at least {}, at most {}, each value counting {VALUE_COST} bytes plus its text",
                human_bytes(MIN_BUDGET),
                human_bytes(MAX_BUDGET)
            );
            let (message, hint) = if self.aliased {
                (
                    format!(
                        "aliases expand this file beyond {}, the limit for a file of {}",
                        human_bytes(self.budget),
                        human_bytes(self.input_len)
                    ),
                    format!(
                        "aliases (`*name`) copy what they refer to; use fewer of them ({limit})"
                    ),
                )
            } else {
                (
                    format!(
                        "this file's values take more than {}, the limit for a file of {}",
                        human_bytes(self.budget),
                        human_bytes(self.input_len)
                    ),
                    format!("split the lab into smaller files ({limit})"),
                )
            };
            self.errors.push(YamlError {
                pos: at,
                field: "yaml".into(),
                message,
                hint: Some(hint),
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
                let size = VALUE_COST + text.len();
                if !self.count(size, at) {
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
                if !self.remember(anchor, &node, size, at) {
                    return false;
                }
                self.push(node, size);
            }
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, size)| *size) {
                Some(size) => {
                    self.aliased = true;
                    // Counted before the copy is made, so that a copy over
                    // budget is never made.
                    if !self.count(size, at) {
                        return false;
                    }
                    let Some((node, _)) = self.anchors.get(&id) else {
                        return false;
                    };
                    let mut node = node.clone();
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
                if !self.count(VALUE_COST, at) {
                    return false;
                }
                self.stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pos: at,
                        anchor,
                        items: Vec::new(),
                        size: VALUE_COST,
                    }
                } else {
                    Frame::Map {
                        pos: at,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                        size: VALUE_COST,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, size) = match self.stack.pop() {
                    // A collection's vector may have twice the room it
                    // needs; trimmed, memory stays near what was counted.
                    Some(Frame::Seq {
                        pos,
                        anchor,
                        mut items,
                        size,
                    }) => (
                        Node {
                            value: Value::Seq({
                                items.shrink_to_fit();
                                items
                            }),
                            pos,
                        },
                        anchor,
                        size,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        mut entries,
                        size,
                        ..
                    }) => (
                        Node {
                            value: Value::Map({
                                entries.shrink_to_fit();
                                entries
                            }),
                            pos,
                        },
                        anchor,
                        size,
                    ),
                    None => return true,
                };
                if !self.remember(anchor, &node, size, at) {
                    return false;
                }
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

/// `812 bytes`, `1.5 KiB`, `32.0 MiB`.
pub fn human_bytes(n: usize) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n} bytes")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / KIB / KIB)
    }
}

/// Read every document of a YAML stream. Empty documents are skipped.
///
/// On a syntax error the documents read so far are dropped: a half-read
/// file would only produce confusing follow-up errors.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, Vec<YamlError>> {
    // A byte order mark is not content; yaml-rust2 would read it as part of
    // the first key. It takes no column in an editor, so positions count
    // from the character after it.
    // yaml-rust2 has `unreachable!`/`assert!` paths of its own; no input
    // must crash podlab, so a panic in it becomes an error like any other.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let outcome = std::panic::catch_unwind(|| read(text, budget(text.len())));
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

fn read(text: &str, budget: usize) -> Result<Vec<Node>, Vec<YamlError>> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        root: None,
        used: 0,
        budget,
        input_len: text.len(),
        aliased: false,
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
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "yaml");
        assert!(
            errs[0]
                .message
                .starts_with("aliases expand this file beyond 1.0 MiB, the limit for a file of "),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn values_without_aliases_count_too() {
        // 3 values of 1 byte and a sequence: 4 * 64 + 3 bytes.
        assert!(read("[a, b, c]", 4 * VALUE_COST + 3).is_ok());
        let errs = read("[a, b, c]", 4 * VALUE_COST + 2).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pos, p(1, 8));
        assert!(
            errs[0]
                .message
                .starts_with("this file's values take more than 258 bytes"),
            "{}",
            errs[0].message
        );
        // An anchor keeps a copy, which counts like the original.
        assert!(read("&x [a]", 2 * (2 * VALUE_COST + 1)).is_ok());
        assert!(read("&x [a]", 2 * (2 * VALUE_COST + 1) - 1).is_err());
        assert_eq!(budget(10), MIN_BUDGET);
        assert_eq!(budget(100 << 10), 100 << 10 << 6);
        assert_eq!(budget(usize::MAX), MAX_BUDGET);
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
