#!/usr/bin/env bash
# Load test: gunicorn + PostgreSQL on loopback, the estimate API and recommend at rising concurrency.
# Prints requests/s, p50/p99 latency and errors per level. Usage: bash scripts/load.sh [seconds-per-level]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SECS=${1:-10}
PORT=${PORT:-8765}
export DATABASE_URL=${LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/gpufit_load}
export DEBUG=0 SECRET_KEY=load-test-$(head -c 24 /dev/urandom | base64) ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=0
export GPUFIT_RATE_RECOMMEND=1000000/60 REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
createdb -h 127.0.0.1 -U postgres gpufit_load 2>/dev/null || true
$PY manage.py migrate --noinput >/dev/null
$PY manage.py load_catalog >/dev/null
$PY -m gunicorn gpufit.wsgi:application -b 127.0.0.1:$PORT -w 4 --access-logfile /dev/null >/tmp/gpufit-load-gunicorn.log 2>&1 &
GUNICORN=$!
trap 'kill $GUNICORN 2>/dev/null || true; wait $GUNICORN 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
$PY - "$PORT" "$SECS" <<'PYEOF'
import http.client, statistics, sys, threading, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
paths = {
    "estimate": "/api/v1/estimate?model=mixtral-8x7b-instruct-v0-1&quant=Q4_K_M&gpu=RTX%204090&context=8192",
    "recommend": "/api/v1/recommend?model=mixtral-8x7b-instruct-v0-1&quant=Q4_K_M&budget_usd=5000&limit=10",
}
def run(path, workers):
    lat, errors, stop = [], [0], time.monotonic() + secs
    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                conn.request("GET", path); r = conn.getresponse(); r.read()
                if r.status != 200: errors[0] += 1
            except Exception:
                errors[0] += 1; conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            lat.append(time.perf_counter() - t)
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    start = time.monotonic(); [t.start() for t in threads]; [t.join() for t in threads]
    lat.sort(); n = len(lat)
    print(f"{name:9s} c={workers:3d} {n / (time.monotonic() - start):7.1f} req/s  p50 {lat[n // 2] * 1000:6.1f} ms  "
          f"p99 {lat[int(n * 0.99) - 1] * 1000:6.1f} ms  errors {errors[0]}")
for name, path in paths.items():
    for c in (1, 4, 16, 32):
        run(path, c)
PYEOF
