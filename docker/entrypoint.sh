#!/usr/bin/env bash
# The one entrypoint of every ember image, of the Slurm script and of the deployment cluster test
# (tests/deploy/deploy_cluster_tests.cpp), so what the test starts is what a cluster runs.
#
#   entrypoint.sh scheduler [ember scheduler flags]   # the cluster's scheduler
#   entrypoint.sh worker [ember worker flags]         # one worker (one per GPU)
#   entrypoint.sh health [scheduler|worker]           # health check: exit 0 when healthy
#   entrypoint.sh COMMAND [ARGS]                      # anything else runs as is (`ember run ...`)
#
# Configuration comes from EMBER_* variables (docker/README.md has the table); `ember` reads them
# itself, and a flag given here wins over its variable. The cluster token is a secret file named
# by EMBER_TOKEN_FILE (a compose or Kubernetes secret), never a variable holding the token.
# `ember` is taken from PATH; EMBER_BIN names another executable.
set -euo pipefail

ember_bin=${EMBER_BIN:-ember}

fail() {
  echo "entrypoint: $*" >&2
  exit 2
}

# The value of flag $1 in the remaining arguments ("--flag VALUE" or "--flag=VALUE"), else $2.
flag_value() {
  local flag=$1 value=$2
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      "$flag") [ $# -ge 2 ] && value=$2 && shift ;;
      "$flag"=*) value=${1#"$flag"=} ;;
    esac
    shift
  done
  printf '%s' "$value"
}

# The host part of HOST:PORT ([v6]:PORT too).
host_of() {
  local address=$1
  case $address in
    \[*\]:*) address=${address#\[} && printf '%s' "${address%%\]:*}" ;;
    *) printf '%s' "${address%:*}" ;;
  esac
}

is_loopback() {
  case $1 in
    127.* | localhost | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

# A token file must be readable and not empty; the scheduler and workers read it themselves.
check_token_file() {
  local file=$1
  [ -r "$file" ] || fail "cannot read the token file '$file' (EMBER_TOKEN_FILE or --token-file):" \
    "mount the cluster token as a secret file"
  grep -q '[^[:space:]]' "$file" || fail "the token file '$file' is empty"
}

run_scheduler() {
  export EMBER_LISTEN=${EMBER_LISTEN:-0.0.0.0:4242}
  export EMBER_DATA=${EMBER_DATA:-/var/lib/ember}
  local listen token_file
  listen=$(flag_value --listen "$EMBER_LISTEN" "$@")
  token_file=$(flag_value --token-file "${EMBER_TOKEN_FILE:-}" "$@")
  if [ -z "$token_file" ]; then
    is_loopback "$(host_of "$listen")" ||
      fail "the scheduler listens on $listen, which is not a loopback address, and has no" \
        "cluster token: mount the token as a secret file and set EMBER_TOKEN_FILE to its path" \
        "(e.g. /run/secrets/ember_token), or listen on 127.0.0.1"
  else
    check_token_file "$token_file"
  fi
  exec "$ember_bin" scheduler "$@"
}

run_worker() {
  local scheduler token_file
  scheduler=$(flag_value --scheduler "${EMBER_SCHEDULER:-}" "$@")
  [ -n "$scheduler" ] || fail "set EMBER_SCHEDULER to the scheduler's HOST:PORT"
  token_file=$(flag_value --token-file "${EMBER_TOKEN_FILE:-}" "$@")
  if [ -n "$token_file" ]; then
    check_token_file "$token_file"
  elif ! is_loopback "$(host_of "$scheduler")"; then
    echo "entrypoint: warning: no EMBER_TOKEN_FILE; a scheduler off loopback will refuse" \
      "this worker" >&2
  fi
  exec "$ember_bin" worker "$@"
}

# Health: the scheduler answers `ember status`; a worker's scheduler answers and, when the worker
# has a name (EMBER_WORKER_NAME), lists it alive. Until issue 7's /metrics endpoint exists this is
# what the images' HEALTHCHECK and the Kubernetes probes run. Without a role, the role of the
# container's main process (`ember scheduler` or `ember worker` after this script's exec).
run_health() {
  local role=${1:-} target status token=()
  if [ -z "$role" ] && [ -r /proc/1/cmdline ]; then
    case $(tr '\0' ' ' < /proc/1/cmdline) in
      *"ember scheduler"* | *"entrypoint.sh scheduler"*) role=scheduler ;;
      *"ember worker"* | *"entrypoint.sh worker"*) role=worker ;;
    esac
  fi
  [ -n "${EMBER_TOKEN_FILE:-}" ] && token=(--token-file "$EMBER_TOKEN_FILE")
  case $role in
    scheduler)
      target=${EMBER_LISTEN:-0.0.0.0:4242}
      case $(host_of "$target") in
        0.0.0.0 | "") target=127.0.0.1:${target##*:} ;;
        ::) target="[::1]:${target##*:}" ;;
      esac
      exec "$ember_bin" status --scheduler "$target" "${token[@]}" > /dev/null
      ;;
    worker)
      [ -n "${EMBER_SCHEDULER:-}" ] || fail "set EMBER_SCHEDULER to the scheduler's HOST:PORT"
      status=$("$ember_bin" status --json --scheduler "$EMBER_SCHEDULER" "${token[@]}")
      [ -z "${EMBER_WORKER_NAME:-}" ] && exit 0
      # `status --json` prints one key per line, keys sorted: "alive" comes before "name".
      printf '%s\n' "$status" | awk -v want="\"name\": \"$EMBER_WORKER_NAME\"" '
        /"alive": true/ { alive = 1 }
        /"alive": false/ { alive = 0 }
        index($0, want) && alive { found = 1 }
        END { exit !found }' ||
        { echo "entrypoint: worker '$EMBER_WORKER_NAME' is not alive at $EMBER_SCHEDULER" >&2 && exit 1; }
      ;;
    *) fail "usage: entrypoint.sh health scheduler|worker" ;;
  esac
}

role=${1:-}
[ $# -gt 0 ] && shift
case $role in
  scheduler) run_scheduler "$@" ;;
  worker) run_worker "$@" ;;
  health) run_health "$@" ;;
  "") fail "usage: entrypoint.sh scheduler|worker|health [flags] (or a command to run)" ;;
  *) exec "$role" "$@" ;;
esac
