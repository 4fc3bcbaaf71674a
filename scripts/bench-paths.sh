#!/usr/bin/env bash
# Latency of each path of labs/09-performance.yaml, measured from the
# `client` pod on node-1: same-node pod, cross-node pod, through a
# ClusterIP Service (to that same cross-node pod), and cross-node through a
# NetworkPolicy. Prints a table of the median and 95th percentile.
#
#   sudo scripts/bench-paths.sh [REQUESTS]      # default 200 requests per path
#
# Each request is a new TCP connection from a bash loop inside the pod
# (`/dev/tcp`, timed with $EPOCHREALTIME, so no process start-up is
# measured): CONN is the handshake (connect() returning: one round trip
# through the path), RESP the time until the first line of the HTTP answer
# of podlab's echo. 10 warm-up requests per path are discarded.
#
# If the lab `performance` is already up, it is measured as it is and left
# up (so you can change it, e.g. add a qdisc, and measure again); otherwise
# it is brought up and down. PODLAB=path/to/podlab picks the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-200}
case "$n" in '' | *[!0-9]*) echo "usage: $0 [REQUESTS]" >&2; exit 2 ;; esac
lab=performance
file=labs/09-performance.yaml

if [ -z "${PODLAB:-}" ]; then
  if [ ! -x target/release/podlab ]; then
    cargo build --release --locked >&2
  fi
  PODLAB=target/release/podlab
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
podlab() { $sudo "$PODLAB" "$@"; }

if podlab ls 2>/dev/null | awk 'NR > 1 {print $1}' | grep -qx "$lab"; then
  echo "bench-paths: lab $lab is up: measuring it as it is, leaving it up" >&2
else
  podlab up -q "$file" >&2
  trap 'podlab down "$lab" >&2' EXIT
fi

json_field() { # FIELD: the first "FIELD": "value" of a JSON document on stdin
  sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n1
}
pod_ip() { podlab get pods "$1" --lab "$lab" -o json | json_field podIP; }
svc_ip() { podlab get svc "$1" --lab "$lab" -o json | json_field clusterIP; }

local_ip=$(pod_ip local-srv)
remote_ip=$(pod_ip remote-srv)
guarded_ip=$(pod_ip guarded-srv)
bench_ip=$(svc_ip bench)

# IP PORT: one line per request, "connect response" in microseconds, from
# a bash loop inside the pod (no process started per request).
measure() {
  podlab exec client --lab "$lab" -- bash -c '
    ip=$1 port=$2 n=$3
    us() { local t=${1/./}; echo $((10#$t)); }
    for ((i = 0; i < n + 10; i++)); do
      t0=$EPOCHREALTIME
      if ! exec 3<>"/dev/tcp/$ip/$port"; then echo "fail fail"; continue; fi
      t1=$EPOCHREALTIME
      printf "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" >&3
      if ! IFS= read -r -t 2 line <&3; then echo "fail fail"; exec 3<&-; continue; fi
      t2=$EPOCHREALTIME
      exec 3<&-
      if ((i >= 10)); then echo "$(($(us "$t1") - $(us "$t0"))) $(($(us "$t2") - $(us "$t0")))"; fi
    done' bash "$1" "$2" "$n" 2>/dev/null
}

# Percentile P (0-100) of the numbers on stdin.
pct() {
  sort -n | awk -v p="$1" '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
    print v[i] }'
}

printf '%-11s %-27s %9s %9s %9s %9s %6s\n' PATH TARGET "CONN p50" "CONN p95" "RESP p50" "RESP p95" FAILED
row() {
  local name=$1 ip=$2 port=$3 target=$4 out ok failed
  out=$(measure "$ip" "$port")
  ok=$(grep -v fail <<<"$out" || true)
  failed=$(grep -c fail <<<"$out" || true)
  printf '%-11s %-27s %7sus %7sus %7sus %7sus %6s\n' "$name" "$target" \
    "$(awk '{print $1}' <<<"$ok" | pct 50)" \
    "$(awk '{print $1}' <<<"$ok" | pct 95)" \
    "$(awk '{print $2}' <<<"$ok" | pct 50)" \
    "$(awk '{print $2}' <<<"$ok" | pct 95)" \
    "$failed"
}
row same-node "$local_ip" 8080 "local-srv $local_ip:8080"
row cross-node "$remote_ip" 8080 "remote-srv $remote_ip:8080"
row service "$bench_ip" 80 "svc/bench $bench_ip:80"
row policy "$guarded_ip" 8080 "guarded-srv $guarded_ip:8080"
echo "($n requests per path from pod client on node-1; CONN: the TCP handshake (connect), RESP: until the first line of the HTTP answer; us = microseconds)"
