mkdir -p /var/lib/provision; f=/var/lib/provision/state; touch "$f"; { grep -v "^$1=" "$f" || true; echo "$1=$2"; } > "$f.new"; mv -f "$f.new" "$f"
