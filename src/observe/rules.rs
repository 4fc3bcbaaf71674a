//! Whether a namespace's nftables rules are the ones the plan loads,
//! compared by shape: every table, chain and map or set podlab makes, with
//! the number of rules in each chain and of elements in each map or set.
//!
//! Shape, not text: `nft` lists rules differently from how they are given
//! (expressions normalised, handles added), and the hand-made breakages
//! this catches (a table flushed or deleted, a rule or an element deleted,
//! a chain flushed, a table added) all change a count. A rule edited in
//! place with `nft replace rule` keeps the shape and is not seen.

/// How `differences` says a whole table is not the lab's: `apply`
/// deletes such a table.
pub const FOREIGN_TABLE: &str = "table is not podlab's (not in the plan)";

use std::collections::BTreeMap;

use serde_json::Value;

/// `(family, table, kind, name)`: `kind` is `table`, `chain`, `map`, `set`
/// or `counter`; `name` is empty for a table.
pub type Key = (String, String, &'static str, String);

/// Every object with its count: rules for a chain, elements for a map or
/// set (sets filled by the data path, such as affinity's, count as 0),
/// 0 for the rest.
pub type Shape = BTreeMap<Key, usize>;

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn dynamic(set: &Value) -> bool {
    let flags = set.get("flags");
    let has = |f: &str| match flags {
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(f)),
        Some(Value::String(s)) => s == f,
        _ => false,
    };
    has("dynamic") || has("timeout")
}

/// Add one object (`{"chain": {...}}`, ...) to a shape.
fn add_object(shape: &mut Shape, obj: &serde_json::Map<String, Value>) {
    for (kind, v) in obj {
        let family = text(v, "family");
        match kind.as_str() {
            "table" => {
                shape.insert((family, text(v, "name"), "table", String::new()), 0);
            }
            "chain" => {
                shape
                    .entry((family, text(v, "table"), "chain", text(v, "name")))
                    .or_insert(0);
            }
            "rule" => {
                *shape
                    .entry((family, text(v, "table"), "chain", text(v, "chain")))
                    .or_insert(0) += 1;
            }
            "map" | "set" => {
                let kind = if kind == "map" { "map" } else { "set" };
                let n = if dynamic(v) {
                    0
                } else {
                    v.get("elem").and_then(Value::as_array).map_or(0, Vec::len)
                };
                shape.insert((family, text(v, "table"), kind, text(v, "name")), n);
            }
            "counter" => {
                shape.insert((family, text(v, "table"), "counter", text(v, "name")), 0);
            }
            _ => {}
        }
    }
}

/// The shape of `nft -j` input as podlab loads it: `add` commands, where
/// `delete table` forgets what that table had.
pub fn of_commands(json: &Value) -> Shape {
    let mut shape = Shape::new();
    let Some(items) = json.get("nftables").and_then(Value::as_array) else {
        return shape;
    };
    for item in items {
        if let Some(obj) = item.get("add").and_then(Value::as_object) {
            add_object(&mut shape, obj);
        } else if let Some(t) = item
            .get("delete")
            .and_then(|d| d.get("table"))
            .filter(|t| t.is_object())
        {
            let (family, name) = (text(t, "family"), text(t, "name"));
            shape.retain(|k, _| !(k.0 == family && k.1 == name));
        }
    }
    shape
}

/// The shape of `nft -j list ruleset`.
pub fn of_listing(json: &Value) -> Shape {
    let mut shape = Shape::new();
    let Some(items) = json.get("nftables").and_then(Value::as_array) else {
        return shape;
    };
    for item in items.iter().filter_map(Value::as_object) {
        add_object(&mut shape, item);
    }
    shape
}

/// What differs, in words, for one table: missing, extra, or counts.
pub fn differences(want: &Shape, have: &Shape) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (k, n) in want {
        let table = (k.0.clone(), k.1.clone());
        match have.get(k) {
            None if k.2 == "table" => out
                .entry(table)
                .or_default()
                .push("table is missing".into()),
            None => out
                .entry(table)
                .or_default()
                .push(format!("{} {} is missing", k.2, k.3)),
            Some(m) if m != n => out.entry(table).or_default().push(match k.2 {
                "chain" => format!("chain {} has {m} rules, the plan has {n}", k.3),
                kind => format!("{kind} {} has {m} elements, the plan has {n}", k.3),
            }),
            Some(_) => {}
        }
    }
    for k in have.keys() {
        let table = (k.0.clone(), k.1.clone());
        let planned_table = want.contains_key(&(k.0.clone(), k.1.clone(), "table", String::new()));
        if want.contains_key(k) {
            continue;
        }
        if k.2 == "table" {
            out.entry(table).or_default().push(FOREIGN_TABLE.into());
        } else if planned_table {
            out.entry(table)
                .or_default()
                .push(format!("{} {} is not in the plan", k.2, k.3));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn loaded() -> Value {
        json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "kube-proxy"}}},
            {"delete": {"table": {"family": "ip", "name": "kube-proxy"}}},
            {"add": {"table": {"family": "ip", "name": "kube-proxy"}}},
            {"add": {"chain": {"family": "ip", "table": "kube-proxy", "name": "services"}}},
            {"add": {"chain": {"family": "ip", "table": "kube-proxy", "name": "svc-a"}}},
            {"add": {"map": {"family": "ip", "table": "kube-proxy", "name": "service-ips",
                              "elem": [[1, {"goto": {"target": "svc-a"}}]]}}},
            {"add": {"set": {"family": "ip", "table": "kube-proxy", "name": "affinity",
                              "flags": ["dynamic", "timeout"]}}},
            {"add": {"rule": {"family": "ip", "table": "kube-proxy", "chain": "svc-a", "expr": []}}},
            {"add": {"rule": {"family": "ip", "table": "kube-proxy", "chain": "svc-a", "expr": []}}},
        ]})
    }

    fn listed(rules_in_a: usize, elems: usize, extra_table: bool) -> Value {
        let mut v = vec![
            json!({"metainfo": {"version": "1.0.9"}}),
            json!({"table": {"family": "ip", "name": "kube-proxy", "handle": 1}}),
            json!({"chain": {"family": "ip", "table": "kube-proxy", "name": "services", "handle": 2}}),
            json!({"chain": {"family": "ip", "table": "kube-proxy", "name": "svc-a", "handle": 3}}),
            json!({"map": {"family": "ip", "table": "kube-proxy", "name": "service-ips",
                           "elem": vec![json!(1); elems]}}),
            json!({"set": {"family": "ip", "table": "kube-proxy", "name": "affinity",
                           "flags": ["timeout", "dynamic"], "elem": [1, 2, 3]}}),
        ];
        for _ in 0..rules_in_a {
            v.push(json!({"rule": {"family": "ip", "table": "kube-proxy", "chain": "svc-a", "handle": 9}}));
        }
        if extra_table {
            v.push(json!({"table": {"family": "inet", "name": "mine", "handle": 7}}));
        }
        json!({ "nftables": v })
    }

    #[test]
    fn the_loaded_rules_have_the_listed_shape() {
        assert_eq!(of_commands(&loaded()), of_listing(&listed(2, 1, false)));
        assert!(differences(&of_commands(&loaded()), &of_listing(&listed(2, 1, false))).is_empty());
    }

    #[test]
    fn a_deleted_rule_an_element_and_a_foreign_table_are_named() {
        let d = differences(&of_commands(&loaded()), &of_listing(&listed(1, 0, true)));
        let kp = &d[&("ip".to_string(), "kube-proxy".to_string())];
        assert!(
            kp.contains(&"chain svc-a has 1 rules, the plan has 2".to_string()),
            "{kp:?}"
        );
        assert!(
            kp.iter().any(|m| m.starts_with("map service-ips has 0")),
            "{kp:?}"
        );
        assert_eq!(
            d[&("inet".to_string(), "mine".to_string())],
            [FOREIGN_TABLE]
        );
    }

    #[test]
    fn a_flushed_table_misses_everything_and_a_deleted_one_says_so() {
        let flushed = json!({"nftables": [{"table": {"family": "ip", "name": "kube-proxy"}}]});
        let d = differences(&of_commands(&loaded()), &of_listing(&flushed));
        assert_eq!(d[&("ip".to_string(), "kube-proxy".to_string())].len(), 4);
        let gone = json!({"nftables": []});
        let d = differences(&of_commands(&loaded()), &of_listing(&gone));
        assert!(d[&("ip".to_string(), "kube-proxy".to_string())]
            .contains(&"table is missing".to_string()));
    }
}
