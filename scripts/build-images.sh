#!/usr/bin/env bash
# build-images.sh — the container images Berth's examples, fixtures and tests use, built locally
# from Debian's static busybox: no registry, no `docker pull`, no `docker build`.
#
#   berth/httpd:1   busybox httpd (-f, under a shell that exits on SIGTERM) on :8080 serving /www
#   busybox:latest  the same root filesystem, CMD sh
#   nginx:latest    the same root filesystem, httpd on :80 — a stand-in for nginx in the
#                   nginx-ec2 fixture (image nginx:latest, containerPort 80, no command)
#
# How: a root filesystem (bin/busybox plus a symlink for every applet, /www/index.html, /tmp,
# /etc/passwd and /etc/group with root and nobody) is tarred reproducibly (sorted, mtime 0, uid/gid 0) and given to
# `docker import` with the image config as --change lines. Each image carries a label with a hash
# of the tarball and its config; an image whose label matches is left alone, so running this
# again changes nothing (idempotent). A replaced image of ours that is left untagged is removed.
#
# Needs: docker (a daemon that answers) and a statically linked busybox at $BUSYBOX
# (default /bin/busybox, Debian/Ubuntu package busybox-static).
set -euo pipefail

BUSYBOX=${BUSYBOX:-/bin/busybox}
LABEL=io.berth.build

die() { echo "build-images: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker not found (Debian/Ubuntu: apt-get install docker.io)"
docker info >/dev/null 2>&1 \
  || die "no Docker daemon answers (start dockerd; run as root or as a member of the docker group)"
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (Debian/Ubuntu: apt-get install busybox-static)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

# --- the root filesystem -------------------------------------------------------------------------
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/www" \
  "$root/tmp" "$root/root" "$root/var"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# Every applet at its usual path (`busybox --install -s`, but into the root filesystem and sorted
# for a reproducible tarball): ifconfig, mount, whoami, egrep… as on the busybox image.
mapfile -t APPLETS < <("$BUSYBOX" --list-full | sort)
for applet in "${APPLETS[@]}"; do
  [ "$applet" = bin/busybox ] || ln -s /bin/busybox "$root/$applet"
done
chmod 1777 "$root/tmp"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
cat >"$root/www/index.html" <<'EOF'
<!doctype html>
<html>
<head><title>Hello from Berth</title></head>
<body>
<h1>Hello from Berth</h1>
<p>This page is served by busybox httpd in a container that Berth placed and started.</p>
</body>
</html>
EOF

tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/rootfs.tar" .
rootfs_sum=$(sha256sum "$work/rootfs.tar" | cut -c1-16)

# --- images --------------------------------------------------------------------------------------
# build REF CMD_JSON [PORT]: import the root filesystem as REF unless REF is already this build.
build() {
  local ref=$1 cmd=$2 port=${3:-}
  local key have old new
  key=$(printf '%s\n%s\n%s\n' "$rootfs_sum" "$cmd" "$port" | sha256sum | cut -c1-16)
  have=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$ref" 2>/dev/null || true)
  if [ "$have" = "$key" ]; then
    printf '  %-16s up to date   %s\n' "$ref" "$(docker image inspect -f '{{.Id}}' "$ref" | cut -c8-19)"
    return
  fi
  old=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  local changes=(--change "CMD $cmd" --change "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin" --change "WORKDIR /"
                 --change "LABEL $LABEL=$key")
  if [ -n "$port" ]; then changes+=(--change "EXPOSE $port"); fi
  new=$(docker import "${changes[@]}" "$work/rootfs.tar" "$ref")
  # Remove the image this one replaced, only if it was ours (labelled) and is now untagged.
  if [ -n "$old" ] && [ -n "$have" ] && [ "$have" != "<no value>" ] && [ "$old" != "$new" ]; then
    if [ "$(docker image inspect -f '{{len .RepoTags}}' "$old" 2>/dev/null || echo 1)" = 0 ]; then
      docker image rm "$old" >/dev/null 2>&1 || true
    fi
  elif [ -n "$old" ] && [ "$old" != "$new" ]; then
    echo "  note: $ref replaced an image not built by this script (${old:7:12}); 'docker pull $ref' restores it" >&2
  fi
  printf '  %-16s built        %s  CMD %s\n' "$ref" "${new:7:12}" "$cmd"
}

echo "build-images: root filesystem from $BUSYBOX (${#APPLETS[@]} applets, sha256 $rootfs_sum…)"
# httpd as PID 1 ignores SIGTERM (the kernel drops signals PID 1 has no handler for), so every
# stop would wait the whole stopTimeout; a shell that traps TERM runs it instead.
httpd_cmd() { echo "[\"/bin/sh\",\"-c\",\"trap 'exit 0' TERM; /bin/busybox httpd -f -v -p $1 -h /www & wait\"]"; }
build berth/httpd:1  "$(httpd_cmd 8080)" 8080
build busybox:latest '["sh"]'
build nginx:latest   "$(httpd_cmd 80)" 80

# A dynamically linked busybox would import fine and fail at run time; prove it runs.
docker run --rm --network none berth/httpd:1 /bin/sh -c 'test -r /www/index.html && id nobody >/dev/null' \
  || die "berth/httpd:1 does not run: is $BUSYBOX statically linked? (apt-get install busybox-static)"
echo "build-images: done"
