#!/usr/bin/env bash
# `podlab validate` on hostile input: for each file below, the wall time and
# the peak memory (max RSS) of one run of the release binary, against the
# targets: under 1 s and under 100 MB, and an exit code of 0 or 2 (never a
# crash). No root needed. The limits themselves are in docs/limits.md.
#
#   scripts/bench-hostile.sh            # every case
#   scripts/bench-hostile.sh keys-80k   # the cases whose name contains this
#
# Exit status: 0 when every case passes, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-}
scripts/provision.sh
cargo build --release --locked -q
bin=$PWD/target/release/podlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

max_seconds=1
max_kb=$((100 * 1024))

# `n` copies of a string, without a newline.
rep() { head -c "$2" /dev/zero | tr '\0' "$1"; }
# `n` copies of a multi-character string.
rep_str() { awk -v s="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'; }

lab_head() { # name, network (flow mapping)
  printf 'apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: %s}\nspec:\n  nodes: 2\n  network: %s\n' "$1" "$2"
}

gen() { # case name -> file (or a path that is not a file)
  local f=$work/$1.yaml
  case $1 in
    alias-string-1mb) # one long string, aliased ~125,000 times: 1 MB
      { printf 'a: &a "'; rep x 500000; printf '"\nb: ['; rep_str '*a, ' 125000; printf '*a]\n'; } >"$f" ;;
    alias-string-4mb) # the same just under the file size limit
      { printf 'a: &a "'; rep x 2000000; printf '"\nb: ['; rep_str '*a, ' 540000; printf '*a]\n'; } >"$f" ;;
    alias-string-5mb) # the same over it
      { printf 'a: &a "'; rep x 2500000; printf '"\nb: ['; rep_str '*a, ' 625000; printf '*a]\n'; } >"$f" ;;
    billion-laughs) # ten levels of ten aliases: 10^10 values
      {
        printf 'l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n'
        for i in $(seq 1 10); do
          p="*l$((i - 1))"
          printf 'l%d: &l%d [%s, %s, %s, %s, %s, %s, %s, %s, %s, %s]\n' "$i" "$i" "$p" "$p" "$p" "$p" "$p" "$p" "$p" "$p" "$p" "$p"
        done
      } >"$f" ;;
    keys-80k) # a valid lab whose pod has 80,000 labels
      {
        lab_head h-keys '{}'
        printf -- '---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n'
        awk 'BEGIN { for (i = 0; i < 80000; i++) printf "    k%d: v\n", i }'
        printf 'spec: {containers: [{name: c}]}\n'
      } >"$f" ;;
    duplicate-keys-80k) # the same key 80,000 times: 80,000 errors
      { printf 'metadata:\n'; awk 'BEGIN { for (i = 0; i < 80000; i++) print "  name: x" }'; } >"$f" ;;
    nodecidr-slash-2)
      lab_head h-cidr '{nodeCIDR: 128.0.0.0/2}' >"$f" ;;
    podcidr-slash-1)
      lab_head h-cidr '{podCIDR: 0.0.0.0/1, podCIDRMask: 30}' >"$f" ;;
    servicecidr-slash-0)
      lab_head h-cidr '{serviceCIDR: 0.0.0.0/0, dnsIP: 10.96.0.10}' >"$f" ;;
    pods-10000) # the most pods a lab may have, in one Deployment
      {
        printf 'apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: h-pods}\nspec: {nodes: 50}\n'
        printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 10000\n'
        printf '  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n'
        printf '    spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n'
      } >"$f" ;;
    replicas-400-million) # 40,000 Deployments of 10,000 replicas
      {
        printf 'apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: h-reps}\nspec: {nodes: 250}\n'
        awk 'BEGIN { for (i = 0; i < 40000; i++) printf "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d%d}\nspec: {replicas: 10000, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c}]}}}\n", i }'
      } >"$f" ;;
    nodeports-65k) # 65,500 node ports (655 services of 100) over a range of 65,535
      {
        lab_head h-ports '{nodePortRange: 1-65535}'
        printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b}}\nspec: {containers: [{name: c}]}\n'
        awk 'BEGIN { for (s = 0; s < 655; s++) { printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d}\nspec:\n  type: NodePort\n  selector: {a: b}\n  ports:\n", s; for (i = 1; i <= 100; i++) printf "  - {name: p%d, port: %d}\n", i, i } }'
      } >"$f" ;;
    service-status-maps) # a valid Service whose ignored `status` holds 65,000 small maps
      {
        lab_head h-status '{}'
        printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\nstatus:\n  x: ['
        rep_str '{a: b}, ' 65000
        printf '{a: b}]\n'
      } >"$f" ;;
    service-status-maps-150k) # the same with 150,000: over the JSON budget
      {
        lab_head h-status '{}'
        printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\nstatus:\n  x: ['
        rep_str '{a: b}, ' 150000
        printf '{a: b}]\n'
      } >"$f" ;;
    services-10000) # a real lab at podlab's scale: 10,000 services (valid)
      {
        lab_head h-svc '{}'
        printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n'
        awk 'BEGIN { for (i = 0; i < 10000; i++) printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n", i }'
      } >"$f" ;;
    deep-flow) # 1 MB of `[`
      rep '[' 1000000 >"$f" ;;
    deep-block) # 200,000 nested block sequences
      { rep_str '- ' 200000; printf 'x\n'; } >"$f" ;;
    big-100mb)
      rep a 100000000 >"$f" ;;
    dev-zero)
      f=/dev/zero ;;
    fifo)
      f=$work/fifo
      mkfifo "$f" ;;
    directory)
      f=$work ;;
    *) echo "bench-hostile.sh: unknown case $1" >&2; exit 2 ;;
  esac
  printf '%s' "$f"
}

cases=(alias-string-1mb alias-string-4mb alias-string-5mb billion-laughs keys-80k
  duplicate-keys-80k nodecidr-slash-2 podcidr-slash-1 servicecidr-slash-0 pods-10000
  replicas-400-million nodeports-65k service-status-maps
  service-status-maps-150k services-10000 deep-flow deep-block big-100mb dev-zero fifo directory)

printf '%-22s %10s %8s %9s %5s  %s\n' case size seconds "max RSS" exit result
failed=0
for c in "${cases[@]}"; do
  [[ $c == *"$filter"* ]] || continue
  f=$(gen "$c")
  size=$( [ -f "$f" ] && stat -c %s "$f" || echo -)
  # A hung run must not hang the benchmark: 10 s is ten times the target.
  set +e
  /usr/bin/time -f '%e %M' -o "$work/time" timeout 10 "$bin" validate "$f" >/dev/null 2>"$work/stderr"
  code=$?
  set -e
  # time(1) writes "Command exited with non-zero status N" first.
  read -r secs kb < <(tail -n 1 "$work/time") || { secs=?; kb=0; }
  result=PASS
  if [ "$code" -ne 0 ] && [ "$code" -ne 2 ]; then result="FAIL (exit $code)"; fi
  if grep -q panicked "$work/stderr"; then result="FAIL (panic)"; fi
  if ! awk -v s="$secs" -v m="$max_seconds" 'BEGIN { exit !(s + 0 < m) }'; then result="FAIL (time)"; fi
  if [ "$kb" -ge "$max_kb" ]; then result="FAIL (memory)"; fi
  [ "$result" = PASS ] || failed=1
  printf '%-22s %10s %8s %6d MB %5s  %s\n' "$c" "$size" "$secs" $((kb / 1024)) "$code" "$result"
  # What podlab said, first line only, to show the cause it gives.
  printf '    %s\n' "$(head -c 300 "$work/stderr" | head -n 1)"
  [ -f "$f" ] && [ "$f" != /dev/zero ] && rm -f "$f"
done
exit $failed
