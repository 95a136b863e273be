set -eu; umask 077
url=$1; dest=$2; want=$3; dir=$(dirname "$dest")
# The cache directory: created 0700, or refused when it is a link (chmod would change its
# target), not ours, or open to others (the rule of src/rootdirs.rs).
refuse() { echo "$*: refused; remove it (it is recreated owner-only), then run again" >&2; exit 77; }
[ -L "$dir" ] && refuse "$dir is a symbolic link, not a directory of its own"
[ -e "$dir" ] || mkdir -m 0700 "$dir" 2>/dev/null || [ -d "$dir" ] || { echo "cannot create $dir" >&2; exit 1; }
[ -L "$dir" ] && refuse "$dir is a symbolic link, not a directory of its own"
[ -d "$dir" ] || refuse "$dir is not a directory"
[ "$(stat -c %u -- "$dir")" = "$(id -u)" ] || refuse "$dir is owned by another user"
case "$(stat -c %a -- "$dir")" in 700|500) ;; *) refuse "$dir has mode $(stat -c %a -- "$dir"); it must be owner-only (0700)" ;; esac
t=$(mktemp "$dest.part.XXXXXX")
trap 'rm -f "$t"' EXIT
trap 'rm -f "$t"; exit 130' INT TERM
if ! curl -fsSL --proto '=https,http' --retry 2 -o "$t" "$url"; then echo "downloading $url failed; nothing was kept" >&2; exit 1; fi
have=$(sha256sum "$t" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then echo "downloaded fuse-overlayfs has sha256 $have, expected $want: refused, nothing was kept" >&2; exit 65; fi
chmod 0755 "$t"; mv -f "$t" "$dest"
