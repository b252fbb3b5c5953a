#!/usr/bin/env bash
# Load run for the browsing pages: gunicorn on 127.0.0.1 against PostgreSQL, driven by wrk on loopback.
# Usage: scripts/load_pages.sh [seconds per page, default 15]
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (apt-get install -y wrk), the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
PORT="${PORT:-8765}"
DB=gpufit_load
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}"
export SECRET_KEY="load-run-only-$(date +%s)-not-for-production-use-xxxxxxxxxxxxxxxx"
# Loopback only, no TLS terminator in front: no HTTPS redirect.
export DEBUG=0 ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=0
. .venv/bin/activate

createdb -h 127.0.0.1 -U postgres "$DB" 2>/dev/null || true
python manage.py migrate -v0
python manage.py load_catalog >/dev/null

# 2 workers for the 2 cores here; each worker builds its catalog frame cache on its first request.
gunicorn gpufit.wsgi:application --bind "127.0.0.1:${PORT}" --workers 2 --access-logfile - \
  --access-logformat '%(U)s %(s)s %(M)s' >var/load-access.log 2>var/load-gunicorn.log &
GUNICORN=$!
trap 'kill "$GUNICORN" 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:${PORT}/healthz" >/dev/null && break; sleep 0.2; done

PAGES=(
  "/models/mixtral-8x7b-instruct-v0-1/"
  "/models/mixtral-8x7b-instruct-v0-1/?quant=Q8_0&context=32768"
  "/recommend/?model=mixtral-8x7b-instruct-v0-1"
  "/plan/?model=mixtral-8x7b-instruct-v0-1"
  "/gpus/nvidia-geforce-rtx-4090/"
)
for page in "${PAGES[@]}"; do
  curl -sf -o /dev/null "http://127.0.0.1:${PORT}${page}"  # warm both the cache and the worker
  echo "== ${page}"
  BEFORE=$(wc -l <var/load-access.log)
  wrk -t2 -c4 -d"${DURATION}s" --latency "http://127.0.0.1:${PORT}${page}" | grep -E "Requests/sec|50%|99%|Non-2xx"
  # Server time per request (gunicorn's %(M)s, milliseconds): median over the run.
  tail -n +"$((BEFORE + 1))" var/load-access.log | python -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
ms = sorted(int(r[-1]) for r in rows if r[-2] == "200")
bad = sum(1 for r in rows if r[-2] != "200")
if ms:
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"  server time median {statistics.median(ms):.0f} ms, p99 {p99} ms over {len(ms)} responses; non-200: {bad}")
else:
    print(f"  no 200 responses (non-200: {bad})")
'

done
