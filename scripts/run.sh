#!/usr/bin/env bash
# make run: the embedded default — SQLite and a file-system Celery broker under var/ unless
# DATABASE_URL / REDIS_URL say otherwise; migrates, loads the catalog, starts a worker and the web server.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-1}"
PORT="${PORT:-8000}"
PY=.venv/bin/python
mkdir -p var/log

$PY manage.py migrate --noinput
$PY manage.py load_catalog
$PY manage.py ensure_demo_operator

$PY manage.py run_worker \
    >var/log/worker.log 2>&1 &
WORKER=$!
stop() { kill "$WORKER" 2>/dev/null || true; wait "$WORKER" 2>/dev/null || true; }
trap stop EXIT INT TERM

echo
echo "gpufit is running at http://127.0.0.1:${PORT}/  (admin: http://127.0.0.1:${PORT}/admin/)"
echo "Celery worker log: var/log/worker.log — Ctrl-C stops both."
echo
$PY manage.py runserver "127.0.0.1:${PORT}"
