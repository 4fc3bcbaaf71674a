#!/usr/bin/env bash
# Wall time of `podlab up` and `podlab down` for 2x2, 10x10 and 10x100
# (nodes x pods per node), against making the same namespaces, veths,
# addresses and routes with `ip -batch` (one batch per namespace, as a
# script would), and the daemon's resident memory with every pod serving.
#
#   sudo scripts/bench-up.sh            # all sizes
#   sudo scripts/bench-up.sh 10x100     # one size
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-up.sh: needs root" >&2; exit 2; }
scripts/provision.sh
cargo build --release --locked -q
bin=target/release/podlab
sizes=("${@:-2x2 10x10 10x100}")
read -r -a sizes <<<"${sizes[*]}"
work=$(mktemp -d)
trap 'ip_batch_down 2>/dev/null || true; $bin down bench >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.3f'; }

ip_batch_up() { # nodes pods_per_node
  local n=$1 m=$2 pre=ipb
  {
    echo "netns add $pre-net"
    for i in $(seq 1 "$n"); do
      echo "netns add $pre-node-$i"
      for j in $(seq 1 "$m"); do echo "netns add $pre-p$i-$j"; done
    done
  } >"$work/ns.batch"
  ip -batch "$work/ns.batch"
  {
    echo "link add br0 type bridge"; echo "link set br0 up"; echo "addr add 172.18.0.1/24 dev br0"
    for i in $(seq 1 "$n"); do
      echo "link add nd-$i master br0 up type veth peer name eth0 netns $pre-node-$i"
    done
  } >"$work/net.batch"
  ip -n $pre-net -batch "$work/net.batch"
  for i in $(seq 1 "$n"); do
    {
      echo "link set lo up"; echo "link set eth0 up"; echo "addr add 172.18.0.$((i + 1))/24 dev eth0"
      echo "link add cni0 type bridge"; echo "link set cni0 up"; echo "addr add 10.244.$i.1/24 dev cni0"
      for k in $(seq 1 "$n"); do [ "$k" = "$i" ] || echo "route add 10.244.$k.0/24 via 172.18.0.$((k + 1))"; done
      for j in $(seq 1 "$m"); do
        echo "link add veth$i-$j master cni0 up type veth peer name eth0 netns $pre-p$i-$j"
      done
    } >"$work/node$i.batch"
    ip -n $pre-node-$i -batch "$work/node$i.batch"
    for j in $(seq 1 "$m"); do
      printf 'link set lo up\nlink set eth0 up\naddr add 10.244.%s.%s/24 dev eth0\nroute add default via 10.244.%s.1\n' \
        "$i" "$((j + 1))" "$i" | ip -n $pre-p$i-$j -batch -
    done
  done
}

ip_batch_down() {
  ip netns list | awk '/^ipb-/{print "netns delete " $1}' >"$work/del.batch"
  ip -batch "$work/del.batch"
}

printf '%-8s %6s %10s %10s %12s %7s %12s\n' size pods up_s down_s ip_batch_s ratio daemon_rss
for size in "${sizes[@]}"; do
  n=${size%x*}; m=${size#*x}
  cat >"$work/lab.yaml" <<LAB
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: bench}
spec: {nodes: $n}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $((n * m))
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, ports: [{containerPort: 80}]}
LAB
  $bin down bench >/dev/null 2>&1 || true
  t0=$(now); $bin up -q "$work/lab.yaml"; t1=$(now)
  pid=$($bin ls -o json | sed -n 's/.*"daemonPid": \([0-9]*\).*/\1/p' | head -1)
  rss=$(awk '/VmRSS/{printf "%.1fMiB", $2/1024}' /proc/"$pid"/status 2>/dev/null || echo "?")
  t2=$(now); $bin down bench >/dev/null; t3=$(now)
  t4=$(now); ip_batch_up "$n" "$m"; t5=$(now); ip_batch_down
  up=$(secs "$t0" "$t1"); down=$(secs "$t2" "$t3"); ipb=$(secs "$t4" "$t5")
  ratio=$(echo "$ipb / $up" | bc -l | xargs printf '%.1fx')
  printf '%-8s %6s %10s %10s %12s %7s %12s\n' "$size" "$((n * m))" "$up" "$down" "$ipb" "$ratio" "$rss"
done
