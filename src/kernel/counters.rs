//! Read back the named nftables counters of one of podlab's tables in
//! every node (`nft -j list counters table ip TABLE`), summed by name.

use std::collections::BTreeMap;

use super::Error;
use crate::plan::Plan;

/// The named counters of one table, by name.
pub type Counters = BTreeMap<String, Count>;

/// Packets and bytes of one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// The named counters of table `ip TABLE` in every node of the plan,
/// summed over the nodes. A node whose table is missing counts nothing.
pub fn read(plan: &Plan, table: &str) -> Result<BTreeMap<String, Count>, Error> {
    let mut out = BTreeMap::new();
    for (_, counters) in read_each(plan, table)? {
        for (name, c) in counters {
            let e: &mut Count = out.entry(name).or_default();
            e.packets += c.packets;
            e.bytes += c.bytes;
        }
    }
    Ok(out)
}

/// The named counters of table `ip TABLE` in each node of the plan, by the
/// node's namespace, read in parallel.
pub fn read_each(plan: &Plan, table: &str) -> Result<Vec<(String, Counters)>, Error> {
    let per_node: Vec<Result<String, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .nodes
            .iter()
            .map(|n| s.spawn(move || list_in(&n.netns, table)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Nft {
                        netns: "?".into(),
                        message: "counter reader thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut out = Vec::new();
    for (node, json) in plan.nodes.iter().zip(per_node) {
        let mut counters = BTreeMap::new();
        for (name, c) in parse(&json?) {
            let e: &mut Count = counters.entry(name).or_default();
            e.packets += c.packets;
            e.bytes += c.bytes;
        }
        out.push((node.netns.clone(), counters));
    }
    Ok(out)
}

/// `nft -j list counters table ip TABLE` inside `netns` ("" when the
/// table does not exist: a lab made before NetworkPolicy counts nothing).
fn list_in(netns: &str, table: &str) -> Result<String, Error> {
    Ok(super::nft::list_json(netns, &["counters", "table", "ip", table])?.unwrap_or_default())
}

/// The counters of `nft -j list counters` output.
pub fn parse(json: &str) -> Vec<(String, Count)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let c = o.get("counter")?;
            Some((
                c["name"].as_str()?.to_string(),
                Count {
                    packets: c["packets"].as_u64().unwrap_or(0),
                    bytes: c["bytes"].as_u64().unwrap_or(0),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_nft_counter_listing() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
          {"counter": {"family": "ip", "name": "allow-x-a", "table": "network-policy", "handle": 3, "packets": 7, "bytes": 420}},
          {"counter": {"family": "ip", "name": "drop-ingress-x-a", "table": "network-policy", "handle": 4, "packets": 0, "bytes": 0}}]}"#;
        let v = super::parse(json);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, "allow-x-a");
        assert_eq!(v[0].1.packets, 7);
        assert!(super::parse("").is_empty());
    }
}
