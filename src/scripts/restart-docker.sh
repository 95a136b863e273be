systemctl restart docker
i=0
while ! docker info >/dev/null 2>&1; do
  i=$((i+1)); if [ "$i" -gt 120 ]; then echo "docker did not answer within 60 s after restart:" >&2; systemctl status docker --no-pager -l >&2 || true; exit 1; fi
  sleep 0.5
done
