#!/usr/bin/env bash
# Checks the example configuration and the systemd units:
#   1. configs/coordinator.conf and configs/worker.conf name every option of
#      their program, with the default value, and no option that does not
#      exist (so the examples cannot silently drift from the programs);
#   2. when the programs are built: the same against their --help output, and
#      that each program really accepts its file (--check-config says OK, and
#      it starts and keeps running with --config FILE, on throw-away ipc://
#      endpoints);
#   3. systemd/cohort-coordinator.service and systemd/cohort-worker@.service
#      pass `systemd-analyze verify` without a single warning about them, and
#      keep the directives the docs rely on.
# Usage: systemd_units_test.sh [REPO_ROOT [BIN_DIR]]
#   REPO_ROOT defaults to this script's ../..; BIN_DIR (where cohort-coordinator
#   and cohort-worker are) defaults to $COHORT_BIN_DIR, else REPO_ROOT/build/bin.
# Exit status 0 on success (also when systemd-analyze is missing: that part
# prints SKIP), 1 with a FAIL line per problem otherwise.
set -uo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"}
bin_dir=${2:-${COHORT_BIN_DIR:-$root/build/bin}}
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
note() { echo "note: $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/systemd_units_test.XXXXXX") || { echo "FAIL: mktemp" >&2; exit 1; }
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

coordinator_conf=$root/configs/coordinator.conf
worker_conf=$root/configs/worker.conf
coordinator_unit=$root/systemd/cohort-coordinator.service
worker_unit=$root/systemd/cohort-worker@.service
for f in "$coordinator_conf" "$worker_conf" "$coordinator_unit" "$worker_unit"; do
  [ -f "$f" ] || { echo "FAIL: missing $f" >&2; exit 1; }
done

# ---- 1. The configs against the documented options ---------------------------
# option=default; an empty default means the option has no literal default
# (it may then appear commented out, e.g. `# name = build-01`).
coordinator_options=(
  client-endpoint=tcp://127.0.0.1:5700
  worker-endpoint=tcp://127.0.0.1:5701
  cancel-endpoint=tcp://127.0.0.1:5702
  heartbeat-ms=1000
  liveness=3
  backstop-grace=30
  cancel-resend=1
  retention=3600
  max-groups=100000
  max-steps=1000000
  max-output-mb=2048
  state-dir=
  store=sqlite
  sync=normal
  worker-lease=60
  store-max-mb=0
  name=
  advertise-client=
  advertise-worker=
  leader-lease-ms=4000
  log-level=info
  metrics-endpoint=
  log-format=text
  curve-secret-key=
  authorized-clients=
  authorized-workers=
  admin-clients=
  insecure=
  max-groups-per-client=0
  max-steps-per-group=0
  max-waits-per-client=1000
  max-output-tail-kib=1024
  handshake-timeout-ms=10000
  max-handshakes=16
  max-connections=0
  ipc-mode=
  ipc-group=
)
worker_options=(
  coordinator=tcp://127.0.0.1:5701
  name=
  state-dir=
  slots=0
  agents=
  kill-grace-ms=5000
  drain-timeout=30
  heartbeat-ms=1000
  output-tail-kib=64
  unconfirmed-mib=64
  spill-mib=1024
  log-level=info
  metrics-endpoint=
  log-format=text
  coordinator-key=
  curve-secret-key=
  insecure=
  run-as=
  client-users=
  step-isolation=pid-namespace
  allow-shell=true
  allowed-commands=
  allowed-env=
)

# The value of an active (uncommented) `key = value` line, trimmed; status 1
# if there is none. Boost cuts lines at the first '#', so we do too.
conf_value() {
  local file=$1 key=$2
  awk -v key="$key" '
    { sub(/#.*/, "") }
    index($0, "=") {
      k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (k == key) { print v; found = 1 }
    }
    END { exit found ? 0 : 1 }' "$file" | tail -n 1
}

# Is `key` mentioned as `key =` at all, possibly commented out?
conf_mentions() {
  grep -Eq "^[[:space:]]*(#[[:space:]]*)?$2[[:space:]]*=" "$1"
}

# Every active key in the file.
conf_keys() {
  awk '{ sub(/#.*/, "") } index($0, "=") { k = substr($0, 1, index($0, "=") - 1); gsub(/^[ \t]+|[ \t]+$/, "", k); print k }' "$1"
}

check_conf() {
  local file=$1 label=$2 entry key default value known
  shift 2
  known=" "
  for entry in "$@"; do
    key=${entry%%=*}
    default=${entry#*=}
    known+="$key "
    if [ -z "$default" ]; then
      conf_mentions "$file" "$key" || fail "$label: option '$key' is not in $file (not even commented out)"
    elif ! value=$(conf_value "$file" "$key"); then
      fail "$label: option '$key' has no active line in $file (expected '$key = $default')"
    elif [ "$value" != "$default" ]; then
      fail "$label: $file sets '$key = $value', but the example must show the default '$default'"
    fi
  done
  while read -r key; do
    [[ "$known" == *" $key "* ]] || fail "$label: $file sets '$key', which is not a $label option"
  done < <(conf_keys "$file")
}

check_conf "$coordinator_conf" cohort-coordinator "${coordinator_options[@]}"
check_conf "$worker_conf" cohort-worker "${worker_options[@]}"
echo "ok: configs name every documented option with its default"

# ---- 2. The configs against the built programs ------------------------------
# `--help` lists each option as `  --name VALUE (=default)`.
help_options() {
  "$1" --help 2>/dev/null | sed -nE 's/^  --([a-z0-9-]+)( [^ (]+)?( \(=([^)]*)\))?.*/\1=\4/p' |
    grep -Ev '^(help|version|config|check-config)='
}

check_against_help() {
  local program=$1 file=$2 entries=()
  mapfile -t entries < <(help_options "$program")
  if [ ${#entries[@]} -eq 0 ]; then
    fail "$(basename "$program") --help listed no options (did its format change?)"
    return
  fi
  check_conf "$file" "$(basename "$program") --help" "${entries[@]}"
}

# Starts the program with its config file (endpoints moved to ipc:// files in
# $tmp so nothing collides with a real cluster). Still running after 1.5 s
# means the file was accepted; exit status 2 means it was rejected.
check_accepts() {
  local program=$1 name rc
  shift
  name=$(basename "$program")
  "$program" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 15); do
    sleep 0.1
    kill -0 "$pid" 2>/dev/null || break
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "ok: $name starts with $*"
    kill -TERM "$pid"
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      note "$name was still running 10 s after SIGTERM; killed it"
      kill -KILL "$pid"
    fi
    wait "$pid" 2>/dev/null
    return
  fi
  wait "$pid"
  rc=$?
  if [ "$rc" -eq 2 ]; then
    fail "$name rejected its configuration ($*):"
  else
    fail "$name exited with status $rc right after starting ($*):"
  fi
  sed 's/^/    /' "$tmp/$name.err" >&2
}

# --check-config with the same command line must say OK and exit 0.
check_config() {
  local program=$1 name out
  shift
  name=$(basename "$program")
  if out=$("$program" "$@" --check-config 2>&1); then
    echo "ok: $name --check-config: $out"
  else
    fail "$name --check-config refused its configuration ($*):"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  fi
}

coordinator_bin=$bin_dir/cohort-coordinator
worker_bin=$bin_dir/cohort-worker
if [ -x "$coordinator_bin" ] && [ -x "$worker_bin" ]; then
  before=$failures
  check_against_help "$coordinator_bin" "$coordinator_conf"
  check_against_help "$worker_bin" "$worker_conf"
  [ "$failures" -eq "$before" ] && echo "ok: configs match the programs' --help (options and defaults)"
  # Its state in the scratch directory: the test must not touch the system's
  # /var/lib/cohort.
  check_config "$coordinator_bin" --config "$coordinator_conf" --state-dir "$tmp/state"
  check_config "$worker_bin" --config "$worker_conf" --state-dir "$tmp/worker-state" --run-as "$(id -un)"
  check_accepts "$coordinator_bin" --config "$coordinator_conf" \
    --client-endpoint "ipc://$tmp/client" --worker-endpoint "ipc://$tmp/worker" \
    --cancel-endpoint "ipc://$tmp/cancel" --state-dir "$tmp/state"
  check_accepts "$worker_bin" --config "$worker_conf" --coordinator "ipc://$tmp/nobody-here" \
    --name systemd-units-test --state-dir "$tmp/worker-state" --run-as "$(id -un)"
else
  note "$coordinator_bin or $worker_bin not built: skipped the --help and start-up checks"
fi

# ---- 3. The units -------------------------------------------------------------
directive() { grep -E "^$2=" "$1" | tail -n 1 | cut -d= -f2-; }
expect_line() {
  grep -Fxq -- "$2" "$1" || fail "$(basename "$1") lacks the line '$2'"
}
expect_line "$coordinator_unit" "ExecStart=/usr/local/bin/cohort-coordinator --config /etc/cohort/coordinator.conf"
expect_line "$coordinator_unit" "User=cohort"
expect_line "$coordinator_unit" "Restart=on-failure"
expect_line "$coordinator_unit" "RestartSec=1"
expect_line "$worker_unit" "ExecStart=/usr/local/bin/cohort-worker --config /etc/cohort/worker.conf --name %H-%i"
expect_line "$worker_unit" "User=root"
expect_line "$worker_unit" "KillMode=mixed"
expect_line "$worker_unit" "StateDirectory=cohort-worker/%i"
expect_line "$worker_unit" "Restart=always"
expect_line "$worker_unit" "RestartSec=2"
for unit in "$coordinator_unit" "$worker_unit"; do
  expect_line "$unit" "Type=notify"
  expect_line "$unit" "NotifyAccess=main"
  expect_line "$unit" "RestartPreventExitStatus=2 6"
  grep -Eq '^WatchdogSec=[0-9]+s$' "$unit" || fail "$(basename "$unit") lacks WatchdogSec=Ns"
done
grep -Eq '^ProtectSystem=' "$worker_unit" &&
  fail "cohort-worker@.service must not set ProtectSystem= (steps write where their user expects)"

# The stop timeouts must leave the worker time to drain and then kill its
# steps gracefully: it takes at most drain-timeout + kill-grace-ms + 10 s;
# the coordinator's backstop must outlast the kill grace too.
kill_grace_ms=$(conf_value "$worker_conf" kill-grace-ms)
drain_s=$(conf_value "$worker_conf" drain-timeout)
timeout_stop=$(directive "$worker_unit" TimeoutStopSec)
backstop=$(conf_value "$coordinator_conf" backstop-grace)
if [[ "$kill_grace_ms" =~ ^[0-9]+$ && "$drain_s" =~ ^[0-9]+$ && "$timeout_stop" =~ ^([0-9]+)s?$ ]]; then
  [ $(( BASH_REMATCH[1] * 1000 )) -gt $(( drain_s * 1000 + kill_grace_ms + 10000 )) ] ||
    fail "TimeoutStopSec=$timeout_stop is not above drain-timeout ($drain_s s) + kill-grace-ms ($kill_grace_ms) + 10 s"
else
  fail "cannot compare TimeoutStopSec='$timeout_stop' with drain-timeout='$drain_s' and kill-grace-ms='$kill_grace_ms' (want plain numbers)"
fi
if [[ "$backstop" =~ ^[0-9]+$ ]]; then
  # A worker may take kill-grace-ms plus 10 s after SIGKILL to report a stop.
  [ $(( backstop * 1000 )) -gt $(( kill_grace_ms + 10000 )) ] ||
    fail "backstop-grace ($backstop s) must be above kill-grace-ms ($kill_grace_ms) plus 10 s"
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze not found (apt-get install systemd): the units were NOT verified"
else
  # `verify` insists that ExecStart= programs exist, so verify copies whose
  # /usr/local/bin/ paths point at stub executables. It reports bad directives
  # and values only as warnings (exit status 0), so any line about our units
  # is a failure.
  mkdir -p "$tmp/units" "$tmp/bin"
  for b in cohort-coordinator cohort-worker; do
    printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/$b"
    chmod +x "$tmp/bin/$b"
  done
  for unit in "$coordinator_unit" "$worker_unit"; do
    sed "s#/usr/local/bin/cohort-#$tmp/bin/cohort-#g" "$unit" >"$tmp/units/$(basename "$unit")"
    grep -q "^ExecStart=$tmp/bin/" "$tmp/units/$(basename "$unit")" ||
      fail "$(basename "$unit"): ExecStart= does not start with /usr/local/bin/cohort-"
  done
  # The template is verified through an instance, so %i resolves.
  output=$(cd "$tmp/units" && systemd-analyze verify --man=no \
    "$tmp/units/cohort-coordinator.service" "$tmp/units/cohort-worker@1.service" 2>&1)
  rc=$?
  ours=$(grep -E 'cohort-(coordinator|worker)' <<<"$output")
  others=$(grep -Ev 'cohort-(coordinator|worker)' <<<"$output" | grep -v '^$')
  [ -n "$others" ] && note "systemd-analyze also said (not about our units):"$'\n'"$others"
  if [ "$rc" -ne 0 ] || [ -n "$ours" ]; then
    fail "systemd-analyze verify (exit status $rc):"$'\n'"$output"
  else
    echo "ok: systemd-analyze verify passes both units with no warnings ($(systemd-analyze --version | head -n 1))"
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "systemd_units_test: $failures problem(s)" >&2
  exit 1
fi
echo "systemd_units_test: PASS"
