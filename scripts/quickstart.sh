#!/usr/bin/env bash
# quickstart.sh — from a fresh Debian/Ubuntu machine to three web tasks answering on localhost.
#
#   1. installs what is missing (docker.io, busybox-static, a C compiler for the Rust build) with
#      apt-get — only when missing; uses sudo when not root;
#   2. starts dockerd in the background if no Docker daemon answers;
#   3. cargo build --release -p berth-cli; scripts/build-images.sh (local images, no registry);
#   4. starts `berth dev --data-dir .berth-dev` in the background (log: .berth-dev/dev.log);
#   5. registers examples/web.json and creates service `web` with 3 tasks;
#   6. waits until 3 tasks are RUNNING with host ports, prints their URLs and checks each answers.
#
# Run it again at will: a running `berth dev` started by it is reused, the task definition is
# registered only if absent, and an existing service is scaled to 3 instead of created.
# JSON is never parsed in shell: `berth service wait-running` and `berth task urls` do that.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA_DIR=.berth-dev
LISTEN=127.0.0.1:7600
COUNT=3
export BERTH_ENDPOINT=http://$LISTEN BERTH_CLUSTER=default
# The images are local (scripts/build-images.sh); don't ask a registry for them first.
export ECS_IMAGE_PULL_BEHAVIOR=${ECS_IMAGE_PULL_BEHAVIOR:-prefer-cached}
BERTH=${CARGO_TARGET_DIR:-target}/release/berth
DEV_PID=

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$DEV_PID" ] && kill -0 "$DEV_PID" 2>/dev/null; then
    printf 'quickstart: failed; berth dev (pid %s) is still running. Log: %s/dev.log. Stop it: kill %s\n' \
      "$DEV_PID" "$DATA_DIR" "$DEV_PID" >&2
  fi
}
trap on_exit EXIT

# wait_until SECONDS WHAT CMD…: run CMD every second until it succeeds, or fail after SECONDS.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
  say "$what: ready"
}

# --- 1. packages ---------------------------------------------------------------------------------
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
fi

docker_answers() { docker info >/dev/null 2>&1; }
# A dynamically linked busybox (Debian's `busybox` package) cannot run in a bare image.
busybox_static() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }

packages=()
if ! docker_answers && ! command -v dockerd >/dev/null 2>&1; then packages+=(docker.io); fi
if ! busybox_static; then packages+=(busybox-static); fi
if ! command -v cc >/dev/null 2>&1; then packages+=(gcc libc6-dev); fi
if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then packages+=(ca-certificates); fi
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    die "missing packages: ${packages[*]}; run as root, or install them first (apt-get install ${packages[*]})"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing: ${packages[*]}, and no apt-get to install them"
  say "installing ${packages[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

# --- 2. Docker daemon ----------------------------------------------------------------------------
if ! docker_answers; then
  if $SUDO docker info >/dev/null 2>&1; then
    die "the Docker daemon runs, but $(id -un) may not use it; run as root, or join the docker group: sudo usermod -aG docker $(id -un) && newgrp docker"
  fi
  say "starting dockerd in the background (log: /var/log/berth-dockerd.log)"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl start docker
  else
    $SUDO sh -c 'nohup dockerd >>/var/log/berth-dockerd.log 2>&1 &'
  fi
  if ! wait_until 60 "Docker daemon" $SUDO docker info; then
    die "dockerd did not answer within 60s (see /var/log/berth-dockerd.log or journalctl -u docker)"
  fi
  docker_answers || die "the Docker daemon runs, but $(id -un) may not use it; run as root, or: sudo usermod -aG docker $(id -un) && newgrp docker"
fi

# --- 3. build ------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then PATH=$HOME/.cargo/bin:$PATH; else
    die "cargo not found: install Rust (1.89 or newer) from https://rustup.rs, then run this again"
  fi
fi
say "cargo build --release -p berth-cli (the first build takes several minutes)"
cargo build --release -p berth-cli
[ -x "$BERTH" ] || die "$BERTH was not built (is CARGO_TARGET_DIR set differently?)"
say "building local images"
scripts/build-images.sh

# --- 4. berth dev --------------------------------------------------------------------------------
mkdir -p "$DATA_DIR"
old_pid=$(cat "$DATA_DIR/dev.pid" 2>/dev/null || true)
if [ -n "$old_pid" ] && kill -0 "$old_pid" 2>/dev/null && "$BERTH" cluster list >/dev/null 2>&1; then
  DEV_PID=$old_pid
  say "reusing berth dev (pid $DEV_PID) at $BERTH_ENDPOINT"
else
  if "$BERTH" cluster list >/dev/null 2>&1; then
    die "something already answers at $BERTH_ENDPOINT (another berth dev?); stop it first"
  fi
  say "starting berth dev --data-dir $DATA_DIR --listen $LISTEN (log: $DATA_DIR/dev.log)"
  nohup "$BERTH" dev --data-dir "$DATA_DIR" --listen "$LISTEN" </dev/null >>"$DATA_DIR/dev.log" 2>&1 &
  DEV_PID=$!
  echo "$DEV_PID" >"$DATA_DIR/dev.pid"
  deadline=$((SECONDS + 60))
  until "$BERTH" cluster list >/dev/null 2>&1; do
    if ! kill -0 "$DEV_PID" 2>/dev/null; then
      tail -n 20 "$DATA_DIR/dev.log" >&2 || true
      die "berth dev exited (log above: $DATA_DIR/dev.log)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "berth dev did not answer within 60s (log: $DATA_DIR/dev.log)"
    sleep 1
  done
  say "berth dev (pid $DEV_PID): ready"
fi

# --- 5. task definition and service --------------------------------------------------------------
if "$BERTH" taskdef describe web >/dev/null 2>&1; then
  say "task definition web exists (to change it: $BERTH taskdef register examples/web.json && $BERTH service update web --taskdef web)"
else
  "$BERTH" taskdef register examples/web.json
fi
if "$BERTH" service describe web 2>/dev/null | grep -q '^Status: *ACTIVE$'; then
  say "service web exists; setting desired count to $COUNT"
  "$BERTH" service update web --desired-count "$COUNT" >/dev/null
else
  "$BERTH" service create web --taskdef web --desired-count "$COUNT"
fi

# --- 6. wait, then check every URL ---------------------------------------------------------------
say "waiting for $COUNT web tasks to run (up to 90s)"
"$BERTH" service wait-running web --count "$COUNT" --timeout 90s --with-ports
mapfile -t urls < <("$BERTH" task urls --service web)
[ "${#urls[@]}" -ge "$COUNT" ] || die "expected $COUNT URLs, got ${#urls[@]}: ${urls[*]:-none}"

http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$1" || true
  elif busybox wget -q -O /dev/null -T 5 "$1" 2>/dev/null; then
    echo 200   # busybox wget fails on any non-2xx answer
  else
    echo "no answer"
  fi
}

failed=0
echo
for url in "${urls[@]}"; do
  status=
  for _ in 1 2 3 4 5; do   # a container may need a moment between RUNNING and listening
    status=$(http_status "$url")
    [ "$status" = 200 ] && break
    sleep 1
  done
  if [ "$status" = 200 ]; then printf '  %s  200 OK\n' "$url"; else printf '  %s  FAILED (%s)\n' "$url" "$status"; failed=1; fi
done

INSTANCE_ID=$(cat "$DATA_DIR/agent/instance-id" 2>/dev/null || echo unknown)
cat <<EOF

Berth is running: berth dev pid $DEV_PID, data in $DATA_DIR, log $DATA_DIR/dev.log.
Look around:
  $BERTH service describe web
  $BERTH task list
  $BERTH instance list
Stop it:
  kill $DEV_PID
Clean up (tasks, then the controller, then its data):
  $BERTH service delete web --force && sleep 10; kill $DEV_PID
  docker ps -aq --filter label=berth.instance-id=$INSTANCE_ID | xargs -r docker rm -f   # this agent's leftovers
  rm -rf $DATA_DIR
EOF
[ "$failed" -eq 0 ] || die "some URLs did not answer 200 (see $DATA_DIR/dev.log)"
