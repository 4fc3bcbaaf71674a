#!/usr/bin/env bash
# The lab's Kubernetes API on a lab of 1,000 pods (5 nodes, 500 Deployments
# of 2 replicas): the server time of `kubectl get pods -o wide` (the API's
# x-podlab-server-time header, asked with kubectl's own Accept header), the
# wall time of the real kubectl doing it, the daemon's RSS while it serves,
# how long after a `podlab delete pod` a watch sees the DELETED event, and
# how long a deleted Deployment pod takes to be replaced and Ready.
# Targets: under 100 ms of server time, under 60 MiB, under 50 ms, under 1 s.
#
#   sudo scripts/bench-api.sh          # 1000 pods
#   sudo scripts/bench-api.sh 200      # smaller
#   sudo BENCH_LAB=x-api BENCH_BIN=/tmp/old/podlab scripts/bench-api.sh
#                                      # another lab name, another build
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-api.sh: needs root" >&2; exit 2; }
pods=${1:-1000}
lab=${BENCH_LAB:-bench-api}
scripts/provision.sh
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -q
  bin=$PWD/target/release/podlab
fi
work=$(mktemp -d)
watcher=""
trap '[ -n "$watcher" ] && kill "$watcher" 2>/dev/null; $bin down $lab >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

{
  printf 'apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: %s}\nspec: {nodes: 5}\n' $lab
  for d in $(seq 0 $((pods / 2 - 1))); do
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
---
apiVersion: v1
kind: Service
metadata: {name: s$d}
spec: {selector: {app: d$d}, ports: [{port: 80}]}
YAML
  done
} >"$work/lab.yaml"

echo "bringing up $pods pods..."
$bin down $lab >/dev/null 2>&1 || true
$bin up -q "$work/lab.yaml"
state=/run/podlab/$lab
export PODLAB_LAB=$lab
pid=$(cat "$state/ready")
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/"$pid"/status; }
echo "daemon RSS before any API request: $(rss)"
config=$state/kubeconfig
port=$(cat "$state/api-port")
token=$(awk '/token:/ {print $2}' "$config")
awk '/certificate-authority-data:/ {print $2}' "$config" | base64 -d >"$work/ca.crt"
api=https://127.0.0.1:$port
table='application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'
get() { # path accept -> server time in ms, one line
  curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" -H "Accept: $2" \
    -D - -o /dev/null "$api$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-podlab-server-time" {sub("ms","",$2); print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

first=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods" | jq -r '.items[0].metadata.name')
# The first request parses the plan; a learner's commands after it do not.
get "/api/v1/namespaces/default/pods?limit=500" "$table" >/dev/null
printf '\n%-50s %10s\n' "request ($pods pods)" "server ms (median of 10, max)"
for what in "Table|/api/v1/namespaces/default/pods?limit=500|$table" \
            "JSON|/api/v1/namespaces/default/pods?limit=500|application/json" \
            "one pod, Table|/api/v1/namespaces/default/pods/$first|$table"; do
  IFS='|' read -r label path accept <<<"$what"
  for _ in $(seq 10); do get "$path" "$accept"; done >"$work/t"
  printf '%-50s %10s %8s\n' "get pods ($label)" "$(median <"$work/t")" "$(sort -n "$work/t" | tail -1)"
done

kubectl=$(command -v kubectl || echo /usr/lib/google-cloud-sdk/bin/kubectl)
export KUBECONFIG=$config HOME=$work
"$kubectl" get pods -o wide >/dev/null # discovery, cached after this
start=$(date +%s%N)
rows=$("$kubectl" get pods -o wide | wc -l)
echo "kubectl get pods -o wide: $((rows - 1)) rows, $((($(date +%s%N) - start) / 1000000)) ms wall (client included)"
"$kubectl" get pods -o wide -v=8 2>&1 >/dev/null | grep -i 'x-podlab-server-time' | head -1 | sed 's/^.*\] */  as kubectl -v=8 shows it: /'

for _ in $(seq 5); do get "/api/v1/pods" "$table" >/dev/null; done
echo "daemon RSS after serving $pods pods: $(rss)" \
  "(peak $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$pid"/status))"

# Watch latency: the DELETED line's arrival after the delete began.
rv=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods" | jq -r .metadata.resourceVersion)
# The change's moment is when the plan was renamed into place (its ctime:
# `delete` writes it,
# then tells the daemon); the command's own start-up is not the API's.
printf '\n%-40s %18s %22s\n' "change" "event after plan" "event after command"
for i in 1 2 3; do
  victim=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods" | jq -r ".items[$i].metadata.name")
  rv=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods" | jq -r .metadata.resourceVersion)
  : >"$work/events"
  curl -sN --max-time 4 --cacert "$work/ca.crt" -H "Authorization: Bearer $token" \
    "$api/api/v1/namespaces/default/pods?watch=1&resourceVersion=$rv" |
    while IFS= read -r line; do echo "$(date +%s%N) ${line:0:40}" >>"$work/events"; done &
  watcher=$!
  sleep 0.5
  t0=$(date +%s%N)
  $bin delete pod "$victim" >/dev/null 2>&1
  t1=$(stat -c '%.9Z' "$state/plan.json" | tr -d .)
  for _ in $(seq 100); do grep -q '"type":"DELETED"' "$work/events" && break; sleep 0.02; done
  at=$(grep '"type":"DELETED"' "$work/events" | head -1 | cut -d' ' -f1)
  kill "$watcher" 2>/dev/null || true
  watcher=""
  if [ -z "$at" ]; then echo "delete pod $victim: no DELETED event within 2 s" >&2; exit 1; fi
  printf '%-40s %15d ms %19d ms\n' "delete pod $victim" $(((at - t1) / 1000000)) $(((at - t0) / 1000000))
done

# A deleted Deployment pod replaced: from the start of `kubectl delete pod`
# to the moment the API lists a new pod of that Deployment Ready, with a
# new name and address. Target: under 1 s.
printf '\n%-40s %18s\n' "kubectl delete pod (Deployment's)" "new pod Ready after"
for i in 4 5 6; do
  victim=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods" | jq -r ".items[$i].metadata.name")
  app=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods/$victim" | jq -r .metadata.labels.app)
  before=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods?labelSelector=app=$app" | jq -r '[.items[].metadata.name] | sort | join(",")')
  t0=$(date +%s%N)
  "$kubectl" delete pod "$victim" >/dev/null
  new=""
  for _ in $(seq 250); do
    new=$(curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$api/api/v1/namespaces/default/pods?labelSelector=app=$app" |
      jq -r --arg b "$before" '.items[] | select((.metadata.name as $n | $b | split(",") | index($n)) | not) | select(.status.containerStatuses[0].ready) | .metadata.name + " " + .status.podIP')
    [ -n "$new" ] && break
    sleep 0.004
  done
  t1=$(date +%s%N)
  if [ -z "$new" ]; then echo "delete pod $victim: no Ready replacement within 1 s+" >&2; exit 1; fi
  printf '%-40s %15d ms   (%s)\n' "$victim" $(((t1 - t0) / 1000000)) "$new"
done
