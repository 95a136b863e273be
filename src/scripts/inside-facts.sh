export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
n=0; why=""
while [ "$n" -lt "${PROVISION_WAIT_STEPS:-240}" ]; do
  why=""
  if command -v systemctl >/dev/null 2>&1; then
    s=$(systemctl is-system-running 2>/dev/null)
    case "$s" in running|degraded) ;; *) why="init is '$s', not running";; esac
  fi
  if [ -z "$why" ] && ! ip -4 route show default 2>/dev/null | grep -q . && ! ip -6 route show default 2>/dev/null | grep -q .; then
    why="no default route (network not up)"
  fi
  [ -z "$why" ] && break
  n=$((n+1)); sleep 0.25
done
if [ -n "$why" ]; then echo "container not ready after $((n/4)) s: $why" >&2; exit 75; fi
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
if command -v dockerd >/dev/null 2>&1; then echo docker_installed=1; fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
  echo docker_active=1
  d=$(timeout 20 docker info --format '{{.Driver}} {{.Images}} {{.Containers}}' 2>/dev/null) && {
    echo "docker_driver=${d%% *}"; echo "docker_objects=${d#* }"; }
fi
for d in /var/lib/docker/image/*/imagedb/content/sha256; do
  [ -d "$d" ] || continue
  x=${d#/var/lib/docker/image/}; echo "docker_stored=${x%%/*} $(find "$d" -mindepth 1 -maxdepth 1 | wc -l)"
done
f=/usr/local/bin/fuse-overlayfs
if [ -L "$f" ]; then echo "fuse_overlayfs_link=$(readlink "$f")"; fi
if [ -f "$f" ]; then echo "fuse_overlayfs_sha256=$(sha256sum "$f" | cut -d' ' -f1)"; fi
if [ -f /etc/docker/daemon.json ]; then
  echo "daemon_json_b64=$(base64 -w0 /etc/docker/daemon.json)"
  echo "daemon_json_stat=$(stat -c %a:%u:%g /etc/docker/daemon.json)"
fi
if [ -f /var/lib/provision/state ]; then sed -n 's/^\([a-z_]*\)=\(.*\)$/state_\1=\2/p' /var/lib/provision/state; fi
if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then echo busybox=1; fi
for l in /usr/lib/*/libfuse3.so.* /lib/*/libfuse3.so.*; do [ -e "$l" ] && { echo libfuse3=1; break; }; done
g=$(getent group render 2>/dev/null | cut -d: -f3) && [ -n "$g" ] && echo "group_render=$g"
ip -o addr show scope global 2>/dev/null | while read -r _ dev _ a _; do echo "addr=$dev $a"; done
for f in "$@"; do [ -f "$f" ] && echo "file=$(sha256sum "$f" | cut -d' ' -f1) $(stat -c %a "$f") $f"; done
exit 0

