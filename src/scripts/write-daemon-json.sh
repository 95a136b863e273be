new=$1; dest=$2
if [ -f "$dest" ]; then cp -p "$dest" "$dest.provision-backup"; fi
mv -f "$new" "$dest"
