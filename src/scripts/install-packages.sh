method=$1; shift
# A fresh container runs apt-daily/unattended-upgrades at first boot: every apt-get waits for
# the dpkg lock (as run-tests and the lab do) instead of failing on "Could not get lock".
apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
pkgs="$*"
case "$method" in
  distro) pkgs="docker.io $pkgs"
          if apt-cache show docker-cli >/dev/null 2>&1; then pkgs="$pkgs docker-cli"; fi ;;
  docker-ce) repo=$1; shift; pkgs="$*"
          apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends ca-certificates curl >/dev/null
          . /etc/os-release
          install -m 0755 -d /etc/apt/keyrings
          curl -fsSL "$repo/gpg" -o /etc/apt/keyrings/docker.asc
          echo "deb [signed-by=/etc/apt/keyrings/docker.asc] $repo ${VERSION_CODENAME} stable" > /etc/apt/sources.list.d/docker.list
          apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
          pkgs="docker-ce docker-ce-cli containerd.io $pkgs" ;;
esac
# shellcheck disable=SC2086 # $pkgs is a list of package names: split on purpose
apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $pkgs
