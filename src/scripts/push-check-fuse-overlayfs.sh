new=$1; dest=$2; want=$3
refuse() { rm -f "$new"; echo "fuse-overlayfs cannot run in this container: $*" >&2; exit 66; }
if [ ! -f "$new" ]; then echo "$new is not there: the push did not write it (pct push exits 0 even when its task fails)" >&2; exit 70; fi
if [ -n "$want" ]; then
  have=$(sha256sum "$new" | cut -d' ' -f1)
  if [ "$have" != "$want" ]; then rm -f "$new"; echo "checksum mismatch after push: got $have, expected $want" >&2; exit 65; fi
fi
magic=$(od -An -tx1 -N4 "$new" | tr -d ' \n')
if [ "$magic" != 7f454c46 ]; then
  refuse "it is not an ELF executable (a script or a damaged file?). Put the real fuse-overlayfs binary there, or use docker.fuse_overlayfs.source = \"package\""
fi
here=$(uname -m)
mach=$(od -An -tx1 -j18 -N2 "$new" | tr -d ' \n')
case "$here" in
  x86_64) ok=3e00 ;; aarch64|arm64) ok=b700 ;; i?86) ok=0300 ;; armv*) ok=2800 ;;
  riscv64) ok=f300 ;; ppc64le) ok=1500 ;; s390x) ok=0016 ;; *) ok=$mach ;;
esac
if [ "$mach" != "$ok" ]; then
  case "$mach" in
    3e00) built=x86_64 ;; b700) built=aarch64 ;; 0300) built=i386 ;; 2800) built=arm ;;
    f300) built=riscv64 ;; 1500) built=ppc64le ;; 0016) built=s390x ;; *) built="ELF machine 0x$mach" ;;
  esac
  refuse "wrong architecture: the binary is built for $built, this container is $here. Use a fuse-overlayfs built for $here, or docker.fuse_overlayfs.source = \"package\""
fi
chown 0:0 "$new"; chmod 0755 "$new"
if ! out=$("$new" --version 2>&1); then
  case "$out" in
    *"error while loading shared libraries"*|*"cannot open shared object"*)
      lib=$(printf '%s\n' "$out" | sed -n 's/.*error while loading shared libraries: \([^:]*\):.*/\1/p' | head -n 1)
      refuse "missing shared library ${lib:-(see below)}: the binary was built against other libraries than this container has. Install the package that provides ${lib:-it} (libfuse3.so.* comes with the distribution's libfuse3 package), use a build for this distribution or a static build, or use docker.fuse_overlayfs.source = \"package\". The loader said: $out" ;;
    *) refuse "\`fuse-overlayfs --version\` failed: $out" ;;
  esac
fi
mv -f "$new" "$dest"
