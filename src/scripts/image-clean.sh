export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
image=$1
set -eu
# Cleans a build container for templating: nothing of its identity or history may reach the
# containers made from the image. Docker's images stay (the verification probe among them).
if command -v docker >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
  docker container prune -f >/dev/null
fi
systemctl stop docker.socket docker.service containerd.service >/dev/null 2>&1 || true
# Docker's engine ID (/var/lib/docker/engine-id from Docker 23; before, the ID of the libtrust
# key /etc/docker/key.json, as Debian 12's docker.io 20.10 has it) and network state (bridge
# addresses, endpoint ids) are made anew at start.
rm -f /var/lib/docker/engine-id /etc/docker/key.json
rm -rf /var/lib/docker/network/files
# Machine identity: an empty machine-id (systemd makes a new one at first boot; PVE also
# removes it at create), no D-Bus machine id (a symlink to /etc/machine-id is kept).
: > /etc/machine-id
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; fi
# SSH host keys: PVE writes new ones at create; should a node not, this unit makes them before
# sshd starts.
rm -f /etc/ssh/ssh_host_*
if [ -d /etc/ssh ] && [ -d /etc/systemd/system ]; then
  cat > /etc/systemd/system/provision-ssh-host-keys.service <<'EOF'
[Unit]
Description=SSH host keys for a container made from a provision image
Before=ssh.service sshd.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
EOF
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/provision-ssh-host-keys.service /etc/systemd/system/multi-user.target.wants/provision-ssh-host-keys.service
fi
# vzdump puts the build container's config (its hostname, MAC address) into the archive as
# /etc/vzdump/pct.conf, and a create from a template keeps it (only a restore removes it):
# removed at the first boot of every container made from the image.
if [ -d /etc/systemd/system ]; then
  cat > /etc/systemd/system/provision-image-first-boot.service <<'EOF'
[Unit]
Description=Remove the image build container's configuration that vzdump stored
ConditionPathExists=/etc/vzdump/pct.conf

[Service]
Type=oneshot
ExecStart=/bin/rm -f /etc/vzdump/pct.conf

[Install]
WantedBy=multi-user.target
EOF
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/provision-image-first-boot.service /etc/systemd/system/multi-user.target.wants/provision-image-first-boot.service
fi
# Package lists and caches, logs, shell history, temporary files, the tool's state.
apt-get clean >/dev/null 2>&1 || true
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /var/log/journal/*
rm -f /root/.bash_history /root/.lesshst /root/.viminfo /home/*/.bash_history
rm -rf /tmp/* /var/tmp/* /var/lib/provision
rm -f /etc/vzdump/pct.conf
printf '%s\n' "$image" > /etc/provision-image
sync
echo "cleaned for templating: $image"
