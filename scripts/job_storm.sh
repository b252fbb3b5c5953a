#!/usr/bin/env bash
# Job storm: 200 benchmark triggers in one minute through the API as one operator, against gunicorn +
# PostgreSQL + Redis on loopback. Prints accepted / throttled / other counts and checks that every accepted
# trigger has its job row and its message in Redis. Usage: bash scripts/job_storm.sh [triggers] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
N=${1:-200}
SECS=${2:-60}
PORT=${PORT:-8767}
export DATABASE_URL=${LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/gpufit_load}
export DEBUG=0 SECRET_KEY=storm-$(head -c 24 /dev/urandom | base64) ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=0
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
QUEUE="gpu.any"  # no worker consumes it during the storm; emptied afterwards
createdb -h 127.0.0.1 -U postgres gpufit_load 2>/dev/null || true
$PY manage.py migrate --noinput >/dev/null
TOKEN=$($PY manage.py shell -c "
from django.contrib.auth.models import Permission, User
from core.models import ApiToken
from inference.models import BenchmarkJob
user, _ = User.objects.get_or_create(username='storm-operator')
user.user_permissions.add(Permission.objects.get(codename='run_benchmarks'))
BenchmarkJob.objects.filter(requested_by=user).delete()
print(ApiToken.objects.issue(user, 'storm')[1])
" | tail -1)
$PY -m gunicorn gpufit.wsgi:application -b 127.0.0.1:$PORT -w 3 --access-logfile /dev/null >/tmp/gpufit-storm.log 2>&1 &
GUNICORN=$!
trap 'kill $GUNICORN 2>/dev/null || true; wait $GUNICORN 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
$PY - "$PORT" "$TOKEN" "$N" "$SECS" <<'PYEOF'
import collections, http.client, json, sys, time
port, token, n, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
body = json.dumps({"preset": "tiny", "layers": 2, "precision": "fp32", "batch": 1, "prompt_tokens": 16,
                   "new_tokens": 4, "target_device": "cpu"})
codes, ids, start = collections.Counter(), [], time.monotonic()
for i in range(n):
    time.sleep(max(0.0, start + i * secs / n - time.monotonic()))
    conn.request("POST", "/api/v1/benchmarks", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    codes[r.status] += 1
    if r.status == 201:
        ids.append(json.loads(data)["id"])
print(f"{n} triggers in {time.monotonic() - start:.1f} s: " + ", ".join(f"{c}: {k}" for c, k in sorted(codes.items())))
print("accepted ids:", ids)
PYEOF
$PY manage.py shell -c "
import redis
from django.conf import settings
from inference.models import BenchmarkJob
jobs = BenchmarkJob.objects.filter(requested_by__username='storm-operator')
queue = '$QUEUE'
r = redis.Redis.from_url(settings.REDIS_URL)
print(f'job rows: {jobs.count()}, all queued: {all(j.status == \"queued\" for j in jobs)}, messages in {queue}: {r.llen(queue)}')
r.delete(queue)
jobs.delete()
"
