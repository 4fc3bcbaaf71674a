#!/usr/bin/env bash
# The lab daemon's memory under a flood of idle TCP connections, and after:
# its resident size (VmRSS) idle, at the peak of a 20,000-connection flood,
# and 10 s after the flood's connections closed, with PASS when that last
# figure is under twice the idle size.
#
# Two floods, on one lab (release build):
#   one-pod   one pod opens 20,000 connections to another pod's echo (the
#             case of the issue): the daemon holds its per-client cap and
#             refuses the rest at once;
#   many-pods 20 pods open 1,000 each, spread over 10 listeners: the daemon
#             holds as many as its caps allow in all (its most memory).
#
#   sudo scripts/bench-flood.sh            # both floods
#   sudo scripts/bench-flood.sh one-pod    # one of them
#   PODLAB_BIN=target/debug/podlab sudo -E scripts/bench-flood.sh
#
# The connections are made by python3 inside the pods' namespaces (`ip
# netns exec`), 10,000 per process at most (the usual hard limit on open
# files is 20,000 here). Everything stays inside the lab, which is brought
# down however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-flood.sh: needs root" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench-flood.sh: needs python3" >&2; exit 2; }

floods=("${@:-one-pod many-pods}")
read -r -a floods <<<"${floods[*]}"
lab=fl-bench
flooders=20
ports=10

if [ -n "${PODLAB_BIN:-}" ]; then
  bin=$PODLAB_BIN # a build of your own, e.g. a debug one (figures differ)
else
  cargo build --release --locked -q
  bin=${CARGO_TARGET_DIR:-target}/release/podlab
fi

work=$(mktemp -d)
holders=()
stop_holders() {
  local h
  for h in "${holders[@]}"; do kill "$h" 2>/dev/null || true; done
  for h in "${holders[@]}"; do wait "$h" 2>/dev/null || true; done
  holders=()
}
cleanup() {
  stop_holders
  "$bin" down "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

{
  cat <<EOF
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: $lab}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: server}
spec:
  nodeName: node-1
  containers:
  - name: web
    ports:
EOF
  for i in $(seq 0 $((ports - 1))); do echo "    - {containerPort: $((8080 + i))}"; done
  for i in $(seq 1 "$flooders"); do
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: flood-$i}
spec:
  nodeName: node-2
  enableServiceLinks: false
  containers: [{name: c, image: busybox}]
EOF
  done
} >"$work/lab.yaml"

# Connects COUNT times to HOST:PORT, says how many connected, then holds
# every connection until killed.
cat >"$work/hold.py" <<'EOF'
import signal, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, failed = [], 0
for _ in range(count):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        socks.append(s)
    except OSError:
        failed += 1
        s.close()
print(f"{len(socks)} {failed}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
EOF

"$bin" down "$lab" >/dev/null 2>&1 || true
"$bin" up -q "$work/lab.yaml"
pid=$(cat "/run/podlab/$lab/ready")
server=$(ip netns exec "$lab-default-server" ip -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}')
nofile=$(awk '/Max open files/ {print $4}' "/proc/$pid/limits")
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

# hold POD PORT COUNT: a holder in POD's namespace, its first output line
# (connected failed) in $work/out.N.
n=0
hold() {
  n=$((n + 1))
  ip netns exec "$lab-default-$1" python3 "$work/hold.py" "$server" "$2" "$3" >"$work/out.$n" 2>&1 &
  holders+=($!)
}

# Wait until every holder has said how many it connected; the peak RSS
# meanwhile.
peak=0
wait_connected() {
  local deadline=$((SECONDS + 120)) i r
  while :; do
    r=$(rss)
    [ "$r" -gt "$peak" ] && peak=$r
    local done=0
    for i in $(seq 1 "$n"); do [ -s "$work/out.$i" ] && done=$((done + 1)); done
    [ "$done" -eq "$n" ] && break
    [ $SECONDS -lt $deadline ] || { echo "bench-flood.sh: the flood did not finish connecting" >&2; exit 1; }
    sleep 0.2
  done
  # Refusals are immediate; a second more lets the last ones finish.
  for _ in 1 2 3 4 5; do
    r=$(rss)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
  done
}

echo "daemon pid $pid, open-file limit $nofile"
printf '%-10s %12s %10s %10s %14s %16s %s\n' flood connections idle_kB peak_kB after_10s_kB under_2x_after result
status=0
for flood in "${floods[@]}"; do
  sleep 2
  idle=$(rss)
  peak=$idle
  n=0
  rm -f "$work"/out.*
  case $flood in
  one-pod)
    hold flood-1 8080 10000
    hold flood-1 8080 10000
    ;;
  many-pods)
    for i in $(seq 1 "$flooders"); do hold "flood-$i" $((8080 + i % ports)) 1000; done
    ;;
  *)
    echo "bench-flood.sh: no flood named $flood (one-pod, many-pods)" >&2
    exit 2
    ;;
  esac
  wait_connected
  connected=$(cat "$work"/out.* | awk '{c += $1} END {print c}')
  held=$(ip netns exec "$lab-default-server" ss -Htn state established | wc -l)
  stop_holders
  closed=$(date +%s.%N)
  under=""
  for _ in $(seq 1 40); do
    sleep 0.25
    r=$(rss)
    if [ -z "$under" ] && [ "$r" -lt $((2 * idle)) ]; then
      under=$(echo "$(date +%s.%N) - $closed" | bc -l | xargs printf '%.2fs')
    fi
  done
  after=$(rss)
  result=PASS
  if [ "$after" -ge $((2 * idle)) ]; then
    result=FAIL
    status=1
  fi
  printf '%-10s %12s %10s %10s %14s %16s %s\n' "$flood" "$connected" "$idle" "$peak" "$after" "${under:-never}" "$result"
  echo "  (the daemon held $held of them at the peak, by ss in the server pod)"
done
grep -E "refus|freed memory" "/run/podlab/$lab/daemon.log" | tail -n 6 | sed 's/^/  log: /'
exit $status
