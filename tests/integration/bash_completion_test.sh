#!/usr/bin/env bash
# scripts/cohort.bash-completion in a bash without bash-completion loaded, as
# the <TAB> key runs it, with the cohort just built:
#   1. commands: `cohort sta<TAB>` is status, and connection options before
#      the command do not hide it;
#   2. options: `cohort status --<TAB>` and `cohort submit --<TAB>` offer the
#      options their --help lists, and --state its four states;
#   3. the script's list of options that take a value (skipped when finding
#      the command) holds every such option some `cohort COMMAND --help`
#      lists, so the two cannot drift apart;
#   4. group ids and worker names, from a coordinator started here on ipc://
#      sockets in a temporary directory, and nothing (quickly) from one that
#      is not there.
# Usage: bash_completion_test.sh REPO_ROOT BIN_DIR
set -uo pipefail

root=${1:?REPO_ROOT}
bin_dir=${2:?BIN_DIR}
cohort=$bin_dir/cohort
script=$root/scripts/cohort.bash-completion
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bash_completion_test.XXXXXX") || { echo "FAIL: mktemp" >&2; exit 1; }
coordinator_pid=
cleanup() {
  [ -n "$coordinator_pid" ] && kill "$coordinator_pid" 2>/dev/null && wait "$coordinator_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=../../scripts/cohort.bash-completion
source "$script" || { echo "FAIL: sourcing $script" >&2; exit 1; }
complete -p cohort >/dev/null 2>&1 || fail "the script does not register a completion for cohort"

# complete WORD... : COMPREPLY, one a line, for the command line WORD...
# with the cursor at the end of its last word ("" for a new word).
complete_words() {
  COMP_WORDS=("$cohort" "$@")
  COMP_CWORD=$#
  COMP_LINE="${COMP_WORDS[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _cohort "$cohort" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort
}

expect() {  # expect WHAT EXPECTED ACTUAL
  [ "$2" = "$3" ] || fail "$1: expected [$2], got [$(tr '\n' ' ' <<<"$3")]"
}
expect_has() {  # expect_has WHAT LINE ACTUAL
  grep -qxF -- "$2" <<<"$3" || fail "$1: [$2] not offered in [$(tr '\n' ' ' <<<"$3")]"
}

# ---- 1. commands ---------------------------------------------------------------
expect "cohort sta<TAB>" status "$(complete_words sta)"
expect "cohort --coordinator EP sta<TAB>" status "$(complete_words --coordinator ipc://x sta)"
expect "cohort c<TAB>" "$(printf 'cancel\ncordon')" "$(complete_words c)"
all=$(complete_words "")
for c in submit status wait logs cancel groups workers cordon drain uncordon ping keygen; do
  expect_has "cohort <TAB>" "$c" "$all"
done

# ---- 2. options ----------------------------------------------------------------
status_options=$(complete_words status --)
for o in --help --coordinator --connect-timeout --json --jsonl --coordinator-key --curve-secret-key; do
  expect_has "cohort status --<TAB>" "$o" "$status_options"
done
# Only options: no positional placeholder, no text of a description.
bad=$(grep -vE '^--[a-z][a-z0-9-]*$' <<<"$status_options")
[ -z "$bad" ] || fail "cohort status --<TAB> offers what is not an option: $bad"
submit_options=$(complete_words submit --)
for o in --wait --cwd --commands --max-parallel --on-failure --detach; do
  expect_has "cohort submit --<TAB>" "$o" "$submit_options"
done
expect "cohort groups --st<TAB>" --state "$(complete_words groups --st)"
expect "cohort groups --state <TAB>" "$(printf 'cancelled\ncompleted\nfailed\nrunning')" \
  "$(complete_words groups --state "")"
expect "cohort submit --on-failure c<TAB>" "$(printf 'cancel\ncontinue')" \
  "$(complete_words submit --on-failure c)"

# ---- 3. the options that take a value ------------------------------------------
commands=$("$cohort" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' | sort -u)
[ -n "$commands" ] || fail "no commands read from cohort --help"
for c in $commands; do
  while read -r option; do
    grep -qE -- "(^|[ |(])$option( |\)|$)" <(sed -n '/local -a connection/,/^    done/p' "$script") ||
      fail "$option (cohort $c) takes a value, but the script does not skip it when finding the command"
  done < <("$cohort" "$c" --help | sed -n 's/^  \(--[a-z][a-z0-9-]*\) [A-Z].*/\1/p')
done

# ---- 4. group ids and worker names from a coordinator ----------------------------
# Nothing answers: nothing offered, within the one-second limit.
started=$SECONDS
expect "no coordinator: cohort status <TAB>" "" "$(complete_words --coordinator "ipc://$tmp/nobody" status "")"
[ $((SECONDS - started)) -le 10 ] || fail "completing against no coordinator took $((SECONDS - started)) s"

ep=ipc://$tmp/client
"$bin_dir/cohort-coordinator" --client-endpoint "$ep" --worker-endpoint "ipc://$tmp/worker" \
  --cancel-endpoint "ipc://$tmp/cancel" --state-dir "$tmp/state" >"$tmp/coordinator.log" 2>&1 &
coordinator_pid=$!
# No worker joins: the groups stay running, their steps pending.
for id in build-1 build-2 test-1; do
  "$cohort" submit --coordinator "$ep" --connect-timeout 20 --id "$id" -- true >/dev/null ||
    fail "submit $id (coordinator log: $(cat "$tmp/coordinator.log"))"
done
expect "cohort --coordinator EP status b<TAB>" "$(printf 'build-1\nbuild-2')" \
  "$(complete_words --coordinator "$ep" status b)"
expect "cohort cancel <TAB> --coordinator=EP" "$(printf 'build-1\nbuild-2\ntest-1')" \
  "$(complete_words --coordinator="$ep" cancel "")"
expect "cohort logs --coordinator EP t<TAB>" test-1 "$(complete_words logs --coordinator "$ep" t)"
# The second word of logs is a step, not a group.
expect "cohort logs --coordinator EP test-1 <TAB>" "" "$(complete_words logs --coordinator "$ep" test-1 "")"
expect "cohort --coordinator EP cordon <TAB> (no workers)" "" "$(complete_words --coordinator "$ep" cordon "")"

if [ "$failures" -gt 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "ok: bash completion"
