# Args: the fuse-overlayfs file on the node. Prints its SHA-256 when it may be pushed: a regular
# file (not a device, FIFO or directory), not under /dev, /proc or /sys, at most 64 MiB, starting
# with the ELF magic. Exit 3: there is no such file. Exit 65: refused, the reason on stderr.
# Nothing is read before the checks pass (no `sha256sum /dev/zero`), and the read is bounded.
p=$1; max=67108864
refuse() { echo "$p on the node cannot be pushed as fuse-overlayfs: $*" >&2; exit 65; }
if [ ! -e "$p" ] && [ ! -L "$p" ]; then exit 3; fi
real=$(readlink -f -- "$p") || refuse "its path does not resolve"
case "$real" in
  /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) top=${real#/}; refuse "it lies under /${top%%/*} (devices and kernel state), not a program file" ;;
esac
if [ ! -f "$real" ]; then refuse "it is not a regular file (a device, FIFO, socket or directory)"; fi
size=$(stat -L -c %s -- "$real") || refuse "cannot stat it"
if [ "$size" -gt "$max" ]; then refuse "it is $size bytes; a fuse-overlayfs binary is at most $max"; fi
magic=$(od -An -tx1 -N4 -- "$real" | tr -d ' \n')
if [ "$magic" != 7f454c46 ]; then refuse "it is not an ELF executable (a script, a key or a damaged file?)"; fi
sum=$(timeout 120 sha256sum -- "$real") || refuse "reading it failed or took more than 120 s"
printf '%s\n' "${sum%% *}"
