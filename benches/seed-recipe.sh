#!/bin/sh
# The seed recipe done by hand: what users copy-paste today to get a Docker-ready unprivileged
# LXC container on a Proxmox VE node. It is the baseline that scripts/bench times against
# `provision NAME --profile ...` on the same node (see BENCHMARKS.md).
#
#   benches/seed-recipe.sh NAME            # on the node (or the lab: eval "$(lab/labctl env)")
#
# Kept honest and minimal, like the recipes people paste: no idempotence, no checks beyond `set -e`,
# a fresh VMID from `pvesh get /cluster/nextid` (no lock), a bounded wait for the network (polled
# every 0.2 s, as often as the tool's own wait), the packages the tool installs for this profile
# (docker.io, fuse3 for fuse-overlayfs's libfuse3, busybox-static for the probe image; the by-hand
# run in the lab notes named libfuse3-3, whose name changes between releases) with
# `--no-install-recommends` as the tool does, and a `docker run` at the end so that it verifies
# as much as the tool does (no registry is reachable: the image is imported from busybox-static,
# lab-notes pitfall 5).
#
# Same container as the tool's lab profile: template, 2 cores, 1024 MiB memory, 512 MiB swap,
# 4 GiB root disk, eth0 on vmbr0 with DHCP, unprivileged, fuse/keyctl/mknod/nesting.
# Environment: TEMPLATE (default $PROVISION_LAB_TEMPLATE), STORAGE (default $PROVISION_LAB_STORAGE
# or local-lvm), BRIDGE (vmbr0), FUSE_OVERLAYFS (the binary on the node, /usr/bin/fuse-overlayfs:
# the lab's Debian 12 build matches the Debian 12 template), CTID (default: the node's next free
# ID; give distinct ones to run several copies at once). Prints `vmid=N` on its last line.
set -eu

NAME=${1:?usage: seed-recipe.sh NAME}
TEMPLATE=${TEMPLATE:-${PROVISION_LAB_TEMPLATE:?set TEMPLATE}}
STORAGE=${STORAGE:-${PROVISION_LAB_STORAGE:-local-lvm}}
BRIDGE=${BRIDGE:-vmbr0}
FUSE_OVERLAYFS=${FUSE_OVERLAYFS:-/usr/bin/fuse-overlayfs}

CTID=${CTID:-$(pvesh get /cluster/nextid)}

pct create "$CTID" "$TEMPLATE" \
  --hostname "$NAME" --unprivileged 1 \
  --features fuse=1,keyctl=1,mknod=1,nesting=1 \
  --cores 2 --memory 1024 --swap 512 \
  --rootfs "$STORAGE:4" \
  --net0 "name=eth0,bridge=$BRIDGE,ip=dhcp"
pct start "$CTID"

# Wait for the network (a default route from DHCP), at most 60 s, polled inside the container.
pct exec "$CTID" -- sh -c 'i=0; until ip -4 route show default | grep -q .; do
  i=$((i + 1)); [ "$i" -lt 300 ] || { echo "no network after 60 s" >&2; exit 1; }; sleep 0.2; done'

pct push "$CTID" "$FUSE_OVERLAYFS" /usr/local/bin/fuse-overlayfs --perms 0755
pct exec "$CTID" -- sh -c 'mkdir -p /etc/docker && echo "{\"storage-driver\": \"fuse-overlayfs\"}" > /etc/docker/daemon.json'
pct exec "$CTID" -- sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends docker.io fuse3 busybox-static'
pct exec "$CTID" -- systemctl restart docker
pct exec "$CTID" -- sh -c 'mkdir -p /tmp/bb/bin && cp /bin/busybox /tmp/bb/bin/ && tar -C /tmp/bb -cf - . | docker import - probe && docker run --rm probe /bin/busybox echo ok'

echo "vmid=$CTID"
