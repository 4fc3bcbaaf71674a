//! Deterministic names: the same lab always yields the same kernel names, so
//! that teardown finds what it made without any state, and interface names
//! fit the kernel's 15-byte limit.

/// The kernel's limit on interface names (IFNAMSIZ minus the NUL).
pub const IFNAME_MAX: usize = 15;

/// The alphabet Kubernetes uses for generated name suffixes: no vowels (no
/// accidental words) and no look-alike characters.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a: tiny, stable across releases and platforms, which is all a name
/// needs (std's hasher is randomly seeded and may change).
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn safe_encode(mut v: u64, len: usize) -> String {
    let base = SAFE_ALPHABET.len() as u64;
    (0..len)
        .map(|_| {
            let c = SAFE_ALPHABET[(v % base) as usize] as char;
            v /= base;
            c
        })
        .collect()
}

/// A Deployment's pod, named as a ReplicaSet names it:
/// `<deployment>-<pod-template-hash>-<suffix>`. The template hash changes
/// when the template does, as in Kubernetes; the suffix is stable per
/// replica index so that a lab brought up twice has the same pod names.
pub fn deployment_pod_name(deployment: &str, template_hash: u64, index: u32) -> String {
    replacement_pod_name(deployment, template_hash, index, 0)
}

/// The name of replica `index`'s pod after it was replaced `generation`
/// times: a deleted pod comes back under a new name, as a ReplicaSet's
/// replacement does; generation 0 is [`deployment_pod_name`].
pub fn replacement_pod_name(
    deployment: &str,
    template_hash: u64,
    index: u32,
    generation: u32,
) -> String {
    let hash = safe_encode(template_hash, 10);
    let seed = if generation == 0 {
        fnv1a(&[deployment, &hash, &index.to_string()])
    } else {
        fnv1a(&[
            deployment,
            &hash,
            &index.to_string(),
            &generation.to_string(),
        ])
    };
    let suffix = safe_encode(seed, 5);
    format!("{deployment}-{hash}-{suffix}")
}

/// The pod's veth end on its node, named like Calico's `cali<hash>`: readable
/// enough for `ip link`, unique per pod, always 12 bytes.
pub fn host_veth_name(namespace: &str, pod: &str, salt: u32) -> String {
    let h = fnv1a(&[namespace, pod, &salt.to_string()]);
    format!("veth{:08x}", h as u32)
}

/// A node's or client's end of its uplink, in the `net` namespace, on `br0`:
/// `nd-<name>` when it fits, else a hash.
pub fn uplink_name(prefix: &str, name: &str) -> String {
    let readable = format!("{prefix}-{name}");
    if readable.len() <= IFNAME_MAX {
        readable
    } else {
        format!("{prefix}-{:08x}", fnv1a(&[name]) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_look_like_replicaset_names() {
        let name = deployment_pod_name("web", 42, 0);
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[0], "web");
        assert_eq!(parts[1].len(), 10);
        assert_eq!(parts[2].len(), 5);
        assert!(name
            .bytes()
            .all(|b| b == b'-' || SAFE_ALPHABET.contains(&b) || b.is_ascii_lowercase()));
        assert_eq!(name, deployment_pod_name("web", 42, 0), "stable");
        assert_ne!(name, deployment_pod_name("web", 42, 1));
        assert_ne!(
            name.split('-').nth(1),
            deployment_pod_name("web", 43, 0).split('-').nth(1)
        );
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        assert_eq!(host_veth_name("default", "pod-1", 0).len(), 12);
        assert_eq!(uplink_name("nd", "node-1"), "nd-node-1");
        let long = uplink_name("nd", "a-very-long-node-name");
        assert!(long.len() <= IFNAME_MAX, "{long}");
        assert!(long.starts_with("nd-"));
    }
}
