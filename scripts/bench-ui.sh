#!/usr/bin/env bash
# Figures of issue 16's pictures and capture, on the seed lab (the built-in
# demo lab, brought up as `ui-bench` or $BENCH_LAB, and down at the end):
#   - `podlab ui`: the page's first paint and the time until the lab's
#     picture is drawn, in headless chromium through chromedriver (target:
#     first paint under 500 ms);
#   - `podlab capture` of a 10 s iperf3 stream from pod-2 to pod-1 (across
#     nodes), at 1 Gbit/s and unlimited: packets captured and dropped by the
#     capture as the kernel counts them (target: none dropped at 1 Gbit/s);
#   - `podlab graph` of a 1,000-pod lab (scripts/bench-graph.sh; target
#     under 1 s).
# Needs root, chromium, chromium-driver and iperf3 (installed if missing).
#
#   sudo scripts/bench-ui.sh [BIN]      # BIN: the podlab binary (default: a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
LAB=${BENCH_LAB:-ui-bench}   # a lab of this name is brought up and down
bin=${1:-}
if [ -z "$bin" ]; then cargo build -q; bin=target/debug/podlab; fi
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$bin" down "$LAB" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sed "s/^  name: demo\$/  name: $LAB/" src/lab/demo.yaml >"$work/lab.yaml"
"$bin" down "$LAB" >/dev/null 2>&1 || true
"$bin" up -q "$work/lab.yaml"

# ---- the page ----
"$bin" ui "$LAB" >"$work/url" 2>/dev/null & pids+=($!)
for _ in $(seq 50); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(head -1 "$work/url")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chromedriver --port="$port" >/dev/null 2>&1 & pids+=($!)
wd="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$wd/status" >/dev/null && break; sleep 0.1; done
caps='{"capabilities":{"alwaysMatch":{"goog:chromeOptions":{"args":["--headless=new","--no-sandbox","--disable-gpu","--window-size=1500,1000"]}}}}'
session=$(curl -sf -XPOST "$wd/session" -d "$caps" | jq -r .value.sessionId)
js() { curl -sf -XPOST "$wd/session/$session/execute/sync" -d "$(jq -nc --arg s "$1" '{script:$s,args:[]}')" | jq -r .value; }
for run in 1 2 3 4 5 6; do
  curl -sf -XPOST "$wd/session/$session/url" -d "$(jq -nc --arg u "$url" '{url:$u}')" >/dev/null
  for _ in $(seq 100); do [ "$(js 'return document.body.dataset.drawn || ""')" = 1 ] && break; sleep 0.05; done
  fcp=$(js "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? Math.round(p.startTime) : -1")
  drawn=$(js 'return Math.round(window.podlabDrawn)')
  # The first load starts chromium's own caches: reported apart.
  if [ "$run" = 1 ]; then
    echo "podlab ui, seed lab, first load of a fresh browser: first contentful paint $fcp ms, picture drawn at $drawn ms"
  else
    echo "podlab ui, seed lab, load $run: first contentful paint $fcp ms, picture drawn at $drawn ms"
  fi
done
curl -sf -XDELETE "$wd/session/$session" >/dev/null || true

# ---- capture of an iperf3 stream ----
pod1=$("$bin" get pods -o wide --lab "$LAB" | awk '$1=="pod-1"{print $6}')
for rate in 1G 0; do
  "$bin" exec --lab "$LAB" pod-1 -- iperf3 -s -1 >/dev/null 2>&1 & srv=$!
  sleep 0.5
  "$bin" capture --lab "$LAB" pod-1 -w /dev/null -s 128 --duration 12 tcp port 5201 2>"$work/cap" & cap=$!
  sleep 0.5
  "$bin" exec --lab "$LAB" pod-2 -- iperf3 -c "$pod1" -t 10 -b "$rate" -J >"$work/iperf.json"
  wait "$cap" || true
  wait "$srv" || true
  mbps=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$work/iperf.json")
  label=$([ "$rate" = 0 ] && echo unlimited || echo "$rate/s")
  echo "capture of iperf3 -t 10 -b $label from pod-2 to pod-1 ($mbps Mbit/s received): $(grep 'packets matched' "$work/cap" | sed 's/^podlab: //')"
done

# ---- graph of 1,000 pods ----
scripts/bench-graph.sh
