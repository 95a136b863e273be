export PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" LC_ALL=C
echo "uid=$(id -u 2>/dev/null)"
echo "arch=$(uname -m 2>/dev/null)"
echo "kernel=$(uname -r 2>/dev/null)"
for t in pct pveam pvesm pvesh pveversion curl; do
  if p=$(command -v "$t" 2>/dev/null); then echo "tool=$t $p"; fi
done
if command -v pveversion >/dev/null 2>&1; then
  pveversion -v 2>/dev/null | grep -E '^(proxmox-ve|pve-manager|pve-container|lxc-pve|lxcfs|zfsutils-linux):' | sed 's/^/pveversion=/'
fi
echo "cgroup_fs=$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)"
if [ -e /dev/fuse ]; then echo "dev_fuse=$(stat -L -c '%F|%t|%T|%a' /dev/fuse 2>/dev/null)"; fi
if [ -r /sys/module/zfs/version ]; then echo "zfs_version=$(cat /sys/module/zfs/version)"; fi
for k in maxkeys maxbytes; do
  if [ -r "/proc/sys/kernel/keys/$k" ]; then echo "keys_$k=$(cat "/proc/sys/kernel/keys/$k")"; fi
done
if [ -r /proc/key-users ]; then sed -n 's/^ *100000: */key_users_100000=/p' /proc/key-users; fi
for f in subuid subgid; do
  if [ -r "/etc/$f" ]; then echo "${f}_file=1"; grep -E '^(root|0):' "/etc/$f" | sed "s/^/$f=/"; fi
done
if command -v systemctl >/dev/null 2>&1; then echo "syscalld=$(systemctl is-active pve-lxc-syscalld 2>/dev/null)"; fi
if command -v pvesm >/dev/null 2>&1; then
  for c in rootdir vztmpl; do
    out=$(pvesm status --content "$c" 2>&1); echo "pvesm_${c}_rc=$?"
    printf '%s\n' "$out" | sed "s/^/pvesm_$c=/"
  done
fi
if command -v pveam >/dev/null 2>&1; then
  pveam available --section system 2>/dev/null | sed 's/^/pveam_available=/'
fi
for a in "$@"; do
  case "$a" in
    tmpl=*) s=${a#tmpl=}
      if command -v pveam >/dev/null 2>&1; then
        out=$(pveam list "$s" 2>&1); echo "pveam_list_rc=$s $?"
        printf '%s\n' "$out" | while IFS= read -r l; do echo "pveam_list=$s $l"; done
      fi ;;
    file=*) f=${a#file=}
      if [ -f "$f" ]; then
        echo "file_sha256=$(sha256sum < "$f" | cut -d' ' -f1) $f"
        echo "file_head=$(od -An -tx1 -N20 "$f" | tr -d ' \n') $f"
      else
        echo "file_missing=$f"
      fi ;;
    dev=*) d=${a#dev=}
      if [ -c "$d" ]; then echo "dev_node=c $d"; elif [ -b "$d" ]; then echo "dev_node=b $d"
      elif [ -e "$d" ]; then echo "dev_node=other $d"; else echo "dev_node=missing $d"; fi ;;
  esac
done
for f in /etc/pve/lxc/*.conf; do
  [ -f "$f" ] || continue
  id=${f##*/}; id=${id%.conf}
  u=$(sed -n 's/^unprivileged: *//p' "$f" | head -n 1)
  h=$(sed -n 's/^hostname: *//p' "$f" | head -n 1)
  echo "ct=$id ${u:-0} $h"
done
exit 0

