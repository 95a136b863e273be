want=$1; image=$2
have=$(docker info --format '{{.Driver}}')
case "$want:$have" in
  "$want:$want"|overlay2:overlayfs) ;;
  *) echo "docker reports storage driver '$have', expected '$want'" >&2; exit 67 ;;
esac
if [ -z "$image" ]; then
  image=provision-probe:1
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    [ -x /bin/busybox ] || { echo "/bin/busybox is missing: cannot build the local probe image" >&2; exit 68; }
    d=$(mktemp -d); mkdir "$d/bin"; cp /bin/busybox "$d/bin/busybox"
    tar -C "$d" -cf - . | docker import - "$image" >/dev/null; rm -rf "$d"
  fi
  cmd="/bin/busybox echo provision-probe-ok"
else
  docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null
  cmd="echo provision-probe-ok"
fi
# shellcheck disable=SC2086 # $cmd is the probe command and its argument: split on purpose
out=$(docker run --rm --network none "$image" $cmd 2>&1) || { echo "docker run failed: $out" >&2; exit 69; }
case "$out" in *provision-probe-ok*) echo "docker runs containers on $have" ;; *) echo "unexpected probe output: $out" >&2; exit 69 ;; esac
