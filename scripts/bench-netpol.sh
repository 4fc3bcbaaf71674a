#!/usr/bin/env bash
# The data path under NetworkPolicy: pod-to-pod TCP throughput (iperf3, one
# stream, 5 s) with no policy, with 1 policy and with 100 policies selecting
# the server pod, against the raw kernel paths podlab is built from, all in
# one run.
#
#   sudo scripts/bench-netpol.sh          # RUNS=3 (default): median of 3 per row
#   sudo RUNS=5 scripts/bench-netpol.sh
#
# Raw references (namespaces bnp-raw-*, made and deleted here; the bridges
# live in a namespace of their own, never in the host's), measured in the
# same rounds as podlab's no-policy rows so that both see the same load:
#   raw bridge    bnp-raw-a -> bnp-raw-b, veths on one bridge (in bnp-raw-br)
#   raw routed    bnp-raw-c -> bnp-raw-s, each on its own bridge in the router
#                 namespace bnp-raw-r, routed between them
# podlab (lab `bnp`, 2 nodes): `server` (iperf3 -s, containerPort 5201) and
# `client` on node-1, `client-remote` on node-2:
#   same-node     client -> server          (veth, cni0, veth; node-1's forward hook)
#   cross-node    client-remote -> server   (node-2's routing, the node network, node-1's)
# Variants: no policy; 1 policy (server: ingress from app=client on TCP
# 5201); 100 policies selecting server (99 that allow other ipBlocks on
# 5201, then the one that allows the clients, last, so the first packet of
# a connection walks every rule before it is accepted).
#
# Targets (issue 5): 100 policies >= 0.9 of no policy; podlab's no-policy
# same-node and cross-node >= 0.9 of raw bridge and raw routed.
# The lab is brought down and up for each variant (there is no `apply`).
# Exit 0 when every target holds, 1 when one does not.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-netpol.sh: needs root" >&2; exit 2; }

runs=${RUNS:-3}
case "$runs" in '' | *[!0-9]* | 0) echo "bench-netpol.sh: RUNS must be a positive number" >&2; exit 2 ;; esac
secs=5
lab=bnp

if ! command -v iperf3 >/dev/null 2>&1; then
  echo "bench-netpol.sh: installing iperf3" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends iperf3 >/dev/null
fi
for cmd in ip jq; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "bench-netpol.sh: $cmd is missing (scripts/provision.sh; apt-get install jq)" >&2; exit 2; }
done
scripts/provision.sh
cargo build --release --locked -q
bin=$PWD/target/release/podlab
podlab() { "$bin" "$@"; }

# ---- cleanup: only what this run made ----
work=$(mktemp -d)
raw_ns=()       # namespaces created here
server_pids=()  # iperf3 servers started here
lab_ours=0
cleanup() {
  local rc=$?
  set +e
  for ns in "${raw_ns[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  raw_down
  if [ "$lab_ours" = 1 ]; then podlab down "$lab" >/dev/null 2>&1; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ns in bnp-raw-br bnp-raw-a bnp-raw-b bnp-raw-r bnp-raw-c bnp-raw-s; do
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    echo "bench-netpol.sh: namespace $ns already exists (a previous run?): not touching it; ip netns del $ns" >&2
    exit 2
  fi
done
if podlab ls 2>/dev/null | awk 'NR > 1 {print $1}' | grep -qx "$lab"; then
  echo "bench-netpol.sh: lab $lab is already up: not touching it; podlab down $lab" >&2
  exit 2
fi

# ---- measuring ----
# iperf3's JSON on stdin -> Gbit/s received by the server.
gbits() { jq -r '.end.sum_received.bits_per_second / 1e9'; }

# LABEL CMD...: runs the iperf3 client command (retrying while the server
# starts), prints Gbit/s.
iperf() {
  local label=$1 out i
  shift
  for i in $(seq 1 20); do
    if out=$("$@" -t "$secs" -J 2>/dev/null) && [ "$(jq -r '.error // empty' <<<"$out")" = "" ]; then
      gbits <<<"$out"
      return 0
    fi
    sleep 0.25
  done
  echo "bench-netpol.sh: $label: iperf3 failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null)" >&2
  return 1
}

declare -A results # row -> space-separated Gbit/s of each run
# ROW CMD...: one measurement of ROW.
measure() {
  local row=$1 g
  shift
  g=$(iperf "$row" "$@")
  results[$row]="${results[$row]:-} $g"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }

# ---- raw references ----
# Made while the no-policy lab is up and measured in the same rounds as
# it (the machine's load drifts), then removed before `podlab down bnp`:
# that command removes every namespace named `bnp-...` (and SIGKILLs what
# runs inside), podlab's or not, so bnp-raw-* must not outlive the round.
mkns() { ip netns add "$1"; raw_ns+=("$1"); ip -n "$1" link set lo up; }

raw_up() {
  local n x
  # One bridge (in bnp-raw-br), two namespaces on it.
  mkns bnp-raw-br
  ip -n bnp-raw-br link add br0 type bridge
  ip -n bnp-raw-br link set br0 up
  n=1
  for x in a b; do
    mkns "bnp-raw-$x"
    ip -n bnp-raw-br link add "v-$x" type veth peer name eth0 netns "bnp-raw-$x"
    ip -n bnp-raw-br link set "v-$x" master br0 up
    ip -n "bnp-raw-$x" addr add "10.199.0.$n/24" dev eth0
    ip -n "bnp-raw-$x" link set eth0 up
    n=$((n + 1))
  done

  # Two bridges in a router namespace, routed; a namespace on each.
  mkns bnp-raw-r
  ip netns exec bnp-raw-r sysctl -qw net.ipv4.ip_forward=1
  n=1
  for x in c s; do
    ip -n bnp-raw-r link add "br-$x" type bridge
    ip -n bnp-raw-r addr add "10.199.$n.1/24" dev "br-$x"
    ip -n bnp-raw-r link set "br-$x" up
    mkns "bnp-raw-$x"
    ip -n bnp-raw-r link add "v-$x" type veth peer name eth0 netns "bnp-raw-$x"
    ip -n bnp-raw-r link set "v-$x" master "br-$x" up
    ip -n "bnp-raw-$x" addr add "10.199.$n.2/24" dev eth0
    ip -n "bnp-raw-$x" link set eth0 up
    ip -n "bnp-raw-$x" route add default via "10.199.$n.1"
    n=$((n + 1))
  done

  # In a session of their own, as podlab's pod processes are (its daemon
  # calls setsid): with sched_autogroup a server sharing the client's
  # session shares its CPU share too, which on a busy 2-CPU machine made
  # the raw paths look slower than podlab's.
  setsid ip netns exec bnp-raw-b iperf3 -s >/dev/null 2>&1 &
  server_pids+=($!)
  setsid ip netns exec bnp-raw-s iperf3 -s >/dev/null 2>&1 &
  server_pids+=($!)
}

raw_down() {
  local pid ns
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  server_pids=()
  for ns in "${raw_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  raw_ns=()
}

# ---- podlab ----
# POLICIES: the lab file with that many policies selecting `server`.
lab_file() {
  local policies=$1 i
  cat <<EOF
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: $lab}
spec:
  nodes: 2
---
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  nodeName: node-1
  containers:
  - name: iperf3
    image: networkstatic/iperf3
    command: [iperf3, -s]
    ports: [{containerPort: 5201}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: node-1
  containers:
  - {name: client, image: busybox, command: [sleep, infinity]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-remote, labels: {app: client}}
spec:
  nodeName: node-2
  containers:
  - {name: client, image: busybox, command: [sleep, infinity]}
EOF
  # policies-1 that select the server and allow someone else (each a rule
  # in server's chain), then the one that allows the clients.
  for i in $(seq 1 $((policies - 1))); do
    cat <<EOF
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-$i}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{ipBlock: {cidr: 192.168.$i.0/24}}]
    ports: [{port: 5201}]
EOF
  done
  if [ "$policies" -gt 0 ]; then
    cat <<EOF
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-clients}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 5201, protocol: TCP}]
EOF
  fi
}

pod_ip() { podlab get pods "$1" --lab "$lab" -o json | jq -r '(.items[0] // .).status.podIP'; }

declare -A rules_in_chain
for policies in 0 1 100; do
  file=$work/bnp-$policies.yaml
  lab_file "$policies" >"$file"
  podlab validate "$file" >/dev/null
  lab_ours=1
  podlab up -q "$file" >&2
  ip=$(pod_ip server)
  rules_in_chain[$policies]=$(podlab exec node/node-1 --lab "$lab" -- nft list table ip network-policy | grep -c ' comment "' || true)
  if [ "$policies" = 0 ]; then
    raw_up
    echo "bench-netpol.sh: raw paths and podlab with no policy (${rules_in_chain[$policies]} rules in node-1's network-policy table), $runs x ${secs}s each" >&2
  else
    echo "bench-netpol.sh: podlab, $policies policies (${rules_in_chain[$policies]} rules in node-1's network-policy table), $runs x ${secs}s each" >&2
  fi
  for _ in $(seq 1 "$runs"); do
    if [ "$policies" = 0 ]; then
      measure raw-bridge ip netns exec bnp-raw-a iperf3 -c 10.199.0.2
      measure raw-routed ip netns exec bnp-raw-c iperf3 -c 10.199.2.2
    fi
    measure "same-node/$policies" podlab exec client --lab "$lab" -- iperf3 -c "$ip"
    measure "cross-node/$policies" podlab exec client-remote --lab "$lab" -- iperf3 -c "$ip"
  done
  raw_down
  podlab down "$lab" >/dev/null
  lab_ours=0
done

# ---- the table ----
med() { median <<<"${results[$1]}"; }
failed=0
printf '%-26s %8s %13s %7s  %-18s %s\n' PATH Gbit/s "RUNS(min-max)" RATIO "OF" TARGET
row() { # ROW LABEL [REF_ROW REF_LABEL TARGET]
  local g ratio ok=""
  g=$(med "$1")
  if [ -n "${3:-}" ]; then
    ratio=$(awk -v a="$g" -v b="$(med "$3")" 'BEGIN {printf "%.3f", a / b}')
    if [ -n "${5:-}" ]; then
      if awk -v r="$ratio" -v t="$5" 'BEGIN {exit !(r >= t)}'; then ok=">= $5 ok"; else ok=">= $5 MISSED"; failed=1; fi
    fi
  else
    ratio="-"
  fi
  printf '%-26s %8.2f %13s %7s  %-18s %s\n' "$2" "$g" "$(spread <<<"${results[$1]}")" "$ratio" "${4:--}" "$ok"
}
row raw-bridge "raw bridge (2 ns, 1 br)"
row raw-routed "raw routed (2 br, router)"
row same-node/0 "same-node, no policy" raw-bridge "raw bridge" 0.9
row cross-node/0 "cross-node, no policy" raw-routed "raw routed" 0.9
row same-node/1 "same-node, 1 policy" same-node/0 "same-node, none"
row cross-node/1 "cross-node, 1 policy" cross-node/0 "cross-node, none"
row same-node/100 "same-node, 100 policies" same-node/0 "same-node, none" 0.9
row cross-node/100 "cross-node, 100 policies" cross-node/0 "cross-node, none" 0.9
echo "(iperf3 TCP, 1 stream, ${secs}s, median of $runs runs; rules in node-1's network-policy table: ${rules_in_chain[0]}, ${rules_in_chain[1]}, ${rules_in_chain[100]}; $(nproc) CPUs, kernel $(uname -r))"
exit "$failed"
