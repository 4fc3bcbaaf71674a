#!/usr/bin/env bash
# Run every command the docs tell a learner to type, as written, and fail
# when one does not do what the text says.
#
# Where the commands are:
#   README.md   the `$ ...` lines of the console block of "A 5-minute tour",
#               run against the built-in lab `demo`;
#   labs/*.yaml the comment lines `#   $ ...` (a line `#   > ...` continues
#               the command above it), run against that lab, in file order:
#               "Run it" brings the lab up, "Break it" breaks it, the last
#               command brings it down.
# What a command's trailing comment may say:
#   (exit N)          it must exit with status N (curl 7: refused, 28: timed out)
#   (fails ...)       it must exit non-zero
#   (not run ...)     not run here (another terminal, a placeholder, a long benchmark)
# Otherwise it must exit 0.
#
# A lab already up is not touched (its commands are skipped, and that is a
# failure). Every lab this script touched is brought down at the end,
# whatever happened. Other labs may be up at the same time: `podlab`
# commands that pick "the only lab up" get `--lab` added, so the text is run
# as a learner alone on the machine would run it.
#
# Usage: sudo scripts/check-docs.sh [-v] [README.md | labs/FILE.yaml ...]
#   -v prints every command's output (to check what the text says of it).
#   PODLAB=path/to/podlab picks the binary (default: target/release/podlab,
#   else target/debug/podlab).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "check-docs: needs root (the commands are run as \`sudo podlab ...\`): sudo $0" >&2
  exit 2
fi
podlab_bin=${PODLAB:-}
if [ -z "$podlab_bin" ]; then
  for p in "${CARGO_TARGET_DIR:-target}/release/podlab" "${CARGO_TARGET_DIR:-target}/debug/podlab"; do
    if [ -x "$p" ]; then podlab_bin=$p; break; fi
  done
fi
if [ -z "$podlab_bin" ] || [ ! -x "$podlab_bin" ]; then
  echo "check-docs: no podlab binary: build it (cargo build --release) or set PODLAB" >&2
  exit 2
fi
podlab_bin=$(realpath "$podlab_bin")
export PATH="$(dirname "$podlab_bin"):$PATH"

verbose=0
if [ "${1:-}" = -v ]; then verbose=1; shift; fi
files=("$@")
if [ "${#files[@]}" -eq 0 ]; then
  files=(README.md labs/*.yaml)
fi

# The environment each command runs in: `sudo` is a no-op (we are root, and
# sudo's secure_path would not find this podlab), and `podlab` names the lab
# where the command would otherwise pick the only one up.
prelude='
sudo() { "$@"; }
podlab() {
  local sub=${1:-}
  case $sub in
    exec|get|logs|dns|diagnose|trace|delete|scale|graph|capture|kubectl)
      shift
      # A command that names its lab keeps it.
      if [[ ${1:-} == --lab* ]]; then command podlab "$sub" "$@"
      else command podlab "$sub" --lab "$CHECK_DOCS_LAB" "$@"; fi ;;
    apply)
      shift
      if [ $# -eq 0 ] || [[ $1 == -* ]]; then
        command podlab apply --lab "$CHECK_DOCS_LAB" "$@"
      else command podlab apply "$@"; fi ;;
    down)
      shift
      if [ $# -eq 0 ]; then command podlab down "$CHECK_DOCS_LAB"
      else command podlab down "$@"; fi ;;
    *) command podlab "$@" ;;
  esac
}
'

touched=()
cleanup() {
  local lab
  for lab in "${touched[@]}"; do
    if [ -d "/run/podlab/$lab" ]; then
      "$podlab_bin" down "$lab" >/dev/null 2>&1 ||
        echo "check-docs: could not bring lab $lab down" >&2
    fi
  done
}
trap 'exit 130' INT TERM

failures=0
ran=0
skipped=0
log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT

# The lab a file's commands run against.
lab_of() {
  case $1 in
    *README.md) echo demo ;;
    *) awk '/^metadata:/ {m=1; next} m && /^  name:/ {print $2; exit}' "$1" ;;
  esac
}

# Print the commands of a file, each as "LINE<TAB>command", the lines of a
# continued command joined by the unit separator \x1f (a backslash of the
# command itself stays as written).
extract() {
  case $1 in
    *README.md)
      awk '
        /^## A 5-minute tour/ {tour=1; next}
        tour && /^## / {exit}
        tour && /^```console/ {block=1; next}
        block && /^```/ {block=0; next}
        block && /^\$ / {if (cmd != "") print line "\t" cmd; line=NR; cmd=substr($0, 3); next}
        block && /^> / {cmd=cmd "\037" substr($0, 3); next}
        block {if (cmd != "") print line "\t" cmd; cmd=""}
        END {if (cmd != "") print line "\t" cmd}' "$1" ;;
    *)
      awk '
        /^# +\$ / {if (cmd != "") print line "\t" cmd; line=NR; sub(/^# +\$ /, ""); cmd=$0; next}
        /^# +> / {sub(/^# +> /, ""); cmd=cmd "\037" $0; next}
        {if (cmd != "") print line "\t" cmd; cmd=""}
        END {if (cmd != "") print line "\t" cmd}' "$1" ;;
  esac
}

for file in "${files[@]}"; do
  lab=$(lab_of "$file")
  if [ -z "$lab" ]; then
    echo "check-docs: $file: no metadata.name" >&2
    failures=$((failures + 1))
    continue
  fi
  mapfile -t commands < <(extract "$file")
  if [ "${#commands[@]}" -eq 0 ]; then
    echo "check-docs: $file: no commands found (\`#   \$ podlab ...\` lines)" >&2
    failures=$((failures + 1))
    continue
  fi
  if [ -d "/run/podlab/$lab" ]; then
    echo "check-docs: $file: lab $lab is already up: bring it down first (sudo podlab down $lab)" >&2
    failures=$((failures + 1))
    continue
  fi
  touched+=("$lab")
  echo "check-docs: $file (lab $lab, ${#commands[@]} commands)"
  for rec in "${commands[@]}"; do
    line=${rec%%$'\t'*}
    cmd=${rec#*$'\t'}
    cmd=${cmd//$'\x1f'/$'\n'}
    first=${cmd%%$'\n'*}
    comment=""
    if [[ $first == *" # "* ]]; then comment=${first#*" # "}; fi
    want=0
    case $comment in
      *"(not run"*)
        skipped=$((skipped + 1))
        continue ;;
      *"(fails"*) want=nonzero ;;
    esac
    if [[ $comment =~ \(exit\ ([0-9]+)\) ]]; then want=${BASH_REMATCH[1]}; fi
    ran=$((ran + 1))
    start=$(date +%s.%N)
    CHECK_DOCS_LAB=$lab timeout 120 bash -c "$prelude
$cmd" </dev/null >"$log" 2>&1
    rc=$?
    took=$(echo "$(date +%s.%N) - $start" | bc)
    ok=1
    case $want in
      nonzero) [ "$rc" -ne 0 ] || ok=0 ;;
      *) [ "$rc" -eq "$want" ] || ok=0 ;;
    esac
    if [ "$ok" -eq 1 ]; then
      printf '  ok    %s:%s  %s  (exit %s, %.1fs)\n' "$file" "$line" "${first:0:90}" "$rc" "$took"
      if [ "$verbose" -eq 1 ]; then sed 's/^/        | /' "$log"; fi
    else
      failures=$((failures + 1))
      if [ "$want" = nonzero ]; then expected="a failure"; else expected="exit $want"; fi
      printf '  FAIL  %s:%s  %s\n        expected %s, got exit %s; its output:\n' \
        "$file" "$line" "$first" "$expected" "$rc" >&2
      tail -n 15 "$log" | sed 's/^/        | /' >&2
    fi
  done
  # Whatever the text did last, the lab goes: the next file starts clean.
  if [ -d "/run/podlab/$lab" ]; then
    echo "check-docs: $file: lab $lab is still up after its last command (the text should bring it down)" >&2
    failures=$((failures + 1))
    "$podlab_bin" down "$lab" >/dev/null 2>&1
  fi
done

echo "check-docs: $ran commands run, $skipped not run (marked), $failures failed"
[ "$failures" -eq 0 ]
