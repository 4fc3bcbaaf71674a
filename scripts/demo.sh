#!/usr/bin/env bash
# Bring up the default lab (the seed's example: two nodes, pod-1 serving
# HTTP on port 80, pod-2 running `sleep 3600`) and show it working.
# Installs missing system packages, builds podlab, and leaves the lab up.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/provision.sh
cargo build --release --locked

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
podlab() { $sudo target/release/podlab "$@"; }

podlab down demo >/dev/null 2>&1 || true
podlab up
step() { printf '\n\033[1m$ podlab %s\033[0m\n' "$*"; }
step get pods -o wide
podlab get pods -o wide
pod1_ip=$(podlab get pod pod-1 -o json | sed -n 's/.*"podIP": "\(.*\)".*/\1/p')
pod2_ip=$(podlab get pod pod-2 -o json | sed -n 's/.*"podIP": "\(.*\)".*/\1/p')
step exec pod-1 -- curl -sS "$pod2_ip"
echo "(pod-1 reaches pod-2 on another node; nothing listens there, so the kernel refuses)"
podlab exec pod-1 -- curl -sS --max-time 3 "$pod2_ip" || true
step exec pod-2 -- curl -s "$pod1_ip"
echo "(pod-1's echo shows pod-2's own IP as the client: no NAT between pods)"
podlab exec pod-2 -- curl -sS --max-time 3 "$pod1_ip"
step exec pod-1 -- ip route
podlab exec pod-1 -- ip route
printf '\nThe lab is still up: explore with `sudo target/release/podlab exec pod-1 -- sh`,\nthen remove it with `sudo target/release/podlab down`.\n'
