//! The difference between two nftables rulesets, as one transaction that
//! turns the first into the second.
//!
//! Reloading a table whole costs seconds with thousands of services and
//! resets every counter in it (`get netpol` shows them). A change of one
//! service touches a few chains and map elements: `diff` finds those, so
//! that `kernel::rules` loads only them.
//!
//! Both sides are read as `nft` would execute them (add, delete, flush of
//! tables, chains, rules, sets, maps, elements, counters), so the builders'
//! "add table; delete table; add table; ..." batches are followed as the
//! tables they leave behind. Each table is indexed by chain (definition and
//! ordered rules), set and map (definition and elements) and named counter.
//! The transaction:
//!
//! 1. adds new chains (empty), then new sets, maps (with elements) and
//!    counters, so everything a rule or an element names exists;
//! 2. flushes each changed chain and adds its rules again, and adds the
//!    rules of new chains;
//! 3. deletes and adds the elements that changed in sets and maps (a key
//!    whose value changed is deleted and added: `add` of an existing key
//!    with another value fails);
//! 4. flushes removed chains, then deletes them, then removed sets, maps
//!    and counters (every rule and element naming them is gone by then).
//!
//! A table that appears is added whole, one that disappears is deleted.
//! What cannot be changed in place (a base chain's hook, type, priority or
//! policy; a set's or map's type, flags, timeout or comment) or what this
//! module does not follow gives `Diff::Replace`: the caller reloads the
//! namespace whole, as before.
//!
//! Pure: no I/O. The transaction is only as right as the old ruleset is
//! true of the kernel; `probes` names what to read back to check that.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use nftables::expr::Expression;
use nftables::schema::{
    Chain, Counter, Element, FlushObject, Map, NfCmd, NfListObject, NfObject, Nftables, Rule, Set,
    Table,
};
use nftables::types::NfFamily;

type Expr = Expression<'static>;

/// What it takes to turn one ruleset into another.
#[derive(Debug, Clone, PartialEq)]
pub enum Diff {
    /// Nothing to do.
    Same,
    /// One transaction (`kubeproxy::to_json` it, as the whole rulesets).
    Changes(Nftables<'static>),
    /// Not expressible as changes: reload whole. Says why.
    Replace(String),
}

/// The transaction turning `old` into `new`.
pub fn diff(old: &Nftables<'static>, new: &Nftables<'static>) -> Diff {
    let old = match Ruleset::follow(old) {
        Ok(r) => r,
        Err(e) => return Diff::Replace(format!("the old ruleset: {e}")),
    };
    let new = match Ruleset::follow(new) {
        Ok(r) => r,
        Err(e) => return Diff::Replace(format!("the new ruleset: {e}")),
    };
    match changes(&old, &new) {
        Ok(cmds) if cmds.is_empty() => Diff::Same,
        Ok(cmds) => Diff::Changes(Nftables {
            objects: Cow::Owned(cmds),
        }),
        Err(why) => Diff::Replace(why),
    }
}

// ---- following a ruleset ----
//
// The index borrows the rulesets' objects: with 10,000 services a node's
// ruleset has 30,000 objects, and copying them cost more than comparing.

/// FNV-1a: the index hashes tens of thousands of short names per diff,
/// which SipHash (made to resist chosen keys, a concern this data does not
/// have) makes a tenth of the work.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<Fnv>>;

/// A chain's definition; equal when it would make the same chain.
#[derive(Debug, Clone, Copy)]
struct ChainDef<'a>(&'a Chain<'static>);

impl PartialEq for ChainDef<'_> {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (self.0, o.0);
        a.family == b.family
            && a.table == b.table
            && a.name == b.name
            && a._type == b._type
            && a.hook == b.hook
            && a.prio == b.prio
            && a.dev == b.dev
            && a.policy == b.policy
    }
}

/// A rule in its chain; equal when it does the same (not by handle).
#[derive(Debug, Clone, Copy)]
struct RuleRef<'a>(&'a Rule<'static>);

impl PartialEq for RuleRef<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.0.expr == o.0.expr && self.0.comment == o.0.comment
    }
}

/// A set's or a map's definition, its elements aside.
#[derive(Debug, Clone, Copy)]
enum SetDef<'a> {
    Set(&'a Set<'static>),
    Map(&'a Map<'static>),
}

impl PartialEq for SetDef<'_> {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (SetDef::Set(a), SetDef::Set(b)) => {
                a.family == b.family
                    && a.table == b.table
                    && a.name == b.name
                    && a.set_type == b.set_type
                    && a.policy == b.policy
                    && a.flags == b.flags
                    && a.timeout == b.timeout
                    && a.gc_interval == b.gc_interval
                    && a.size == b.size
                    && a.comment == b.comment
            }
            (SetDef::Map(a), SetDef::Map(b)) => {
                a.family == b.family
                    && a.table == b.table
                    && a.name == b.name
                    && a.set_type == b.set_type
                    && a.map == b.map
                    && a.policy == b.policy
                    && a.flags == b.flags
                    && a.timeout == b.timeout
                    && a.gc_interval == b.gc_interval
                    && a.size == b.size
                    && a.comment == b.comment
            }
            _ => false,
        }
    }
}

impl SetDef<'_> {
    fn is_map(&self) -> bool {
        matches!(self, SetDef::Map(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Elem<'a> {
    /// What identifies it (for a map, the key alone).
    key: &'a Expr,
    /// As added (for a map, `[key, value]`).
    whole: &'a Expr,
}

#[derive(Debug, Clone, PartialEq)]
struct SetState<'a> {
    def: SetDef<'a>,
    /// By `key_text`: expressions are neither `Hash` nor `Ord`.
    elems: HashMap<String, Elem<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
struct ChainState<'a> {
    def: ChainDef<'a>,
    rules: Vec<RuleRef<'a>>,
}

/// A named counter; its values are the kernel's, not the ruleset's.
#[derive(Debug, Clone, Copy)]
struct CounterRef<'a>(&'a Counter<'static>);

impl PartialEq for CounterRef<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.0.family == o.0.family && self.0.table == o.0.table && self.0.name == o.0.name
    }
}

#[derive(Debug, Clone, PartialEq)]
struct TableState<'a> {
    family: NfFamily,
    name: &'a str,
    // Hashed, not ordered: thousands of chain names share long prefixes.
    // What is emitted is sorted (`sorted`), so a diff is deterministic.
    chains: HashMap<&'a str, ChainState<'a>>,
    /// Sets and maps share one namespace in a table.
    sets: HashMap<&'a str, SetState<'a>>,
    counters: HashMap<&'a str, CounterRef<'a>>,
}

impl<'a> TableState<'a> {
    fn new(family: NfFamily, name: &'a str) -> Self {
        TableState {
            family,
            name,
            chains: HashMap::default(),
            sets: HashMap::default(),
            counters: HashMap::default(),
        }
    }

    fn chain(&mut self, name: &str) -> Result<&mut ChainState<'a>, String> {
        let table = self.name;
        self.chains
            .get_mut(name)
            .ok_or_else(|| format!("chain {name} is not in table {table}"))
    }

    fn set(&mut self, name: &str) -> Result<&mut SetState<'a>, String> {
        let table = self.name;
        self.sets
            .get_mut(name)
            .ok_or_else(|| format!("set or map {name} is not in table {table}"))
    }
}

/// The tables a ruleset leaves behind, in the order they first appear.
#[derive(Debug, Clone, Default, PartialEq)]
struct Ruleset<'a> {
    tables: Vec<TableState<'a>>,
}

/// A text that identifies an element's key. The keys podlab makes
/// (addresses, protocols, ports and their concatenations) are written
/// directly, behind a mark JSON never starts with; anything else as JSON.
fn key_text(e: &Expr) -> String {
    let mut s = String::from("\u{1}");
    if simple_key(e, &mut s) {
        return s;
    }
    serde_json::to_string(e).unwrap_or_default()
}

fn simple_key(e: &Expr, out: &mut String) -> bool {
    use std::fmt::Write;
    const SEP: char = '\u{1f}';
    match e {
        Expression::String(x) if !x.contains(SEP) => {
            out.push('s');
            out.push_str(x);
        }
        Expression::Number(n) => {
            let _ = write!(out, "n{n}");
        }
        Expression::Named(nftables::expr::NamedExpression::Concat(v)) => {
            out.push('(');
            for x in v {
                if !simple_key(x, out) {
                    return false;
                }
            }
            out.push(')');
        }
        _ => return false,
    }
    out.push(SEP);
    true
}

/// A map's entries by key, for output in a stable order.
fn sorted<'m, K: Ord + 'm, V: 'm>(
    m: impl IntoIterator<Item = (&'m K, &'m V)>,
) -> Vec<(&'m K, &'m V)> {
    let mut v: Vec<(&K, &V)> = m.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn elem_of(is_map: bool, e: &Expr) -> (String, Elem<'_>) {
    let key = match e {
        Expression::List(kv) if is_map && kv.len() == 2 => &kv[0],
        other => other,
    };
    (key_text(key), Elem { key, whole: e })
}

fn cmd_word(cmd: &NfCmd) -> &'static str {
    match cmd {
        NfCmd::Add(_) => "add",
        NfCmd::Replace(_) => "replace",
        NfCmd::Create(_) => "create",
        NfCmd::Insert(_) => "insert",
        NfCmd::Delete(_) => "delete",
        NfCmd::List(_) => "list",
        NfCmd::Reset(_) => "reset",
        NfCmd::Flush(_) => "flush",
        NfCmd::Rename(_) => "rename",
    }
}

fn kind_word(o: &NfListObject) -> &'static str {
    match o {
        NfListObject::Table(_) => "table",
        NfListObject::Chain(_) => "chain",
        NfListObject::Rule(_) => "rule",
        NfListObject::Set(_) => "set",
        NfListObject::Map(_) => "map",
        NfListObject::Element(_) => "element",
        NfListObject::FlowTable(_) => "flowtable",
        NfListObject::Counter(_) => "counter",
        NfListObject::Quota(_) => "quota",
        NfListObject::CTHelper(_) => "ct helper",
        NfListObject::Limit(_) => "limit",
        NfListObject::MetainfoObject(_) => "metainfo",
        NfListObject::CTTimeout(_) => "ct timeout",
        NfListObject::CTExpectation(_) => "ct expectation",
        NfListObject::SynProxy(_) => "synproxy",
    }
}

impl<'a> Ruleset<'a> {
    /// Execute `n` as `nft` would, on an empty ruleset. Fails on what nft
    /// would refuse (a rule in a missing chain) and on what is not followed
    /// (rules placed by position, objects podlab never makes).
    fn follow(n: &'a Nftables<'static>) -> Result<Ruleset<'a>, String> {
        let mut r = Ruleset::default();
        for o in n.objects.iter() {
            match o {
                // `nft -j list` output, or input without commands: adds.
                NfObject::ListObject(obj) => r.add(obj)?,
                NfObject::CmdObject(NfCmd::Add(obj) | NfCmd::Create(obj)) => r.add(obj)?,
                NfObject::CmdObject(NfCmd::Delete(obj)) => r.delete(obj)?,
                NfObject::CmdObject(NfCmd::Flush(f)) => r.flush(f)?,
                NfObject::CmdObject(cmd) => {
                    return Err(format!("`{}` commands are not followed", cmd_word(cmd)))
                }
            }
        }
        Ok(r)
    }

    fn table(&mut self, family: NfFamily, name: &str) -> Result<&mut TableState<'a>, String> {
        self.tables
            .iter_mut()
            .find(|t| t.family == family && t.name == name)
            .ok_or_else(|| format!("table {name} does not exist"))
    }

    fn find(&self, family: NfFamily, name: &str) -> Option<&TableState<'a>> {
        self.tables
            .iter()
            .find(|t| t.family == family && t.name == name)
    }

    fn add(&mut self, obj: &'a NfListObject<'static>) -> Result<(), String> {
        match obj {
            NfListObject::MetainfoObject(_) => {}
            NfListObject::Table(t) => {
                if self.find(t.family, &t.name).is_none() {
                    self.tables.push(TableState::new(t.family, &t.name));
                }
            }
            NfListObject::Chain(c) => {
                let t = self.table(c.family, &c.table)?;
                match t.chains.get(c.name.as_ref()) {
                    Some(old) if old.def != ChainDef(c) => {
                        return Err(format!("chain {} is declared twice, differently", c.name))
                    }
                    Some(_) => {}
                    None => {
                        t.chains.insert(
                            &c.name,
                            ChainState {
                                def: ChainDef(c),
                                rules: Vec::new(),
                            },
                        );
                    }
                }
            }
            NfListObject::Rule(r) => {
                if r.index.is_some() {
                    return Err(format!("a rule placed by position in chain {}", r.chain));
                }
                self.table(r.family, &r.table)?
                    .chain(&r.chain)?
                    .rules
                    .push(RuleRef(r));
            }
            NfListObject::Set(s) => self.add_set(
                s.family,
                &s.table,
                &s.name,
                SetDef::Set(s),
                s.elem.as_deref(),
            )?,
            NfListObject::Map(m) => self.add_set(
                m.family,
                &m.table,
                &m.name,
                SetDef::Map(m),
                m.elem.as_deref(),
            )?,
            NfListObject::Element(e) => {
                let set = self.table(e.family, &e.table)?.set(&e.name)?;
                let is_map = set.def.is_map();
                for x in e.elem.iter() {
                    let (k, v) = elem_of(is_map, x);
                    set.elems.insert(k, v);
                }
            }
            NfListObject::Counter(c) => {
                let t = self.table(c.family, &c.table)?;
                t.counters.entry(&c.name).or_insert(CounterRef(c));
            }
            other => return Err(format!("{} objects are not followed", kind_word(other))),
        }
        Ok(())
    }

    fn add_set(
        &mut self,
        family: NfFamily,
        table: &str,
        name: &'a str,
        def: SetDef<'a>,
        elems: Option<&'a [Expr]>,
    ) -> Result<(), String> {
        let t = self.table(family, table)?;
        let set = match t.sets.get_mut(name) {
            Some(s) if s.def != def => {
                return Err(format!("set or map {name} is declared twice, differently"))
            }
            Some(s) => s,
            None => t.sets.entry(name).or_insert(SetState {
                def,
                elems: HashMap::default(),
            }),
        };
        let is_map = set.def.is_map();
        for x in elems.into_iter().flatten() {
            let (k, v) = elem_of(is_map, x);
            set.elems.insert(k, v);
        }
        Ok(())
    }

    fn delete(&mut self, obj: &'a NfListObject<'static>) -> Result<(), String> {
        match obj {
            NfListObject::Table(t) => {
                let before = self.tables.len();
                self.tables
                    .retain(|x| !(x.family == t.family && x.name == t.name));
                if self.tables.len() == before {
                    return Err(format!("deletes table {}, which does not exist", t.name));
                }
            }
            NfListObject::Chain(c) => {
                let t = self.table(c.family, &c.table)?;
                if !t.chain(&c.name)?.rules.is_empty() {
                    return Err(format!("deletes chain {}, which still has rules", c.name));
                }
                t.chains.remove(c.name.as_ref());
            }
            NfListObject::Set(s) => {
                let t = self.table(s.family, &s.table)?;
                t.set(&s.name)?;
                t.sets.remove(s.name.as_ref());
            }
            NfListObject::Map(m) => {
                let t = self.table(m.family, &m.table)?;
                t.set(&m.name)?;
                t.sets.remove(m.name.as_ref());
            }
            NfListObject::Counter(c) => {
                let t = self.table(c.family, &c.table)?;
                if t.counters.remove(c.name.as_ref()).is_none() {
                    return Err(format!("deletes counter {}, which does not exist", c.name));
                }
            }
            NfListObject::Element(e) => {
                let set = self.table(e.family, &e.table)?.set(&e.name)?;
                let is_map = set.def.is_map();
                for x in e.elem.iter() {
                    let (k, _) = elem_of(is_map, x);
                    if set.elems.remove(&k).is_none() {
                        return Err(format!("deletes an element {k} missing from {}", e.name));
                    }
                }
            }
            other => return Err(format!("deleting {} is not followed", kind_word(other))),
        }
        Ok(())
    }

    fn flush(&mut self, f: &'a FlushObject<'static>) -> Result<(), String> {
        match f {
            FlushObject::Table(t) => {
                for c in self.table(t.family, &t.name)?.chains.values_mut() {
                    c.rules.clear();
                }
            }
            FlushObject::Chain(c) => self
                .table(c.family, &c.table)?
                .chain(&c.name)?
                .rules
                .clear(),
            FlushObject::Set(s) => self.table(s.family, &s.table)?.set(&s.name)?.elems.clear(),
            FlushObject::Map(m) => self.table(m.family, &m.table)?.set(&m.name)?.elems.clear(),
            _ => return Err("flushing anything but a table, chain, set or map".into()),
        }
        Ok(())
    }
}

// ---- the transaction ----

fn cmd(c: NfCmd<'static>) -> NfObject<'static> {
    NfObject::CmdObject(c)
}

fn table_obj(t: &TableState) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: t.family,
        name: Cow::Owned(t.name.to_string()),
        handle: None,
    })
}

/// A chain as added: its definition, no handle.
fn chain_obj(c: &ChainDef) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        handle: None,
        newname: None,
        ..c.0.clone()
    })
}

/// A chain named for flush or delete: only what identifies it.
fn chain_ref(c: &ChainDef) -> Chain<'static> {
    Chain {
        family: c.0.family,
        table: c.0.table.clone(),
        name: c.0.name.clone(),
        ..Chain::default()
    }
}

fn rule_obj(r: &RuleRef) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        handle: None,
        index: None,
        ..r.0.clone()
    })
}

fn counter_obj(c: &CounterRef) -> NfListObject<'static> {
    NfListObject::Counter(Counter {
        handle: None,
        packets: None,
        bytes: None,
        ..c.0.clone()
    })
}

fn set_obj(s: &SetState, elems: bool) -> NfListObject<'static> {
    let elem = || {
        let v: Vec<Expr> = sorted(&s.elems)
            .into_iter()
            .map(|(_, e)| e.whole.clone())
            .collect();
        (elems && !v.is_empty()).then_some(Cow::Owned(v))
    };
    match s.def {
        SetDef::Set(d) => NfListObject::Set(Box::new(Set {
            handle: None,
            elem: elem(),
            ..d.clone()
        })),
        SetDef::Map(d) => NfListObject::Map(Box::new(Map {
            handle: None,
            elem: elem(),
            ..d.clone()
        })),
    }
}

fn element(t: &TableState, name: &str, elem: Vec<Expr>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: t.family,
        table: Cow::Owned(t.name.to_string()),
        name: Cow::Owned(name.to_string()),
        elem: Cow::Owned(elem),
    })
}

fn changes(old: &Ruleset, new: &Ruleset) -> Result<Vec<NfObject<'static>>, String> {
    let mut out = Vec::new();
    for t in &old.tables {
        if new.find(t.family, t.name).is_none() {
            out.push(cmd(NfCmd::Delete(table_obj(t))));
        }
    }
    for t in &new.tables {
        match old.find(t.family, t.name) {
            None => whole_table(t, &mut out),
            Some(o) => table_changes(o, t, &mut out)?,
        }
    }
    Ok(out)
}

/// A table that did not exist: added as the builders add it (add, delete,
/// add: replaced whole even if the kernel has one by that name).
fn whole_table(t: &TableState, out: &mut Vec<NfObject<'static>>) {
    out.push(cmd(NfCmd::Add(table_obj(t))));
    out.push(cmd(NfCmd::Delete(table_obj(t))));
    out.push(cmd(NfCmd::Add(table_obj(t))));
    let chains = sorted(&t.chains);
    for (_, c) in &chains {
        out.push(cmd(NfCmd::Add(chain_obj(&c.def))));
    }
    for (_, s) in sorted(&t.sets) {
        out.push(cmd(NfCmd::Add(set_obj(s, true))));
    }
    for (_, c) in sorted(&t.counters) {
        out.push(cmd(NfCmd::Add(counter_obj(c))));
    }
    for (_, c) in &chains {
        for r in &c.rules {
            out.push(cmd(NfCmd::Add(rule_obj(r))));
        }
    }
}

fn table_changes(
    o: &TableState,
    n: &TableState,
    out: &mut Vec<NfObject<'static>>,
) -> Result<(), String> {
    for (name, nc) in &n.chains {
        if o.chains.get(name).is_some_and(|oc| oc.def != nc.def) {
            return Err(format!(
                "chain {name} of table {} changed its type, hook, priority or policy",
                n.name
            ));
        }
    }
    for (name, ns) in &n.sets {
        if o.sets.get(name).is_some_and(|os| os.def != ns.def) {
            return Err(format!(
                "set or map {name} of table {} changed its type, flags, timeout or comment",
                n.name
            ));
        }
    }
    // 1. What rules and elements will name.
    let new_chains = sorted(n.chains.iter().filter(|(k, _)| !o.chains.contains_key(*k)));
    for (_, nc) in &new_chains {
        out.push(cmd(NfCmd::Add(chain_obj(&nc.def))));
    }
    for (_, ns) in sorted(n.sets.iter().filter(|(k, _)| !o.sets.contains_key(*k))) {
        out.push(cmd(NfCmd::Add(set_obj(ns, true))));
    }
    for (_, c) in sorted(
        n.counters
            .iter()
            .filter(|(k, _)| !o.counters.contains_key(*k)),
    ) {
        out.push(cmd(NfCmd::Add(counter_obj(c))));
    }
    // 2. Rules: a changed chain is rewritten whole, in one transaction, so
    // no packet sees it half done.
    let changed = sorted(
        n.chains
            .iter()
            .filter(|(k, nc)| o.chains.get(*k).is_none_or(|oc| oc.rules != nc.rules)),
    );
    for (name, nc) in changed {
        if o.chains.get(name).is_some_and(|oc| !oc.rules.is_empty()) {
            out.push(cmd(NfCmd::Flush(FlushObject::Chain(chain_ref(&nc.def)))));
        }
        for r in &nc.rules {
            out.push(cmd(NfCmd::Add(rule_obj(r))));
        }
    }
    // 3. Elements of the sets and maps on both sides.
    for (name, ns) in sorted(&n.sets) {
        let Some(os) = o.sets.get(name) else { continue };
        let removed: Vec<Expr> = sorted(
            os.elems
                .iter()
                .filter(|(k, e)| ns.elems.get(*k).is_none_or(|n| n.whole != e.whole)),
        )
        .into_iter()
        .map(|(_, e)| e.key.clone())
        .collect();
        let added: Vec<Expr> = sorted(
            ns.elems
                .iter()
                .filter(|(k, e)| os.elems.get(*k).is_none_or(|o| o.whole != e.whole)),
        )
        .into_iter()
        .map(|(_, e)| e.whole.clone())
        .collect();
        if !removed.is_empty() {
            out.push(cmd(NfCmd::Delete(element(n, name, removed))));
        }
        if !added.is_empty() {
            out.push(cmd(NfCmd::Add(element(n, name, added))));
        }
    }
    // 4. What is gone, once nothing names it: a chain can only be deleted
    // empty and unreferenced, a set or counter unreferenced.
    let gone: Vec<&ChainState> =
        sorted(o.chains.iter().filter(|(k, _)| !n.chains.contains_key(*k)))
            .into_iter()
            .map(|(_, c)| c)
            .collect();
    for c in &gone {
        if !c.rules.is_empty() {
            out.push(cmd(NfCmd::Flush(FlushObject::Chain(chain_ref(&c.def)))));
        }
    }
    for c in &gone {
        out.push(cmd(NfCmd::Delete(NfListObject::Chain(chain_ref(&c.def)))));
    }
    for (_, os) in sorted(o.sets.iter().filter(|(k, _)| !n.sets.contains_key(*k))) {
        out.push(cmd(NfCmd::Delete(set_obj(os, false))));
    }
    for (_, c) in sorted(
        o.counters
            .iter()
            .filter(|(k, _)| !n.counters.contains_key(*k)),
    ) {
        out.push(cmd(NfCmd::Delete(counter_obj(c))));
    }
    Ok(())
}

// ---- what a transaction does, in words ----

/// What a transaction from `diff` changes, counted, for `podlab apply` and
/// the daemon's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub tables_added: usize,
    pub tables_removed: usize,
    pub chains_added: usize,
    /// Flushed and filled again.
    pub chains_rewritten: usize,
    pub chains_removed: usize,
    /// Sets and maps.
    pub sets_added: usize,
    pub sets_removed: usize,
    pub counters_added: usize,
    pub counters_removed: usize,
    pub elements_added: usize,
    pub elements_removed: usize,
    /// Rules added (to new and rewritten chains): not counted as objects.
    pub rules: usize,
}

impl Summary {
    /// Counts a transaction made by `diff`.
    pub fn of(changes: &Nftables) -> Summary {
        let mut s = Summary::default();
        let deleted: BTreeSet<(&str, &str)> = changes
            .objects
            .iter()
            .filter_map(|o| match o {
                NfObject::CmdObject(NfCmd::Delete(NfListObject::Chain(c))) => {
                    Some((c.table.as_ref(), c.name.as_ref()))
                }
                _ => None,
            })
            .collect();
        let same_table = |a: &Table, b: &Table| a.family == b.family && a.name == b.name;
        let objs = &changes.objects;
        for (i, o) in objs.iter().enumerate() {
            let NfObject::CmdObject(c) = o else { continue };
            let prev = i.checked_sub(1).and_then(|p| objs.get(p));
            match c {
                // A new table is "add, delete, add": counted at the delete.
                NfCmd::Add(NfListObject::Table(_)) => {}
                NfCmd::Delete(NfListObject::Table(t)) => match prev {
                    Some(NfObject::CmdObject(NfCmd::Add(NfListObject::Table(p))))
                        if same_table(p, t) =>
                    {
                        s.tables_added += 1
                    }
                    _ => s.tables_removed += 1,
                },
                NfCmd::Add(NfListObject::Chain(_)) => s.chains_added += 1,
                NfCmd::Flush(FlushObject::Chain(c))
                    if !deleted.contains(&(c.table.as_ref(), c.name.as_ref())) =>
                {
                    s.chains_rewritten += 1
                }
                NfCmd::Delete(NfListObject::Chain(_)) => s.chains_removed += 1,
                NfCmd::Add(NfListObject::Set(_) | NfListObject::Map(_)) => s.sets_added += 1,
                NfCmd::Delete(NfListObject::Set(_) | NfListObject::Map(_)) => s.sets_removed += 1,
                NfCmd::Add(NfListObject::Counter(_)) => s.counters_added += 1,
                NfCmd::Delete(NfListObject::Counter(_)) => s.counters_removed += 1,
                NfCmd::Add(NfListObject::Element(e)) => s.elements_added += e.elem.len(),
                NfCmd::Delete(NfListObject::Element(e)) => s.elements_removed += e.elem.len(),
                NfCmd::Add(NfListObject::Rule(_)) => s.rules += 1,
                _ => {}
            }
        }
        s
    }

    /// Objects added, changed or removed (rules are counted by chain).
    pub fn objects(&self) -> usize {
        self.tables_added
            + self.tables_removed
            + self.chains_added
            + self.chains_rewritten
            + self.chains_removed
            + self.sets_added
            + self.sets_removed
            + self.counters_added
            + self.counters_removed
            + self.elements_added
            + self.elements_removed
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.tables_added, "table", "added"),
            (self.tables_removed, "table", "removed"),
            (self.chains_added, "chain", "added"),
            (self.chains_rewritten, "chain", "rewritten"),
            (self.chains_removed, "chain", "removed"),
            (self.sets_added, "set/map", "added"),
            (self.sets_removed, "set/map", "removed"),
            (self.counters_added, "counter", "added"),
            (self.counters_removed, "counter", "removed"),
            (self.elements_added, "element", "added"),
            (self.elements_removed, "element", "removed"),
        ];
        let words: Vec<String> = parts
            .iter()
            .filter(|(n, _, _)| *n > 0)
            .map(|(n, what, how)| {
                let plural = if *n == 1 { "" } else { "s" };
                format!("{n} {what}{plural} {how}")
            })
            .collect();
        if words.is_empty() {
            return write!(f, "nothing");
        }
        write!(f, "{}", words.join(", "))?;
        if self.rules > 0 {
            let plural = if self.rules == 1 { "" } else { "s" };
            write!(f, " ({} rule{plural})", self.rules)?;
        }
        Ok(())
    }
}

// ---- checking that the kernel still holds the old ruleset ----

/// A chain to read back before loading a transaction: `nft flush table`
/// by hand removes every rule but keeps chains, maps and elements, so a
/// transaction made from the old ruleset would still load, on a table that
/// no longer works. One small chain per table shows it: the rule comments
/// the old ruleset put there, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub family: NfFamily,
    pub table: String,
    pub chain: String,
    pub comments: Vec<Option<String>>,
}

/// For each table that `changes` alters in place, the chain of `old` with
/// the fewest rules (at least one), to compare with the kernel's.
pub fn probes(old: &Nftables<'static>, changes: &Nftables<'static>) -> Vec<Probe> {
    let Ok(old) = Ruleset::follow(old) else {
        return Vec::new();
    };
    let mut touched: Vec<(NfFamily, &str)> = Vec::new();
    for o in changes.objects.iter() {
        let NfObject::CmdObject(c) = o else { continue };
        let at = match c {
            NfCmd::Add(x) | NfCmd::Delete(x) => match x {
                NfListObject::Chain(c) => Some((c.family, c.table.as_ref())),
                NfListObject::Rule(r) => Some((r.family, r.table.as_ref())),
                NfListObject::Set(s) => Some((s.family, s.table.as_ref())),
                NfListObject::Map(m) => Some((m.family, m.table.as_ref())),
                NfListObject::Element(e) => Some((e.family, e.table.as_ref())),
                NfListObject::Counter(c) => Some((c.family, c.table.as_ref())),
                _ => None,
            },
            NfCmd::Flush(FlushObject::Chain(c)) => Some((c.family, c.table.as_ref())),
            _ => None,
        };
        if let Some(at) = at {
            if !touched.contains(&at) {
                touched.push(at);
            }
        }
    }
    touched
        .into_iter()
        .filter_map(|(family, table)| {
            let t = old.find(family, table)?;
            let (name, c) = t
                .chains
                .iter()
                .filter(|(_, c)| !c.rules.is_empty())
                .min_by_key(|(name, c)| (c.rules.len(), **name))?;
            Some(Probe {
                family,
                table: table.to_string(),
                chain: name.to_string(),
                comments: c
                    .rules
                    .iter()
                    .map(|r| r.0.comment.as_ref().map(|s| s.to_string()))
                    .collect(),
            })
        })
        .collect()
}

impl Probe {
    /// Compare with the comments of the chain's rules as the kernel has
    /// them: `Err` says how the kernel differs.
    pub fn check(&self, found: &[Option<String>]) -> Result<(), String> {
        if found == self.comments.as_slice() {
            return Ok(());
        }
        Err(format!(
            "chain {} of table {} has {} rule(s) where the last load put {}{}",
            self.chain,
            self.table,
            found.len(),
            self.comments.len(),
            if found.len() == self.comments.len() {
                ", with other comments"
            } else {
                ""
            }
        ))
    }
}

// ---- comparing listings ----

/// A table listing (`nft -j list table ...`) reduced to what a ruleset
/// decides, so that two kernels' tables compare equal when they would act
/// alike: no handles, no counter values, elements sorted, and rules
/// grouped by chain (a chain added by a diff lists after the others; a
/// fresh load lists it in order).
pub fn normalized(listing: &str) -> Result<serde_json::Value, String> {
    let v: serde_json::Value =
        serde_json::from_str(listing).map_err(|e| format!("not nft JSON: {e}"))?;
    let mut objects: Vec<String> = Vec::new();
    let mut rules: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        let Some((kind, body)) = o.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        if kind == "metainfo" {
            continue;
        }
        let mut body = body.clone();
        if let Some(m) = body.as_object_mut() {
            m.remove("handle");
            if kind == "counter" {
                m.remove("packets");
                m.remove("bytes");
            }
            if let Some(serde_json::Value::Array(elems)) = m.get_mut("elem") {
                elems.sort_by_key(|e| e.to_string());
            }
        }
        if kind == "rule" {
            let chain = format!(
                "{} {} {}",
                body["family"].as_str().unwrap_or_default(),
                body["table"].as_str().unwrap_or_default(),
                body["chain"].as_str().unwrap_or_default()
            );
            rules.entry(chain).or_default().push(body);
        } else {
            objects.push(serde_json::json!({ kind.as_str(): body }).to_string());
        }
    }
    objects.sort();
    Ok(serde_json::json!({ "objects": objects, "rules": rules }))
}

#[cfg(test)]
mod tests;
