new=$1; dest=$2; size=$3; want=$4; backup=$5; owner=${6:-}; mode=${7:-}
if [ ! -f "$new" ]; then echo "$new is not there: the push did not write it (pct push exits 0 even when its task fails)" >&2; exit 70; fi
have_size=$(wc -c < "$new" | tr -d ' ')
if [ "$have_size" != "$size" ]; then rm -f "$new"; echo "$new has $have_size bytes after the push, expected $size: the push did not complete" >&2; exit 70; fi
have=$(sha256sum "$new" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then rm -f "$new"; echo "checksum mismatch after push: got $have, expected $want" >&2; exit 65; fi
if [ "$backup" = 1 ] && [ -f "$dest" ]; then cp -p "$dest" "$dest.provision-backup"; fi
if [ -n "$owner" ]; then chown "$owner" "$new" || { rm -f "$new"; echo "cannot give $new the owner $owner of $dest" >&2; exit 70; }; fi
if [ -n "$mode" ]; then chmod "$mode" "$new" || { rm -f "$new"; echo "cannot give $new the mode $mode of $dest" >&2; exit 70; }; fi
mv -f "$new" "$dest"
