#!/usr/bin/env bash
# `podlab graph` of a 1,000-pod lab (10 nodes of 100 pods, a Service over
# all of them): the picture built from recorded kernel views and rendered
# as ascii, dot, mermaid, svg and svg --all, timed in one run. Target:
# under 1 s. No root and no lab needed: the views are the ones `up` leaves
# (src/graph/tests.rs, bench_graph_1000_pods).
#
#   scripts/bench-graph.sh                    # the figure
#   sudo scripts/bench-graph.sh LAB           # and `podlab graph` of a running lab, end to end
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(cargo test --lib -q graph::tests::bench_graph_1000_pods -- --ignored --nocapture 2>&1) || {
  echo "$out" >&2; exit 1; }
grep '^graph of' <<<"$out"
if [ $# -gt 0 ]; then
  cargo build -q
  for fmt in ascii svg dot; do
    start=$(date +%s%N)
    target/debug/podlab graph --lab "$1" -o "$fmt" >/dev/null
    echo "podlab graph --lab $1 -o $fmt (kernel read included): $(( ($(date +%s%N) - start) / 1000000 )) ms"
  done
fi
