#!/usr/bin/env bash
# What observing the whole kernel costs (issue "Truth"): whole-lab
# `diagnose` of a 1,000-pod lab (target under 1 s), `apply` with nothing
# to change on it (target under 0.5 s), and a path `diagnose` on the seed's
# lab, probe included (target under 300 ms). Median of 5 runs each, wall
# time of the whole process.
#
#   sudo scripts/bench-truth.sh          # 1000 pods on 5 nodes
#   sudo scripts/bench-truth.sh 200      # smaller
#
# Its labs are bt-big and bt-seed (brought down at the end, even on a
# failure).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-truth.sh: needs root" >&2; exit 2; }
pods=${1:-1000}
scripts/provision.sh >/dev/null
cargo build --release --locked -q
bin=$PWD/target/release/podlab
work=$(mktemp -d)
cleanup() {
  $bin down bt-big >/dev/null 2>&1 || true
  $bin down bt-seed >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

{
  cat <<YAML
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: bt-big}
spec: {nodes: 5}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $pods
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
YAML
} >"$work/big.yaml"
sed 's/^  name: demo$/  name: bt-seed/' src/lab/demo.yaml >"$work/seed.yaml"
grep -q 'name: bt-seed' "$work/seed.yaml" || {
  echo "bench-truth.sh: cannot rename the demo lab" >&2
  exit 2
}

median_ms() { # command... : the median wall time of 5 runs, in ms
  local times=()
  for _ in 1 2 3 4 5; do
    local start end
    start=$(date +%s%N)
    if ! "$@" >"$work/out" 2>&1; then
      echo "bench-truth.sh: $* failed on a healthy lab:" >&2
      cat "$work/out" >&2
      exit 1
    fi
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}

report() { # label ms target
  local verdict=PASS
  [ "$2" -lt "$3" ] || verdict=MISSED
  printf '%-48s %6d ms   (target < %d ms) %s\n' "$1" "$2" "$3" "$verdict"
}

echo "bringing up $pods pods on 5 nodes..."
$bin up -q "$work/big.yaml"
$bin up -q "$work/seed.yaml"
echo
ms=$(median_ms $bin diagnose --lab bt-big)
report "whole-lab diagnose, $pods pods" "$ms" 1000
ms=$(median_ms $bin apply --lab bt-big)
report "apply with nothing to change, $pods pods" "$ms" 500
ms=$(median_ms $bin diagnose --lab bt-seed pod-2 pod-1:80)
report "path diagnose pod-2 -> pod-1:80 (seed lab)" "$ms" 300
