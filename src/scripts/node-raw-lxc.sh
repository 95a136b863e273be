# Adds raw lxc.* lines to a container's config, which `pct set` refuses to write. Under PVE's own
# config lock (flock on /run/lock/lxc/pve-config-VMID.lock, as PVE::LXC::Config->lock_config
# takes it, 10 s like PVE), only in the main section (before the first [section]: pending
# changes and snapshots stay as they are), every other line kept byte for byte, lines already
# there not added twice; written to a temporary file beside the config and renamed over it
# (atomic, as PVE writes it), after checking that no one changed the file meanwhile (SHA-1,
# PVE's digest). Refuses a container that is not the expected one (hostname) or is locked.
# The caller reads the lines back through `pct config`.
# Args: VMID, hostname, then KEY VALUE pairs.
vmid=$1 host=$2
shift 2
case "$vmid" in ''|*[!0-9]*) echo "bad VMID $vmid" >&2; exit 2 ;; esac
conf=/etc/pve/lxc/$vmid.conf
lockdir=/run/lock/lxc
mkdir -p "$lockdir"
exec 9>>"$lockdir/pve-config-$vmid.lock"
flock -w 10 9 || { echo "can't lock file '$lockdir/pve-config-$vmid.lock' - got timeout" >&2; exit 1; }
[ -f "$conf" ] || { echo "Configuration file 'nodes/*/lxc/$vmid.conf' does not exist" >&2; exit 1; }
digest=$(sha1sum < "$conf")
main=$(sed -n '/^\[/q;p' "$conf")
have_host=$(printf '%s\n' "$main" | sed -n 's/^hostname: *//p' | head -n 1)
[ "$have_host" = "$host" ] || { echo "CT $vmid is named '$have_host', not '$host': refused" >&2; exit 1; }
if printf '%s\n' "$main" | grep -q '^lock:'; then echo "CT $vmid is locked: refused" >&2; exit 1; fi
add=''
n=$#
while [ "$#" -ge 2 ]; do
  case "$1" in lxc.cgroup2.devices.allow|lxc.mount.entry) ;; *) echo "refused key $1" >&2; exit 2 ;; esac
  case "$2" in *'
'*|'') echo "refused value for $1" >&2; exit 2 ;; esac
  line="$1: $2"
  if ! printf '%s\n' "$main" | grep -qxF -- "$line"; then
    add="$add$line
"
    echo "added $line"
  fi
  shift 2
done
[ "$#" -eq 0 ] || { echo "odd number of arguments ($n)" >&2; exit 2; }
if [ -n "$add" ]; then
  tmp="$conf.tmp.$$"
  ADD=$add awk '
    BEGIN { n = 0; sect = 0 }
    !sect && /^\[/ { sect = 1; for (i = 1; i <= last; i++) print buf[i]; printf "%s", ENVIRON["ADD"]; for (i = last + 1; i <= n; i++) print buf[i] }
    sect { print; next }
    { buf[++n] = $0; if ($0 != "") last = n }
    END { if (!sect) { for (i = 1; i <= last; i++) print buf[i]; printf "%s", ENVIRON["ADD"]; for (i = last + 1; i <= n; i++) print buf[i] } }
  ' "$conf" > "$tmp"
  if [ "$(sha1sum < "$conf")" != "$digest" ]; then
    rm -f "$tmp"
    echo "CT $vmid: the config changed while it was being edited (digest); run again" >&2
    exit 1
  fi
  chmod --reference="$conf" "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$conf"
fi
exec 9>&-
