#!/usr/bin/env bash
# The whole test suite: installs missing system packages, builds, runs the
# unit tests and the root integration tests (real namespaces), runs
# `podlab test` on every lab of the curriculum (labs/*.yaml, JUnit reports in
# target/junit/) and `podlab exercise verify` on every exercise
# (labs/exercises/*.yaml), runs every command of the README's tour and the
# labs' comments (scripts/check-docs.sh), then checks that the host looks
# exactly as before.
#
# Not root? The build runs as you and the test binaries through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/provision.sh --ui

if [ "$(id -u)" -ne 0 ]; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
fi

snapshot() {
  {
    ip netns list 2>/dev/null | awk '{print $1}' | sort
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort
  }
}
before=$(snapshot)

cargo build --release --locked
# Integration tests build their own lab names and clean up in guards; they
# share the kernel, so they run one at a time.
cargo test --release --locked -- --test-threads=1

# The curriculum: every lab in labs/ (not labs/next/, whose features are
# not built yet) must pass its own assertions, from nothing to down. A
# JUnit report per lab goes to target/junit/. Every lab runs even when one
# fails; the host check below runs either way.
podlab="${CARGO_TARGET_DIR:-target}/release/podlab"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
mkdir -p target/junit
failed=()
shopt -s nullglob
for lab in labs/*.yaml; do
  name=$(basename "$lab" .yaml)
  echo "test.sh: podlab test $lab"
  if ! $sudo "$podlab" test "$lab" --junit "target/junit/$name.xml"; then
    failed+=("$lab")
  fi
done
# The break-fix exercises: each must be broken by its faults, fixed by its
# own solution, and reset and brought down without a trace.
for ex in labs/exercises/*.yaml; do
  echo "test.sh: podlab exercise verify $ex"
  if ! $sudo "$podlab" exercise verify "$ex" --seeds 3; then
    failed+=("$ex")
  fi
done
shopt -u nullglob
if [ -n "$sudo" ]; then $sudo chown -R "$(id -u):$(id -g)" target/junit; fi
# The docs: every command of the README's tour and of the labs' comments,
# typed as written against its lab, exits as the text says. Before the host
# check, so that a lab it leaves behind is caught there too.
echo "test.sh: scripts/check-docs.sh"
if ! $sudo env PODLAB="$podlab" scripts/check-docs.sh; then
  failed+=("docs (scripts/check-docs.sh)")
fi

after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "test.sh: the host changed during the tests:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
if [ "${#failed[@]}" -ne 0 ]; then
  echo "test.sh: these labs or exercises failed: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: all tests and labs passed; host namespaces and links unchanged"
