# Args: lock directory, lock file, seconds to wait. Prints `locked` once held, then holds the
# lock until stdin reaches EOF.
# shellcheck disable=SC2174 # only the lock directory itself may be new: its parent exists
umask 077 && mkdir -p -m 0700 "$1" && exec flock -E 75 -w "$3" "$2" sh -c 'echo locked; exec cat >/dev/null'
