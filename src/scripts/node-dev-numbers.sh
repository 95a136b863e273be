# Each device path's node type and numbers, as stat sees them (following links, as LXC's bind
# mount does): `dev KIND MAJHEX MINHEX PATH`, KIND c, b, other or missing.
for d in "$@"; do
  if [ -c "$d" ]; then k=c; elif [ -b "$d" ]; then k=b; elif [ -e "$d" ]; then k=other; else k=missing; fi
  case $k in
    c|b) echo "dev $k $(stat -L -c '%t %T' -- "$d") $d" ;;
    *) echo "dev $k - - $d" ;;
  esac
done
