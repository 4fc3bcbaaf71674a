#!/usr/bin/env bash
# Queries per second of podlab's cluster DNS against dnsmasq, on the same
# query set, in one run: a lab with 300 ClusterIP services, `dnsperf` run
# from a pod against kube-dns, then the same `dnsperf` run from the same pod
# against dnsmasq serving the same 300 names -> the same addresses from a
# hosts file, inside the lab's `external` namespace (the pod reaches it
# through its node's masquerade). Prints both figures and their ratio.
#
# The two paths differ (kube-dns: a DNAT on the client's node, then the
# coredns pod behind node-1; external: one hop less), so a second pair
# compares the servers alone: podlab at the coredns pod's own address, and
# a second dnsmasq in the coredns pod's namespace (port 5353). The server's
# CPU per query, user and system (the kernel's forwarding of its replies
# is charged to it), says where the time goes.
#
#   sudo scripts/bench-dns.sh             # 10 s per run
#   sudo scripts/bench-dns.sh 30          # 30 s per run
#   ROUNDS=3 sudo -E scripts/bench-dns.sh  # alternate the servers 3 times,
#                                          # report each server's best run
#   DNSPERF_ARGS="-c 4 -T 2" sudo -E scripts/bench-dns.sh
#
# Installs dnsperf and dnsmasq-base (the binary alone: the `dnsmasq`
# package would start a resolver in the host's namespace) when missing.
# Every query stays inside the lab; the lab is brought down and dnsmasq
# killed however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-dns.sh: needs root" >&2; exit 2; }

secs=${1:-10}
rounds=${ROUNDS:-1}
services=300
lab=bdns
external_ip=172.18.0.254 # the `external` namespace in the default nodeCIDR
read -r -a perf_args <<<"${DNSPERF_ARGS:-}"

missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v dig >/dev/null || missing+=(dnsutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release --locked -q
bin=${CARGO_TARGET_DIR:-target}/release/podlab

work=$(mktemp -d)
chmod 755 "$work" # dnsmasq reads the hosts file after dropping root
dnsmasq_pid=""
pod_dnsmasq_pid=""
cleanup() {
  for pid in $dnsmasq_pid $pod_dnsmasq_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  "$bin" down "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The lab: 3 backends on node-1, the client on node-2, and 300 services
# with fixed cluster IPs, so that the hosts file can give the same ones.
ip_of() { echo "10.96.$(($1 / 200 + 1)).$(($1 % 200 + 1))"; }
{
  cat <<EOF
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: $lab}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-2
  enableServiceLinks: false
  containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  replicas: 3
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      nodeName: node-1
      containers: [{name: web, ports: [{containerPort: 8080}]}]
EOF
  for i in $(seq 1 $services); do
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%03d}\nspec:\n  clusterIP: %s\n  selector: {app: backend}\n  ports: [{port: 80, targetPort: 8080}]\n' \
      "$i" "$(ip_of "$i")"
  done
} >"$work/lab.yaml"
for i in $(seq 1 $services); do
  name=$(printf 'svc-%03d.default.svc.cluster.local' "$i")
  echo "$name A" >>"$work/queries.txt"
  echo "$(ip_of "$i") $name" >>"$work/hosts.txt"
done
chmod 644 "$work"/*

"$bin" down "$lab" >/dev/null 2>&1 || true
env -u PODLAB_LOG "$bin" up -q "$work/lab.yaml"
dns_ip=$("$bin" exec client --lab "$lab" -- sh -c "awk '/^nameserver/{print \$2; exit}' /etc/resolv.conf")

# Both servers must give the same answers before they are timed.
check() { # server [port]
  local got want
  got=$("$bin" exec client --lab "$lab" -- dig +short +time=2 +tries=2 -p "${2:-53}" "@$1" svc-$services.default.svc.cluster.local)
  want=$(ip_of $services)
  [ "$got" = "$want" ] || { echo "bench-dns.sh: $1 answered '$got', expected $want" >&2; exit 1; }
}

# CPU time of a process (all its threads), in clock ticks: user system.
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

qps() { # server port label server-pid
  local out u0 s0 u1 s1
  read -r u0 s0 < <(ticks "$4")
  out=$("$bin" exec client --lab "$lab" -- dnsperf -s "$1" -p "$2" -d "$work/queries.txt" -l "$secs" "${perf_args[@]}")
  read -r u1 s1 < <(ticks "$4")
  shift
  echo "$out" >"$work/$2.out"
  local lost completed
  completed=$(awk '/Queries completed:/{print $3}' <<<"$out")
  lost=$(awk '/Queries lost:/{print $3}' <<<"$out")
  echo "  $2: $(awk '/Queries per second:/{printf "%.0f q/s", $4}' <<<"$out"), completed $completed, lost $lost," \
    "$(awk '/Average Latency/{print "latency avg " $4 " s"}' <<<"$out"), server CPU $(((u1 + s1 - u0 - s0) * 100 / secs / hz))%:" \
    "user $(((u1 - u0) * 1000000 / hz / (completed > 0 ? completed : 1))) us/query," \
    "system $(((s1 - s0) * 1000000 / hz / (completed > 0 ? completed : 1))) us/query" >&2
  awk '/Queries per second:/{printf "%.0f\n", $4}' <<<"$out"
}

daemon_pid=$(pgrep -f -x ".*podlab __daemon $lab" | head -n 1)
hz=$(getconf CLK_TCK)
check "$dns_ip"
# dnsmasq in namespace $1 only, on address $2 port $3: bound to that
# address, and checked not to be listening in the host's namespace.
start_dnsmasq() { # netns address port -> pid in $started
  ip netns exec "$1" dnsmasq --keep-in-foreground --no-resolv --no-hosts \
    --addn-hosts="$work/hosts.txt" --listen-address="$2" --bind-interfaces \
    --port "$3" --pid-file= --log-facility=- --cache-size=1000 2>>"$work/dnsmasq.log" &
  started=$!
  for _ in $(seq 50); do
    ip netns exec "$1" ss -lun | grep -q "$2:$3 " && break
    sleep 0.1
  done
  if ss -lunp | grep -q "pid=$started,"; then
    echo "bench-dns.sh: dnsmasq is listening in the host's namespace" >&2
    exit 1
  fi
}
start_dnsmasq "$lab-external" "$external_ip" 53
dnsmasq_pid=$started
check "$external_ip"
coredns_ns=$(ip netns list | awk -v p="$lab-kube-system-coredns-" 'index($1, p) == 1 {print $1; exit}')
coredns_ip=$(ip -n "$coredns_ns" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]; exit}')
start_dnsmasq "$coredns_ns" "$coredns_ip" 5353
pod_dnsmasq_pid=$started
check "$coredns_ip" 5353

# Alternated, so that a machine busy with something else weighs on both.
echo "dnsperf ${secs}s, $services A names, from pod client (node-2), $rounds round(s):" >&2
podlab_qps=0
dnsmasq_qps=0
pod_podlab_qps=0
pod_dnsmasq_qps=0
best() { [ "$1" -gt "$2" ] && echo "$1" || echo "$2"; }
for _ in $(seq "$rounds"); do
  podlab_qps=$(best "$(qps "$dns_ip" 53 "podlab via kube-dns" "$daemon_pid")" "$podlab_qps")
  dnsmasq_qps=$(best "$(qps "$external_ip" 53 "dnsmasq in external" "$dnsmasq_pid")" "$dnsmasq_qps")
  pod_podlab_qps=$(best "$(qps "$coredns_ip" 53 "podlab at the pod IP" "$daemon_pid")" "$pod_podlab_qps")
  pod_dnsmasq_qps=$(best "$(qps "$coredns_ip" 5353 "dnsmasq in the coredns pod" "$pod_dnsmasq_pid")" "$pod_dnsmasq_qps")
done

ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
echo
printf '%-36s %10s\n' "server (best of $rounds)" "queries/s"
printf '%-36s %10s\n' "podlab via kube-dns $dns_ip" "$podlab_qps"
printf '%-36s %10s\n' "dnsmasq in external $external_ip" "$dnsmasq_qps"
echo "ratio podlab/dnsmasq: $(ratio "$podlab_qps" "$dnsmasq_qps")"
printf '%-36s %10s\n' "podlab at the pod, $coredns_ip:53" "$pod_podlab_qps"
printf '%-36s %10s\n' "dnsmasq in the pod, $coredns_ip:5353" "$pod_dnsmasq_qps"
echo "ratio on the same path: $(ratio "$pod_podlab_qps" "$pod_dnsmasq_qps")"
