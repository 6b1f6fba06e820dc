#!/usr/bin/env bash
# Run the test command with the services tests need, stopped after whatever the outcome.
#
# redis-server (Debian package, installed if missing) runs on a loopback port (REDIS_TEST_PORT,
# default 6399) with no persistence, in a temp dir; FEEDRANK_TEST_REDIS=127.0.0.1:<port> tells the
# online-store test where it is. If it cannot be installed or started the tests still run and that
# test fails (it never skips when FEEDRANK_TEST_REDIS is set). pytest's exit code 5 (no tests
# collected) counts as a failure.
set -uo pipefail

port="${REDIS_TEST_PORT:-6399}"
workdir="$(mktemp -d "${TMPDIR:-/tmp}/feedrank_services.XXXXXX")"
pidfile="$workdir/redis.pid"

stop_services() {
  local pid
  pid="$(cat "$pidfile" 2>/dev/null)"
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
      [ -e "$pidfile" ] || break  # redis removes its pidfile as it exits
      sleep 0.1
    done
  fi
  rm -rf "$workdir"
}
trap stop_services EXIT

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "with_services: installing redis-server (apt-get)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends redis-server; } >"$workdir/apt.log" 2>&1 || {
      echo "with_services: could not install redis-server (log below)" >&2
      tail -n 20 "$workdir/apt.log" >&2
      return 1
    }
  fi
  # A port another run's server holds is skipped: this run must own (and may flush) its server.
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
    --dir "$workdir" --pidfile "$pidfile" --logfile "$workdir/redis.log" || return 1
  for _ in $(seq 50); do
    if [ -s "$pidfile" ] && redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
      tr -d '\r' | grep -qx "process_id:$(cat "$pidfile")"; then
      return 0
    fi
    sleep 0.1
  done
  echo "with_services: redis-server did not start on 127.0.0.1:$port" >&2
  cat "$workdir/redis.log" >&2
  return 1
}

start_redis || echo "with_services: redis-server is not running; its test will fail" >&2
export FEEDRANK_TEST_REDIS="127.0.0.1:$port"

"$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  status=1
fi
exit "$status"
