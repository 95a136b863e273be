if [ ! -x /usr/bin/fuse-overlayfs ]; then echo "the fuse-overlayfs package did not install /usr/bin/fuse-overlayfs; is it installed (apt-get install fuse-overlayfs)?" >&2; exit 66; fi
mkdir -p /usr/local/bin; ln -sfn /usr/bin/fuse-overlayfs "$1"
if ! out=$("$1" --version 2>&1); then echo "fuse-overlayfs from the package does not run in this container: $out" >&2; exit 66; fi
