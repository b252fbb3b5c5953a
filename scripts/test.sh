#!/usr/bin/env bash
# make test: the whole suite against PostgreSQL and Redis when they answer (always with CI=true).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DEBUG=1

answers() { # host port
  $PY - "$1" "$2" <<'PYEOF'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PYEOF
}

if [ -z "${DATABASE_URL:-}" ]; then
  if answers 127.0.0.1 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/gpufit"
  elif [ "${CI:-}" = "true" ]; then
    echo "CI=true but PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1
  else
    echo "NOTICE: PostgreSQL does not answer on 127.0.0.1:5432 — database tests run on SQLite."
  fi
fi
if [ -z "${REDIS_URL:-}" ]; then
  if answers 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379/0"
  elif [ "${CI:-}" = "true" ]; then
    echo "CI=true but Redis does not answer on 127.0.0.1:6379" >&2; exit 1
  else
    echo "NOTICE: Redis does not answer on 127.0.0.1:6379 — tests that need Redis and a worker will skip."
  fi
fi
echo "Database: ${DATABASE_URL:-SQLite (embedded)}; Redis: ${REDIS_URL:-none}"
exec $PY -m pytest "$@"
