#!/usr/bin/env bash
# The layers of docs/ARCHITECTURE.md, checked against the build itself:
#  1. every probe (a source that includes a header its library may not)
#     fails to build, with the guard's message, so the fence is really there;
#  2. the include closure of every object of the pure libraries, read from
#     the compiler's own dependency files, holds no ZeroMQ header and none
#     of cohort's files in it reads a clock.
# Usage: layering_test.sh SOURCE_DIR BUILD_DIR PROBE_TARGET... -- PURE_OBJECT...
# The dependency files are the OBJECT.d that CMake's Makefile generator keeps
# (the default, and what scripts/test uses); Ninja keeps them in .ninja_deps
# instead, and this test then fails saying which file it could not find.
set -euo pipefail
src=$1 build=$2
shift 2
probes=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do probes+=("$1"); shift; done
shift
objects=("$@")
fail=0

[ ${#probes[@]} -gt 0 ] || { echo "no probes given"; exit 1; }
for p in "${probes[@]}"; do
  if out=$(cmake --build "$build" --target "$p" 2>&1); then
    echo "FAIL: $p built, so its library may include what it must not"
    fail=1
  elif ! grep -q "may not be included here" <<<"$out"; then
    echo "FAIL: $p failed, but not at the guard:"
    echo "$out" | tail -20
    fail=1
  else
    echo "ok: $p is refused by the guard"
  fi
done

[ ${#objects[@]} -gt 0 ] || { echo "no pure objects given"; exit 1; }
closure=$(mktemp)
trap 'rm -f "$closure"' EXIT
for o in "${objects[@]}"; do
  d="$o.d"
  [ -f "$d" ] || { echo "FAIL: no dependency file $d (build first)"; fail=1; continue; }
  # Make-style: "target: dep dep \" lines; take every path after the colon.
  sed -e 's/^[^:]*://' -e 's/\\$//' "$d" | tr ' ' '\n' | grep -v '^$' >>"$closure" || true
done
sort -u -o "$closure" "$closure"
if grep -E '/zmq(\.h|\.hpp|_addon\.hpp)$' "$closure"; then
  echo "FAIL: a pure library's include closure has the ZeroMQ headers above"
  fail=1
fi
ours=$(grep -E "^$src/(common|coordinator|worker)/" "$closure" || true)
[ -n "$ours" ] || { echo "FAIL: no cohort files in the pure closure (paths changed?)"; fail=1; }
if [ -n "$ours" ] && grep -nE '(::now\(|gettimeofday|clock_gettime|time\(nullptr\)|time\(NULL\))' $ours; then
  echo "FAIL: pure code reads a clock (above); take the time as an argument"
  fail=1
fi
echo "pure include closure: $(wc -l <"$closure") files, $(wc -w <<<"$ours") of cohort's"
if [ $fail -ne 0 ]; then echo "layers: FAILED"; exit 1; fi
echo "layers: hold"
