#!/usr/bin/env bash
# conformance-images.sh — the images the ECS agent conformance cases name
# (../shared/fixtures/ecs-agent-simpletests), made on this host with no public registry:
#
#   127.0.0.1:51670            a local Docker registry (Debian `docker-registry`), storage under
#                              $STATE/registry; started in the background if nothing listens there
#   busybox:latest             from scripts/build-images.sh: Debian's static busybox, every applet
#   127.0.0.1:51670/busybox:latest   the same image, pushed to the local registry
#   127.0.0.1:51670/nginx:latest     build-images.sh's nginx:latest (busybox httpd on :80), pushed
#   127.0.0.1:51670/ubuntu:latest    a real Ubuntu root filesystem (debootstrap --variant=minbase
#                              of bionic, 18.04, the ubuntu:latest of the ECS suite's time, from
#                              archive.ubuntu.com, verified with the Ubuntu archive keyring) plus
#                              the tools the cases call (capsh, sysctl, pidof, fdisk), pushed
#
# Idempotent and fast when done: the debootstrap tarball is cached in $STATE (keyed by suite,
# mirror and package list), an image whose build label matches its key is not re-imported, and an
# image is pushed only when the registry's manifest names a different image id. Concurrent runs
# are serialised with a lock file.
#
#   /dev/xvda                  where absent, a block device node over a loop device (the `devices`
#                              case maps it into a container)
#
# Not provided (a single host cannot): the `parallel-pull` image set (consul, redis, httpd, …
# tagged parallel-pull-fts) and amazon/testnnp; the conformance test skips those cases.
#
# Needs: docker, docker-registry, debootstrap, curl, busybox-static (Debian packages of the same
# names) and, until the tarball is cached, the Ubuntu archive keyring
# (/usr/share/keyrings/ubuntu-archive-keyring.gpg: Debian's `ubuntu-keyring`, in bookworm only in
# bookworm-backports) and HTTP access to the Ubuntu mirror; .ci/run installs them. Run as root
# (debootstrap and the Docker socket need it).
# Environment: BERTH_CONFORMANCE_STATE (default /var/tmp/berth-conformance),
# BERTH_UBUNTU_MIRROR (default http://archive.ubuntu.com/ubuntu), BERTH_UBUNTU_SUITE (default
# bionic), BERTH_UBUNTU_KEYRING (default /usr/share/keyrings/ubuntu-archive-keyring.gpg).
set -euo pipefail

REGISTRY=127.0.0.1:51670
STATE=${BERTH_CONFORMANCE_STATE:-/var/tmp/berth-conformance}
LABEL=io.berth.build
# What the cases call beyond minbase: sysctl (procps), capsh (libcap2-bin), fdisk; pidof
# (sysvinit-utils) is in minbase already, named so that no later suite drops it silently.
UBUNTU_PACKAGES=procps,libcap2-bin,fdisk,sysvinit-utils
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "conformance-images: $*" >&2; exit 1; }
# Exit status 2: a prerequisite of this host is missing (the test skips, unless CI requires it).
missing() { echo "conformance-images: $*" >&2; exit 2; }
say() { echo "conformance-images: $*"; }

for tool in docker curl flock; do
  command -v "$tool" >/dev/null 2>&1 || missing "$tool not found"
done
[ -x /usr/bin/docker-registry ] \
  || missing "/usr/bin/docker-registry not found (apt-get install docker-registry)"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] \
  || missing "debootstrap not found (apt-get install debootstrap)"
docker info >/dev/null 2>&1 || missing "no Docker daemon answers"

mkdir -p "$STATE/registry/data"
exec 9>"$STATE/lock"
flock 9

# --- busybox:latest and nginx:latest ---------------------------------------------------------------
bash "$here/build-images.sh" | sed 's/^/  /'

# --- the registry --------------------------------------------------------------------------------
registry_up() { curl -sf -o /dev/null --max-time 2 "http://$REGISTRY/v2/"; }
if registry_up; then
  say "registry on $REGISTRY already running"
else
  if (exec 3<>"/dev/tcp/127.0.0.1/51670") 2>/dev/null; then
    die "something listens on $REGISTRY but does not answer as a Docker registry (GET /v2/)"
  fi
  cat >"$STATE/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  # setsid + all three streams redirected: the registry outlives this script and holds none of
  # its caller's pipes or our lock (a test reading this script's output would wait forever).
  setsid /usr/bin/docker-registry serve "$STATE/registry/config.yml" \
    </dev/null >>"$STATE/registry/registry.log" 2>&1 9>&- &
  for _ in $(seq 1 50); do registry_up && break; sleep 0.2; done
  registry_up || { tail -20 "$STATE/registry/registry.log" >&2; die "the registry did not start"; }
  say "registry on $REGISTRY started (pid $!, storage $STATE/registry/data)"
fi

# --- an Ubuntu minbase root filesystem as ubuntu:latest --------------------------------------------
# Bionic, not a Debian stand-in: the `add-drop-capabilities` case greps `capsh --print` for
# cap_mknod, and libcap ≥ 2.44 (Debian bullseye on, Ubuntu 21.04 on) prints dropped capabilities
# as `!cap_mknod` in a `Current IAB:` line; bionic's libcap2-bin 2.25 prints only the sets.
MIRROR=${BERTH_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
SUITE=${BERTH_UBUNTU_SUITE:-bionic}
KEYRING=${BERTH_UBUNTU_KEYRING:-/usr/share/keyrings/ubuntu-archive-keyring.gpg}

ubuntu_ref=$REGISTRY/ubuntu:latest
ubuntu_key=$(printf 'minbase\n%s\n%s\n%s\n' "$SUITE" "$MIRROR" "$UBUNTU_PACKAGES" | sha256sum | cut -c1-16)
tarball=$STATE/ubuntu-$SUITE-minbase-$ubuntu_key.tar
have=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$ubuntu_ref" 2>/dev/null || true)
if [ "$have" = "$ubuntu_key" ]; then
  say "$ubuntu_ref up to date"
else
  if [ ! -s "$tarball" ]; then
    [ "$(id -u)" = 0 ] || missing "debootstrap needs root (or a cached $tarball)"
    [ -r "$KEYRING" ] \
      || missing "$KEYRING not found (apt-get install ubuntu-keyring; on Debian bookworm from bookworm-backports)"
    say "debootstrap --variant=minbase $SUITE from $MIRROR (+$UBUNTU_PACKAGES); cached as $tarball"
    root=$STATE/rootfs.partial
    rm -rf "$root"
    debootstrap --variant=minbase --keyring="$KEYRING" --include="$UBUNTU_PACKAGES" \
      "$SUITE" "$root" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 \
      || { tail -20 "$STATE/debootstrap.log" >&2; die "debootstrap failed (log: $STATE/debootstrap.log)"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/dev/*
    tar -C "$root" --numeric-owner -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$root"
  fi
  id=$(docker import --change 'CMD ["bash"]' --change "LABEL $LABEL=$ubuntu_key" \
    "$tarball" "$ubuntu_ref")
  docker run --rm --network none "$ubuntu_ref" sh -c 'command -v capsh sysctl fdisk pidof mount df' \
    >/dev/null || die "$ubuntu_ref lacks a tool the cases call"
  ! docker run --rm --network none "$ubuntu_ref" capsh --print | grep -q IAB \
    || die "$ubuntu_ref: its capsh prints an IAB line (libcap >= 2.44); add-drop-capabilities would misread it"
  say "$ubuntu_ref imported ${id:7:12} (Ubuntu $SUITE minbase)"
fi

# --- tags and pushes -----------------------------------------------------------------------------
docker tag busybox:latest "$REGISTRY/busybox:latest"
docker tag nginx:latest "$REGISTRY/nginx:latest"

# The image id the registry's manifest for REPO:latest names (empty if none).
registry_image_id() {
  curl -sf --max-time 5 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$1/manifests/latest" \
    | tr -d ' \n' | grep -o '"config":{[^}]*}' | grep -o 'sha256:[0-9a-f]*' || true
}
for repo in busybox nginx ubuntu; do
  ref=$REGISTRY/$repo:latest
  local_id=$(docker image inspect -f '{{.Id}}' "$ref")
  if [ "$(registry_image_id "$repo")" = "$local_id" ]; then
    say "$ref in the registry"
  else
    docker push -q "$ref" >/dev/null || die "docker push $ref failed"
    [ "$(registry_image_id "$repo")" = "$local_id" ] || die "$ref: the registry does not serve it after push"
    say "$ref pushed ${local_id:7:12}"
  fi
done
# --- /dev/xvda -----------------------------------------------------------------------------------
# The `devices` case maps the host's /dev/xvda (an EC2 instance's root disk) into a container
# read-only. Where the host has no such device, a loop device over a sparse file in $STATE stands
# in for it: a block device node /dev/xvda with the loop device's numbers. Made once; kept.
if [ -e /dev/xvda ]; then
  say "/dev/xvda present"
elif [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null 2>&1; then
  say "no /dev/xvda, and no root or losetup to make a stand-in: the devices case will fail"
else
  truncate -s 16M "$STATE/xvda.img"
  loop=$(losetup -j "$STATE/xvda.img" | cut -d: -f1 | head -1)
  [ -n "$loop" ] || loop=$(losetup -f --show "$STATE/xvda.img") || die "losetup failed"
  majmin=$(stat -c '%t %T' "$loop")
  mknod /dev/xvda b $((16#${majmin% *})) $((16#${majmin#* })) || die "mknod /dev/xvda failed"
  chmod 600 /dev/xvda
  say "/dev/xvda: a stand-in block device ($loop over $STATE/xvda.img)"
fi
say "done"
