# Args: lock directory, lock file, seconds to wait. Prints `locked` once held, then holds the
# lock until stdin reaches EOF. The lock directory lives under the world-writable /run/lock: it
# is created 0700, and one that is a link, not ours, or open to others is refused (the rule of
# src/rootdirs.rs), as is a lock file that is a link or not a regular file of ours.
umask 077
refuse() { echo "$*: refused; remove it (it is recreated owner-only), then run again" >&2; exit 77; }
[ -L "$1" ] && refuse "$1 is a symbolic link, not a directory of its own"
[ -e "$1" ] || mkdir -m 0700 "$1" 2>/dev/null || [ -d "$1" ] || { echo "cannot create $1" >&2; exit 1; }
[ -L "$1" ] && refuse "$1 is a symbolic link, not a directory of its own"
[ -d "$1" ] || refuse "$1 is not a directory"
[ "$(stat -c %u -- "$1")" = "$(id -u)" ] || refuse "$1 is owned by another user"
case "$(stat -c %a -- "$1")" in 700|500) ;; *) refuse "$1 has mode $(stat -c %a -- "$1"); it must be owner-only (0700)" ;; esac
[ -L "$2" ] && refuse "$2 is a symbolic link"
if [ -e "$2" ]; then
  if [ ! -f "$2" ] || [ "$(stat -c %u -- "$2")" != "$(id -u)" ]; then refuse "$2 is not a regular file of this user"; fi
fi
exec flock -E 75 -w "$3" "$2" sh -c 'echo locked; exec cat >/dev/null'
