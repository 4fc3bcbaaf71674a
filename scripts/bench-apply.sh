#!/usr/bin/env bash
# `podlab apply` of a one-service change to a running lab of 1,000 pods and
# 1,000 services (5 nodes, 500 Deployments of 2 replicas, two Services per
# Deployment): the wall time of each kind of change, and of an apply that
# changes nothing (the drift scan alone). The target: under 1 s.
#
#   sudo scripts/bench-apply.sh              # 1000 pods, 1000 services
#   sudo scripts/bench-apply.sh 200 200      # smaller
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-apply.sh: needs root" >&2; exit 2; }
pods=${1:-1000}
services=${2:-1000}
scripts/provision.sh
cargo build --release --locked -q
bin=$PWD/target/release/podlab
work=$(mktemp -d)
trap '$bin down bench-apply >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

deployments=$((pods / 2))
lab() { # file, port of service 0, extra YAML
  {
    cat <<YAML
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: bench-apply}
spec: {nodes: 5}
YAML
    for d in $(seq 0 $((deployments - 1))); do
      cat <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d$d}
spec:
  replicas: 2
  selector: {matchLabels: {app: d$d}}
  template:
    metadata: {labels: {app: d$d}}
    spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
YAML
    done
    for s in $(seq 0 $((services - 1))); do
      port=80
      [ "$s" = 0 ] && port=$2
      cat <<YAML
---
apiVersion: v1
kind: Service
metadata: {name: s$s}
spec: {selector: {app: d$((s % deployments))}, ports: [{port: $port, targetPort: 80}]}
YAML
    done
    printf '%s' "$3"
  } >"$1"
}

lab "$work/base.yaml" 80 ""
lab "$work/port.yaml" 8080 ""
lab "$work/added.yaml" 80 "$(printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: new}\nspec: {selector: {app: d7}, ports: [{port: 80}]}\n')"

echo "bringing up $pods pods and $services services..."
$bin down bench-apply >/dev/null 2>&1 || true
start=$(date +%s.%N)
$bin up -q "$work/base.yaml"
printf 'up: %.2f s\n' "$(echo "$(date +%s.%N) - $start" | bc -l)"

measure() { # label file
  local start end
  start=$(date +%s.%N)
  $bin apply "$2" >"$work/out" 2>"$work/err" || { cat "$work/out" "$work/err"; exit 1; }
  end=$(date +%s.%N)
  printf '%-40s %6.0f ms   (%s)\n' "$1" "$(echo "($end - $start) * 1000" | bc -l)" \
    "$(grep -v '^applied' "$work/out" | tr '\n' ';' | cut -c1-70)"
}

printf '\n%-40s %9s\n' "apply of" "wall time"
measure "the unchanged file (drift scan only)" "$work/base.yaml"
measure "one service's port changed" "$work/port.yaml"
measure "the port changed back" "$work/base.yaml"
measure "one service added" "$work/added.yaml"
measure "that service removed" "$work/base.yaml"
