#!/usr/bin/env bash
# Makes the Debian bookworm base image the Dockerfiles build FROM where no image registry is reachable:
# debootstrap (minbase, from Debian's package mirror) into a temporary directory, apt's caches removed,
# imported with `podman import`. Usage: deploy/base-image.sh [IMAGE]   (default localhost/hsmgate-base:bookworm)
# Skips the work when the image exists already. Needs root (debootstrap), podman and debootstrap.
set -euo pipefail
image="${1:-localhost/hsmgate-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if podman image exists "$image"; then
  echo "base image $image exists"
  exit 0
fi
root="$(mktemp -d /var/tmp/hsmgate-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
tar --numeric-owner -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "base image $image imported"
