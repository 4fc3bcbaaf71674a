#!/usr/bin/env bash
# `podlab graph` of a 1,000-pod lab (10 nodes of 100 pods, a Service over
# all of them): the picture built from recorded kernel views and rendered
# as ascii, dot, mermaid, svg and svg --all, timed in one run. Target:
# under 1 s. No root and no lab needed: the views are the ones `up` leaves
# (src/graph/tests.rs, bench_graph_1000_pods).
#
#   scripts/bench-graph.sh                  # the figure
#   sudo scripts/bench-graph.sh LAB         # and `podlab graph` of a running lab, end to end
#   sudo scripts/bench-graph.sh --up [LAB]  # a real 10x100 lab (default name graph1000) brought up,
#                                           # `podlab graph -o svg` timed 5 times (median), brought down
# End to end uses PODLAB (default target/release/podlab, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(cargo test --lib -q graph::tests::bench_graph_1000_pods -- --ignored --nocapture 2>&1) || {
  echo "$out" >&2; exit 1; }
grep '^graph of' <<<"$out"
[ $# -gt 0 ] || exit 0
[ "$(id -u)" -eq 0 ] || { echo "bench-graph.sh: a lab needs root: sudo $0 $*" >&2; exit 2; }
bin=${PODLAB:-target/release/podlab}
[ -x "$bin" ] || cargo build --release -q
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

up=""
if [ "$1" = --up ]; then
  lab=${2:-graph1000}
  work=$(mktemp -d)
  trap '"$bin" down "$lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  cat >"$work/lab.yaml" <<LAB
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: $lab}
spec: {nodes: 10}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1000
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
LAB
  "$bin" down "$lab" >/dev/null 2>&1 || true
  start=$(date +%s%N)
  "$bin" up -q --timeout 600 "$work/lab.yaml"
  up=" (up took $(ms "$start") ms)"
else
  lab=$1
fi
pods=$("$bin" get pods -A --lab "$lab" -o json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))')
runs=()
for _ in 1 2 3 4 5; do
  start=$(date +%s%N)
  "$bin" graph --lab "$lab" -o svg >/dev/null
  runs+=("$(ms "$start")")
done
median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
echo "podlab graph --lab $lab -o svg, $pods pods, kernel read included: median $median ms of 5 (${runs[*]})$up"
for fmt in ascii dot; do
  start=$(date +%s%N)
  "$bin" graph --lab "$lab" -o "$fmt" >/dev/null
  echo "podlab graph --lab $lab -o $fmt: $(ms "$start") ms"
done
