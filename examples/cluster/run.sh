#!/usr/bin/env bash
# A 3-controller Berth cluster with 2 agents on one machine (see README.md beside this file).
#
#   examples/cluster/run.sh [start] [DIR]   build (release), start 3 controllers + 2 agents, wait for a leader
#   examples/cluster/run.sh status  [DIR]   which processes are up; each controller's GetStatus view
#   examples/cluster/run.sh stop    [DIR]   SIGTERM agents, then controllers one at a time; keeps DIR
#
# DIR (default .berth-cluster, or $BERTH_CLUSTER_DIR) holds each process's data dir, log and pid file.
# Ports: controller N serves clients on 127.0.0.1:$((BASE_PORT+N)) and Raft peers on
# 127.0.0.1:$((BASE_PORT+10+N)), its HTTP port (/v1/events) on 127.0.0.1:$((BASE_PORT+20+N));
# BASE_PORT defaults to 7600. SKIP_BUILD=1 uses target/release as is.
set -euo pipefail
cmd=${1:-start}
DIR=${2:-${BERTH_CLUSTER_DIR:-.berth-cluster}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BERTH_BIN_DIR:-$ROOT/target/release}
BASE_PORT=${BASE_PORT:-7600}
IDS=(1 2 3)
ENDPOINTS=$(for i in "${IDS[@]}"; do printf 'http://127.0.0.1:%d,' $((BASE_PORT + i)); done)
ENDPOINTS=${ENDPOINTS%,}
INITIAL=$(for i in "${IDS[@]}"; do printf '%d=127.0.0.1:%d,' "$i" $((BASE_PORT + 10 + i)); done)
INITIAL=${INITIAL%,}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# start NAME COMMAND...: run in its own session, log to DIR/NAME.log, pid in DIR/NAME.pid
launch() {
  local name=$1; shift
  if alive "$DIR/$name.pid"; then echo "$name already running (pid $(cat "$DIR/$name.pid"))"; return; fi
  setsid "$@" >>"$DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$DIR/$name.pid"
  echo "$name started (pid $!, log $DIR/$name.log)"
}

# stop NAME: SIGTERM, wait up to 30 s (a controller hands leadership over first), then SIGKILL
halt() {
  local pidfile=$DIR/$1.pid
  alive "$pidfile" || { rm -f "$pidfile"; return; }
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "$1 ignored SIGTERM for 30 s; killing"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  echo "$1 stopped"
}

case "$cmd" in
start)
  mkdir -p "$DIR"
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p berth-controller -p berth-agent -p berth-cli)
  fi
  for i in "${IDS[@]}"; do
    launch "controller-$i" "$BIN/berth-controller" --node-id "$i" --data-dir "$DIR/controller-$i" \
      --listen "127.0.0.1:$((BASE_PORT + i))" --peer-listen "127.0.0.1:$((BASE_PORT + 10 + i))" \
      --http-listen "127.0.0.1:$((BASE_PORT + 20 + i))" \
      --initial-cluster "$INITIAL"
  done
  # Ready when a linearizable read succeeds: that needs an elected leader.
  for _ in $(seq 150); do
    "$BIN/berth" --endpoint "$ENDPOINTS" cluster list >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$BIN/berth" --endpoint "$ENDPOINTS" cluster list >/dev/null \
    || { echo "error: no controller leader after 30 s; see $DIR/controller-*.log" >&2; exit 1; }
  for a in 1 2; do
    launch "agent-$a" "$BIN/berth-agent" --endpoint "$ENDPOINTS" --data-dir "$DIR/agent-$a" \
      --attribute "ecs.availability-zone=zone-$a"
  done
  echo
  echo "export BERTH_ENDPOINT=$ENDPOINTS"
  echo "then: $BIN/berth instance list ; stop with: $0 stop $DIR"
  ;;
status)
  for f in "$DIR"/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid)
    if alive "$f"; then echo "$n up (pid $(cat "$f"))"; else echo "$n down"; fi
  done
  for i in "${IDS[@]}"; do
    printf 'controller-%s: ' "$i"
    "$BIN/berth" --endpoint "http://127.0.0.1:$((BASE_PORT + i))" -o json operator status 2>/dev/null \
      || echo "(no answer)"
  done
  ;;
stop)
  for a in 1 2; do halt "agent-$a"; done
  # One at a time, as in a rolling restart: each hands leadership over before it exits.
  for i in "${IDS[@]}"; do halt "controller-$i"; done
  ;;
*) echo "usage: $0 start|status|stop [DIR]" >&2; exit 2 ;;
esac
